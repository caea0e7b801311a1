"""``KubernetesSource``: a real API server, through the official ``kubernetes`` client.

Configured from a kubeconfig file and context (a token, a token file, client
certificates or an exec plugin), or from the pod's ServiceAccount (in-cluster).
Credentials are read again whenever the API answers 401, so rotated tokens are
picked up without a restart. Lists are paged and read as the API's JSON, one
page at a time; watch events are read as JSON lines (the API's own objects,
which is what checks read). Errors become the seam's kinds: ``Gone``,
``Forbidden`` (naming the permission), ``Unauthorized`` and ``Unavailable``.
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
from kubernetes.watch.watch import iter_resp_lines

from dashboard.cluster.resources import ENDPOINT_SLICES, EVENTS, NODES, PODS, SERVICES, Resource
from dashboard.cluster.source import (
    Forbidden,
    Gone,
    Listing,
    NotFound,
    Page,
    SourceError,
    Unauthorized,
    Unavailable,
    WatchEvent,
)

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
        self.kubeconfig = kubeconfig
        self.context = context
        self.in_cluster = in_cluster
        if in_cluster:
            self.description = "in-cluster ServiceAccount"
        else:
            where = f"kubeconfig {kubeconfig or '~/.kube/config'}"
            self.description = where + (f" context {context}" if context else "")
        self._lock = threading.Lock()
        self._open: set[Any] = set()  # watch responses, closed by ``close``
        self._closed = False
        self._load()

    def _load(self) -> None:
        """(Re)read the kubeconfig or the ServiceAccount files and build the clients from them.

        Called at start and again when the API answers 401: a rotated token (a TokenRequest
        token in the kubeconfig, the kubelet-rotated in-cluster token) or an exec plugin's
        new credentials are then used without a restart.
        """
        configuration = client.Configuration()
        try:
            if self.in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(
                    config_file=self.kubeconfig, context=self.context, client_configuration=configuration
                )
        except (ConfigException, OSError, TypeError, ValueError) as exc:
            where = (
                "the in-cluster ServiceAccount" if self.in_cluster else f"kubeconfig {self.kubeconfig or '(default)'}"
            )
            context_text = f" context {self.context}" if self.context else ""
            raise ValueError(f"cluster {self.cluster}: cannot use {where}{context_text}: {exc}") from None
        configuration.retries = 0  # the sync loop retries with backoff; urllib3 must not retry on its own
        api = client.ApiClient(configuration)
        core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
        list_funcs: dict[str, Callable[..., Any]] = {
            NODES.kind: core.list_node,
            PODS.kind: core.list_pod_for_all_namespaces,
            EVENTS.kind: core.list_event_for_all_namespaces,
            SERVICES.kind: core.list_service_for_all_namespaces,
            ENDPOINT_SLICES.kind: discovery.list_endpoint_slice_for_all_namespaces,
        }
        with self._lock:
            self.host = configuration.host
            self.api, self.core, self.versions = api, core, client.VersionApi(api)
            self._list_funcs = list_funcs

    def _call(self, make: Callable[[], Any], resource: Resource | None, verb: str) -> Any:
        """``make()``; on 401 read the credentials again and retry once; errors become ``SourceError``."""
        for attempt in (1, 2):
            try:
                return make()
            except ApiException as exc:
                if exc.status == 401 and attempt == 1:
                    log.info("%s: the API server answered 401; reading %s again", self.cluster, self.description)
                    try:
                        self._load()
                    except ValueError as reload_error:
                        raise Unavailable(str(reload_error)) from None
                    continue
                raise self._translate(exc, resource, verb) from exc
            except Exception as exc:
                raise self._translate(exc, resource, verb) from exc
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One call of the API by path (JSON in, JSON out), with the source's credentials and errors."""

        def make() -> Any:
            serialized = self.api.param_serialize(
                method,
                path,
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*serialized, _request_timeout=(CONNECT_TIMEOUT, 30))
            response.read()
            if not 200 <= response.status < 300:
                raise ApiException(http_resp=response)
            return response

        response = self._call(make, None, method.lower())
        parsed: dict[str, Any] = json.loads(response.data)
        return parsed

    def server_version(self) -> str:
        info = self._call(lambda: self.versions.get_code(_request_timeout=(CONNECT_TIMEOUT, 30)), None, "get")
        return str(info.git_version or "")

    def pages(self, resource: Resource) -> Iterator[Page]:
        """Every object, in pages of ``PAGE`` (a consistent snapshot: the pages share one resource version)."""
        token: str | None = None
        version = ""
        while True:

            def make(token: str | None = token) -> Any:
                return self._list_funcs[resource.kind](
                    limit=PAGE, _continue=token, _preload_content=False, _request_timeout=(10, 120)
                )

            response = self._call(make, resource, "list")
            try:
                body = json.loads(response.data)
            except ValueError as exc:
                raise self._translate(exc, resource, "list") from exc
            meta = body.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            token = meta.get("continue") or None
            items = body.get("items") or []
            del body, response
            yield Page(items=items, resource_version=version, last=not token)
            if not token:
                return

    def list(self, resource: Resource) -> Listing:
        """Every object at once (tests and tools; the watcher applies ``pages`` one by one)."""
        items: list[dict[str, Any]] = []
        version = ""
        for page in self.pages(resource):
            items.extend(page.items)
            version = page.resource_version
        return Listing(items=items, resource_version=version)

    def watch(self, resource: Resource, resource_version: str, stop: threading.Event) -> Iterator[WatchEvent]:
        # Spread the servers' stream ends over time, as client-go does.
        seconds = int(self.watch_seconds * (1 + random.random() * 0.25))

        def make() -> Any:
            return self._list_funcs[resource.kind](
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, seconds + 30),
            )

        response = self._call(make, resource, "watch")
        with self._lock:
            if self._closed:
                response.close()
                return
            self._open.add(response)
        try:
            yield WatchEvent("OPEN", {})
            for line in iter_resp_lines(response):
                if stop.is_set():
                    return
                event = _decode(line)
                if event is None:
                    continue
                if event["type"] == "ERROR":
                    raise self._status_error(event["object"], resource)
                yield WatchEvent(str(event["type"]), event["object"])
        except SourceError:
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # The stream broke after it was open: watch again from the last version;
            # if the server is really down, opening the next watch says so.
            if not stop.is_set():
                log.debug("%s: %s watch stream ended: %s", self.cluster, resource.plural, exc)
                yield WatchEvent("CLOSED", {})
        finally:
            with self._lock:
                self._open.discard(response)
            response.close()
            response.release_conn()

    def close(self) -> None:
        """Cut every open watch stream (their threads then end at once instead of at the stream's timeout)."""
        with self._lock:
            self._closed = True
            responses = list(self._open)
        for response in responses:
            try:
                response.shutdown()
            except Exception:  # closing is best effort; the threads are daemons
                log.debug("could not shut a watch stream", exc_info=True)

    def _status_error(self, status: dict[str, Any], resource: Resource) -> SourceError:
        code = int(status.get("code") or 0)
        message = str(status.get("message") or status.get("reason") or "")
        if code == 410:
            return Gone(message)
        if code == 403:
            return Forbidden(resource, "watch", message)
        if code == 401:
            self._reload_quietly()
            return Unauthorized(self._unauthorized())
        return Unavailable(f"watching {resource.plural} failed: {code} {message}".strip())

    def _reload_quietly(self) -> None:
        try:
            self._load()
        except ValueError:
            log.warning("%s: cannot read %s again", self.cluster, self.description, exc_info=True)

    def _unauthorized(self) -> str:
        return (
            f"Unauthorized: the API server at {self.host} rejected the credentials of {self.description} "
            "(read again after the first refusal)."
        )

    def _translate(self, exc: BaseException, resource: Resource | None, verb: str) -> SourceError:
        what = resource.plural if resource is not None else "the API"
        if isinstance(exc, ApiException):
            detail = _status_message(exc)
            if exc.status == 410:
                return Gone(detail)
            if exc.status == 403 and resource is not None:
                return Forbidden(resource, verb, detail)
            if exc.status == 401:
                return Unauthorized(self._unauthorized())
            if exc.status == 404 and resource is None:
                return NotFound(detail)
            if exc.status == 0:
                return Unavailable(f"cannot reach the API server at {self.host}: {exc.reason}")
            return Unavailable(f"{verb} {what}: the API server answered {exc.status} {exc.reason}. {detail}".strip())
        if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
            return Unavailable(f"cannot reach the API server at {self.host}: {_short(exc)}")
        if isinstance(exc, ValueError):
            return Unavailable(f"{verb} {what}: the API server's answer cannot be read: {exc}")
        return Unavailable(f"{verb} {what}: {type(exc).__name__}: {exc}")


def _decode(line: str) -> dict[str, Any] | None:
    """One line of a watch stream: ``{"type": ..., "object": {...}}``, or None when it is not one."""
    try:
        event = json.loads(line)
    except ValueError:
        log.warning("a watch stream line that is not JSON: %.200s", line)
        return None
    if not isinstance(event, dict) or "type" not in event or not isinstance(event.get("object"), dict):
        return None
    return event


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
