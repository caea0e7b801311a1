"""Agents that enroll themselves: a projected ServiceAccount token, verified by TokenReview.

The agent DaemonSet mounts a projected ServiceAccount token whose audience is the
dashboard (``WND_AGENT_AUDIENCE``); kubelet rotates it and the agent sends the file's
current content. The dashboard asks the API server of a configured cluster (through
the cluster source's own configuration, ``KubernetesSource``) to review it, and
accepts it only when:

- the API server authenticates it for the dashboard's audience;
- it is a token of the agent's ServiceAccount (``WND_AGENT_SERVICE_ACCOUNT``,
  ``namespace/name``), not of any other account;
- it names a node: the node claim (``authentication.kubernetes.io/node-name`` in
  ``status.user.extra``, Kubernetes 1.30 and later), or else the pod it is bound to
  (``.../pod-name`` and ``.../pod-uid``), read from the API: the same pod, still there,
  scheduled on a node;
- that node is still in the cluster.

The node is then the identity: a report or a WebSocket for another node is refused,
as with per-node tokens (which stay, for Windows-service installs). Reviews are kept
for ``REVIEW_TTL`` seconds so that ingest stays fast; refusals for less. The RBAC this
needs (``create tokenreviews``, ``get pods``, ``get nodes``) is in
``deploy/kubernetes/base/dashboard/rbac.yaml``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from dashboard.cluster.source import NotFound, SourceError

if TYPE_CHECKING:
    from dashboard.models import AgentToken, Node

log = logging.getLogger(__name__)

REVIEW_TTL = 30.0  # seconds an accepted review is reused
REFUSAL_TTL = 5.0  # seconds a refusal is reused (a pod that is being created may appear)
NODE_CLAIM = "authentication.kubernetes.io/node-name"
POD_NAME_CLAIM = "authentication.kubernetes.io/pod-name"
POD_UID_CLAIM = "authentication.kubernetes.io/pod-uid"
REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


@dataclass(frozen=True)
class AgentIdentity:
    """Whom a reviewed token speaks for."""

    cluster: str
    node: str
    pod: str = ""  # namespace/name of the agent's pod, when the token is bound to one


class Refused(Exception):
    """The token is not accepted; ``status`` is the HTTP answer (401, 403, or 503 when the API cannot say)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_service_account_token(raw: str) -> bool:
    """A JSON Web Token (three dot-separated parts), as ServiceAccount tokens are; per-node tokens are not."""
    parts = raw.split(".")
    return len(parts) == 3 and all(parts) and raw.startswith("ey")


_cache: dict[str, tuple[float, AgentIdentity | Refused]] = {}
_sources: dict[str, Any] = {}
_lock = threading.Lock()


def forget() -> None:
    """Drop every kept review and connection (tests; a changed configuration)."""
    with _lock:
        _cache.clear()
        _sources.clear()


def review(raw: str) -> AgentIdentity:
    """The identity of a ServiceAccount token, or ``Refused`` saying why not."""
    key = hashlib.sha256(raw.encode()).hexdigest()
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] > now:
        if isinstance(cached[1], Refused):
            raise cached[1]
        return cached[1]
    try:
        identity: AgentIdentity | Refused = _review(raw)
    except Refused as exc:
        identity = exc
    if not (isinstance(identity, Refused) and identity.status >= 500):
        ttl = REFUSAL_TTL if isinstance(identity, Refused) else REVIEW_TTL
        with _lock:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[key] = (now + ttl, identity)
    if isinstance(identity, Refused):
        raise identity
    return identity


def _review(raw: str) -> AgentIdentity:
    sources = _cluster_sources()
    if not sources:
        raise Refused(401, "ServiceAccount tokens are accepted only from a watched cluster: set WND_CLUSTERS")
    unavailable = ""
    for cluster, source in sources:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": raw, "audiences": [settings.WND_AGENT_AUDIENCE]},
        }
        try:
            status = source.request("POST", REVIEWS, body).get("status") or {}
        except SourceError as exc:
            log.warning("cluster %s: cannot review an agent's token: %s", cluster, exc)
            unavailable = f"cluster {cluster}: {exc}"
            continue
        if status.get("authenticated"):
            return _identity(source, cluster, status)
    if unavailable:
        raise Refused(503, f"the token cannot be verified now ({unavailable}); retry later")
    raise Refused(
        401,
        "the ServiceAccount token is not valid for the dashboard (expired, of another cluster, its pod deleted, "
        f"or not of audience {settings.WND_AGENT_AUDIENCE!r})",
    )


def _identity(source: Any, cluster: str, status: dict[str, Any]) -> AgentIdentity:
    namespace, _, account = settings.WND_AGENT_SERVICE_ACCOUNT.partition("/")
    user = status.get("user") or {}
    username = str(user.get("username") or "")
    if username != f"system:serviceaccount:{namespace}:{account}":
        raise Refused(
            403,
            f"the token is of {username or 'an unknown user'}, not of the agent's ServiceAccount "
            f"{namespace}/{account} (WND_AGENT_SERVICE_ACCOUNT)",
        )
    extra = user.get("extra") or {}
    node = _first(extra.get(NODE_CLAIM))
    pod_name, pod_uid = _first(extra.get(POD_NAME_CLAIM)), _first(extra.get(POD_UID_CLAIM))
    if not node:
        if not pod_name:
            raise Refused(
                403, "the token is not bound to a pod: mount a projected ServiceAccount token in the agent's pod"
            )
        pod = _get(source, f"/api/v1/namespaces/{namespace}/pods/{pod_name}", f"the token's pod {pod_name}")
        if pod_uid and str((pod.get("metadata") or {}).get("uid") or "") != pod_uid:
            raise Refused(403, f"the token's pod {namespace}/{pod_name} was replaced by another pod of that name")
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node:
            raise Refused(403, f"the token's pod {namespace}/{pod_name} is not scheduled on a node")
    _get(source, f"/api/v1/nodes/{node}", f"node {node}")  # a node that left the cluster is not accepted
    return AgentIdentity(cluster=cluster, node=node, pod=f"{namespace}/{pod_name}" if pod_name else "")


def _get(source: Any, path: str, what: str) -> dict[str, Any]:
    try:
        found: dict[str, Any] = source.request("GET", path)
    except NotFound:
        raise Refused(403, f"{what} is no longer in the cluster") from None
    except SourceError as exc:
        raise Refused(503, f"cannot read {what}: {exc}") from None
    return found


def _first(values: Any) -> str:
    if isinstance(values, list) and values:
        return str(values[0])
    return str(values) if isinstance(values, str) else ""


def _cluster_sources() -> list[tuple[str, Any]]:
    """A source (connection) per configured real cluster, made once per process."""
    from dashboard.cluster.config import ConfigError, configured

    with _lock:
        if _sources:
            return list(_sources.items())
    try:
        configs = [c for c in configured() if not c.simulated]
    except ConfigError as exc:
        log.warning("no cluster to review agent tokens with: %s", exc)
        return []
    made: dict[str, Any] = {}
    for config in configs:
        try:
            made[config.name] = config.source()
        except ConfigError as exc:
            log.warning("cannot review agent tokens with cluster %s: %s", config.name, exc)
    with _lock:
        _sources.update(made)
        return list(_sources.items())


def authenticate(raw: str) -> tuple[Node, AgentToken | None]:
    """The node a bearer token speaks for: a per-node token, or a reviewed ServiceAccount token.

    A node known only by review is created on its first use (it appears with its first
    report). Raises ``Refused`` with the answer to give.
    """
    from dashboard.models import AgentToken, Cluster, Node

    token = AgentToken.authenticate(raw) if raw else None
    if token is not None:
        return token.node, token
    if not is_service_account_token(raw):
        raise Refused(401, "unknown or revoked node token: create one for this node in the dashboard")
    identity = review(raw)
    cluster = Cluster.objects.get_or_create(name=identity.cluster)[0]
    node = Node.objects.select_related("cluster").get_or_create(cluster=cluster, name=identity.node)[0]
    return node, None
