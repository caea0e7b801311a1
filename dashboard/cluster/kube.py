"""``KubernetesSource``: a real API server, through the official ``kubernetes`` client.

Configured from a kubeconfig file and context, or from the pod's ServiceAccount
(in-cluster). Lists are paged and read as the API's JSON; watch events go
through the client's own event decoding and model deserialization, and the
source hands on the raw object (``raw_object``), which is what checks read.
Errors become the seam's three kinds: ``Gone``, ``Forbidden`` (naming the
permission) and ``Unavailable``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import Watch, iter_resp_lines

from dashboard.cluster.resources import ENDPOINT_SLICES, EVENTS, NODES, PODS, SERVICES, Resource
from dashboard.cluster.source import Forbidden, Gone, Listing, SourceError, Unavailable, WatchEvent

log = logging.getLogger(__name__)

PAGE = 500
CONNECT_TIMEOUT = 10.0


class KubernetesSource:
    """One cluster's API server."""

    def __init__(
        self,
        cluster: str,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool = False,
        watch_seconds: int = 240,
    ) -> None:
        """Read the configuration now; raise ``ValueError`` with the reason when it is unusable."""
        self.cluster = cluster
        self.watch_seconds = watch_seconds
        configuration = client.Configuration()
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
                self.description = "in-cluster ServiceAccount"
            else:
                config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
                self.description = f"kubeconfig {kubeconfig or '~/.kube/config'}" + (
                    f" context {context}" if context else ""
                )
        except (ConfigException, OSError, TypeError, ValueError) as exc:
            where = "the in-cluster ServiceAccount" if in_cluster else f"kubeconfig {kubeconfig or '(default)'}"
            context_text = f" context {context}" if context else ""
            raise ValueError(f"cluster {cluster}: cannot use {where}{context_text}: {exc}") from None
        configuration.retries = 0  # the sync loop retries with backoff; urllib3 must not retry on its own
        self.host = configuration.host
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.discovery = client.DiscoveryV1Api(self.api)
        self.versions = client.VersionApi(self.api)
        self._list_funcs: dict[str, Callable[..., Any]] = {
            NODES.kind: self.core.list_node,
            PODS.kind: self.core.list_pod_for_all_namespaces,
            EVENTS.kind: self.core.list_event_for_all_namespaces,
            SERVICES.kind: self.core.list_service_for_all_namespaces,
            ENDPOINT_SLICES.kind: self.discovery.list_endpoint_slice_for_all_namespaces,
        }
        self._model = {
            NODES.kind: "V1Node",
            PODS.kind: "V1Pod",
            EVENTS.kind: "CoreV1Event",
            SERVICES.kind: "V1Service",
            ENDPOINT_SLICES.kind: "V1EndpointSlice",
        }

    def server_version(self) -> str:
        try:
            info = self.versions.get_code(_request_timeout=(CONNECT_TIMEOUT, 30))
        except Exception as exc:
            raise self._translate(exc, None, "get") from exc
        return str(info.git_version or "")

    def list(self, resource: Resource) -> Listing:
        """Every object, in pages of ``PAGE`` (a consistent snapshot: the pages share one resource version)."""
        func = self._list_funcs[resource.kind]
        items: list[dict[str, Any]] = []
        token: str | None = None
        version = ""
        while True:
            try:
                response = func(limit=PAGE, _continue=token, _preload_content=False, _request_timeout=(10, 120))
                body = json.loads(response.data)
            except Exception as exc:
                raise self._translate(exc, resource, "list") from exc
            items.extend(body.get("items") or [])
            meta = body.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            token = meta.get("continue") or None
            if not token:
                return Listing(items=items, resource_version=version)

    def watch(self, resource: Resource, resource_version: str, stop: threading.Event) -> Iterator[WatchEvent]:
        func = self._list_funcs[resource.kind]
        # Spread the servers' stream ends over time, as client-go does.
        seconds = int(self.watch_seconds * (1 + random.random() * 0.25))
        try:
            response = func(
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, seconds + 30),
            )
        except Exception as exc:
            raise self._translate(exc, resource, "watch") from exc
        decoder = Watch()
        decoder._api_client = self.api
        model = self._model[resource.kind]
        try:
            yield WatchEvent("OPEN", {})
            for line in iter_resp_lines(response):
                if stop.is_set():
                    return
                event = self._decode(decoder, line, model)
                if event is None:
                    continue
                if event["type"] == "ERROR":
                    raise self._status_error(event["raw_object"], resource)
                yield WatchEvent(str(event["type"]), event["raw_object"])
        except SourceError:
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # The stream broke after it was open: watch again from the last version;
            # if the server is really down, opening the next watch says so.
            log.info("%s: %s watch stream ended: %s", self.cluster, resource.plural, exc)
        finally:
            response.close()
            response.release_conn()

    @staticmethod
    def _decode(decoder: Watch, line: str, model: str) -> dict[str, Any] | None:
        """One line of a watch stream, through the client's decoding (which builds the model too)."""
        try:
            event: dict[str, Any] | None = decoder.unmarshal_event(line, model)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # An object the client's models reject (a newer API field, a missing required one):
            # keep the API's JSON, which is what checks read anyway.
            log.warning("watch event the client could not deserialize (%s); using its JSON", exc)
            try:
                event = json.loads(line)
            except ValueError:
                return None
            if isinstance(event, dict) and "object" in event:
                event["raw_object"] = event["object"]
        if not isinstance(event, dict) or "type" not in event or not isinstance(event.get("raw_object"), dict):
            return None
        return event

    def _status_error(self, status: dict[str, Any], resource: Resource) -> SourceError:
        code = int(status.get("code") or 0)
        message = str(status.get("message") or status.get("reason") or "")
        if code == 410:
            return Gone(message)
        if code == 403:
            return Forbidden(resource, "watch", message)
        return Unavailable(f"watching {resource.plural} failed: {code} {message}".strip())

    def _translate(self, exc: BaseException, resource: Resource | None, verb: str) -> SourceError:
        what = resource.plural if resource is not None else "the server version"
        if isinstance(exc, ApiException):
            detail = _status_message(exc)
            if exc.status == 410:
                return Gone(detail)
            if exc.status == 403 and resource is not None:
                return Forbidden(resource, verb, detail)
            if exc.status == 401:
                return Unavailable(
                    f"Unauthorized: the API server at {self.host} rejected the credentials of {self.description}."
                )
            if exc.status == 0:
                return Unavailable(f"cannot reach the API server at {self.host}: {exc.reason}")
            return Unavailable(f"{verb} {what}: the API server answered {exc.status} {exc.reason}. {detail}".strip())
        if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
            return Unavailable(f"cannot reach the API server at {self.host}: {_short(exc)}")
        if isinstance(exc, ValueError):
            return Unavailable(f"{verb} {what}: the API server's answer cannot be read: {exc}")
        return Unavailable(f"{verb} {what}: {type(exc).__name__}: {exc}")


def _status_message(exc: ApiException) -> str:
    """The ``message`` of the API's Status object in the error body, if any."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.reason or "")
    return str(body.get("message") or exc.reason or "") if isinstance(body, dict) else str(exc.reason or "")


def _short(exc: BaseException) -> str:
    """urllib3 wraps the cause several times; the innermost reason reads best."""
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
