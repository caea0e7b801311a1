from __future__ import annotations

from diagnostics.facts import BitLocker
from diagnostics.snapshot import Fact
from tests.diagnostics.builders import healthy_pods, make_snapshot
from tests.diagnostics.checks.outcomes import failures

CHECK = "security.secrets-on-disk"
BITLOCKER_OFF = Fact((BitLocker("C:", "Off", "FullyDecrypted"),), "probe:os.bitlocker")


def pod_with_secret() -> dict:
    pod = healthy_pods()[0]
    pod["spec"]["volumes"].append({"name": "tls", "secret": {"defaultMode": 420, "secretName": "iis-web-tls"}})
    return pod


class TestSecretsOnDisk:
    def test_it_reports_an_unencrypted_system_volume(self) -> None:
        snap = make_snapshot(bitlocker=BITLOCKER_OFF, pods=(pod_with_secret(),))

        [finding] = failures(snap, CHECK)

        assert finding.severity.slug == "info"
        assert finding.evidence[0].excerpt == "C: ProtectionStatus=Off VolumeStatus=FullyDecrypted"
        assert "Enable-BitLocker -MountPoint 'C:'" in finding.fix[0]

    def test_it_says_nothing_when_no_pod_mounts_a_secret(self) -> None:
        assert failures(make_snapshot(bitlocker=BITLOCKER_OFF), CHECK) == []

    def test_it_says_nothing_without_bitlocker_data(self) -> None:
        assert failures(make_snapshot(bitlocker=None), CHECK) == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), CHECK) == []
