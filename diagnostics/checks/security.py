"""Security limitations of Windows nodes the user should know about."""

from __future__ import annotations

from collections.abc import Iterator

from diagnostics.model import Evidence, Fail, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot

DOCS = "https://kubernetes.io/docs/concepts/security/windows-security/"

Outcome = Iterator[Fail | Unknown]


def _pods_with_secrets(snap: NodeSnapshot) -> list[str]:
    out = []
    for pod in snap.pods.value if snap.pods is not None else ():
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            sources = ((volume.get("projected") or {}).get("sources") or []) if isinstance(volume, dict) else []
            if "secret" in volume or any(isinstance(s, dict) and "secret" in s for s in sources):
                meta = pod.get("metadata") or {}
                out.append(f"{meta.get('namespace', 'default')}/{meta.get('name', '')}")
                break
    return out


@check(
    "security.secrets-on-disk",
    severity=Severity.INFO,
    title="Secrets are stored in clear text on an unencrypted disk",
    docs=DOCS,
)
def secrets_on_disk(snap: NodeSnapshot) -> Outcome:
    if snap.bitlocker is None:
        return
    pods = _pods_with_secrets(snap)
    if not pods:
        return  # the limitation matters once a pod here mounts a Secret
    volumes = snap.bitlocker.value
    system = [v for v in volumes if v.mount_point.upper().rstrip("\\") == "C:"] or list(volumes)
    unprotected = [v for v in system if v.protection_status.lower() != "on"]
    if not unprotected and volumes:
        return
    yield Fail(
        summary="On Windows, Secrets mounted into pods are written in clear text to the node's disk, and "
        + (
            f"{', '.join(v.mount_point for v in unprotected)} is not protected by BitLocker."
            if unprotected
            else "no BitLocker volume was reported."
        ),
        evidence=(
            *(
                Evidence(
                    snap.bitlocker.source,
                    f"{v.mount_point} ProtectionStatus={v.protection_status} VolumeStatus={v.volume_status}",
                )
                for v in unprotected
            ),
            *(Evidence(snap.pods.source if snap.pods else "pods", f"Pod/{p} mounts a Secret") for p in pods[:3]),
        ),
        fix=(
            "Enable BitLocker on the system volume: Enable-BitLocker -MountPoint 'C:' -EncryptionMethod XtsAes256 "
            "-TpmProtector",
            "Restrict access to C:\\var\\lib\\kubelet with file ACLs (administrators and SYSTEM only).",
        ),
    )
