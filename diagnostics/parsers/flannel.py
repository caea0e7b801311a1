"""Readers for the flannel, CNI and containerd files found on a Windows node.

Each ``parse_*`` function takes the file's text as the agent read it and returns a
small frozen dataclass. Bad input raises ``ValueError`` with a message naming the
file and the problem; nothing else escapes. Unknown keys are ignored: these files
grow new fields across releases.
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SubnetEnv:
    """``C:\\run\\flannel\\subnet.env``: ``KEY=VALUE`` lines written by flanneld."""

    network: str = ""  # FLANNEL_NETWORK, the cluster's pod CIDR: 10.244.0.0/16
    subnet: str = ""  # FLANNEL_SUBNET, this node's gateway/prefix: 10.244.1.1/24
    mtu: int | None = None
    ipmasq: bool | None = None
    values: tuple[tuple[str, str], ...] = ()  # every key, in file order

    @property
    def subnet_network(self) -> str:
        """``FLANNEL_SUBNET`` as a network (``10.244.1.1/24`` -> ``10.244.1.0/24``), or "" if unreadable."""
        return network_of(self.subnet)


@dataclass(frozen=True)
class NetConf:
    """``net-conf.json``: the flannel network and backend."""

    network: str = ""
    backend_type: str = ""  # lower-cased: vxlan, host-gw
    vni: int | None = None
    port: int | None = None


@dataclass(frozen=True)
class CniConf:
    """The Windows CNI config (``cni.conf`` / ``*.conflist``), reduced to what the checks read."""

    name: str = ""  # the network name the plugin asks HNS for: cbr0, vxlan0
    type: str = ""  # top-level plugin type: flannel, win-bridge, win-overlay, sdnbridge, sdnoverlay
    delegate_type: str = ""  # flannel's delegate type, when present
    exception_list: tuple[str, ...] | None = None  # OutBoundNAT ExceptionList; None when no OutBoundNAT policy
    exception_list_path: str = ""  # JSON path of that list, for evidence


@dataclass(frozen=True)
class SourceVip:
    """``C:\\k\\SourceVip.json`` / ``SourceVipRequest.json`` left by kube-proxy's overlay setup."""

    ip: str = ""  # the source VIP address, when the file holds one
    subnet: str = ""  # the pod subnet the request was made for, when present


def network_of(cidr: str) -> str:
    """Normalize an address/prefix to its network (strict=False); "" when it is not one."""
    try:
        return str(ipaddress.ip_network(cidr.strip(), strict=False))
    except ValueError:
        return ""


def parse_subnet_env(text: str) -> SubnetEnv:
    """Read subnet.env. Lines that are not ``KEY=VALUE`` are ignored; no key at all is an error."""
    values: list[tuple[str, str]] = []
    for raw in text.lstrip("\ufeff").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values.append((key.strip().removeprefix("export ").strip(), value.strip().strip('"')))
    if not values:
        raise ValueError("subnet.env: no KEY=VALUE line found")
    found = dict(values)
    mtu_text = found.get("FLANNEL_MTU", "")
    ipmasq_text = found.get("FLANNEL_IPMASQ", "").lower()
    return SubnetEnv(
        network=found.get("FLANNEL_NETWORK", ""),
        subnet=found.get("FLANNEL_SUBNET", ""),
        mtu=int(mtu_text) if mtu_text.isdigit() else None,
        ipmasq={"true": True, "false": False}.get(ipmasq_text),
        values=tuple(values),
    )


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_net_conf(text: str) -> NetConf:
    """Read net-conf.json (``{"Network": ..., "Backend": {"Type": ..., "VNI": ..., "Port": ...}}``)."""
    data = _json_object(text, "net-conf.json")
    backend = data.get("Backend")
    backend = backend if isinstance(backend, dict) else {}
    return NetConf(
        network=str(data.get("Network") or ""),
        backend_type=str(backend.get("Type") or "").lower(),
        vni=_int_or_none(backend.get("VNI")),
        port=_int_or_none(backend.get("Port")),
    )


def _key(holder: dict[str, Any], name: str) -> str | None:
    """The key of ``holder`` spelled ``name`` in any case (Go's JSON decoding of these files ignores case)."""
    if name in holder:
        return name
    return next((k for k in holder if isinstance(k, str) and k.lower() == name.lower()), None)


def _exception_list(policies: Any, path: str) -> tuple[tuple[str, ...], str] | None:
    """Find the OutBoundNAT ExceptionList in a ``policies`` / ``AdditionalArgs`` array.

    Two shapes exist: the v1 ``{"Name": "EndpointPolicy", "Value": {"Type": "OutBoundNAT",
    "ExceptionList": [...]}}`` and the v2 (sdnbridge) ``{"Name": "EndpointPolicy", "Value":
    {"Type": "OutBoundNAT", "Settings": {"Exceptions": [...]}}}``. Keys are matched in any case
    (Rancher writes ``"value"`` and ``"name"``).
    """
    if not isinstance(policies, list):
        return None
    for i, item in enumerate(policies):
        if not isinstance(item, dict):
            continue
        value_key = _key(item, "Value")
        value = item[value_key] if value_key else item
        if not isinstance(value, dict):
            continue
        type_key = _key(value, "Type")
        if type_key is None or str(value[type_key]).lower() != "outboundnat":
            continue
        here = f"{path}[{i}].{value_key}" if value_key else f"{path}[{i}]"
        list_key = _key(value, "ExceptionList")
        if list_key and isinstance(value[list_key], list):
            return tuple(str(x) for x in value[list_key]), f"{here}.{list_key}"
        settings_key = _key(value, "Settings")
        settings = value[settings_key] if settings_key else None
        if isinstance(settings, dict):
            exceptions_key = _key(settings, "Exceptions")
            if exceptions_key and isinstance(settings[exceptions_key], list):
                return tuple(str(x) for x in settings[exceptions_key]), f"{here}.{settings_key}.{exceptions_key}"
        return (), here + ".ExceptionList"
    return None


def parse_cni_conf(text: str) -> CniConf:
    """Read the Windows CNI config: a plain ``.conf``, a flannel conf with ``delegate``, or a ``.conflist``."""
    data = _json_object(text, "cni.conf")
    plugin = data
    prefix = ""
    if isinstance(data.get("plugins"), list) and data["plugins"] and isinstance(data["plugins"][0], dict):
        plugin = data["plugins"][0]
        prefix = "plugins[0]."
    delegate = plugin.get("delegate")
    delegate = delegate if isinstance(delegate, dict) else {}
    found = None
    for holder, path in ((delegate, prefix + "delegate."), (plugin, prefix)):
        for name in ("policies", "AdditionalArgs"):
            key = _key(holder, name)
            found = _exception_list(holder[key], path + key) if key else None
            if found is not None:
                break
        if found is not None:
            break
    return CniConf(
        name=str(data.get("name") or plugin.get("name") or ""),
        type=str(plugin.get("type") or ""),
        delegate_type=str(delegate.get("type") or ""),
        exception_list=found[0] if found else None,
        exception_list_path=found[1] if found else "",
    )


def parse_source_vip(text: str) -> SourceVip:
    """Read SourceVip.json or SourceVipRequest.json.

    SourceVip.json is the IPAM result kube-proxy's start script stored
    (``{"ip4": {"ip": "10.244.1.13/24", ...}}`` or ``{"ips": [{"address": ...}]}``);
    SourceVipRequest.json is the request (``{"ipam": {"subnet": "10.244.1.0/24", ...}}``).
    """
    data = _json_object(text, "SourceVip.json")
    ip = ""
    ip4 = data.get("ip4")
    if isinstance(ip4, dict) and isinstance(ip4.get("ip"), str):
        ip = ip4["ip"]
    ips = data.get("ips")
    if not ip and isinstance(ips, list):
        for item in ips:
            if isinstance(item, dict) and isinstance(item.get("address"), str):
                ip = item["address"]
                break
    subnet = ""
    ipam = data.get("ipam")
    if isinstance(ipam, dict):
        if isinstance(ipam.get("subnet"), str):
            subnet = ipam["subnet"]
        ranges = ipam.get("ranges")
        # start-kubeproxy writes ``ranges: [{subnet}]``; the CNI spec's shape is ``ranges: [[{subnet}]]``.
        first: Any = ranges[0] if isinstance(ranges, list) and ranges else None
        if isinstance(first, list) and first:
            first = first[0]
        if not subnet and isinstance(first, dict) and isinstance(first.get("subnet"), str):
            subnet = first["subnet"]
    if not subnet and ip:
        subnet = network_of(ip)
    return SourceVip(ip=ip.split("/")[0], subnet=network_of(subnet) or subnet)


def parse_containerd_sandbox_image(text: str) -> str | None:
    """The ``sandbox_image`` of containerd's config.toml (v2 or v3 layout), or None when unset."""
    try:
        data = tomllib.loads(text.lstrip("\ufeff"))
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ValueError(f"containerd config.toml: not valid TOML ({exc})") from None
    plugins = data.get("plugins")
    if not isinstance(plugins, dict):
        return None
    # config v2: [plugins."io.containerd.grpc.v1.cri"] sandbox_image = ...
    cri = plugins.get("io.containerd.grpc.v1.cri")
    if isinstance(cri, dict) and isinstance(cri.get("sandbox_image"), str):
        return str(cri["sandbox_image"])
    # config v3 (containerd 2.x): [plugins."io.containerd.cri.v1.images".pinned_images] sandbox = ...
    images = plugins.get("io.containerd.cri.v1.images")
    if isinstance(images, dict):
        pinned = images.get("pinned_images")
        if isinstance(pinned, dict) and isinstance(pinned.get("sandbox"), str):
            return str(pinned["sandbox"])
    return None
