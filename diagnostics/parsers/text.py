"""Facts in free text: what people paste into an issue or a chat besides log lines.

``read_text(text)`` returns ``TextFacts``; it never raises on odd text. It reads:

1. ``kubectl get nodes`` tables (plain, ``-o wide``, with or without their header, rows behind a
   shell prompt) -> one Node object per row. Only rows that are Windows nodes become objects:
   an ``OS-IMAGE``/``KERNEL-VERSION`` that says Windows, else a name that does (``win``), else
   -- for tables without OS columns -- a worker row in text that is about Windows at all.
   Control-plane and Linux rows never do; the control plane's version stands for the API server's.
2. ``kubectl describe node`` (Labels, Taints, Conditions, Capacity/Allocatable, System Info)
   -> a Node object; Events alone (``Node X status is now: NodeNotReady``) -> its Ready condition.
3. ``kubectl version`` -> the API server version.
4. Versions said in passing for the node the text is about (an issue template's "Kubernetes
   version", "Kernel", "Others: Docker EE 18.09.2", ``docker version``/``docker info``,
   ``crictl version``, kubelet's ``Version:`` line) -> ``node_info`` in nodeInfo's own keys.
5. An empty ``Get-HnsNetwork`` (the prompt comes back with nothing printed) -> ``hns_networks_empty``.
6. The network mode the text expects (l2bridge / overlay) -> ``network_hint``.
7. ``ipconfig`` blocks -> ``ipconfig`` (the text from "Windows IP Configuration" on).
8. ``Capacity:`` / ``Allocatable:`` blocks pasted without the rest of ``kubectl describe node``
   (no ``Name:`` line), in text about Windows -> ``resources`` of the unnamed node the text is about.
9. A Windows CNI config (JSON with an OutBoundNAT ``ExceptionList``) pasted among prose -> ``cni_conf``,
   the JSON text as the node's cni.conf.

Node objects carry the API's shape (camelCase) so the checks read them as they read the API's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from diagnostics.parsers.flannel import parse_cni_conf

TEXT_NODE_ANNOTATION = "windows-node-doctor/source"


@dataclass
class TextFacts:
    nodes: list[dict[str, Any]] = field(default_factory=list)  # Windows Node objects
    server_version: str = ""
    node_info: dict[str, str] = field(default_factory=dict)  # this (unnamed) node's nodeInfo keys
    hns_networks_empty: bool = False
    network_hint: str = ""  # "l2bridge" or "overlay"
    node_name: str = ""  # the node the text is about, when it names one (describe pod's Node:, an event's source)
    ipconfig: str = ""
    probes: list[Probe] = field(default_factory=list)
    resources: dict[str, dict[str, str]] = field(default_factory=dict)  # this (unnamed) node's capacity/allocatable
    cni_conf: str = ""  # a CNI config's JSON text

    def __bool__(self) -> bool:
        return bool(
            self.nodes
            or self.server_version
            or self.node_info
            or self.hns_networks_empty
            or self.ipconfig
            or self.resources
            or self.cni_conf
        )


_WINDOWS_CONTEXT = re.compile(
    r"windows|\.ps1\b|\bC:\\|\.exe\b|\bhns\b|vethernet|nssm|win-?overlay|win-?bridge|powershell", re.IGNORECASE
)
_LINUX_NAME = re.compile(r"linux|ubuntu|centos|rhel|debian|master|control|etcd|\blnx", re.IGNORECASE)
_STATUS = re.compile(r"^(Ready|NotReady|Unknown)(?:,\S+)?$")
_VERSION = re.compile(r"^v\d+\.\d+")
_AGE = re.compile(r"^(?:\d+[smhdy])+$|^<invalid>$")
_HEADER = re.compile(r"^\W{0,3}NAME[\s|]+STATUS[\s|]+(?:ROLES[\s|]+)?AGE[\s|]+VERSION\b.*$", re.MULTILINE)


def read_text(text: str) -> TextFacts:
    facts = TextFacts()
    windows_context = bool(_WINDOWS_CONTEXT.search(text))
    nodes: dict[str, dict[str, Any]] = {}
    control_versions: list[str] = []
    for node, is_windows, is_control in _table_nodes(text, windows_context):
        if is_control and node["status"]["nodeInfo"].get("kubeletVersion"):
            control_versions.append(node["status"]["nodeInfo"]["kubeletVersion"])
        if is_windows:
            nodes.setdefault(node["metadata"]["name"], node)
    for node in _described_nodes(text):
        _merge(nodes.setdefault(node["metadata"]["name"], node), node)
    for name, ready in _node_events(text, windows_context).items():
        node = nodes.setdefault(name, _node(name, "kubectl events"))
        if not node["status"].get("conditions"):
            node["status"]["conditions"] = [ready]
    facts.nodes = list(nodes.values())
    facts.server_version = _server_version(text) or (control_versions[0] if control_versions else "")
    facts.node_info = _node_info(text)
    if windows_context and not _DESCRIBE_NAME.search(text):
        facts.resources = _resources(text)
    facts.cni_conf = _cni_config(text)
    named = _POD_NODE.search(text) or _EVENT_SOURCE.search(text)
    if named and not _LINUX_NAME.search(named.group(1)):
        facts.node_name = named.group(1).lower()
    facts.hns_networks_empty = bool(_EMPTY_HNS.search(text))
    hint = _HINT.search(text)
    if hint:
        word = hint.group(1).lower()
        facts.network_hint = (
            "overlay" if word in ("overlay", "vxlan", "vxlan0", "win-overlay", "flannel.4096") else "l2bridge"
        )
    start = text.find("Windows IP Configuration")
    if start >= 0:
        facts.ipconfig = text[start:]
    vips = set(_CLUSTER_IP.findall(text))
    facts.probes = [
        Probe("service-vip", p.target, p.origin, p.ok, p.output, p.pod)
        if p.kind == "curl" and p.target.split(":")[0] in vips
        else p
        for p in read_probes(text)
    ]
    return facts


# ``kubectl get svc``: NAME TYPE CLUSTER-IP ... -- the ClusterIPs a transcript may test
_CLUSTER_IP = re.compile(r"^\S+\s+(?:\S+\s+)?(?:ClusterIP|NodePort|LoadBalancer)\s+(\d+\.\d+\.\d+\.\d+)\s", re.M)


# -- kubectl get nodes -------------------------------------------------------------


def _split(line: str) -> list[str]:
    """A table row's cells: kubectl separates columns by three or more spaces (values hold single ones);
    a row retyped as a Markdown table (``| a | b |``) by its pipes."""
    if line.strip().startswith("|") and line.count("|") >= 3:
        return [cell.strip() for cell in line.strip().strip("|").split("|") if cell.strip()]
    line = re.sub(r"^\W{0,3}(?=\S)", "", line.rstrip()) if line.lstrip().startswith((">", "|", "*")) else line
    return [cell.strip() for cell in re.split(r"\s{2,}|\t+", line.strip()) if cell.strip()]


def _table_nodes(text: str, windows_context: bool) -> list[tuple[dict[str, Any], bool, bool]]:
    """Rows of ``kubectl get nodes``: (Node object, is a Windows node, is the control plane)."""
    headers: list[tuple[int, list[str]]] = [(m.start(), _split(m.group(0))) for m in _HEADER.finditer(text)]
    found: list[tuple[dict[str, Any], bool, bool]] = []
    lines = text.splitlines()
    offset = 0
    pending = ""
    for line in lines:
        start = offset
        offset += len(line) + 1
        if pending:
            line, pending = pending + "   " + line.strip(), ""
        cells = _split(line)
        if len(cells) < 2 or not _STATUS.match(cells[1]) or cells[0].upper() == "NAME":
            continue
        header = next((h for pos, h in reversed(headers) if pos <= start), None)
        row = _row(cells, header)
        if row is None:
            continue
        found.append(_table_node(row, windows_context))
    return found


def _row(cells: list[str], header: list[str] | None) -> dict[str, str] | None:
    """A row as {column: value}; without a header the columns are told by their values."""
    if header and len(cells) == len(header):
        return {h.upper(): v for h, v in zip(header, cells, strict=True)}
    row = {"NAME": cells[0], "STATUS": cells[1]}
    rest = cells[2:]
    version_at = next((i for i, c in enumerate(rest) if _VERSION.match(c)), None)
    if version_at is None:
        if rest and not _AGE.match(rest[0]):
            row["ROLES"] = rest[0]
        return row
    row["VERSION"] = rest[version_at]
    before = [c for c in rest[:version_at] if not _AGE.match(c)]
    if before:
        row["ROLES"] = before[0]
    for cell in rest[version_at + 1 :]:
        if "://" in cell:
            row["CONTAINER-RUNTIME"] = cell
        elif re.match(r"^\d+\.\d+\.\d+", cell):
            row["KERNEL-VERSION"] = cell
        elif re.search(r"[A-Za-z]{3,}", cell) and cell != "<none>" and "OS-IMAGE" not in row:
            row["OS-IMAGE"] = cell
        elif re.match(r"^[\dx.:]+$", cell) and "INTERNAL-IP" not in row:
            row["INTERNAL-IP"] = cell
    return row


def _table_node(row: dict[str, str], windows_context: bool) -> tuple[dict[str, Any], bool, bool]:
    name, status = row["NAME"], row["STATUS"]
    roles = row.get("ROLES", "")
    os_image, kernel = row.get("OS-IMAGE", ""), row.get("KERNEL-VERSION", "")
    is_control = bool(re.search(r"master|control-plane|etcd", roles)) or (
        not roles and bool(re.search(r"master|control-plane", name))
    )
    if os_image or kernel:
        is_windows = "windows" in os_image.lower() or kernel.startswith("10.0.")
    elif is_control or _LINUX_NAME.search(name):
        is_windows = False
    else:
        is_windows = "win" in name.lower() or windows_context
    is_windows = is_windows and not is_control
    node = _node(name, "kubectl get nodes")
    ready = status.split(",")[0]
    node["status"]["conditions"] = [
        {
            "type": "Ready",
            "status": {"Ready": "True", "NotReady": "False"}.get(ready, "Unknown"),
            "reason": f"{status} in kubectl get nodes",
            "message": "",
        }
    ]
    info = node["status"]["nodeInfo"]
    for column, key in (
        ("VERSION", "kubeletVersion"),
        ("KERNEL-VERSION", "kernelVersion"),
        ("OS-IMAGE", "osImage"),
        ("CONTAINER-RUNTIME", "containerRuntimeVersion"),
    ):
        if row.get(column) and row[column] != "<none>":
            info[key] = row[column]
    if row.get("INTERNAL-IP", "<none>") != "<none>":
        node["status"]["addresses"] = [{"type": "InternalIP", "address": row["INTERNAL-IP"]}]
    return node, is_windows, is_control


def _node(name: str, how: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/os": "windows", "kubernetes.io/hostname": name},
            "annotations": {TEXT_NODE_ANNOTATION: how},
        },
        "status": {"nodeInfo": {"operatingSystem": "windows"}},
    }


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    if into is other:
        return
    into["status"]["nodeInfo"].update({k: v for k, v in other["status"]["nodeInfo"].items() if v})
    for key in ("conditions", "capacity", "allocatable", "addresses"):
        if other["status"].get(key):
            into["status"][key] = other["status"][key]


# -- kubectl describe node ----------------------------------------------------------

_DESCRIBE_NAME = re.compile(r"^\W{0,3}Name:\s+(\S+)\s*$", re.MULTILINE)
_INFO_KEYS = {
    "kernel version": "kernelVersion",
    "os image": "osImage",
    "operating system": "operatingSystem",
    "container runtime version": "containerRuntimeVersion",
    "kubelet version": "kubeletVersion",
    "kube-proxy version": "kubeProxyVersion",
}


def _described_nodes(text: str) -> list[dict[str, Any]]:
    found = []
    starts = [m for m in _DESCRIBE_NAME.finditer(text)]
    for i, match in enumerate(starts):
        block = text[match.start() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        if not re.search(r"^\W{0,3}(Roles|Taints|Conditions|System Info|Capacity):", block, re.MULTILINE):
            continue
        if re.search(r"^\W{0,3}Namespace:", block, re.MULTILINE):
            continue  # a pod or another namespaced object
        node = _node(match.group(1), "kubectl describe node")
        info = node["status"]["nodeInfo"]
        for key, value in re.findall(r"^\s+([A-Za-z -]+?):\s+(\S.*?)\s*$", block, re.MULTILINE):
            wanted = _INFO_KEYS.get(key.strip().lower())
            if wanted:
                info[wanted] = value
        windows = (
            re.search(r"kubernetes\.io/os=windows|windows-build=", block)
            or info.get("kernelVersion", "").startswith("10.0.")
            or "windows" in info.get("osImage", "").lower()
        )
        if not windows:
            continue
        build = re.search(r"windows-build=(10\.0\.\d+)", block)
        if build and "kernelVersion" not in info:
            info["kernelVersion"] = build.group(1)
        ready = re.search(r"^\s+Ready\s+(True|False|Unknown)\b(.*)$", block, re.MULTILINE)
        if ready:
            node["status"]["conditions"] = [
                {"type": "Ready", "status": ready.group(1), "reason": "", "message": " ".join(ready.group(2).split())}
            ]
        elif re.search(r"node\.kubernetes\.io/(?:not-ready|unreachable)", block):
            taint = re.search(r"node\.kubernetes\.io/(not-ready|unreachable)\S*", block)
            node["status"]["conditions"] = [
                {"type": "Ready", "status": "False", "reason": "Taint", "message": taint.group(0) if taint else ""}
            ]
        node["status"].update(_resources(block))
        found.append(node)
    return found


def _resources(text: str) -> dict[str, dict[str, str]]:
    """``Capacity:`` and ``Allocatable:`` sections as the API's ``capacity`` / ``allocatable`` maps."""
    found: dict[str, dict[str, str]] = {}
    for section, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        part = re.search(rf"^\W{{0,3}}{section}:\s*\n((?:[ \t]+\S.*\n?)+)", text, re.MULTILINE)
        if part:
            found[key] = dict(re.findall(r"^\s+([\w./-]+):\s+(\S+)", part.group(1), re.MULTILINE))
    return found


_POD_NODE = re.compile(r"^\W{0,3}Node:\s+([a-z0-9][\w.-]*)/\d", re.MULTILINE | re.IGNORECASE)
_EVENT_SOURCE = re.compile(r"\bkubelet,\s+([a-z0-9][\w.-]*)\b", re.IGNORECASE)
_NODE_EVENT = re.compile(r"Node (\S+) status is now: (NodeReady|NodeNotReady)")


def _node_events(text: str, windows_context: bool) -> dict[str, dict[str, str]]:
    """The last NodeReady/NodeNotReady event of each node (events are listed oldest first)."""
    last: dict[str, dict[str, str]] = {}
    for match in _NODE_EVENT.finditer(text):
        name = match.group(1)
        if not ("win" in name.lower() or windows_context) or _LINUX_NAME.search(name):
            continue
        not_ready = match.group(2) == "NodeNotReady"
        last[name] = {
            "type": "Ready",
            "status": "False" if not_ready else "True",
            "reason": match.group(2),
            "message": f"last node event: {match.group(0)}",
        }
    return last


# -- versions said in passing ---------------------------------------------------------

_SERVER_GIT = re.compile(r"Server Version:\s*version\.Info\{[^}]*GitVersion:\"(v[\d.]+[^\"]*)\"")
_SERVER_PLAIN = re.compile(r"^\W{0,3}Server Version:\s*(v\d+\.\d+\.\d+\S*)\s*$", re.MULTILINE)
_KUBE_VERSION = re.compile(
    r"(?:kubernetes version[^:\n]*:\s*(?:kubernetes\s+|k8s\s+)?|kubelet version:|\]\s*version:|"
    r"\b(?:aks|eks|gke|rke2?|k3s)\s+)"
    r"\s*`?(v?1\.\d+\.\d+[\w.+-]*)",
    re.IGNORECASE,
)
_KERNEL = re.compile(
    r"(?:kernel[^:\n]{0,40}:|os build|build|windows server[^\n\d]{0,40}|\[version)"
    r"\s*(10\.0\.\d{5}(?:\.\d+)?|\d{5}\.\d+)",
    re.IGNORECASE,
)
_KERNEL_ALONE = re.compile(r"^\s*(10\.0\.\d{5})\s*$", re.MULTILINE)
_OS_NAME = re.compile(r"windows server (2016|2019|2022|2025)", re.IGNORECASE)
_OS_BUILDS = {"2016": "10.0.14393", "2019": "10.0.17763", "2022": "10.0.20348", "2025": "10.0.26100"}
_DOCKER = re.compile(
    r"\bdocker(?:\s+(?:ee|ce|engine|enterprise))?(?:[- ]basic)?(?:\s+version)?[:\s]+"
    r"v?(\d{2}\.\d{1,2}(?:\.\d+)?(?:-[\w.]+)?)\b",
    re.IGNORECASE,
)
_RUNTIME_URL = re.compile(r"\b((?:docker|containerd)://v?[\d.]+[\w.+-]*)")
_DOCKER_SERVER = re.compile(
    r"^Server:[^\n]*\n(?:[ \t]+[^\n]*\n){0,3}?[ \t]+Version:\s+(\d+\.\d+\.\d+\S*)", re.MULTILINE
)
_DOCKER_INFO = re.compile(r"^\W{0,3}Server Version:\s*(\d+\.\d+\.\d+[\w.-]*)\s*$", re.MULTILINE)
_CRICTL = re.compile(r"RuntimeName:\s*(\w+)\s*\n\s*RuntimeVersion:\s*v?(\S+)")
_CONTAINERD_CLI = re.compile(r"^containerd\s+github\.com/containerd/containerd\S*\s+v?(\d+\.\d+\.\d+\S*)", re.MULTILINE)


def _server_version(text: str) -> str:
    match = _SERVER_GIT.search(text) or _SERVER_PLAIN.search(text)
    return match.group(1) if match else ""


def _node_info(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    version = _KUBE_VERSION.search(text)
    if version:
        info["kubeletVersion"] = version.group(1) if version.group(1).startswith("v") else "v" + version.group(1)
    kernel = _KERNEL.search(text) or _KERNEL_ALONE.search(text)
    if kernel:
        value = kernel.group(1)
        info["kernelVersion"] = value if value.startswith("10.0.") else "10.0." + value
    else:
        named = _OS_NAME.search(text)
        if named:
            info["kernelVersion"] = _OS_BUILDS[named.group(1)]
    crictl = _CRICTL.search(text)
    containerd = _CONTAINERD_CLI.search(text)
    url = _RUNTIME_URL.search(text)
    docker = _DOCKER_SERVER.search(text) or _DOCKER_INFO.search(text) or _DOCKER.search(text)
    if crictl:
        info["containerRuntimeVersion"] = f"{crictl.group(1).lower()}://{crictl.group(2)}"
    elif containerd:
        info["containerRuntimeVersion"] = f"containerd://{containerd.group(1)}"
    elif url:
        info["containerRuntimeVersion"] = url.group(1)
    elif docker:
        info["containerRuntimeVersion"] = f"docker://{docker.group(1)}"
    return info


# -- a CNI config among prose ---------------------------------------------------------------

_JSON_START = re.compile(r"^[ \t>]*\{", re.MULTILINE)
MAX_JSON_TRIES = 20


def _cni_config(text: str) -> str:
    """The first JSON object of ``text`` that reads as a CNI config with an OutBoundNAT ExceptionList; "" if none.

    Only objects that start a line are tried (a pasted file starts on its own line), at most
    ``MAX_JSON_TRIES`` of them, so long logs full of JSON stay cheap.
    """
    if "exceptionlist" not in text.lower():
        return ""
    decoder = json.JSONDecoder()
    for tries, match in enumerate(_JSON_START.finditer(text)):
        if tries >= MAX_JSON_TRIES:
            break
        start = match.end() - 1
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if not isinstance(value, dict) or not ("cniVersion" in value or "plugins" in value or "delegate" in value):
            continue
        snippet = text[start:end]
        try:
            conf = parse_cni_conf(snippet)
        except ValueError:
            continue
        if conf.exception_list is not None:
            return snippet
    return ""


# -- HNS ---------------------------------------------------------------------------------

_EMPTY_HNS = re.compile(r"^(PS [^\n>]*>)\s*Get-HnsNetwork\s*\n(?:\s*\n)*\s*PS [^\n>]*>", re.IGNORECASE | re.MULTILINE)
_HINT = re.compile(
    r"\b(l2bridge|overlay|vxlan0|vxlan|host-gw|win-bridge|win-overlay|cbr0|flannel\.4096)\b", re.IGNORECASE
)


# -- terminal transcripts: ping, curl, Test-NetConnection ---------------------------------

_PROMPT = re.compile(
    r"^\W{0,3}(?:(?P<ps>PS (?P<cwd>[A-Za-z]:\\[^>\n]*)>)|(?P<cmd>[A-Za-z]:\\[^>\n]*>)|(?P<sh>[\w.@~:/-]*[$#]))"
    r"\s*(?P<command>.*)$"
)
_EXEC = re.compile(
    r"\bkubectl(?:\.exe)?\s+(?:[^\n]*\s)?exec\b[^\n]*?\s(?P<pod>[a-z0-9][\w.-]*)(?:\s+-c\s+\S+)?\s+--\s*(?P<rest>.*)$",
    re.I,
)
_TOOL = re.compile(
    r"^(?:ping(?:\.exe)?\s+(?!statistics)|(?:curl(?:\.exe)?|test-netconnection|tnc|invoke-webrequest|iwr|wget)\b)", re.I
)
_NAMESPACE = re.compile(r"\s(?:-n|--namespace)[= ](\S+)")


@dataclass(frozen=True)
class Probe:
    """One connectivity test seen in a transcript: what ran, from where, against what, and whether it worked."""

    kind: str  # ping, curl, nodeport
    target: str
    origin: str  # pod or node
    ok: bool
    output: str
    pod: str = ""


def read_probes(text: str) -> list[Probe]:
    """Ping, curl and Test-NetConnection runs of a transcript with their outcome; unreadable runs are left out.

    Origin: ``kubectl exec <pod> -- ...`` (or an interactive ``kubectl exec ... powershell`` session,
    or a container's ``PS C:\\>`` prompt) is a pod; a prompt in a host folder (``PS C:\\k>``,
    ``PS C:\\Users\\...>``) is the node.
    """
    probes: list[Probe] = []
    lines = text.splitlines()
    in_pod = ""
    i = 0
    while i < len(lines):
        prompt = _PROMPT.match(lines[i])
        command = (prompt.group("command") if prompt else lines[i]).strip().strip("`")
        i += 1
        if not command:
            continue
        origin, pod = "", ""
        exec_match = _EXEC.search(command)
        if exec_match:
            namespace = _NAMESPACE.search(command[: exec_match.start("rest")])
            pod = (namespace.group(1) + "/" if namespace else "") + exec_match.group("pod")
            command = exec_match.group("rest").strip()
            origin = "pod"
            if re.match(r"^(?:powershell|pwsh|cmd)(?:\.exe)?\s*$", command, re.I):
                in_pod = pod  # an interactive session: the next prompts are the pod's
                continue
        elif prompt and prompt.group("ps"):
            cwd = prompt.group("cwd").rstrip("\\").lower()
            if in_pod or cwd in ("c:", "c:\\"):
                origin, pod = "pod", in_pod
            else:
                origin = "node"
        if command.lower() in ("exit", "exit;"):
            in_pod = ""
            continue
        if not _TOOL.match(command) or not origin:
            continue
        output: list[str] = []
        while i < len(lines) and not _PROMPT.match(lines[i]) and not _TOOL.match(lines[i].strip()):
            output.append(lines[i])
            i += 1
        probe = _probe(command, "\n".join(output), origin, pod)
        if probe is not None:
            probes.append(probe)
    return probes


def _probe(command: str, output: str, origin: str, pod: str) -> Probe | None:
    words = command.split()
    tool = words[0].lower().removesuffix(".exe")
    args = [w for w in words[1:] if not w.startswith("-")]
    port = re.search(r"-port\s+(\d+)", command, re.I)
    target = next((a for a in args if not a.isdigit() or len(args) == 1), "")
    target = re.sub(r"^https?://", "", target).split("/")[0] if target else ""
    if not target:
        return None
    low = output.lower()
    if tool == "ping":
        if re.search(r"reply from \S+ bytes=|bytes from |received = [1-9]|[1-9]\d* received", low):
            ok = True
        elif re.search(
            r"request timed out|unreachable|100% (?:packet )?loss|received = 0|\b0 received|could not find host", low
        ):
            ok = False
        else:
            return None
        return Probe("ping", target, origin, ok, output.strip()[:400], pod)
    if tool in ("test-netconnection", "tnc"):
        tcp = re.search(r"tcptestsucceeded\s*:\s*(true|false)", low)
        if port and (tcp or "tcp connect to" in low):
            ok = bool(tcp and tcp.group(1) == "true")
            number = int(port.group(1))
            kind = "nodeport" if 30000 <= number <= 32767 else "curl"
            return Probe(kind, f"{target}:{number}", origin, ok, output.strip()[:400], pod)
        ping = re.search(r"pingsucceeded\s*:\s*(true|false)", low)
        if ping:
            return Probe("ping", target, origin, ping.group(1) == "true", output.strip()[:400], pod)
        return None
    # curl / Invoke-WebRequest / wget
    if re.search(r"statuscode\s*:\s*\d|http/[\d.]+ \d{3}|<html|^\s*\{", low, re.M):
        ok = True
    elif re.search(
        r"curl: \(\d+\)|unable to connect|timed out|could not resolve|failed to connect|connection refused", low
    ):
        ok = False
    else:
        return None
    kind = "nodeport" if re.search(r":(3[0-2]\d{3})\b", target) else "curl"
    return Probe(kind, target, origin, ok, output.strip()[:400], pod)
