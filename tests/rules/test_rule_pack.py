"""Every rule of the pack, on the captures its file names: it must fire on each
``tests.fires`` case and stay quiet on each ``tests.quiet`` case (Semgrep's
``ruleid:`` / ``ok:``).  A rule file without both kinds of cases fails here.

Cases name captures, policies and keys by their path under ``fixtures/``;
``expect`` narrows what must be found: ``count`` (exactly), ``min_count``,
``frames`` (all among the evidence frames), ``fields`` (a finding has these
values; ``evidence.x`` reaches into the evidence).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from ipsecpcap.analysis import analyze
from ipsecpcap.records import SEVERITIES
from ipsecpcap.rules.engine import BUILTIN_DIR, load_rule_file, load_rules

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RULE_FILES = sorted(p for p in BUILTIN_DIR.iterdir() if p.suffix in (".yml", ".yaml"))


def _cases():
    for path in RULE_FILES:
        rule = load_rule_file(path)
        for kind in ("fires", "quiet"):
            for i, case in enumerate(rule.tests.get(kind) or []):
                yield pytest.param(rule.id, kind, case, id=f"{rule.id}-{kind}-{i}")


@lru_cache(maxsize=64)
def _analysis(capture: str, policy: str | None, keys: tuple[str, ...]):
    return analyze([FIXTURES / capture], keys=[FIXTURES / k for k in keys] or None,
                   policy=FIXTURES / policy if policy else None)


def _get(finding, dotted: str):
    value = finding.to_dict()
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def test_every_rule_file_has_a_firing_and_a_quiet_case():
    assert len(RULE_FILES) >= 15
    for path in RULE_FILES:
        rule = load_rule_file(path)
        assert path.stem == rule.id, f"{path.name}: file name and id differ"
        assert rule.tests.get("fires"), f"{rule.id}: no capture where it must fire"
        assert rule.tests.get("quiet"), f"{rule.id}: no capture where it must stay quiet"
        assert rule.severity in SEVERITIES
        assert rule.references and rule.false_positives and rule.remediation


def test_the_issue_rules_are_all_there():
    ids = {r.id for r in load_rules()}
    assert ids >= {"plaintext_to_protected", "ah_esp_double_processing", "child_sa_without_pfs",
                   "no_master_key_pfs", "dh_public_value_reused", "nonce_reused", "key_material_reused",
                   "manual_keying", "esp_null_encryption", "signed_not_encrypted", "weak_crypto",
                   "aggressive_mode_psk", "ike_negotiation_failed", "esp_replay", "esp_sequence_gap"}


@pytest.mark.parametrize("rule_id,kind,case", list(_cases()))
def test_rule_case(rule_id, kind, case):
    for key in ("capture", "policy"):
        if case.get(key):
            assert (FIXTURES / case[key]).exists(), f"{case[key]} is missing from fixtures/"
    a = _analysis(case["capture"], case.get("policy"), tuple(case.get("keys") or ()))
    mine = [f for f in a.findings if f.rule == rule_id]
    if kind == "quiet":
        assert not mine, f"{rule_id} fired on {case['capture']}: " + "; ".join(f.detail for f in mine[:3])
        return
    assert mine, f"{rule_id} did not fire on {case['capture']}"
    expect = case.get("expect") or {}
    if "count" in expect:
        assert len(mine) == expect["count"], [f.detail for f in mine]
    if "min_count" in expect:
        assert len(mine) >= expect["min_count"], [f.detail for f in mine]
    if "frames" in expect:
        seen = {n for f in mine for n in f.frames}
        assert set(expect["frames"]) <= seen, (expect["frames"], sorted(seen))
    for dotted, value in (expect.get("fields") or {}).items():
        assert any(_get(f, dotted) == value for f in mine), (dotted, value, [_get(f, dotted) for f in mine])
    for f in mine:  # every finding carries its evidence
        assert f.detail and f.frames and f.frame_count >= 1 and f.first_seen is not None
        assert f.severity in SEVERITIES
