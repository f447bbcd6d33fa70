"""The deep engine (``--engine tshark``, ipsecpcap.deep) against the fast path.

Both engines feed the same tracker, so every table (and the findings) must be
the same on every fixture capture, without keys and with the keys published
with it.  The few differences are pinned here with the reason; each is a
place where tshark's dissection or its decryption gives less than ours
(the cross-check, tests/ipsecpcap/test_crosscheck.py, proves the engine we
believe).  Also: the private tshark profile (keys converted to the installed
tshark's UAT tables, never on a command line, removed afterwards, the
analyst's own profile untouched) and the one-line error when tshark is
missing.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ipsecpcap import tsharkview
from ipsecpcap.analysis import analyze
from ipsecpcap.keys import load_keys

try:
    from reference import every_capture
    from reference.tshark import SKIP_REASON, tshark_available
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import every_capture
    from tests.reference.tshark import SKIP_REASON, tshark_available

pytestmark = pytest.mark.skipif(not tshark_available(), reason=SKIP_REASON)

ROOT = Path(__file__).resolve().parents[2]
SS = ROOT / "fixtures" / "strongswan"
PUB = ROOT / "fixtures" / "public"
CAPTURES = every_capture()
KEYED = [c for c in CAPTURES if c.keys]
TABLES = ("sas", "exchanges", "ike", "child_sas", "flows", "findings")

# Frame accounting: the kind of a malformed frame is tshark's word, not the
# fast path's (tshark says a UDP 500 datagram is not ISAKMP, not why).
ACCOUNTING = {
    "public/tcpdump/isakmp-pointer-loop.pcap": {"malformed:bad_length:isakmp": "malformed:tshark:isakmp"},
    "public/zeek-spicy-ipsec/ipsec-ikev1-zero-length.pcap": {"malformed:bad_length:isakmp": "malformed:tshark:isakmp"},
}

# With keys: where tshark 4.0 cannot decrypt what we do (crosscheck
# explanations tshark-has-no-esn and key-not-usable-by-tshark), the SA rows
# differ in these fields and the traffic inside is missing from the flows.
KEYED_DIFFERENCES = {
    "public/packetgen-plugin-ipsec/esp-transport-esn.pcapng": {"sas": {"decrypted", "integrity_failures"},
                                                              "flows": None},
    "strongswan/ikev2-chacha/capture.pcap": {"sas": {"decrypted", "key"}, "flows": None},
}


def _rows(rows) -> list[dict]:
    return [dataclasses.asdict(r) for r in rows]


_rules: list = []


def _table(a, name: str) -> list[dict]:
    if name != "findings":
        return _rows(getattr(a, name))
    # Analysis.findings reads the rule pack's YAML files on every call (0.4 s);
    # the pack is read once here and evaluated on each analysis the same way
    from ipsecpcap.rules.engine import evaluate, load_rules

    if not _rules:
        _rules.append(load_rules([]))
    return _rows(evaluate(_rules[0], a))


def _by_category(a, name: str) -> dict:
    mapped = ACCOUNTING.get(name, {})
    return {mapped.get(k, k): v for k, v in a.accounting.by_category.items()}


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.name)
def test_deep_engine_gives_the_same_tables(capture, tshark_frames):
    fast = analyze([capture.path])
    deep = analyze([capture.path], engine="tshark")
    for table in TABLES:
        assert _table(deep, table) == _table(fast, table), (capture.name, table)
    assert deep.accounting.by_category == _by_category(fast, capture.name)
    assert deep.accounting.reassembly == fast.accounting.reassembly
    assert (deep.tracker.frames, deep.tracker.first_ts, deep.tracker.last_ts) == \
        (fast.tracker.frames, fast.tracker.first_ts, fast.tracker.last_ts)
    assert deep.tracker.esp_samples == fast.tracker.esp_samples  # the NULL-encryption heuristic's input


@pytest.mark.parametrize("capture", KEYED, ids=lambda c: c.name)
def test_deep_engine_with_keys(capture, tshark_keyed):
    store = load_keys(list(capture.keys))
    fast = analyze([capture.path], keys=store)
    deep = analyze([capture.path], keys=store, engine="tshark")
    known = KEYED_DIFFERENCES.get(capture.name, {})
    for table in TABLES:
        f, d = _table(fast, table), _table(deep, table)
        if table not in known:
            assert d == f, (capture.name, table)
        elif known[table] is not None:
            assert len(d) == len(f)
            differs = {k for a, b in zip(f, d) for k in a if a[k] != b[k]}
            assert differs == known[table], (capture.name, table, differs)
        else:  # the decrypted traffic: only ours has it
            assert d == [r for r in f if r["protected_by"] is None], (capture.name, table)
    if capture.name.endswith("ikev2-chacha/capture.pcap"):
        # said, never dropped silently: the keys tshark 4.0 could not be given
        assert sum("not given to tshark" in p and "chacha20-poly1305" in p for p in deep.crypto.problems) == 3


def test_esp_in_esp_sample_is_said_missing():
    """The inner SA of ESP in decrypted ESP has no first-packet sample with the
    deep engine (its bytes are not in the capture): a warning says so."""
    cap = PUB / "tcpdump" / "08-sunrise-sunset-esp2.pcap"
    deep = analyze([cap], keys=[PUB / "tcpdump" / "esp-secrets.txt"], engine="tshark")
    assert any("inside decrypted ESP" in w for w in deep.tracker.warnings)
    assert all(r.decrypted == r.packets for r in deep.sas)


# ---------------------------------------------------------------- the private profile
def test_keys_go_to_a_private_profile_only(monkeypatch, tmp_path):
    """Keys are written to UAT files (0600, in a 0700 directory) under a private
    temporary directory, never on tshark's command line, and removed afterwards."""
    d = SS / "ikev2-gcm"
    store = load_keys([d / "esp_sa", d / "ikev2_decryption_table"])
    secrets = [k.enc_key.hex() for k in store.esp] + [k.sk_ei.hex() for k in store.ikev2]
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(private))
    monkeypatch.setattr(tsharkview, "cache", None)  # run tshark for real
    seen = []
    real_popen = subprocess.Popen

    def spy(cmd, *a, **kw):
        env = kw.get("env") or {}
        conf = Path(env.get("WIRESHARK_CONFIG_DIR", "/nonexistent"))
        files = {p.name: (p.stat().st_mode & 0o777, p.read_text()) for p in conf.glob("*")} if conf.exists() else {}
        seen.append((list(cmd), files, conf.stat().st_mode & 0o777 if conf.exists() else None,
                     Path(env.get("HOME", "/")).stat().st_mode & 0o777 if env.get("HOME") else None))
        return real_popen(cmd, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", spy)
    a = analyze([d / "capture.pcap"], keys=store, engine="tshark")
    assert all(r.decrypted == r.packets for r in a.sas)
    runs = [s for s in seen if "-r" in s[0]]
    assert len(runs) == 1
    cmd, files, conf_mode, home_mode = runs[0]
    assert not any(s in " ".join(cmd) for s in secrets)  # never on the command line
    assert "esp.enable_encryption_decode:TRUE" in cmd and "esp.enable_authentication_check:TRUE" in cmd
    assert set(files) == {"esp_sa", "ikev2_decryption_table"}
    assert all(mode == 0o600 for mode, _ in files.values())
    assert conf_mode == 0o700 and home_mode == 0o700
    assert any(secrets[0] in text for _, text in files.values())  # the keys are in the private files
    assert list(private.iterdir()) == []  # removed afterwards


def test_the_analysts_own_profile_is_never_read_nor_touched(tmp_path):
    """A personal profile that disables ESP and IKE and has its own (wrong)
    esp_sa changes nothing, and is left as it was."""
    home = tmp_path / "home"
    conf = home / ".config" / "wireshark"
    conf.mkdir(parents=True)
    (conf / "disabled_protos").write_text("esp\nisakmp\nudpencap\n")
    (conf / "preferences").write_text("ip.defragment: FALSE\n")
    (conf / "esp_sa").write_text('"IPv4","*","*","*","NULL","","NULL",""\n')
    before = {p.name: p.read_bytes() for p in conf.iterdir()}
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    cap = SS / "ikev2-gcm" / "capture.pcap"
    p = subprocess.run([sys.executable, "-c", "from ipsecpcap.cli import main; main()", "sas", "--engine", "tshark",
                        "--format", "json", "--keys", str(SS / "ikev2-gcm" / "esp_sa"), str(cap)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    import json

    rows = json.loads(p.stdout)
    assert len(rows) == 4 and all(r["decrypted"] == r["packets"] for r in rows)
    assert {p.name: p.read_bytes() for p in conf.iterdir()} == before


def test_uat_tables_follow_the_installed_tshark(monkeypatch):
    """The esp_sa table has the installed tshark's column count (8 for 4.0,
    10 with SN and ESN high bits for newer ones), and what we write reads back
    as the same keys."""
    src = PUB / "packetgen-plugin-ipsec" / "keys.derived.esp_sa"
    store = load_keys([src])
    tshark = tsharkview.find_tshark()
    for columns in (8, 10):
        d = tsharkview.UatDialect(columns)
        monkeypatch.setitem(tsharkview._dialects, tshark, d)
        tables = tsharkview.uat_tables(store, tshark)
        lines = tables.uat["esp_sa"]
        assert lines and all(len(tsharkview.parse_uat_line(line)) == columns for line in lines)
        back = load_keys_text(lines)
        assert [(k.spi, k.enc, k.enc_key, k.integ, k.integ_key) for k in back.esp] == \
            [(k.spi, k.enc, k.enc_key, k.integ, k.integ_key) for k in store.esp]


def load_keys_text(lines):
    import tempfile

    with tempfile.TemporaryDirectory() as t:
        p = Path(t) / "esp_sa"
        p.write_text("\n".join(lines) + "\n")
        return load_keys([p])


def test_algorithms_this_tshark_lacks_are_left_out_and_said():
    store = load_keys([SS / "ikev2-chacha" / "keys.yaml"])
    tables = tsharkview.uat_tables(store)
    if "4.0." not in tsharkview.tshark_version():
        pytest.skip("Wireshark 4.0 has no ChaCha20-Poly1305; a newer tshark may have it")
    assert tables.uat["esp_sa"] == [] and tables.uat["ikev2_decryption_table"] == []
    assert len(tables.problems) == 3 and all("chacha20-poly1305" in p for p in tables.problems)
    assert all("k:" in p for p in tables.problems)
    secrets = [k.enc_key.hex() for k in store.esp]
    assert not any(s in p for s in secrets for p in tables.problems)


# ---------------------------------------------------------------- errors
def _cli(args, **env):
    return subprocess.run([sys.executable, "-c", "from ipsecpcap.cli import main; main()", *args],
                          capture_output=True, text=True, env=dict(os.environ, **env))


@pytest.mark.parametrize("args", [["sas", "--engine", "tshark"], ["crosscheck"]])
def test_missing_tshark_is_one_line_and_exit_69(args):
    cap = str(SS / "ikev2-gcm" / "capture.pcap")
    for env in ({"IPSECPCAP_TSHARK": "/nonexistent/tshark"}, {"PATH": "/nonexistent"}):
        p = _cli([*args, cap], **env)
        assert p.returncode == 69, p.stderr
        assert p.stdout == ""
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ipsecpcap: error: tshark not found")
        assert "apt-get install tshark" in lines[0]


def test_unreadable_capture_is_an_input_error(tmp_path):
    bad = tmp_path / "notes.pcap"
    bad.write_text("not a capture\n")
    p = _cli(["sas", "--engine", "tshark", str(bad)])
    assert p.returncode == 3, p.stderr
    assert p.stderr.count("\n") == 1 and "tshark cannot read it" in p.stderr
    p = _cli(["sas", "--engine", "tshark", str(tmp_path / "missing.pcap")])
    assert p.returncode == 3 and "no such file" in p.stderr


def test_standard_input(tmp_path):
    cap = SS / "ikev2-cbc-rekey" / "capture.pcap"
    with cap.open("rb") as f:
        p = subprocess.run([sys.executable, "-c", "from ipsecpcap.cli import main; main()", "sas", "--engine",
                            "tshark", "--format", "json", "-"], stdin=f, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    q = _cli(["sas", "--format", "json", str(cap)])
    import json

    deep, fast = json.loads(p.stdout), json.loads(q.stdout)
    for r in fast:
        r["capture"] = r["last_capture"] = "-"
    assert deep == fast
