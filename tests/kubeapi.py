"""The real Kubernetes API server of ``../shared/kube`` (kube-apiserver v1.28.0 + etcd), driven for tests.

``KubeApi.start(directory)`` runs ``apiserver.py start``; the object then talks to
the server as its admin (a static token in ``system:masters``) with the standard
library only, so that what the tests set up does not go through the code they test.
Besides creating objects it can restart the API server on the same port
(``restart``), compact etcd (``compact``), mint ServiceAccount tokens
(``token``, optionally bound to a pod) and write a kubeconfig for one
(``kubeconfig_for``). ``load_lab`` creates the lab cluster of
``tests/fixtures/cluster`` as real objects; ``reset`` removes every object a
test may have made, so one server serves a whole test session.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT.parent / "shared" / "kube" / "apiserver.py"
if not SCRIPT.exists():  # a worktree beside ../shared, or the main checkout
    SCRIPT = Path("/work/shared/kube/apiserver.py")
FIXTURES = ROOT / "tests" / "fixtures" / "cluster"
DASHBOARD_SA = ("windows-node-doctor", "node-doctor-dashboard")

# Waits for the test process to end, then stops its API server (a no-op when it was stopped already).
WATCHDOG = """
import os, subprocess, sys, time
owner, script, directory = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while True:
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        break
    time.sleep(1)
subprocess.run([sys.executable, script, "stop", directory], check=False)
"""

# Where each kind lives in the API.
PATHS = {
    "Node": ("/api/v1", "nodes", False),
    "Pod": ("/api/v1", "pods", True),
    "Event": ("/api/v1", "events", True),
    "Service": ("/api/v1", "services", True),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices", True),
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
}


# Where kube-apiserver keeps each kind in etcd.
ETCD_PREFIX = {
    "Node": "minions",
    "Pod": "pods",
    "Event": "events",
    "Service": "services/specs",
    "EndpointSlice": "endpointslices",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{status}: {body.get('message') if isinstance(body, dict) else body}")


def collection(kind: str, namespace: str = "") -> str:
    prefix, plural, namespaced = PATHS[kind]
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespaced and namespace else f"{prefix}/{plural}"


def fresh(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as one would create it: without what the server assigns."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink"):
        meta.pop(key, None)
    return obj


def _into_service_range(service: dict[str, Any]) -> None:
    """This server's Service range is 10.96.0.0/16: move a recorded ClusterIP into it (same last two octets)."""
    spec = service.get("spec") or {}
    ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
    if ips:
        moved = ["10.96." + ".".join(ip.split(".")[2:]) if ip.count(".") == 3 else ip for ip in ips]
        spec["clusterIP"], spec["clusterIPs"] = moved[0], moved


class KubeApi:
    """A running API server and an admin's way into it."""

    def __init__(self, directory: Path | None, info: dict[str, Any]) -> None:
        self.directory = directory or Path()
        self.info = info
        self.server: str = info["server"]
        self.ca: str = info["ca"]
        self.admin_token: str = info["token"]
        self.kubeconfig = Path(info["kubeconfig"])
        self.version: str = info["version"]
        self.ssl = ssl.create_default_context(cafile=self.ca)
        self._local = threading.local()

    @classmethod
    def start(cls, directory: Path, *, watchdog: bool = True) -> KubeApi:
        """Start a server in ``directory``; with ``watchdog``, it is stopped when this process ends in any way.

        A test run killed from outside (a timeout, Ctrl-C twice) runs no teardown: without the
        watchdog its etcd and API server would live on.
        """
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "start", str(directory)], check=True, capture_output=True, text=True
        )
        if watchdog:
            subprocess.Popen(
                [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(SCRIPT), str(directory)],
                start_new_session=True,  # outlives a kill of this process's group
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return cls(directory, json.loads(done.stdout.strip().splitlines()[-1]))

    def stop(self) -> None:
        subprocess.run([sys.executable, str(SCRIPT), "stop", str(self.directory)], check=False, capture_output=True)

    # -- processes -------------------------------------------------------------------

    def _pids(self) -> dict[str, int]:
        pids: dict[str, int] = json.loads((self.directory / "pids.json").read_text())
        return pids

    def _cmdline(self, pid: int) -> list[str]:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if a]

    @property
    def etcd_url(self) -> str:
        args = self._cmdline(self._pids()["kube-apiserver"])
        return next(a.split("=", 1)[1] for a in args if a.startswith("--etcd-servers="))

    def kill_apiserver(self) -> list[str]:
        """Stop the API server (etcd stays); return its command line to start it again."""
        pid = self._pids()["kube-apiserver"]
        args = self._cmdline(pid)
        os.killpg(pid, signal.SIGTERM)
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.killpg(pid, signal.SIGKILL)
        return args

    def start_apiserver(self, args: list[str]) -> None:
        log = open(self.directory / "logs" / "kube-apiserver.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        pids = self._pids()
        pids["kube-apiserver"] = proc.pid
        (self.directory / "pids.json").write_text(json.dumps(pids))
        self.wait_ready()

    def restart(self) -> None:
        """Stop the API server and start it again on the same port (etcd keeps the data)."""
        self.start_apiserver(self.kill_apiserver())

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except (OSError, ApiError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        raise RuntimeError("the API server did not become ready")

    def compact(self) -> int:
        """Compact etcd at its current revision: older resource versions are gone for good."""
        revision = int(self._etcd("/v3/kv/range", {"key": "YQ=="})["header"]["revision"])
        self._etcd("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def put_many(self, objects: list[dict[str, Any]], batch: int = 100) -> None:
        """Write objects straight into etcd, ``batch`` to a transaction: thousands a second where the API
        creates dozens (admission, defaulting and one round trip each). The API server reads them from
        etcd like any others (its storage accepts JSON); nothing validates them, so they must be complete:
        ``kind``, ``apiVersion``, a namespace where needed, and the status they should have.
        """
        ops: list[dict[str, Any]] = []
        for obj in objects:
            meta = obj.setdefault("metadata", {})
            meta.pop("resourceVersion", None)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            key = f"/registry/{ETCD_PREFIX[obj['kind']]}/" + (
                f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
            )
            value = json.dumps(obj, separators=(",", ":")).encode()
            ops.append({"requestPut": {"key": _b64(key.encode()), "value": _b64(value)}})
            if len(ops) >= batch:
                self._etcd("/v3/kv/txn", {"success": ops})
                ops = []
        if ops:
            self._etcd("/v3/kv/txn", {"success": ops})

    def _etcd(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.etcd_url + path, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    # -- HTTP ------------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPSConnection:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            url = urlparse(self.server)
            conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=self.ssl, timeout=60)
            self._local.conn = conn
        return conn

    def request(
        self, method: str, path: str, body: Any = None, *, token: str | None = None, content_type: str = ""
    ) -> tuple[int, Any]:
        """One call on a kept-alive connection (per thread); raises ``ApiError`` for 4xx/5xx."""
        headers = {"Authorization": f"Bearer {token or self.admin_token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        if response.status >= 400:
            raise ApiError(response.status, parsed)
        return response.status, parsed

    def create(self, obj: dict[str, Any], *, status: bool = True) -> dict[str, Any]:
        """Create ``obj`` (and set its ``status`` through the status subresource, as kubelet would)."""
        obj = fresh(obj)
        kind = obj["kind"]
        namespace = obj["metadata"].get("namespace", "")
        _, created = self.request("POST", collection(kind, namespace), obj)
        if status and obj.get("status") and kind in ("Node", "Pod"):
            created["status"] = obj["status"]
            path = f"{collection(kind, namespace)}/{obj['metadata']['name']}/status"
            _, created = self.request("PUT", path, created)
        result: dict[str, Any] = created
        return result

    def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any]:
        obj: dict[str, Any] = self.request("GET", f"{collection(kind, namespace)}/{name}")[1]
        return obj

    def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        path = f"{collection(obj['kind'], meta.get('namespace', ''))}/{meta['name']}"
        updated: dict[str, Any] = self.request("PUT", path, obj)[1]
        return updated

    def patch_status(self, kind: str, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
        path = f"{collection(kind, namespace)}/{name}/status"
        patched: dict[str, Any] = self.request(
            "PATCH", path, {"status": status}, content_type="application/merge-patch+json"
        )[1]
        return patched

    def delete(self, kind: str, name: str, namespace: str = "") -> None:
        try:
            self.request("DELETE", f"{collection(kind, namespace)}/{name}", {"gracePeriodSeconds": 0})
        except ApiError as exc:
            if exc.status != 404:
                raise

    def items(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind``, with ``kind`` set on each (a list leaves it out)."""
        items: list[dict[str, Any]] = self.request("GET", collection(kind))[1]["items"]
        for item in items:
            item["kind"] = kind
        return items

    def namespace(self, name: str) -> None:
        """A namespace with its ``default`` ServiceAccount (no controller makes it here)."""
        for obj in (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}},
        ):
            try:
                self.request("POST", collection(obj["kind"], name), obj)
            except ApiError as exc:
                if exc.status != 409:
                    raise

    def service_account(self, namespace: str, name: str) -> None:
        self.namespace(namespace)
        obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
        try:
            self.request("POST", collection("ServiceAccount", namespace), obj)
        except ApiError as exc:
            if exc.status != 409:
                raise

    def token(
        self,
        namespace: str,
        name: str,
        *,
        audiences: Iterable[str] = (),
        pod: dict[str, Any] | None = None,
        seconds: int = 3600,
    ) -> str:
        """A TokenRequest token of ServiceAccount ``namespace/name`` (bound to ``pod`` when given)."""
        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if audiences:
            spec["audiences"] = list(audiences)
        if pod is not None:
            spec["boundObjectRef"] = {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            }
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
        token: str = self.request("POST", path, body)[1]["status"]["token"]
        return token

    def kubeconfig_for(self, path: Path, *, token: str = "", token_file: str = "", context: str = "wnd-test") -> Path:
        """A kubeconfig for this server whose user is a bearer token (inline, or read from a file)."""
        user: dict[str, Any] = {"tokenFile": token_file} if token_file else {"token": token}
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": context,
                    "clusters": [
                        {"name": "test", "cluster": {"server": self.server, "certificate-authority": self.ca}}
                    ],
                    "users": [{"name": "user", "user": user}],
                    "contexts": [{"name": context, "context": {"cluster": "test", "user": "user"}}],
                }
            )
        )
        return path

    def apply_file(self, path: Path) -> None:
        subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "apply", "-f", str(path)],
            check=True,
            capture_output=True,
        )

    def grant(self, namespace: str, account: str, rules: list[dict[str, Any]] | None = None, role: str = "") -> str:
        """Bind ServiceAccount ``namespace/account`` to a new ClusterRole of ``rules`` (or to ``role``).

        Returns the ClusterRole's name.
        """
        self.service_account(namespace, account)
        name = role
        if not role:
            name = f"test-{account}-{time.monotonic_ns()}"
            body = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}}
            self.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {**body, "rules": rules or []})
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"test-{account}-{time.monotonic_ns()}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
        self.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
        return name

    def dashboard_token(self, seconds: int = 3600) -> str:
        """A token of the dashboard's ServiceAccount, which the shipped ``rbac.yaml`` binds (applied first)."""
        self.service_account(*DASHBOARD_SA)
        self.apply_file(ROOT / "deploy" / "kubernetes" / "base" / "dashboard" / "rbac.yaml")
        return self.token(*DASHBOARD_SA, seconds=seconds)

    # -- a whole cluster ---------------------------------------------------------------------

    def load_lab(self) -> None:
        """The lab cluster of ``tests/fixtures/cluster``, created as real objects."""
        lists = {
            "Node": ["nodes"],
            "Pod": ["pods", "pods-stuck"],
            "Event": ["events"],
            "Service": ["services"],
            "EndpointSlice": ["endpointslices"],
        }
        for kind, names in lists.items():
            for name in names:
                for obj in json.loads((FIXTURES / f"{name}.json").read_text())["items"]:
                    obj.setdefault("kind", kind)
                    obj.setdefault("apiVersion", "discovery.k8s.io/v1" if kind == "EndpointSlice" else "v1")
                    namespace = obj["metadata"].get("namespace", "")
                    if namespace:
                        self.namespace(namespace)
                    if kind == "Pod":
                        account = obj["spec"].get("serviceAccountName") or "default"
                        self.service_account(namespace, account)
                    if (namespace, obj["metadata"]["name"]) == ("default", "kubernetes"):
                        continue  # the API server's own Service and EndpointSlice
                    if kind == "Service":
                        _into_service_range(obj)
                    try:
                        self.create(obj)
                    except ApiError as exc:
                        if exc.status != 409:  # default/kubernetes (Service, EndpointSlice) exist already
                            raise

    def reset(self) -> None:
        """Delete what tests create: nodes, pods, events, services (not default/kubernetes), endpoint slices."""
        for kind in ("Pod", "Event", "EndpointSlice", "Service", "Node"):
            for obj in self.items(kind):
                meta = obj["metadata"]
                if kind == "Service" and (meta.get("namespace"), meta["name"]) == ("default", "kubernetes"):
                    continue
                if kind == "EndpointSlice" and meta.get("namespace") == "default" and meta["name"] == "kubernetes":
                    continue
                self.delete(kind, meta["name"], meta.get("namespace", ""))
