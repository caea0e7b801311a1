"""Which clusters to watch: ``WND_CLUSTERS`` (a short list) or ``WND_CLUSTERS_FILE`` (JSON or YAML).

``WND_CLUSTERS`` is comma-separated ``name[=source]`` entries, where source is
``context:<kubeconfig context>`` (the default: the context named like the
cluster), ``in-cluster`` (the pod's ServiceAccount) or ``simulated`` (the
demo's recording). ``WND_KUBECONFIG`` names the kubeconfig file (default: the
client's own, ``$KUBECONFIG`` or ``~/.kube/config``). The file form is::

    clusters:
      - name: prod-eu
        kubeconfig: /etc/wnd/kubeconfig
        context: aks-prod-eu
        cluster_cidr: 10.244.0.0/16
        service_cidr: 10.96.0.0/12
      - name: in-place
        in_cluster: true
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboard.cluster.source import ClusterSource

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ConfigError(ValueError):
    """The cluster configuration cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    kubeconfig: str = ""
    context: str = ""
    in_cluster: bool = False
    simulated: bool = False
    cluster_cidr: str = ""
    service_cidr: str = ""

    def source(self) -> ClusterSource:
        """Build the source; raise ``ConfigError`` when its kubeconfig or ServiceAccount is unusable."""
        if self.simulated:
            from dashboard.cluster.simulated import SimulatedSource

            try:
                return SimulatedSource.recorded(self.name)
            except ValueError as exc:
                raise ConfigError(f"cluster {self.name}: {exc}") from None
        from dashboard.cluster.kube import KubernetesSource

        try:
            return KubernetesSource(
                self.name,
                kubeconfig=self.kubeconfig or None,
                context=self.context or None,
                in_cluster=self.in_cluster,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def _check_name(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"{where}: {name!r} is not a valid cluster name (lower-case letters, digits and '-')")
    return name


def parse_env(value: str, kubeconfig: str = "") -> list[ClusterConfig]:
    """``WND_CLUSTERS``: ``prod-eu,staging=context:aks-staging,local=in-cluster,demo=simulated``."""
    out: list[ClusterConfig] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        name, _, source = entry.partition("=")
        name = _check_name(name.strip(), "WND_CLUSTERS")
        source = source.strip()
        if source == "in-cluster":
            out.append(ClusterConfig(name, in_cluster=True))
        elif source == "simulated":
            out.append(ClusterConfig(name, simulated=True))
        elif source.startswith("context:") or not source:
            out.append(ClusterConfig(name, kubeconfig=kubeconfig, context=source.removeprefix("context:") or name))
        else:
            raise ConfigError(f"WND_CLUSTERS: {entry!r}: the source must be context:<name>, in-cluster or simulated")
    _unique(out)
    return out


def parse_file(path: Path) -> list[ClusterConfig]:
    """``WND_CLUSTERS_FILE``: ``{"clusters": [...]}`` in JSON, or YAML when PyYAML is installed."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"WND_CLUSTERS_FILE={path}: cannot be read: {exc.strerror}") from None
    data: Any
    try:
        data = json.loads(text)
    except ValueError:
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: not JSON (install PyYAML to use YAML)") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    entries = data.get("clusters") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a 'clusters' list")
    out: list[ClusterConfig] = []
    known = set(ClusterConfig.__dataclass_fields__)
    for i, entry in enumerate(entries):
        where = f"{path}: clusters[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(f"{where}: each cluster needs a name")
        unknown = set(entry) - known
        if unknown:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        values = {k: (v if isinstance(v, bool) else str(v)) for k, v in entry.items()}
        _check_name(str(values["name"]), where)
        out.append(ClusterConfig(**values))  # type: ignore[arg-type]
    _unique(out)
    return out


def _unique(configs: list[ClusterConfig]) -> None:
    names = [c.name for c in configs]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise ConfigError(f"clusters configured twice: {', '.join(doubles)}")


def configured() -> list[ClusterConfig]:
    """The clusters of the settings: the file if set, else the list."""
    from django.conf import settings

    if settings.WND_CLUSTERS_FILE:
        return parse_file(Path(settings.WND_CLUSTERS_FILE))
    return parse_env(settings.WND_CLUSTERS, settings.WND_KUBECONFIG)
