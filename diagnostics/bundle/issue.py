"""``ISSUE.md`` and the prefilled "new issue" link: the Kubernetes bug-report template, filled in.

The template's fields (kubernetes/kubernetes ``.github/ISSUE_TEMPLATE/bug-report.yaml``):
``problem`` (what happened), ``expected``, ``repro``, ``additional``, ``kubeVersion``,
``cloudProvider``, ``osVersion``, ``installer``, ``runtime``, ``plugins``. ``ISSUE.md``
renders them as Markdown sections; ``issue_url`` puts them in the query string of
``https://github.com/<repository>/issues/new`` (issue forms take a field's value from the
parameter named by its id; a repository without that template gets ``body``).

Sizes: a GitHub issue body holds at most 65,536 characters, and GitHub refuses URLs much
past 8 KB. The body drops evidence first, then findings, and says so; the URL carries a
shorter text that points to the attached bundle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import quote, urlencode

from diagnostics.model import Finding, Severity, Status, sort_findings
from diagnostics.snapshot import NodeSnapshot

MAX_BODY_CHARS = 60_000  # under GitHub's 65,536, with room for what the user adds
MAX_URL_CHARS = 8_000
DEFAULT_REPOSITORY = "kubernetes/kubernetes"
DEFAULT_TEMPLATE = "bug-report.yaml"
UNKNOWN = "not known (not collected)"

# Field id -> section title, in the template's order.
FIELDS: tuple[tuple[str, str], ...] = (
    ("problem", "What happened?"),
    ("expected", "What did you expect to happen?"),
    ("repro", "How can we reproduce it (as minimally and precisely as possible)?"),
    ("additional", "Anything else we need to know?"),
    ("kubeVersion", "Kubernetes version"),
    ("cloudProvider", "Cloud provider"),
    ("osVersion", "OS version"),
    ("installer", "Install tools"),
    ("runtime", "Container runtime (CRI) and version (if applicable)"),
    ("plugins", "Related plugins (CNI, CSI, ...) and versions (if applicable)"),
)


# -- what is known about the node ------------------------------------------------------


def facts_of(snap: NodeSnapshot) -> dict[str, str]:
    """The template's environment fields from a snapshot.

    Keys: ``kubernetes``, ``os``, ``runtime``, ``network``, ``cloud``, ``install`` (each only when known).
    """
    info = snap.node_info()
    facts: dict[str, str] = {}
    kubelet = str(info.get("kubeletVersion", ""))
    server = snap.cluster_view.server_version if snap.cluster_view else ""
    if kubelet or server:
        facts["kubernetes"] = ", ".join(
            part for part in (f"server {server}" if server else "", f"kubelet {kubelet}" if kubelet else "") if part
        )
    if snap.os is not None:
        os_info = snap.os.value
        name = os_info.product_name or "Windows"
        extra = f" ({os_info.display_version})" if os_info.display_version else ""
        facts["os"] = f"{name}{extra}, build {os_info.version}"
    elif info.get("osImage") or info.get("kernelVersion"):
        facts["os"] = f"{info.get('osImage', 'Windows')}, build {info.get('kernelVersion', '?')}"
    if snap.hotfixes is not None and snap.hotfixes.value:
        ids = [h.id for h in snap.hotfixes.value]
        facts["os"] = facts.get("os", "Windows") + f"; hotfixes: {', '.join(ids[-8:])}"
    runtime = str(info.get("containerRuntimeVersion", ""))
    if not runtime and snap.services is not None:
        names = {s.name.lower(): s for s in snap.services.value}
        runtime = next((f"{n} (version not collected)" for n in ("containerd", "docker") if n in names), "")
    if runtime:
        facts["runtime"] = runtime
    network = _network(snap)
    if network:
        facts["network"] = network
    cloud = _cloud(snap)
    if cloud:
        facts["cloud"] = cloud
    install = _install(snap)
    if install:
        facts["install"] = install
    return facts


def _network(snap: NodeSnapshot) -> str:
    import json

    parts: list[str] = []
    cni = snap.file("cni.conf")
    if cni is not None and cni.content:
        try:
            conf = json.loads(cni.content)
        except ValueError:
            conf = None
        if isinstance(conf, dict):
            kinds = [str(conf.get("type", ""))]
            delegate = conf.get("delegate")
            if isinstance(delegate, dict) and delegate.get("type"):
                kinds.append(str(delegate["type"]))
            for plugin in conf.get("plugins") or []:
                if isinstance(plugin, dict) and plugin.get("type"):
                    kinds.append(str(plugin["type"]))
            parts.append("CNI " + " / ".join(k for k in kinds if k))
    net_conf = snap.file("net-conf.json")
    if net_conf is not None and net_conf.content:
        try:
            backend = (json.loads(net_conf.content).get("Backend") or {}).get("Type", "")
        except (ValueError, AttributeError):
            backend = ""
        if backend:
            parts.append(f"Flannel backend {backend}")
    if snap.hns_networks is not None and snap.hns_networks.value:
        parts.append("HNS " + ", ".join(f"{n.name} ({n.type})" for n in snap.hns_networks.value[:4]))
    return "; ".join(parts)


_CLOUDS: tuple[tuple[str, str], ...] = (
    ("azure", "Azure"),
    ("aws", "AWS"),
    ("amazon", "AWS"),
    ("gce", "Google Cloud"),
    ("google", "Google Cloud"),
    ("vmware", "VMware vSphere"),
)


def _cloud(snap: NodeSnapshot) -> str:
    spec = (snap.node_object.value.get("spec") or {}) if snap.node_object is not None else {}
    provider = str(spec.get("providerID", "")).lower()
    for needle, name in _CLOUDS:
        if provider.startswith(needle):
            return name
    if snap.computer is not None:
        machine = f"{snap.computer.value.manufacturer} {snap.computer.value.model}".strip()
        for needle, name in _CLOUDS:
            if needle in machine.lower():
                return f"{name} ({machine})"
        if machine:
            return f"not known; the machine is: {machine}"
    return ""


def _install(snap: NodeSnapshot) -> str:
    if snap.services is None:
        return ""
    lines = [s for s in snap.services.value if s.name.lower() in ("kubelet", "kube-proxy", "kubeproxy", "flanneld")]
    if not lines:
        return "kubelet is not a Windows service on this node"
    if any("nssm" in s.command_line.lower() for s in lines):
        return "Windows services wrapped by nssm (as sig-windows-tools' scripts install them)"
    return "Windows services (sc.exe)"


# -- ISSUE.md ------------------------------------------------------------------------


def render_issue(
    *,
    node: str,
    cluster: str,
    findings: list[Finding],
    facts: Mapping[str, str],
    notes: list[str] | None = None,
    limit: int = MAX_BODY_CHARS,
) -> tuple[str, str]:
    """The issue's title and its Markdown body (at most ``limit`` characters), ending with ``/sig windows``."""
    title = issue_title(node, findings)
    for detail in ("full", "no-evidence", "titles"):
        body = _join(issue_fields(node, cluster, findings, facts, notes or [], detail=detail))
        if len(body) <= limit:
            return title, body
    body = _join(issue_fields(node, cluster, findings[:20], facts, notes or [], detail="titles"))
    return title, _cut(body, limit)


def issue_title(node: str, findings: list[Finding]) -> str:
    fails = [f for f in sort_findings(findings) if f.status is Status.FAIL]
    if not fails:
        return f"Windows node {node}: problem report (no known problem detected)"
    worst = fails[0]
    more = f" (+{len(fails) - 1} more)" if len(fails) > 1 else ""
    return f"Windows node: {worst.title}{more}"[:250]


def issue_fields(
    node: str,
    cluster: str,
    findings: list[Finding],
    facts: Mapping[str, str],
    notes: list[str],
    *,
    detail: str = "full",
) -> dict[str, str]:
    """The template's fields as Markdown. ``detail``: ``full``, ``no-evidence`` or ``titles`` (shortest)."""
    ordered = sort_findings(findings)
    fails = [f for f in ordered if f.status is Status.FAIL]
    unknown = [f for f in ordered if f.status is Status.UNKNOWN]
    where = f"`{node}`" + (f" (cluster `{cluster}`)" if cluster else "")
    problem = [f"Windows Node Doctor found {_count(fails)} on Windows node {where}.", ""]
    for sev in Severity.ordered():
        group = [f for f in fails if f.severity is sev]
        if not group:
            continue
        problem += [f"**{sev.label}**", ""]
        for f in group:
            problem += _finding_md(f, detail)
    if not fails:
        problem.append("No known problem was detected; describe what you see here.")
    if unknown:
        problem += ["", f"{len(unknown)} check(s) could not decide for lack of data: "]
        problem[-1] += ", ".join(f"`{f.check}`" for f in unknown[:30])
    expected = "Pods on the Windows node start and reach the network; the checks above pass."
    repro = (
        "Collected on the affected node by Windows Node Doctor; the attached bundle "
        f"(`{node}-<time>.tar.gz`) holds the node's state, the findings and the logs. "
        "`python manage.py diagnose <bundle>` reproduces the analysis offline."
    )
    additional = list(notes)
    additional.append(
        "Secrets were redacted from the bundle before export; the manifest counts what each rule replaced."
    )
    fields = {
        "problem": "\n".join(problem).rstrip(),
        "expected": expected,
        "repro": repro,
        "additional": "\n".join(f"- {n}" for n in additional),
        "kubeVersion": _console(facts.get("kubernetes", UNKNOWN)),
        "cloudProvider": facts.get("cloud", UNKNOWN),
        "osVersion": _console(facts.get("os", UNKNOWN)),
        "installer": facts.get("install", UNKNOWN),
        "runtime": facts.get("runtime", UNKNOWN),
        "plugins": facts.get("network", UNKNOWN),
    }
    return fields


def _count(fails: list[Finding]) -> str:
    if not fails:
        return "no problem"
    return f"{len(fails)} problem{'s' if len(fails) != 1 else ''}"


def _finding_md(f: Finding, detail: str) -> list[str]:
    head = f"- **{_inline(f.title)}** (`{f.check}`{', ' + _inline(f.subject) if f.subject else ''})"
    if detail == "titles":
        return [head]
    lines = [head]
    if f.caused_by:
        lines.append(f"  Because of `{f.caused_by}`.")
    lines.append(f"  {_inline(f.summary)}")
    if detail == "full" and (f.evidence or f.fix):
        lines += ["", "  <details><summary>Evidence and fix</summary>", ""]
        for e in f.evidence:
            where = e.source + (f":{e.line}" if e.line is not None else "")
            lines += [f"  `{_inline(where)}`", "", _fenced(e.excerpt, indent="  "), ""]
        if f.steps:
            lines += ["  Fix:", ""]
            for i, step in enumerate(f.steps, 1):
                lines.append(f"  {i}. {_inline(step.text) if step.text else 'Run:'}")
                if step.commands:  # multi-line commands survive only in a fenced block
                    lines += ["", _fenced("\n".join(step.commands), indent="     ", lang="powershell"), ""]
            lines.append("")
        if f.docs:
            lines += [f"  Docs: {f.docs}", ""]
        lines += ["  </details>", ""]
    return lines


def _inline(text: str) -> str:
    return " ".join(text.replace("<", "&lt;").replace(">", "&gt;").split())


def _fenced(text: str, *, indent: str = "", lang: str = "") -> str:
    longest = max((len(run) for run in text.split("\n") if set(run) == {"`"}), default=0)
    ticks = 3
    while "`" * ticks in text or ticks <= longest:
        ticks += 1
    fence = "`" * ticks
    body = "\n".join(indent + line for line in text.replace("\r\n", "\n").splitlines()[:40])
    return f"{indent}{fence}{lang}\n{body}\n{indent}{fence}"


def _console(text: str) -> str:
    return f"```console\n{text}\n```"


def _join(fields: Mapping[str, str]) -> str:
    out: list[str] = []
    for key, label in FIELDS:
        out += [f"### {label}", "", fields.get(key, "").strip() or "_No response_", ""]
    out.append("/sig windows")
    return "\n".join(out) + "\n"


def _cut(body: str, limit: int) -> str:
    tail = "\n\n(cut to fit a GitHub issue: the bundle has everything)\n\n/sig windows\n"
    return body[: limit - len(tail)] + tail


# -- the "new issue" link -------------------------------------------------------------


def issue_url(
    title: str,
    fields: Callable[[str], Mapping[str, str]] | Mapping[str, str],
    *,
    repository: str = DEFAULT_REPOSITORY,
    template: str = DEFAULT_TEMPLATE,
    limit: int = MAX_URL_CHARS,
) -> str:
    """``https://github.com/<repository>/issues/new?...``, title and fields prefilled, at most ``limit`` characters.

    ``fields`` is a mapping, or a function of a detail level (``full``, ``no-evidence``,
    ``titles``) so that the link can fall back to shorter text. With a ``template``, each
    field goes in its own parameter (issue forms); without one, the fields become ``body``.
    """
    repository = repository.strip().strip("/") or DEFAULT_REPOSITORY
    base = f"https://github.com/{quote(repository, safe='/')}/issues/new?"
    levels = ("full", "no-evidence", "titles")
    for level in levels:
        values = fields(level) if callable(fields) else fields
        url = base + _query(title, values, template)
        if len(url) <= limit:
            return url
    values = dict(fields("titles") if callable(fields) else fields)
    # Last resort: only the problem, cut, and a pointer to the bundle.
    note = "\n\n(shortened: see the attached bundle's ISSUE.md)"
    problem = values.get("problem", "")
    short = {"problem": problem, "additional": "See the attached bundle (ISSUE.md, findings.json)."}
    while problem:
        url = base + _query(title, {**short, "problem": problem + note}, template)
        if len(url) <= limit:
            return url
        problem = problem[: int(len(problem) * 0.8)]
    return (base + _query(title[:200], {}, template))[:limit]


def _query(title: str, values: Mapping[str, str], template: str) -> str:
    params: list[tuple[str, str]] = []
    if template:
        params.append(("template", template))
    params.append(("title", title))
    if template:
        params += [(key, values[key]) for key, _label in FIELDS if values.get(key)]
    else:
        params.append(("body", _join(values)))
    return urlencode(params, quote_via=quote)
