"""What a bundle file is: by its name first, then by its first bytes.

Names are case-insensitive and ``.txt``/``.log`` are interchangeable, anywhere in the
tree, so a folder gathered by hand, Microsoft's ``collectlogs.ps1`` output, an AKS
``collect-windows-logs`` zip and our own exported layout all work (spec/BUNDLE.md).

``recognize(path, head)`` returns a ``Recognition``: a kind (the ``inputs[].kind`` of
``findings/v1``) or, when the file is not one we read, the reason it is skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Kinds of log, as ``diagnostics.logs`` names them, and the input kind of each.
LOG_KINDS: dict[str, str] = {
    "kubelet-log": "kubelet",
    "kube-proxy-log": "kube-proxy",
    "flanneld-log": "flanneld",
    "runtime-log": "runtime",
    "start-script-log": "start-script",
    "describe": "describe",
    "transcript": "transcript",
}
INPUT_KIND_OF_LOG = {v: k for k, v in LOG_KINDS.items()}

# Known files on the node: input kind -> logical name (the key of NodeSnapshot.files).
FILE_KINDS: dict[str, str] = {
    "subnet-env": "subnet.env",
    "net-conf": "net-conf.json",
    "cni-config": "cni.conf",
    "source-vip": "SourceVip.json",
    "source-vip-request": "SourceVipRequest.json",
    "containerd-config": "containerd-config.toml",
}

K8S_OBJECTS = "kubernetes-objects"


@dataclass(frozen=True)
class Recognition:
    kind: str | None
    reason: str = ""  # why it is skipped, when kind is None

    def __bool__(self) -> bool:
        return self.kind is not None


_TEXT = r"\.(txt|log)(\.\d+)?"  # .txt / .log, and rotated copies: kubelet.log.1
_DATA = r"\.(txt|log|json)"

# Name rules, first match wins; patterns are matched against the lower-cased base name.
_NAME_RULES: tuple[tuple[str, str], ...] = (
    # Our own layout and tools' metadata.
    (r"manifest\.json", "bundle-manifest"),
    (r"findings\.json", "findings"),
    (r"probes\.json", "probe-outputs"),
    (r"kubeclusterconfig\.json", "aks-cluster-config"),
    (r"(cluster[_-]?)?version\.json", "cluster-version"),
    # Flannel / CNI / runtime files as they are on the node.
    (r"subnet\.env", "subnet-env"),
    (r"net-conf\.json", "net-conf"),
    (r"sourcevip\.json", "source-vip"),
    (r"sourceviprequest\.json", "source-vip-request"),
    (r"(cni\.conf|.*\.conflist|\d\d-[a-z0-9-]+\.conf)", "cni-config"),
    (r"config\.toml", "containerd-config"),
    # Logs.
    (rf"kubelet([._-][a-z0-9._-]*)?{_TEXT}", "kubelet-log"),
    (rf"kube-?proxy([._-][a-z0-9._-]*)?{_TEXT}", "kube-proxy-log"),
    (rf"flanneld?([._-][a-z0-9._-]*)?{_TEXT}", "flanneld-log"),
    (rf"(containerd|dockerd?)([._-](err|out|\d[\d._-]*))?{_TEXT}", "runtime-log"),
    (
        rf"start([._-]?(kubelet|kubeproxy|kube-proxy|flannel|flanneld|k8s|node|script))?([._-][a-z0-9._-]*)?{_TEXT}",
        "start-script-log",
    ),
    (rf"([a-z0-9_-]*[._-])?describe([._-][a-z0-9._-]*)?{_TEXT}", "describe"),
    (rf"([a-z0-9_-]*[._-])?(transcript|session)([._-][a-z0-9._-]*)?{_TEXT}", "transcript"),
    # HNS (collectlogs.ps1 names, and Get-* names people use by hand).
    (rf"(get-)?(hns)?networks?([._-][a-z0-9._-]*)?{_DATA}", "hns-networks"),
    (rf"(get-)?(hns)?endpoints?([._-][a-z0-9._-]*)?{_DATA}", "hns-endpoints"),
    (rf"(get-)?(hns)?(polic(y|ies)|policylist|loadbalancers?)([._-][a-z0-9._-]*)?{_DATA}", "hns-policies"),
    (rf"(hns-?events?|hns-eventlog)([._-][a-z0-9._-]*)?{_DATA}", "hns-events"),
    # Windows facts.
    (rf"(get-)?netadapters?([._-][a-z0-9._-]*)?{_DATA}", "net-adapters"),
    (rf"(ipconfig([._-][a-z0-9._-]*)?|ip){_DATA}", "ip-config"),
    (rf"(windowsservices|services|get-service)([._-][a-z0-9._-]*)?{_DATA}", "services"),
    (rf"(processes|get-process){_DATA}", "processes"),
    (rf"(env|machine-?env|environment)([._-][a-z0-9._-]*)?{_DATA}", "machine-env"),
    (rf"winver{_DATA}", "winver"),
    (rf"(osinfo|os-?version)([._-][a-z0-9._-]*)?{_DATA}", "os-version"),
    (rf"(get-)?hotfix(es)?([._-][a-z0-9._-]*)?{_DATA}", "hotfixes"),
    (rf"(get-)?computer-?info([._-][a-z0-9._-]*)?{_DATA}", "computer-info"),
    (rf"dynamicport(range)?s?([._-][a-z0-9._-]*)?{_DATA}", "dynamic-ports"),
    (rf"excludedport(range)?s?([._-][a-z0-9._-]*)?{_DATA}", "excluded-ports"),
    (rf"(images|crictl[._-]?images|docker[._-]?images|.*cri-containerd-images|.*containerd-images){_DATA}", "images"),
)
_COMPILED = tuple((re.compile(rf"^(?:{pattern})$"), kind) for pattern, kind in _NAME_RULES)

# Files we know and deliberately do not read: the reason tells the user so.
_KNOWN_UNUSED: tuple[tuple[str, str], ...] = (
    (r".*\.(evtx|etl|pcap|pcapng|cab|dmp|mdmp|hdmp)", "binary capture or event log; not analyzed"),
    (r".*\.(exe|dll|sys|msi|ps1|psm1|cmd|bat)", "program or script; not analyzed"),
    (r".*\.(zip|tar|tgz|gz|bz2|xz|7z)", "nested archive; unpack it and pass its folder"),
    (r".*\.(png|jpe?g|gif|bmp)", "image; not analyzed"),
    (r"issue\.md", "issue text of an earlier export; not needed"),
    (r"\.ds_store|thumbs\.db|desktop\.ini", "file-system metadata"),
    (r"networkdetailed\.(txt|log|json)", "detailed HNS networks; network.txt is read instead"),
)
_UNUSED_COMPILED = tuple((re.compile(rf"^(?:{p})$"), reason) for p, reason in _KNOWN_UNUSED)


def base_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def sniff_text(head: bytes) -> str | None:
    """The start of a file as text (UTF-8, or UTF-16 with a BOM), or None if it looks binary.

    Only for recognition: the head may be cut inside a character, so errors are
    replaced. Full contents are decoded by ``diagnostics.parsers.powershell``.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16-le" if head.startswith(b"\xff\xfe") else "utf-16-be"
        return head[2 : len(head) - (len(head) % 2)].decode(codec, errors="replace")
    if len(head) >= 4 and head[1:2] == b"\x00" and head[3:4] == b"\x00" and head[0:1] != b"\x00":
        # UTF-16 LE without a BOM (Out-File -Encoding Unicode after a truncation, some tools).
        return head[: len(head) - (len(head) % 2)].decode("utf-16-le", errors="replace")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if b"\x00" in head[:8192]:
        return None
    return head.decode("utf-8", errors="replace")


def recognize(path: str, head: bytes) -> Recognition:
    """The kind of the file at ``path`` (inside the bundle), given its first bytes."""
    name = base_name(path).lower()
    parts = [p.lower() for p in path.split("/")]
    if "__macosx" in parts or name.startswith("._"):
        return Recognition(None, "macOS metadata")
    text = sniff_text(head)

    for pattern, kind in _COMPILED:
        if pattern.match(name):
            # A few names are too common to trust alone: check the content agrees.
            if kind in ("bundle-manifest", "probe-outputs", "cluster-version", "findings") and text is not None:
                refined = _sniff_json_kind(text)
                if kind == "bundle-manifest" and refined != "bundle-manifest":
                    break
                if kind == "cluster-version" and "gitVersion" not in text:
                    break
            if kind == "containerd-config" and text is not None and "[plugins" not in text and "version" not in text:
                break
            if text is None and kind not in FILE_KINDS:
                return Recognition(None, "binary content under a text file's name")
            return Recognition(kind)
    # Conf files in a CNI config folder carry any name.
    if len(parts) >= 2 and parts[-2] == "net.d" and name.endswith((".conf", ".conflist", ".json")):
        return Recognition("cni-config")

    for pattern, reason in _UNUSED_COMPILED:
        if pattern.match(name):
            return Recognition(None, reason)

    if text is None:
        return Recognition(None, "binary file")
    sniffed = sniff_content(name, text)
    if sniffed:
        return Recognition(sniffed)
    return Recognition(None, "not a file we know (by name or content)")


# -- content sniffing -------------------------------------------------------------

_HNS_POLICY_KEYS = re.compile(r'"(FrontendVIPs|PortMappings|SourceVIP|VIPs|IsDSR)"\s*:|"Type"\s*:\s*"ELB"')
_HNS_ENDPOINT_KEYS = re.compile(r'"(IsRemoteEndpoint|IpConfigurations|VirtualNetworkName|HostComputeNamespace)"\s*:')
_HNS_NETWORK_KEYS = re.compile(r'"(ManagementIP|Subnets|Ipams|NetworkAdapterName|DrMacAddress)"\s*:')
_YAML_K8S = re.compile(r"^apiVersion:\s*\S+", re.MULTILINE)
_YAML_KIND = re.compile(r"^kind:\s*\S+", re.MULTILINE)
_DESCRIBE_NAME = re.compile(r"^Name:\s+\S", re.MULTILINE)
_DESCRIBE_EVENTS = re.compile(r"^Events:", re.MULTILINE)
_TRANSCRIPT = re.compile(
    r"^PS [A-Za-z]:\\[^\r\n]*>|^\*{10,}\r?\n(Windows PowerShell|PowerShell) transcript start|"
    r"^Pinging \S+ .*with \d+ bytes of data|^Reply from \S+:|^\$ (kubectl|curl|ping|nslookup)\b|"
    r"^(kubectl|curl|nslookup|Resolve-DnsName|ping) \S",
    re.MULTILINE,
)
_IPCONFIG = re.compile(r"^Windows IP Configuration", re.MULTILINE)
_NETADAPTER = re.compile(r"^Name\s+InterfaceDescription\s+ifIndex\s+Status", re.MULTILINE)
_SERVICES = re.compile(r"^Status\s+Name\s+DisplayName", re.MULTILINE)
_WINVER = re.compile(r"Microsoft Windows NT 10\.0\.\d+")
_SUBNET_ENV = re.compile(r"^FLANNEL_(SUBNET|NETWORK)=", re.MULTILINE)


def _sniff_json_kind(text: str) -> str | None:
    """Kinds told by a JSON document's own markers (our formats, Kubernetes objects, HNS)."""
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    format_match = re.search(r'"format"\s*:\s*"([^"]+)"', text[:4096])
    if format_match:
        fmt = format_match.group(1)
        if fmt.startswith("windows-node-bundle/"):
            return "bundle-manifest"
        if fmt.startswith("findings/"):
            return "findings"
        if fmt.startswith("node-report/"):
            return "node-report"
    if re.search(r'"apiVersion"\s*:', text) and re.search(r'"kind"\s*:', text):
        return K8S_OBJECTS
    if stripped.startswith("{") and re.search(r'"items"\s*:\s*\[', text[:4096]):
        return K8S_OBJECTS  # an API list without its TypeMeta (client-go marshals it so)
    return None


def sniff_content(name: str, text: str) -> str | None:
    """Kind from content alone; ``name`` only breaks ties (``.yaml`` vs text)."""
    json_kind = _sniff_json_kind(text)
    if json_kind:
        return json_kind
    if name.endswith((".yaml", ".yml")) or (_YAML_K8S.search(text) and _YAML_KIND.search(text)):
        if _YAML_K8S.search(text) and _YAML_KIND.search(text):
            return K8S_OBJECTS
        return None
    # HNS JSON, possibly after a PowerShell table (collectlogs' network.txt).
    if _HNS_POLICY_KEYS.search(text):
        return "hns-policies"
    if _HNS_ENDPOINT_KEYS.search(text):
        return "hns-endpoints"
    if _HNS_NETWORK_KEYS.search(text) and re.search(r'"Type"\s*:', text):
        return "hns-networks"
    if _SUBNET_ENV.search(text):
        return "subnet-env"
    if _IPCONFIG.search(text):
        return "ip-config"
    if _NETADAPTER.search(text):
        return "net-adapters"
    if _SERVICES.search(text):
        return "services"
    if _WINVER.search(text) and len(text) < 65536:
        return "winver"
    if _DESCRIBE_NAME.search(text) and _DESCRIBE_EVENTS.search(text):
        return "describe"
    log_kind = _detect_log_kind(name, text)
    if log_kind:
        return log_kind
    if _TRANSCRIPT.search(text):
        return "transcript"
    return None


def _detect_log_kind(name: str, text: str) -> str | None:
    """The log analyzer's own guess (``diagnostics.logs.detect_kind``), mapped to an input kind."""
    try:
        from diagnostics.logs import detect_kind
    except ImportError:
        return None
    try:
        kind = detect_kind(name, text)
    except ValueError:
        return None
    if kind is None:
        return None
    return INPUT_KIND_OF_LOG.get(kind, f"{kind}-log")


def json_or_none(text: str) -> object | None:
    try:
        return json.loads(text)
    except ValueError:
        return None
