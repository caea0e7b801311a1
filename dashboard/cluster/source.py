"""The seam between the dashboard and a cluster: ``ClusterSource``.

A source lists and watches the kinds of ``resources.RESOURCES`` and tells the
API server's version. Objects are the API's JSON (dicts, camelCase), exactly what
``NodeSnapshot`` carries to the checks. Failures are the three ``SourceError``
kinds below, so that the runner in ``sync`` can react to each without knowing
which source it drives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from dashboard.cluster.resources import Resource


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        meta = self.object.get("metadata") or {}
        return str(meta.get("resourceVersion") or "")


@dataclass(frozen=True)
class Listing:
    items: list[dict[str, Any]]
    resource_version: str  # of the list: watch from here


@dataclass(frozen=True)
class Page:
    """One page of a list; the pages of one list share its resource version (the last page's is the list's)."""

    items: list[dict[str, Any]]
    resource_version: str
    last: bool


class SourceError(Exception):
    """A source failed; ``str()`` is a message for people (shown on the fleet page)."""


class Gone(SourceError):
    """410 Gone: the resource version to resume from is too old; list again."""


class Unavailable(SourceError):
    """The API server cannot be reached or answered with a server error; retry with backoff."""


class NotFound(SourceError):
    """404: the object asked for by name does not exist (``request`` only)."""


class Unauthorized(Unavailable):
    """401: the credentials were refused (read again first); retried like ``Unavailable``."""


class Forbidden(SourceError):
    """403: the dashboard's account lacks a permission; the message names it."""

    def __init__(self, resource: Resource, verb: str, detail: str = "") -> None:
        self.resource = resource
        self.verb = verb
        self.permission = resource.permission(verb)
        text = (
            f"Forbidden: the dashboard's account may not {self.permission} (cluster-wide). "
            f"Grant '{verb}' on '{resource.plural}' in API group '{resource.group or 'core'}' "
            "with the ClusterRole in deploy/kubernetes/base/dashboard/rbac.yaml."
        )
        super().__init__(text + (f" The API server said: {detail}" if detail else ""))


class ClusterSource(Protocol):
    """One cluster, as the API server shows it."""

    cluster: str  # the dashboard's name of the cluster (agents report the same name)
    description: str  # where it comes from, for people: "kubeconfig ~/.kube/config context prod-eu"

    def server_version(self) -> str:
        """``gitVersion`` of the API server, e.g. ``v1.30.2``."""
        ...

    def list(self, resource: Resource) -> Listing:
        """Every object of the kind, in all namespaces."""
        ...

    def pages(self, resource: Resource) -> Iterator[Page]:
        """The same list, one page at a time (at least one page, the last with ``last=True``).

        A caller that applies each page before asking for the next never holds the whole list.
        """
        ...

    def watch(self, resource: Resource, resource_version: str, stop: threading.Event) -> Iterator[WatchEvent]:
        """Changes after ``resource_version`` until the server ends the stream or ``stop`` is set.

        Raises ``Gone`` when ``resource_version`` is too old, ``Unavailable`` or
        ``Forbidden`` as their names say. Returning normally means: watch again.
        The first event is ``OPEN`` (the watch was accepted); a stream that breaks
        after it was open ends with ``CLOSED`` (the connection may have been lost:
        a good moment to ask the server's version again).
        """
        ...

    def close(self) -> None:
        """Abort open watch streams at once (the watcher is stopping); later calls may fail."""
        ...
