"""Version facts the checks compare against: Windows builds, support matrices, runtime minimums.

The seed (the v1.19-era "Windows in Kubernetes" page) gives the 1.14-1.19 rows;
newer rows follow the Kubernetes Windows support policy: Windows Server 2019
(17763), 2022 (20348) and 2025 (26100) are the LTSC hosts, the semi-annual
builds had shorter windows, and containerd is the only runtime since 1.24.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowsBuild:
    build: int
    name: str  # "Windows Server 2019"
    release: str  # "1809", "ltsc2022"
    ltsc: bool


WINDOWS_BUILDS: dict[int, WindowsBuild] = {
    b.build: b
    for b in (
        WindowsBuild(14393, "Windows Server 2016", "1607", True),
        WindowsBuild(17134, "Windows Server version 1803", "1803", False),
        WindowsBuild(17763, "Windows Server 2019", "1809", True),
        WindowsBuild(18362, "Windows Server version 1903", "1903", False),
        WindowsBuild(18363, "Windows Server version 1909", "1909", False),
        WindowsBuild(19041, "Windows Server version 2004", "2004", False),
        WindowsBuild(19042, "Windows Server version 20H2", "20H2", False),
        WindowsBuild(20348, "Windows Server 2022", "ltsc2022", True),
        WindowsBuild(25398, "Windows Server version 23H2", "23H2", False),
        WindowsBuild(26100, "Windows Server 2025", "ltsc2025", True),
    )
}

WS2019, WS2004, WS2022, WS2025 = 17763, 19041, 20348, 26100
DSR_MIN_BUILD = WS2004  # kube-proxy --enable-dsr / WinDSR
SESSION_AFFINITY_MIN_BUILD = 19551  # sessionAffinity: ClientIP
DUALSTACK_MIN_BUILD = 19603  # IPv4/IPv6 dual-stack
OVERLAY_HOTFIXES = ("KB4489899", "KB4482887")  # overlay networking on Windows Server 2019
# KB4482887 is 10.0.17763.348 and KB4489899 is 10.0.17763.379; any later cumulative update includes them.
OVERLAY_HOTFIX_MIN_UBR = 379


def build_name(build: int) -> str:
    known = WINDOWS_BUILDS.get(build)
    return f"{known.name} (build {build})" if known else f"build {build}"


# Host builds each Kubernetes minor supports, as (first minor, last minor, builds).
# Seed: 1.14-1.17 Windows Server 2019 / 1809; 1.18 adds 1903 and 1909; 1.19: 2019, 1909, 2004.
# Later: 20H2 with 1.20-1.22, 2022 from 1.23 (the semi-annual builds leave by 1.25), 2025 from 1.32.
_SUPPORT: tuple[tuple[int, int, frozenset[int]], ...] = (
    (14, 17, frozenset({17763})),
    (18, 18, frozenset({17763, 18362, 18363})),
    (19, 19, frozenset({17763, 18363, 19041})),
    (20, 22, frozenset({17763, 18363, 19041, 19042})),
    (23, 24, frozenset({17763, 19041, 19042, 20348})),
    (25, 31, frozenset({17763, 20348})),
    (32, 999, frozenset({17763, 20348, 26100})),
)


def supported_builds(minor: int) -> frozenset[int] | None:
    """Host builds supported by Kubernetes 1.<minor>; None for versions older than Windows support (1.14)."""
    for first, last, builds in _SUPPORT:
        if first <= minor <= last:
            return builds
    return None


_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?")


def parse_version(text: str) -> tuple[int, int, int, str] | None:
    """``v1.30.2`` / ``1.7.13`` / ``1.4.0-beta.2+azure`` -> (major, minor, patch, pre-release); None if unreadable."""
    match = _VERSION_RE.search(text or "")
    if not match:
        return None
    pre = (match.group(4) or "").split("+")[0]
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0), pre


def version_lt(text: str, minimum: tuple[int, int, int, str]) -> bool | None:
    """Whether a version is older than ``minimum`` (a pre-release sorts before its release); None if unreadable."""
    got = parse_version(text)
    if got is None:
        return None

    def key(v: tuple[int, int, int, str]) -> tuple[int, int, int, int, str]:
        return (v[0], v[1], v[2], 0 if v[3] else 1, v[3])

    return key(got) < key(minimum)


# Container runtimes (seed minimums, plus today's facts).
CONTAINERD_MIN = (1, 4, 0, "beta.2")
DOCKER_MIN = (19, 3, 0, "")
DOCKERSHIM_REMOVED_MINOR = 24  # Kubernetes 1.24 removed dockershim: containerd only
CONTAINERD_MIN_FOR_CRI_V1 = (1, 6, 0, "")  # Kubernetes 1.26+ speaks only CRI v1
CRI_V1_ONLY_MINOR = 26


# Kubernetes version skew: kubelet and kube-proxy may be up to 3 minors older than the API
# server (2 before 1.28), never newer.
def max_skew(server_minor: int) -> int:
    return 3 if server_minor >= 28 else 2


FLANNEL_NODE_TO_POD_MIN = (0, 12, 0, "")
FLANNEL_VXLAN_VNI = 4096
FLANNEL_VXLAN_PORT = 4789

# pause images. Tags that name a Windows release pin the image to that build (process isolation).
PAUSE_WINCAT_MIN = {
    "mcr.microsoft.com/k8s/core/pause": (1, 2, 0, ""),
    "mcr.microsoft.com/oss/kubernetes/pause": (1, 4, 1, ""),
    "registry.k8s.io/pause": (3, 6, 0, ""),
    "k8s.gcr.io/pause": (3, 6, 0, ""),
}
RECOMMENDED_PAUSE = "registry.k8s.io/pause:3.10"

_RELEASE_TAGS: tuple[tuple[str, int], ...] = (
    ("ltsc2025", 26100),
    ("ltsc2022", 20348),
    ("ltsc2019", 17763),
    ("1803", 17134),
    ("1809", 17763),
    ("1903", 18362),
    ("1909", 18363),
    ("2004", 19041),
    ("20h2", 19042),
    ("10.0.17763", 17763),
    ("10.0.20348", 20348),
    ("10.0.26100", 26100),
)


@functools.lru_cache(maxsize=4096)
def image_build(ref: str) -> int | None:
    """The Windows build an image tag is pinned to (``...:3.6-windows-ltsc2022-amd64`` -> 20348), else None.

    Only the tag is read: multi-arch tags such as ``registry.k8s.io/pause:3.9`` carry
    no build and match every host.
    """
    tag = ref.rsplit("/", 1)[-1]
    if ":" not in tag:
        return None
    tag = tag.split(":", 1)[1].split("@")[0].lower()
    for marker, build in _RELEASE_TAGS:
        if re.search(rf"(^|[^0-9a-z]){re.escape(marker)}($|[^0-9a-z])", tag):
            return build
    return None


WINDOWS_IMAGE_HINTS = (
    "mcr.microsoft.com/windows",  # windows/servercore, windows/nanoserver, windows/server
    "mcr.microsoft.com/dotnet/framework",
    "microsoft/windowsservercore",
    "microsoft/nanoserver",
    "nanoserver",
    "servercore",
    "windowsservercore",
    "-windows-",
    ":windows",
    "ltsc2019",
    "ltsc2022",
    "ltsc2025",
)


@functools.lru_cache(maxsize=4096)
def is_windows_image(ref: str) -> bool:
    """Whether an image reference names a Windows image (heuristic on well-known names and tags)."""
    low = ref.lower()
    return any(hint in low for hint in WINDOWS_IMAGE_HINTS)
