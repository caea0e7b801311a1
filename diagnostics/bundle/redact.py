"""Redaction of what a bundle carries, before anything is written.

Always on (unless the user asks for none): secrets. Each rule has a stable name; the
manifest counts what each rule replaced, never the values.

- ``private-key``, ``certificate``: PEM blocks (also inside JSON strings, ``\\n`` escaped);
- ``kubeconfig-credentials``: ``client-key-data``, ``client-certificate-data``,
  ``certificate-authority-data``, ``token``/``password`` of a kubeconfig user, auth-provider
  ``access-token``/``refresh-token``/``id-token``/``client-secret``;
- ``bearer-token``: ``Authorization: Bearer ...``, ``--token=...``/``--token ...``, ``-Token ...``;
- ``jwt``: service account and OIDC tokens (``eyJ...``) wherever they appear;
- ``secret-value``: values of keys that name a secret (``*PASSWORD*``, ``*SECRET*``, ``*API_KEY*``,
  ``*ACCESS_KEY*``, ``*TOKEN*``, ...) in env dumps (``KEY=value``), JSON, YAML, command-line
  flags, PowerShell lists (``Key : value``) and Kubernetes ``env`` entries (``name``/``value``);
- ``connection-string``: ``AccountKey=``, ``SharedAccessKey=``, ``Password=``/``Pwd=`` of
  connection strings, and passwords in URLs (``scheme://user:password@host``);
- ``sas-token``: the ``sig=`` of Azure shared access signatures;
- ``agent-token``: this product's agent tokens (``wnd_...``);
- ``known-token``: secrets recognized by their own shape wherever they are: AWS access key ids
  (``AKIA...``), GitHub (``ghp_``, ``gho_``, ``github_pat_``...), GitLab and npm tokens, Slack
  tokens and webhook URLs, Teams webhook URLs, Entra ID client secrets (``...Q~...``), Azure
  storage account keys (88 base64 characters), kubeadm bootstrap tokens (``abcdef.0123456789abcdef``:
  the secret half);
- ``command-line-password``: positional and switch passwords of Windows and container tools:
  ``net use \\\\server\\share <password> /user:x`` (either order), ``-u x -p <password>`` (``az login``,
  ``docker login``, PsExec), ``/pass:``, ``/passwordd:``, ``/rp`` (cmdkey, netdom, schtasks),
  ``ConvertTo-SecureString '<password>'``, ``--user``/``--creds`` ``name:<password>``
  (ctr, crictl), ``Name  REG_SZ  <value>`` of a secret-named registry value, and the
  ``<...Password>`` elements of unattend.xml;
- ``basic-credentials``: ``Authorization: Basic ...``, and base64 values that decode to a
  ``user:password`` pair or to a docker config (``{"auths": ...}``).

Optional, and consistent across every file of a bundle (one ``Redactor`` per bundle):

- ``ip-address`` (IPv4 and IPv6) and ``mac-address``, mapped by a keyed *prefix-preserving*
  function: two addresses share their first k bits after mapping exactly when they did
  before, so a pod IP stays inside its pod CIDR, a CIDR stays a CIDR (host bits still zero)
  and the checks that compare subnets give the same answers. Special addresses (loopback,
  link-local, multicast, unspecified, netmasks) and the last byte are kept, and so is the
  address class (10/8, 172.16/12, 192.168/16, 100.64/10 stay private);
- ``hostname``: the node's names and DNS domains learned from the data (``learn_hosts``),
  replaced by ``host-<hash>`` / ``domain-<hash>.example`` wherever they occur.

The key of the mappings is random per ``Redactor`` unless given: nothing in the bundle lets
anyone undo them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

MARK = "REDACTED"

# Rule names, in the order they run (PEM blocks first: later rules must not cut them up).
RULES = (
    "private-key",
    "certificate",
    "kubeconfig-credentials",
    "bearer-token",
    "jwt",
    "connection-string",
    "sas-token",
    "agent-token",
    "known-token",
    "command-line-password",
    "basic-credentials",
    "secret-value",
)
MAPPING_RULES = ("ip-address", "mac-address", "hostname")


@dataclass(frozen=True)
class RedactOptions:
    """What to redact. ``secrets`` is on by default; the mappings are opt-in."""

    secrets: bool = True
    ips: bool = False  # IP and MAC addresses
    hosts: bool = False
    key: bytes | None = None  # key of the consistent mappings; random when None

    @classmethod
    def none(cls) -> RedactOptions:
        return cls(secrets=False)

    @property
    def active(self) -> bool:
        return self.secrets or self.ips or self.hosts

    def describe(self) -> dict[str, bool]:
        return {"secrets": self.secrets, "ip_addresses": self.ips, "host_names": self.hosts}


# -- secret rules ------------------------------------------------------------------

# A JSON string body (escapes allowed), a YAML/env plain value, a command-line word.
_JSTR = r'(?:[^"\\\r\n]|\\.)*'
# A string inside a JSON string (``\"...\"``): up to the next escaped quote.
_ESCAPED = r'(?:(?!\\")[^\r\n])*'

_PEM = re.compile(
    r"-----BEGIN ([A-Z0-9 ]{0,40})-----(?:(?!-----END)[\s\S]){0,65536}?-----END \1-----"
    r"|-----BEGIN ([A-Z0-9 ]{0,40})-----(?:(?!-----END)[\s\S]){0,65536}$"  # cut off at the end of the text
)
_KUBECONFIG_KEYS = (
    r"client-key-data|client-certificate-data|certificate-authority-data|client-key|"
    r"access-token|refresh-token|id-token|idp-certificate-authority-data|client-secret"
)
# key: value (YAML), "key": "value" (JSON, possibly escaped inside another JSON string).
_KUBECONFIG = re.compile(
    rf"(?P<pre>(?<![\w-])(?:{_KUBECONFIG_KEYS})\\?\"?\s*[:=]\s*)(?P<q>\\?\"|')?(?P<val>(?(q){_JSTR}?(?=\\?\"|')|\S+))",
    re.IGNORECASE,
)
# kubeconfig ``user`` entries: ``token: ...`` / ``password: ...`` at YAML indentation.
_YAML_USER_SECRET = re.compile(r"(?P<pre>^[ \t]*(?:token|password):[ \t]+)(?P<val>[^\s#][^\r\n]*)", re.MULTILINE)
# The lookahead names every first character a match can have: ``re`` then rejects most
# positions at once instead of trying both alternatives at each (three times faster).
_BEARER = re.compile(
    r"(?=[Bb-])(?:(?P<pre>\b[Bb]earer\s+)(?P<val>[A-Za-z0-9._~+/=-]{8,})"
    r"|(?P<pre2>(?<![\w-])(?:--|-)(?:bearer-)?[Tt]oken(?:=|\s+|:\s*)(?P<q>\\?\"|')?)(?P<val2>(?!-)[^\s\"'\\]{4,}))"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_CONNECTION = re.compile(
    r"(?P<pre>(?<![A-Za-z])(?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd)=)(?P<val>[^;\s\"'&]+)",
    re.IGNORECASE,
)
# scheme://user:password@host -- found from its "://", the cheap part to search for.
_URL_PASSWORD = re.compile(r"(?<=[A-Za-z0-9+.-])(?P<pre>://[^\s:/@\"'<>]{1,100}:)(?P<val>[^\s@/\"'<>]{1,200})(?=@)")
_SAS = re.compile(r"(?P<pre>[?&](?:amp;)?sig=)(?P<val>[A-Za-z0-9%+/=_-]{8,})", re.IGNORECASE)
_AGENT_TOKEN = re.compile(r"\bwnd_[A-Za-z0-9_-]{16,}")

# Secrets with a shape of their own. Each alternative keeps its public part in ``pre``.
_KNOWN_TOKEN = re.compile(
    r"(?P<val>\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{22,255}"  # GitHub
    r"|\bglpat-[A-Za-z0-9_-]{20,}|\bnpm_[A-Za-z0-9]{36}\b"  # GitLab, npm
    r"|\bxox[abposre]-[A-Za-z0-9-]{10,}"  # Slack tokens
    # Entra ID client secrets
    r"|(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])"
    r"|(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=]))"  # Azure storage account keys
    r"|(?P<pre>https://hooks\.slack\.com/(?:services|workflows|triggers)/)(?P<val2>[A-Za-z0-9/_-]+)"
    r"|(?P<pre3>https://[A-Za-z0-9.-]*\.office\.com/webhook(?:b2)?/)(?P<val3>[^\s\"'<>\\]+)"
    # kubeadm bootstrap tokens: the id is public, the 16 characters after the dot are the secret.
    r"|(?P<pre4>(?<![\w.-])[a-z0-9]{6}\.)(?P<val4>(?=[a-z]*[0-9])[a-z0-9]{16})(?![\w.-])"
)
# Literal-led patterns that find where _KNOWN_TOKEN may match (see _TRIGGERS).
_KNOWN_STARTS = (
    r"akia",
    r"asia",
    r"g(?:h[pousr]_|ithub_pat_)",
    r"glpat-",
    r"npm_",
    r"xox",
    r"hooks\.slack\.com",
    r"\.office\.com/webhook",
)
_KNOWN_NEEDLES = (
    "akia",
    "asia",
    "gh",
    "github_pat_",
    "glpat-",
    "npm_",
    "xox",
    "hooks.slack.com",
    "office.com/webhook",
    "q~",
    "==",
    ".",
)

# Passwords given positionally or after a switch, on Windows and container tool command lines.
_BARE = r"(?:[^\s\"'\\]|\\(?![\"']))+"  # an unquoted value; in a JSON string, up to an escaped quote
_Q = r"\\?[\"']"  # a quote, possibly escaped inside a JSON string
_WORD = rf"(?:\\?\"(?:(?!\\?\")[^\r\n])*\\?\"|'[^'\r\n]*'|{_BARE})"  # one argument, quoted or not
_COMMAND_PASSWORD = re.compile(
    # net use [d:] \\server\share <password> /user:x   and   net use ... /user:x <password>
    rf"(?P<pre>\bnet(?:\.exe)?[ \t]+use[ \t]+(?:[A-Za-z*]:[ \t]+)?\\\\\S+[ \t]+)(?P<val>(?![/*]){_BARE})"
    rf"|(?P<pre2>\bnet(?:\.exe)?[ \t]+use\b[^\r\n]*?[ \t]/u(?:ser)?:\S+[ \t]+)(?P<val2>(?![/*]){_BARE})"
    # -u <user> ... -p <password> (az login, docker login, PsExec)
    rf"|(?P<pre3>(?<![\w-])-u[ \t]+\S+[ \t]+(?:[^\r\n]*?[ \t])?-p[ \t]+)(?P<val3>{_WORD})"
    # /pass:x /password:x /passwordd:x /passwordo:x /p:x (cmdkey, netdom, runas-like tools), /rp x (schtasks)
    rf"|(?P<pre4>(?<![\w/])/(?:pass(?:word[do]?)?|p):)(?P<val4>{_BARE})"
    rf"|(?P<pre5>(?<![\w/])/rp[ \t]+)(?P<val5>{_WORD})"
    # ConvertTo-SecureString '<password>' -AsPlainText / -String "<password>"
    rf"|(?P<pre6>ConvertTo-SecureString[ \t]+(?:-String[ \t]+)?)"
    rf"(?P<val6>{_Q}(?:(?!{_Q})[^\r\n])*{_Q}|(?![$(-])[^\s\"')]+)"
    # --user name:<password> (ctr), --creds name:<password> (crictl, skopeo)
    rf"|(?P<pre7>(?<![\w-])(?:--user|--creds|-u)[ \t=]+(?!system:)[^\s:\"']+:)(?P<val7>{_BARE})"
    # DefaultPassword    REG_SZ    <value> (reg query output)
    r"|(?P<pre8>\b[A-Za-z0-9_.-]*(?:[Pp]assword|[Ss]ecret|[Kk]ey)[A-Za-z0-9_.-]*"
    r"[ \t]+REG_(?:SZ|EXPAND_SZ|MULTI_SZ)[ \t]+)"
    r"(?P<val8>[^\r\n]+)"
    # unattend.xml: <AdministratorPassword><Value>x</Value> and <Password>x</Password>
    r"|(?P<pre9><[A-Za-z]*Password>\s*<Value>)(?P<val9>[^<]+)"
    r"|(?P<pre10><[A-Za-z]*Password>)(?P<val10>[^<\s][^<]*)(?=</)",
    re.IGNORECASE,
)
# Literal-led patterns that find where _COMMAND_PASSWORD may match (see _TRIGGERS).
_COMMAND_STARTS = (
    r"net(?:\.exe)? +use",
    r"-[pu][ \t]",
    r"/(?:pass|p:|rp)",
    r"convertto-securestring",
    r"--(?:user|creds)",
    r"reg_",
    r"password>",
)
_COMMAND_NEEDLES = ("net", "-p", "-u", "/p", "/rp", "convertto-securestring", "--user", "--creds", "reg_", "password>")

# Basic credentials: the header's value, and base64 that decodes to user:password or a docker config.
_BASIC = re.compile(r"(?P<pre>\b[Bb]asic[ \t]+)(?P<val>[A-Za-z0-9+/]{8,}={0,2})")
_B64_VALUE = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/]{12,}={0,2}(?![A-Za-z0-9+/=_-])")
_USER_PASS = re.compile(r"[\w.@\\$-]{1,100}:[^\s:]{3,200}")

# Names that say "secret". ``_FILE``/``_PATH``/``-file`` names hold a path, not the secret.
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|passphrase|secret|api[_-]?key|access[_-]?key|private[_-]?key|"
    r"auth[_-]?token|access[_-]?token|refresh[_-]?token|(?<![a-z])token|credentials?)"
    r"(?![A-Za-z0-9_.-]*(?:file|path|dir|name|ref|policy|type|mount|volume|_id|id\b|ttl|expir|count))"
    r"[A-Za-z0-9_.-]*"
)
# The secret word alone, searched in lower-cased text (a literal-led pattern: fast).
_SECRET_WORD = re.compile(
    r"passw(?:or)?d|passphrase|secret|api[_-]?key|access[_-]?key|private[_-]?key|token|credential|creds\b|auth\b"
    r"|(?:storage|account|shared|workspace|primary|secondary|master|signing|encryption|subscription)[_-]?key"
)
# What may come right before "token" in the name of a secret (``serviceAccountToken`` names a field).
_TOKEN_PREFIXES = ("auth", "access", "refresh", "identity", "bootstrap", "id", "bearer", "api", "session", "sas")
_NEXT_KEY = re.compile(r"[A-Za-z][\w.-]*:(?!//|\\)")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_NOT_SECRET_NAME = re.compile(r"(file|path|dir|name|ref|policy|type|mount|volume|_id|ttl|expir|count)|id$")
# What follows a secret name, matched where the name starts.
_SECRET_AT = re.compile(
    # "KEY": "value" (JSON; also escaped inside a JSON string)
    rf"(?P<jpre>(?P<jq>\\)?\"[A-Za-z0-9_.-]+\\?\"\s*:\s*\\?\")(?P<jval>(?(jq){_ESCAPED}|{_JSTR}))"
    # KEY=value (env, flags --key=value), key = "value" (TOML, INI, sc.exe's "password= x"),
    # KEY: value (YAML), Key : value (PowerShell lists)
    r"|(?P<kpre>(?:--?)?'?[A-Za-z0-9_.-]+'?(?:[ \t]*=[ \t]*|[ \t]*:[ \t]+))(?P<kq>[\"'])?"
    r"(?P<kval>(?(kq)[^\"'\r\n]*(?=[\"'])|(?:[^\s\"',;\\]|\\(?![\"']))+))"
    # --key value, -Key value, -Key 'value' (flags and PowerShell parameters with a space)
    r"|(?P<fpre>--?[A-Za-z0-9_.-]+[ \t]+(?P<fq>\\?[\"'])?)"
    r"(?P<fval>(?(fq)[^\"'\\\r\n]+|(?![-$])(?:[^\s\"'\\]|\\(?![\"']))+))"
)


def _redact_secret_values(text: str, low: str, counts: Counter[str]) -> str:
    """Values of keys whose name says secret, found from the secret word outwards (few regex runs per text)."""
    edits: list[tuple[int, int]] = []
    last_end = 0
    for word in _SECRET_WORD.finditer(low):
        if word.start() < last_end:
            continue
        start = word.start()
        while start > 0 and text[start - 1] in _NAME_CHARS:
            start -= 1
        end = word.end()
        while end < len(text) and text[end] in _NAME_CHARS:
            end += 1
        if word.group(0) == "token" and word.start() > start and low[word.start() - 1].isalpha():
            prefix = low[start : word.start()]
            if not prefix.endswith(_TOKEN_PREFIXES):
                continue  # serviceAccountToken, kubernetes.io/...-token: a field, not a secret
        if word.group(0) == "auth" and (
            end != word.end() or (word.start() > start and low[word.start() - 1].isalpha())
        ):
            continue  # only a name that is "auth" or ends in "_auth": authorization, oauth are not
        if _NOT_SECRET_NAME.search(low[word.end() : end]):
            continue
        # Where the quoted or plain name begins.
        begin = start
        if begin > 0 and text[begin - 1] == '"':
            begin -= 1
            if begin > 0 and text[begin - 1] == "\\":
                begin -= 1
        elif begin > 0 and text[begin - 1] == "'":
            begin -= 1  # 'key' = ... (PowerShell hashtables)
        elif begin > 0 and not (text[begin - 1].isspace() or text[begin - 1] in ";,{(@"):
            continue
        match = _SECRET_AT.match(text, begin)
        if match is None:
            continue
        for group in ("jval", "kval", "fval"):
            value = match.group(group)
            if value is None:
                continue
            # ``etcdPassword: version:false`` (a Go struct dump): an empty value, then the next key.
            next_key = group == "kval" and _NEXT_KEY.match(value) is not None and match.group("kq") is None
            if value and not value.startswith(MARK) and not next_key:
                edits.append(match.span(group))
            break
        last_end = match.end()
    if not edits:
        return text
    out: list[str] = []
    pos = 0
    for start, end in edits:
        out += [text[pos:start], MARK]
        pos = end
    out.append(text[pos:])
    counts["secret-value"] += len(edits)
    return "".join(out)


# Kubernetes env entries: {"name": "DB_PASSWORD", "value": "..."} / - name: X\n  value: ...
_ENV_ENTRY = re.compile(
    rf"(?P<pre>\\?\"name\\?\"\s*:\s*\\?\"{_SECRET_NAME}\\?\"\s*,\s*\\?\"value\\?\"\s*:\s*(?P<q>\\)?\")"
    rf"(?P<val>(?(q){_ESCAPED}|{_JSTR}))"
    rf"|(?P<ypre>-[ \t]+name:[ \t]+[\"']?{_SECRET_NAME}[\"']?[ \t]*\r?\n[ \t]+value:[ \t]+)(?P<yval>[^\r\n]+)",
    re.IGNORECASE,
)

# Cheap checks that say a rule cannot match a text (most log blocks match no rule at all).
_NEEDLES: dict[str, tuple[str, ...]] = {
    "private-key": ("-----begin",),
    "certificate": ("-----begin",),
    "kubeconfig-credentials": (
        "-data",
        "client-key",
        "access-token",
        "refresh-token",
        "id-token",
        "client-secret",
        "\ntoken:",
        "\npassword:",
        " token:",
        " password:",
    ),
    "bearer-token": ("bearer", "--token", " -token", '"-token', "'-token", "-bearer-token"),
    "jwt": ("eyj",),
    "connection-string": ("accountkey", "sharedaccess", "password=", "pwd=", "://"),
    "sas-token": ("sig=",),
    "agent-token": ("wnd_",),
    "known-token": _KNOWN_NEEDLES,
    "command-line-password": _COMMAND_NEEDLES,
    "basic-credentials": ("basic", "="),
    "secret-value": (
        "passw",
        "passphrase",
        "secret",
        "apikey",
        "api_key",
        "api-key",
        "accesskey",
        "access_key",
        "access-key",
        "privatekey",
        "private_key",
        "private-key",
        "token",
        "credential",
        "creds",
        "auth",
        "key",
    ),
}


def _sub_pem(text: str, counts: Counter[str]) -> str:
    def repl(m: re.Match[str]) -> str:
        label = m.group(1) if m.group(1) is not None else (m.group(2) or "")
        rule = "private-key" if "PRIVATE" in label or "KEY" in label else "certificate"
        counts[rule] += 1
        return f"-----BEGIN {label}-----{MARK}-----END {label}-----"

    return _PEM.sub(repl, text)


def _keep_pre(rule: str, counts: Counter[str]) -> Callable[[re.Match[str]], str]:
    """A replacement keeping the ``pre*`` groups and replacing the ``*val*`` group of the alternative that matched."""

    def repl(m: re.Match[str]) -> str:
        for name, value in m.groupdict().items():
            if "val" not in name or value is None:
                continue
            if not value or value.startswith(MARK):
                return m.group(0)  # empty, or already redacted by an earlier rule
            counts[rule] += 1
            offset = m.start()
            whole = m.group(0)
            return whole[: m.start(name) - offset] + MARK + whole[m.end(name) - offset :]
        return m.group(0)

    return repl


def _encoded_credentials(counts: Counter[str]) -> Callable[[re.Match[str]], str]:
    """A replacement for base64 values that decode to ``user:password`` or to a docker config's JSON."""

    def repl(m: re.Match[str]) -> str:
        value = m.group(0)
        if len(value) % 4 or value.startswith(MARK):
            return value
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return value
        if not decoded.isprintable():
            return value
        if _USER_PASS.fullmatch(decoded) or ('"auths"' in decoded or '"auth"' in decoded):
            counts["basic-credentials"] += 1
            return MARK
        return value

    return repl


def _whole(rule: str, replacement: str, counts: Counter[str]) -> Callable[[re.Match[str]], str]:
    def repl(m: re.Match[str]) -> str:
        counts[rule] += 1
        return replacement

    return repl


def redact_secrets(text: str, counts: Counter[str]) -> str:
    """Every secret rule over ``text``; adds what each replaced to ``counts``.

    1. PEM blocks, over the whole text (they span lines);
    2. the other rules only on the lines (and the line after each, for YAML ``name``/``value``
       pairs) where one of their needles occurs: a log block usually has few such lines,
       and running a dozen regexes over every line would cost more than compressing it.
    """
    low = text.lower()
    if "-----begin" in low:
        text = _sub_pem(text, counts)
        low = text.lower()
    spans = _candidate_spans(text, low)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for start, end in spans:
        out.append(text[pos:start])
        out.append(_redact_lines(text[start:end], low[start:end], counts))
        pos = end
    out.append(text[pos:])
    return "".join(out)


# What a block is searched for. Each word pattern starts with a literal, which ``re`` finds
# as fast as ``str.find``; a word counts only where a value follows the name it is part of
# (``DB_PASSWORD=``, ``"clientSecret": ``, ``token: ``, ``{"name": "X_KEY", "value"``,
# ``- name: X_KEY`` then ``value:``) or in a ``--flag``: ``kubernetes.io/secret/`` and
# ``default-token-x7k2p``, most of the occurrences in a kubelet log, are neither.
_VALUE_AFTER_NAME = r"""[a-z0-9_.-]*(?:(?:\\?")?[ \t]*[:=]|\\?"[ \t]*,[ \t]*\\?"value|["']?[ \t]*\r?\n[ \t]+value:)"""
_TRIGGERS = tuple(
    re.compile(pattern)
    for pattern in (
        *(re.escape(word) + _VALUE_AFTER_NAME for word in ("pass", "secret", "key", "token", "cred", "-data")),
        r"--[a-z0-9_.-]*(?:pass|secret|key|token|cred)",
        r"://[^\s:/@\"'<>]{1,100}:[^\s@/\"'<>]{1,200}@",
        # Needles rare enough to search for as they are (``re`` scans for a literal faster than ``str.find``).
        *(re.escape(needle) for needle in ("pwd=", "bearer", "eyj", "wnd_", "sig=", "basic", "==", "q~")),
        # Tokens with a shape of their own, and command lines that carry passwords: each pattern starts
        # with a literal, which ``re`` finds fast (it would try an alternation at every position).
        *_KNOWN_STARTS,
        *_COMMAND_STARTS,
        r"\.[a-z0-9]{16}(?![\w.-])",  # the secret half of a bootstrap token
        r"auth\\?[\"']?[ \t]*[:=]",  # a key named auth: docker config, containerd's TOML, *_AUTH variables
    )
)


def _candidate_spans(text: str, low: str) -> list[tuple[int, int]]:
    """Merged (start, end) spans of the lines where a rule may match, each with the line after it."""
    size = len(text)
    hits: list[int] = []
    for trigger in _TRIGGERS:
        hits += [m.start() for m in trigger.finditer(low)]
    spans: list[tuple[int, int]] = []
    for i in hits:
        start = low.rfind("\n", 0, i) + 1
        end = low.find("\n", i)
        end = size if end == -1 else end + 1
        following = low.find("\n", end)
        stop = size if following == -1 or end >= size else following + 1
        spans.append((start, stop))
    if not spans:
        return spans
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _redact_lines(text: str, low: str, counts: Counter[str]) -> str:
    def wanted(rule: str) -> bool:
        return any(n in low for n in _NEEDLES[rule])

    if wanted("kubeconfig-credentials"):
        text = _KUBECONFIG.sub(_keep_pre("kubeconfig-credentials", counts), text)
        if "token:" in low or "password:" in low:
            text = _YAML_USER_SECRET.sub(_keep_pre("kubeconfig-credentials", counts), text)
    if wanted("bearer-token"):
        text = _BEARER.sub(_keep_pre("bearer-token", counts), text)
    if wanted("jwt"):
        text = _JWT.sub(_whole("jwt", MARK, counts), text)
    if any(n in low for n in ("accountkey", "sharedaccess", "password=", "pwd=")):
        text = _CONNECTION.sub(_keep_pre("connection-string", counts), text)
    if "://" in low and "@" in low:
        text = _URL_PASSWORD.sub(_keep_pre("connection-string", counts), text)
    if wanted("sas-token"):
        text = _SAS.sub(_keep_pre("sas-token", counts), text)
    if wanted("agent-token"):
        text = _AGENT_TOKEN.sub(_whole("agent-token", "wnd_" + MARK, counts), text)
    if wanted("known-token"):
        text = _KNOWN_TOKEN.sub(_keep_pre("known-token", counts), text)
    if wanted("command-line-password"):
        text = _COMMAND_PASSWORD.sub(_keep_pre("command-line-password", counts), text)
    if wanted("basic-credentials"):
        if "basic" in low:
            text = _BASIC.sub(_keep_pre("basic-credentials", counts), text)
        text = _B64_VALUE.sub(_encoded_credentials(counts), text)
    if wanted("secret-value"):
        if "name" in low and "value" in low:
            text = _ENV_ENTRY.sub(_keep_pre("secret-value", counts), text)
        text = _redact_secret_values(text, text.lower(), counts)
    return text


# -- consistent mappings -------------------------------------------------------------

_IPV4 = re.compile(
    r"(?<![\w.])((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})(?:/(\d{1,2}))?(?![\w.]*\d)"
)
_IPV6 = re.compile(
    r"(?<![\w:.])((?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})(?:/(\d{1,3}))?(?![\w:])"
)
_MAC = re.compile(
    r"(?<![\w:-])([0-9A-Fa-f]{2})([:-])([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})(?![\w:-])"
)

_V4_KEEP = [
    ipaddress.ip_network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3", "255.0.0.0/8")
]
# Leading bits kept as they are, so an address stays in its class (private, CGNAT, public).
_V4_CLASS = [
    (ipaddress.ip_network("10.0.0.0/8"), 8),
    (ipaddress.ip_network("172.16.0.0/12"), 12),
    (ipaddress.ip_network("192.168.0.0/16"), 16),
    (ipaddress.ip_network("100.64.0.0/10"), 10),
]


class _PrefixMap:
    """A keyed, prefix-preserving bijection on ``bits``-bit integers (after Xu et al.'s Crypto-PAn idea).

    Bit i of the output is bit i of the input XOR a keyed function of the input's first i bits;
    bits before ``keep_head(value)`` and the last ``keep_tail`` bits are kept.
    """

    def __init__(self, key: bytes, bits: int, keep_tail: int) -> None:
        self.key = key
        self.bits = bits
        self.keep_tail = keep_tail
        self._flip: dict[tuple[int, int], int] = {}

    def _flip_bit(self, length: int, prefix: int) -> int:
        cached = self._flip.get((length, prefix))
        if cached is None:
            digest = hmac.new(self.key, f"{self.bits}:{length}:{prefix}".encode(), hashlib.sha256).digest()
            cached = digest[0] & 1
            self._flip[(length, prefix)] = cached
        return cached

    def map(self, value: int, keep_head: int) -> int:
        out = value
        for i in range(keep_head, self.bits - self.keep_tail):
            prefix = value >> (self.bits - i)
            if self._flip_bit(i, prefix):
                out ^= 1 << (self.bits - 1 - i)
        return out


class Redactor:
    """Redacts texts of one bundle: secrets always the same way, mappings consistent across calls.

    ``counts`` says what each rule replaced. ``text`` takes any text; ``stream`` redacts a
    text stream in blocks of whole lines (constant memory).
    """

    def __init__(self, options: RedactOptions | None = None) -> None:
        self.options = options or RedactOptions()
        key = self.options.key or secrets.token_bytes(32)
        self.counts: Counter[str] = Counter()
        self._v4 = _PrefixMap(key + b"v4", 32, keep_tail=8)
        self._v6 = _PrefixMap(key + b"v6", 128, keep_tail=16)
        self._mac = _PrefixMap(key + b"mac", 48, keep_tail=8)
        self._key = key
        self._ip_cache: dict[str, str] = {}
        self._hosts: dict[str, str] = {}
        self._host_re: re.Pattern[str] | None = None

    # -- host names -------------------------------------------------------------

    def learn_hosts(self, names: Iterable[str]) -> None:
        """Names to map wherever they occur: host names (``win-node-01``), DNS names (``corp.example.com``).

        A dotted name is split into its first label (a host) and the rest (a domain).
        """
        if not self.options.hosts:
            return
        for raw in names:
            name = raw.strip().strip(".").lower()
            if not name or _is_address(name) or len(name) < 3:
                continue
            labels = name.split(".")
            if len(labels) == 1:
                self._add_host(name, "host")
            else:
                self._add_host(labels[0], "host")
                self._add_host(".".join(labels[1:]), "domain")
        names_by_length = sorted(self._hosts, key=len, reverse=True)
        self._host_re = (
            re.compile(
                r"(?<![A-Za-z0-9-])(" + "|".join(re.escape(n) for n in names_by_length) + r")(?![A-Za-z0-9-])", re.I
            )
            if names_by_length
            else None
        )

    def _add_host(self, name: str, kind: str) -> None:
        if name in self._hosts or name in _PUBLIC_DOMAINS or any(name.endswith("." + d) for d in _PUBLIC_DOMAINS):
            return
        if kind == "domain" and "." not in name and name in _SINGLE_LABEL_TLDS:
            return
        digest = hmac.new(self._key, f"host:{name}".encode(), hashlib.sha256).hexdigest()[:8]
        self._hosts[name] = f"host-{digest}" if kind == "host" else f"domain-{digest}.example"

    def host(self, name: str) -> str:
        """The mapped form of one name (the node's, the cluster's), or the name itself when hosts are kept."""
        if not self.options.hosts or self._host_re is None:
            return name
        return self._host_re.sub(lambda m: self._hosts[m.group(1).lower()], name)

    # -- addresses ----------------------------------------------------------------

    def _map_v4(self, text: str, prefix: str | None) -> str:
        addr = ipaddress.IPv4Address(text)
        if any(addr in net for net in _V4_KEEP):
            return text
        value = int(addr)
        keep = next((bits for net, bits in _V4_CLASS if addr in net), 8)
        mapped = self._v4.map(value, keep)
        if prefix is not None:
            length = int(prefix)
            if length <= 32 and value & ((1 << (32 - length)) - 1) == 0:
                mapped &= ~((1 << (32 - length)) - 1) & 0xFFFFFFFF  # a network stays a network
        return str(ipaddress.IPv4Address(mapped))

    def _map_v6(self, text: str, prefix: str | None) -> str | None:
        try:
            addr = ipaddress.IPv6Address(text)
        except ValueError:
            return None
        if addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_unspecified:
            return text
        if addr.ipv4_mapped is not None:
            return None
        value = int(addr)
        mapped = self._v6.map(value, 16)
        if prefix is not None:
            length = int(prefix)
            if length <= 128 and value & ((1 << (128 - length)) - 1) == 0:
                mapped &= ~((1 << (128 - length)) - 1) & ((1 << 128) - 1)
        return str(ipaddress.IPv6Address(mapped))

    def _ip(self, m: re.Match[str], v6: bool) -> str:
        whole = m.group(0)
        cached = self._ip_cache.get(whole)
        if cached is None:
            address, prefix = m.group(1), m.group(2)
            if not v6 and _netmask_like(address):
                cached = whole
            else:
                mapped = self._map_v6(address, prefix) if v6 else self._map_v4(address, prefix)
                suffix = f"/{prefix}" if prefix is not None else ""
                cached = whole if mapped is None else mapped + suffix
            self._ip_cache[whole] = cached
        if cached != whole:
            self.counts["ip-address"] += 1
        return cached

    def _mac_repl(self, m: re.Match[str]) -> str:
        octets = [m.group(i) for i in (1, 3, 4, 5, 6, 7)]
        value = int("".join(octets), 16)
        if value in (0, (1 << 48) - 1):
            return m.group(0)
        mapped = self._mac.map(value, 24)  # the maker's prefix (Hyper-V's 00-15-5D...) is kept
        hexed = f"{mapped:012x}"
        if octets[0].isupper() or any(c.isupper() for c in "".join(octets)):
            hexed = hexed.upper()
        self.counts["mac-address"] += 1
        return m.group(2).join(hexed[i : i + 2] for i in range(0, 12, 2))

    # -- texts ----------------------------------------------------------------------

    def text(self, text: str) -> str:
        """``text`` with every active rule applied."""
        if self.options.secrets:
            text = redact_secrets(text, self.counts)
        if self.options.ips:
            if "." in text:
                text = _IPV4.sub(lambda m: self._ip(m, False), text)
            if ":" in text or "-" in text:
                text = _MAC.sub(self._mac_repl, text)
            if ":" in text:
                text = _IPV6.sub(lambda m: self._ip(m, True), text)
        if self.options.hosts and self._host_re is not None:

            def host_repl(m: re.Match[str]) -> str:
                self.counts["hostname"] += 1
                return self._hosts[m.group(1).lower()]

            text = self._host_re.sub(host_repl, text)
        return text

    def stream(self, source: IO[str], block_chars: int = 1 << 20) -> Iterator[str]:
        """Redact a text stream in blocks of whole lines (constant memory: about ``block_chars``).

        A PEM block that a block edge cuts is kept whole when it fits in 4 blocks; a longer
        one is redacted up to the edge, and what follows is dropped up to its END line.
        """
        carry = ""
        in_pem = False
        while True:
            chunk = source.read(block_chars)
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind("\n") + 1
            if cut == 0 and len(data) < 4 * block_chars:
                carry = data
                continue
            if cut == 0:
                cut = len(data)
            if in_pem and self.options.secrets:
                end = _PEM_END.search(data, 0, cut)
                if end is None:
                    carry = data[cut:]
                    continue  # still inside the key: nothing of it is written
                data, cut, in_pem = data[end.end() :], cut - end.end(), False
            begin = data.rfind("-----BEGIN ", 0, cut)
            open_pem = begin != -1 and "-----END " not in data[begin:cut]
            if open_pem and len(data) < 4 * block_chars:
                line_start = data.rfind("\n", 0, begin) + 1
                if line_start == 0:
                    carry = data
                    continue
                cut = line_start
                open_pem = False
            yield self.text(data[:cut]) if self.options.active else data[:cut]
            in_pem = open_pem
            carry = data[cut:]
        if in_pem and self.options.secrets:
            end = _PEM_END.search(carry)
            carry = carry[end.end() :] if end else ""
        if carry:
            yield self.text(carry) if self.options.active else carry


_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}-----")


def _netmask_like(address: str) -> bool:
    """255.255.255.0 and friends: contiguous ones then zeros (kept: they say nothing about the network)."""
    value = int(ipaddress.IPv4Address(address))
    inverted = ~value & 0xFFFFFFFF
    return value != 0 and (inverted & (inverted + 1)) == 0 and value >= 0xFF000000


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# Names that are never the user's: registries, Kubernetes' own, Microsoft's.
_PUBLIC_DOMAINS = frozenset(
    {
        "kubernetes.io",
        "k8s.io",
        "registry.k8s.io",
        "k8s.gcr.io",
        "gcr.io",
        "mcr.microsoft.com",
        "microsoft.com",
        "windows.net",
        "azure.com",
        "docker.io",
        "docker.com",
        "github.com",
        "githubusercontent.com",
        "cluster.local",
        "svc.cluster.local",
        "localhost",
        "localdomain",
        "default.svc",
        "svc",
        "example.com",
        "example",
    }
)
_SINGLE_LABEL_TLDS = frozenset({"com", "net", "org", "io", "local", "internal", "lan", "corp", "home"})
