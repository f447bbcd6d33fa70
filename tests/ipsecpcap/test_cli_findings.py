"""``ipsecpcap findings``: output formats and the exit-code contract (0 / 1 / 2)."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ipsecpcap.cli import main
from ipsecpcap.records import FindingRow

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
AGGR = str(FIXTURES / "strongswan" / "ikev1-aggressive-psk" / "capture.pcap")
GCM = str(FIXTURES / "strongswan" / "ikev2-gcm" / "capture.pcap")
POLICY = str(FIXTURES / "policies" / "strongswan-sun.yaml")


def run(*args):
    return CliRunner().invoke(main, ["findings", *args])  # click 8.2+: stdout and stderr kept apart


def test_exit_1_at_or_above_fail_on_and_0_below():
    r = run(AGGR)  # aggressive_mode_psk is high
    assert r.exit_code == 1, r.stderr
    assert "aggressive_mode_psk" in r.stdout and "findings (1 high, 2 medium)" in r.stderr
    assert run(AGGR, "--fail-on", "critical").exit_code == 0
    assert run(AGGR, "--fail-on", "never").exit_code == 0
    assert run(AGGR, "--fail-on", "medium").exit_code == 1


def test_no_findings_exit_0_and_says_which_rules_need_a_policy():
    r = run(GCM)
    assert r.exit_code == 0 and "0 findings (none)" in r.stderr
    assert "no --policy: not run: no_master_key_pfs, plaintext_to_protected, signed_not_encrypted" in r.stderr
    r = run(GCM, "--policy", POLICY)
    assert r.exit_code == 0 and "not run" not in r.stderr


def test_json_is_every_field_of_every_finding():
    r = run(AGGR, "--format", "json", "--fail-on", "never")
    rows = json.loads(r.stdout)
    assert [set(x) for x in rows] == [set(FindingRow.field_names())] * len(rows)
    assert {x["rule"] for x in rows} == {"aggressive_mode_psk", "weak_crypto", "child_sa_without_pfs"}


def test_every_input_error_is_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("protected:\n  - hosts: [nope]\n")
    for args, words in (([str(tmp_path / "missing.pcap")], "missing.pcap"),
                        ([GCM, "--policy", str(bad)], "bad.yaml:2:"),
                        ([GCM, "--keys", str(tmp_path / "nokeys")], "nokeys"),
                        ([GCM, "--fail-on", "severe"], "severe")):
        r = run(*args)
        assert r.exit_code == 2, (args, r.exit_code, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr
