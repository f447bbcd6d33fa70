"""The rule engine: rule files are checked with file:line errors, analysts' rules
(``--rules DIR``) with ``match:`` filters run beside the pack, and findings are
ordered and complete."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ipsecpcap.analysis import analyze
from ipsecpcap.cli import main
from ipsecpcap.rules.engine import RuleError, load_rule_file, load_rules

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
GCM = FIXTURES / "strongswan" / "ikev2-gcm" / "capture.pcap"
AGGR = FIXTURES / "strongswan" / "ikev1-aggressive-psk" / "capture.pcap"
AH = FIXTURES / "public" / "nDPI" / "ah.pcapng"

MATCH_RULE = """\
id: big_esp_sa
title: ESP SA with many packets
severity: low
description: An ESP SA direction carried more than 30 packets.
references: [local]
false_positives: [none]
remediation: Nothing; a demonstration.
evidence: The SA row.
match:
  table: sas
  where:
    protocol: esp
    packets|gt: 30
    src|cidr: 192.0.2.0/24
  detail: "{spi} carried {packets} packets from {src} ({__class__} stays literal)"
tests:
  fires: [{capture: strongswan/ikev2-gcm/capture.pcap}]
  quiet: [{capture: public/nDPI/ah.pcapng}]
"""


def _write(d: Path, name: str, text: str) -> Path:
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(text)
    return p


def test_an_analysts_match_rule_runs_beside_the_pack(tmp_path):
    _write(tmp_path / "r", "big.yml", MATCH_RULE)
    a = analyze([GCM], rules=[tmp_path / "r"])
    mine = [f for f in a.findings if f.rule == "big_esp_sa"]
    expected = [r for r in a.sas if r.protocol == "esp" and r.packets > 30]
    assert expected and len(mine) == len(expected)
    f = mine[0]
    assert f.severity == "low" and f.frames and f.first_seen is not None and f.spi.startswith("0x")
    assert "{__class__}" in f.detail and "packets from 192.0.2." in f.detail
    assert not [f for f in analyze([AH], rules=[tmp_path / "r"]).findings if f.rule == "big_esp_sa"]


def test_a_local_rule_with_a_builtin_id_replaces_it(tmp_path):
    text = MATCH_RULE.replace("id: big_esp_sa", "id: weak_crypto")
    _write(tmp_path / "r", "weak_crypto.yml", text)
    rules = {r.id: r for r in load_rules([tmp_path / "r"])}
    assert rules["weak_crypto"].match is not None and len(rules) == len(load_rules())


def test_findings_are_most_severe_first():
    a = analyze([AGGR])
    sev = [f.severity for f in a.findings]
    order = ["critical", "high", "medium", "low", "info"]
    assert sev == sorted(sev, key=order.index) and sev


@pytest.mark.parametrize("change,line,words", [
    (("severity: low", "severity: severe"), 3, "severity 'severe' is not one of"),
    (("id: big_esp_sa", "id: Big-Rule"), 1, "must be lower-case"),
    (("    packets|gt: 30", "    packets|bigger: 30"), 10, "unknown modifier 'bigger'"),
    (("match:", "check: no_such_check\nmatch:"), 9, "either 'check' or 'match' (exactly one)"),
    (("references: [local]", "references: local"), 5, "'references' must be a list of text"),
    (("evidence: The SA row.\n", ""), 1, "missing 'evidence'"),
    (("  quiet: [{capture: public/nDPI/ah.pcapng}]", "  ok: []"), 18, "tests is a mapping"),
    (("title: ESP SA", "title: [ESP SA"), 2, "not valid YAML"),
])
def test_rule_file_mistakes_name_the_line(tmp_path, change, line, words):
    p = _write(tmp_path, "r.yml", MATCH_RULE.replace(*change))
    with pytest.raises(RuleError) as e:
        load_rule_file(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:") and words in msg and "\n" not in msg, msg
    assert e.value.exit_code == 2


def test_unknown_check(tmp_path):
    text = MATCH_RULE[:MATCH_RULE.index("match:")] + "check: no_such_check\n" + MATCH_RULE[MATCH_RULE.index("tests:"):]
    with pytest.raises(RuleError, match=r"r.yml:9: unknown check 'no_such_check' \(built-in checks: "):
        load_rule_file(_write(tmp_path, "r.yml", text))


def test_duplicate_ids_and_missing_dirs(tmp_path):
    _write(tmp_path / "r", "a.yml", MATCH_RULE)
    _write(tmp_path / "r", "b.yml", MATCH_RULE)
    with pytest.raises(RuleError, match="duplicate rule id 'big_esp_sa'"):
        load_rules([tmp_path / "r"])
    with pytest.raises(RuleError, match="no such rules directory"):
        load_rules([tmp_path / "nope"])


def test_rules_option_errors_exit_2(tmp_path):
    _write(tmp_path / "r", "a.yml", MATCH_RULE.replace("severity: low", "severity: x"))
    res = CliRunner().invoke(main, ["findings", str(GCM), "--rules", str(tmp_path / "r")])
    assert res.exit_code == 2 and "severity 'x'" in res.output


def test_a_hit_becomes_its_finding_field_by_field():
    """finding() fills FindingRow positionally: every field of a hit lands under its own name,
    the rule fills in what the hit leaves out, and the evidence frames are sorted, unique and
    cut at MAX_FRAMES with frame_count counting them all."""
    from ipsecpcap.records import FindingRow
    from ipsecpcap.rules.engine import MAX_FRAMES, finding

    rule = load_rules()[0]
    frames = list(range(MAX_FRAMES + 20, 0, -1)) + [3, None]
    hit = {"severity": "critical", "title": "T", "detail": "D", "remediation": "R", "frames": frames,
           "first_seen": 1.5, "last_seen": 2.5, "capture": "c.pcap", "src": "192.0.2.1", "dst": "192.0.2.2",
           "proto": "esp", "port": 500, "spi": "0x00000001", "ike_sa": "aa/bb", "policy": "p",
           "evidence": {"k": 1}}
    f = finding(rule, hit)
    want = dict(hit, rule=rule.id, frames=list(range(1, MAX_FRAMES + 1)), frame_count=MAX_FRAMES + 20)
    assert f.to_dict() == {name: want[name] for name in FindingRow.field_names()}
    bare = finding(rule, {"detail": "only this", "frames": [7, 7]})
    assert (bare.severity, bare.title, bare.remediation) == (rule.severity, rule.title, rule.remediation)
    assert (bare.frames, bare.frame_count, bare.evidence, bare.src) == ([7], 1, {}, None)
