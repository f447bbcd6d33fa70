"""``ipsecpcap crosscheck`` (ipsecpcap.crosscheck): decryption agreement with
keys, the proof behind every explanation, and the command's exit codes.

Every fixture capture without keys is compared in tests/test_against_tshark.py;
here the captures published with keys are compared again with them
(``esp.decryption``, ``esp.next_header``, ``ike.decryption``, the payloads
inside).  Each explanation the cross-check gives ("believed: fast, because
...") is backed below by a test that proves our side against an independent
reference: the daemon's logged keys, the upstream project's own statement and
an AEAD tag, tshark's own dissection of the original of a repeated message,
the NAT-D hashes recomputed from the addresses, tshark's own length fields.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from ipsecpcap import crosscheck as cc
from ipsecpcap import tsharkview
from ipsecpcap.analysis import analyze
from ipsecpcap.cli import main
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
KEYED = [c for c in every_capture() if c.keys]
CHACHA = "strongswan/ikev2-chacha/capture.pcap"
REPEATS = {"public/wireshark/ikev1-certs.pcap": {8: 7}, "public/zeek-spicy-ipsec/ikev1-certs.pcap": {8: 7},
           "strongswan/ikev1-aggressive-psk/capture.pcap": {7: 6}}


def _chacha_frames(field: str) -> dict:
    a = analyze([ROOT / "fixtures" / CHACHA])
    if field == "ike.decryption":
        frames = [e.frame for e in a.exchanges if e.encrypted]
    else:
        frames = [f.info.frame for f in cc.fast_frames(ROOT / "fixtures" / CHACHA) if f.info.esp_spi is not None]
    return {(n, field): "key-not-usable-by-tshark" for n in frames}


# the explained disagreements of the runs with keys: capture -> {(frame, field): explanation}
KEYED_EXPLAINED: dict[str, dict] = {
    "public/packetgen-plugin-ipsec/esp-transport-esn.pcapng": {(2, "esp.decryption"): "tshark-has-no-esn"},
    **{name: {(f, "ike.payloads"): "ikev1-repeat-wrong-iv" for f in rep} for name, rep in REPEATS.items()},
}


@pytest.mark.parametrize("capture", KEYED, ids=lambda c: c.name)
def test_decryption_agrees_with_tshark(capture, tshark_keyed):
    r = cc.crosscheck([capture.path], keys=list(capture.keys))
    assert not r.unexplained, [(d.frame, d.field, d.fast, d.tshark) for d in r.unexplained]
    got = {(d.frame, d.field): d.explanation for d in r.disagreements if d.keys}
    if capture.name == CHACHA:
        expected = {**_chacha_frames("esp.decryption"), **_chacha_frames("ike.decryption")}
        assert len(expected) == 78 + 4
    else:
        expected = KEYED_EXPLAINED.get(capture.name, {})
    assert got == expected
    assert all(d.believed == "fast" for d in r.explained)
    # not vacuous: whatever the keys open was compared, and agreed outside the explained frames
    keyed_fields = {k: v for k, v in r.stats.items() if k in ("esp.decryption", "ike.decryption")}
    if capture.tshark_decrypts in ("yes", "no"):  # the manifest says there is something to decrypt
        assert keyed_fields, capture.name
    for fld, s in keyed_fields.items():
        assert s["agree"] + s["explained"] == s["compared"], (fld, s)


# ---------------------------------------------------------------- why each explanation believes us
def test_esn_ours_is_right():
    """tshark-has-no-esn: packetgen's spec says SPI 0xc84340a5 uses ESN with high
    bits 0 (KEYS.derived.txt); its 16-byte GCM tag verifies only with the ESN
    high bits in the AAD (RFC 4106 5), and opens to the ICMP echo reply the
    spec expects."""
    from ipsecpcap.crypto.esp import EspCipher

    cap = PUB / "packetgen-plugin-ipsec" / "esp-transport-esn.pcapng"
    key = next(k for k in load_keys([PUB / "packetgen-plugin-ipsec" / "keys.derived.esp_sa"]).esp
               if k.spi == 0xC84340A5)
    ff = next(f for f in cc.fast_frames(cap) if f.info.esp_spi == 0xC84340A5)
    t = tsharkview.run_tshark(cap).frames[ff.info.frame - 1]
    assert t.first("esp_spi") == 0xC84340A5 and t.first("esp_seq") == 13  # tshark's own header fields
    esp = _esp_bytes(cap, ff.info.frame)
    c = EspCipher(key)
    assert c.open(esp, None).status == "integrity_failure"  # what tshark 4.0 computes: no ESN
    ok = c.open(esp, 0)
    assert ok.status == "ok" and ok.next_header == 1 and ok.payload[0] == 0  # ICMP, echo reply
    assert "Extended Sequence Numbers with high-order 32 bits = 0" in \
        (PUB / "packetgen-plugin-ipsec" / "KEYS.derived.txt").read_text()


def _esp_bytes(cap, frame: int) -> bytes:
    from ipsecpcap.reader import open_capture

    with open_capture(cap) as r:
        for b in r:
            for n, off, caplen in zip(b.frames, b.offsets, b.caplens):
                if n == frame:
                    data = bytes(b.data[off:off + caplen])
                    return data[14 + (data[14] & 15) * 4:]  # Ethernet, IPv4 header
    raise AssertionError(frame)


def test_chacha_ours_is_right():
    """key-not-usable-by-tshark: the ChaCha20-Poly1305 keys are the ones charon
    logged (expected.json), every ESP packet's Poly1305 tag verifies with them,
    and what they carry is the traffic recorded between the two protected
    subnets; tshark 4.0 rejects the algorithm name in its UAT tables."""
    d = SS / "ikev2-chacha"
    exp = json.loads((d / "expected.json").read_text())
    logged = {int(sa["spi"], 16): sa["enc_key"] for c in exp["child_sas"] for sa in c["sas"]}
    store = load_keys([d / "keys.yaml"])
    assert {k.spi: k.enc_key.hex() for k in store.esp} == logged
    a = analyze([d / "capture.pcap"], keys=store)
    assert all(r.enc == "chacha20-poly1305" and r.decrypted == r.packets > 0 for r in a.sas)
    inner = {(f.src, f.dst) for f in a.flows if f.protected_by}
    nets = {exp["hosts"][h]["protected_subnet"].split("/")[0] for h in ("moon", "sun")}
    assert inner and all({s, t} == nets for s, t in inner)
    tables = tsharkview.uat_tables(store)
    if "4.0." in tsharkview.tshark_version():
        assert not tables.uat["esp_sa"] and all("chacha20-poly1305" in p for p in tables.problems)


def test_ikev1_repeats_ours_is_right(tshark_cache):
    """ikev1-repeat-wrong-iv: the repeated message has the same bytes as its
    original, and tshark's own dissection of the original lists the payloads we
    decrypt from the repeat."""
    for name, repeats in REPEATS.items():
        cap = ROOT / "fixtures" / name
        c = next(c for c in KEYED if c.name == name)
        keyed = cc._fast_keyed(cap, load_keys(list(c.keys)))
        tables = tsharkview.uat_tables(load_keys(list(c.keys)))
        with tsharkview.Profile(tables.uat) as prof:
            theirs = {f.frame: f for f in tsharkview.run_tshark(cap, prof, True).frames}
        for repeat, original in repeats.items():
            assert keyed.repeats[repeat] == original
            ours = [p for p in keyed.exchanges[repeat].payloads if p != "encrypted"]
            assert list(cc.payload_names(1, theirs[original].top_level_payloads)) == ours, (name, repeat)
            assert ours == [p for p in keyed.exchanges[original].payloads if p != "encrypted"]


def test_draft_nat_d_ours_is_right():
    """draft-nat-d-type-15: the peers announce the NAT-T drafts (vendor IDs), and
    the type-15 payloads are NAT-D hashes: recomputed from the addresses and
    ports on the wire (draft-ietf-ipsec-nat-t-ike 3.2), they all match."""
    a = analyze([PUB / "tcpdump" / "ISAKMP_sa_setup.pcap"])
    (sa,) = a.ike
    assert any(v.startswith("draft-ietf-ipsec-nat-t-ike") for v in sa.vendor_ids)
    assert sa.nat_detected is False  # hashes seen, every one agrees with the addresses
    for e in a.exchanges:
        if e.frame in (3, 4):
            assert e.payloads.count("NAT-D") == 2


def test_isakmp_length_beyond_datagram_ours_is_right(tshark_cache):
    """isakmp-length-beyond-datagram: in the datagram tshark hands back, the
    ISAKMP Length field (header bytes 24-27, RFC 2408 3.1) is larger than the
    bytes there are; where tshark shows the field, it is the same number."""
    seen = 0
    for name in ("ikev1_id_ipv6_addr_subnet-oobr.pcap", "isakmp-ikev1_n_print-oobr.pcap",
                 "isakmp-various-oobr.pcap", "isakmpv1-attr-oobr.pcap"):
        for t in tsharkview.run_tshark(PUB / "tcpdump" / name).frames:
            if t.has("isakmp"):
                raw = t.first("udp_payload")
                length = int.from_bytes(raw[24:28], "big")
                assert length > len(raw), (name, t.frame)
                assert t.first("ike_length", length) == length
                seen += 1
    assert seen == 5


def test_unknown_major_version_ours_is_right(tshark_cache):
    """unknown-major-version: tshark's own isakmp.mjver is 11; byte 18 of the
    header is what we report as the exchange type."""
    cap = PUB / "tcpdump" / "isakmp-delete-segfault.pcap"
    t = tsharkview.run_tshark(cap).frames[0]
    assert t.first("ike_version") == 11 and not t.get("exchange_type")
    ff = next(cc.fast_frames(cap))
    assert ff.info.ike.exchange_type == t.first("udp_payload")[18] == 190


def test_short_payload_ours_is_right(tshark_cache):
    """payload-length-below-header: the VID after the SA says Payload Length 3,
    less than the 4-byte generic header (RFC 2408 3.2): it has no valid bounds."""
    cap = PUB / "zeek-spicy-ipsec" / "ipsec-ikev1-payload-bad-length.pcap"
    raw = tsharkview.run_tshark(cap).frames[0].first("udp_payload")
    first, o = raw[16], 28
    assert first == 1  # SA
    nxt, length = raw[o], struct.unpack_from("!H", raw, o + 2)[0]
    assert nxt == 13  # VID follows
    vid_len = struct.unpack_from("!H", raw, o + length + 2)[0]
    assert vid_len == 3


def test_key_found_by_trial(tmp_path, tshark_cache):
    """key-found-by-trial: an esp_sa whose SPIs are all wrong.  tshark finds no
    key for any SA; ours binds each SA to the key that verifies it, which is
    the key charon logged for that SPI."""
    d = SS / "ikev2-gcm"
    lines = [ln for ln in (d / "esp_sa").read_text().splitlines() if ln and not ln.startswith("#")]
    wrong = [ln.replace(ln.split(",")[3], f'"0x{0x1000 + i:08x}"') for i, ln in enumerate(lines)]
    (tmp_path / "esp_sa").write_text("\n".join(wrong) + "\n")
    r = cc.crosscheck([d / "capture.pcap"], keys=[tmp_path / "esp_sa"])
    assert not r.unexplained
    esp = [x for x in r.explained if x.field == "esp.decryption"]
    assert esp and {(x.fast, x.tshark, x.explanation) for x in esp} == {("ok", "no_key", "key-found-by-trial")}
    assert len(esp) == r.stats["esp.decryption"]["compared"]
    a = analyze([d / "capture.pcap"], keys=[tmp_path / "esp_sa"])
    exp = json.loads((d / "expected.json").read_text())
    logged = {int(sa["spi"], 16): sa["enc_key"] for c in exp["child_sas"] for sa in c["sas"]}
    by_fp = {k.fingerprint: k for k in a.keys.esp}
    assert all(by_fp[s.key].enc_key.hex() == logged[int(s.spi, 16)] for s in a.sas)


# ---------------------------------------------------------------- the command
def _run(*args):
    return CliRunner().invoke(main, ["crosscheck", *map(str, args)], catch_exceptions=False)


def test_command_lists_explained_disagreements_and_exits_0(tshark_cache):
    cap = PUB / "tcpdump" / "ISAKMP_sa_setup.pcap"
    res = _run(cap)
    assert res.exit_code == 0, res.stderr
    assert "draft-nat-d-type-15" in res.stdout and "(believed: fast)" in res.stdout
    assert "2 explained disagreements (believed fast: 2), 0 unexplained" in res.stderr
    rows = json.loads(_run("--format", "json", cap).stdout)
    assert [(r["frame"], r["field"], r["explained"], r["believed"]) for r in rows] == \
        [(3, "ike.payloads", True, "fast"), (4, "ike.payloads", True, "fast")]


def test_a_planted_disagreement_fails_naming_frame_and_field(monkeypatch, tshark_cache):
    """Change one sequence number on our side: the command names the frame and
    the field, calls it unexplained, and exits 1."""
    cap = SS / "ikev2-gcm" / "capture.pcap"
    real = cc.fast_frames

    def planted(path):
        for f in real(path):
            if f.info.frame == 9:
                f.info.esp_seq += 1
            yield f

    monkeypatch.setattr(cc, "fast_frames", planted)
    res = _run(cap)
    assert res.exit_code == 1, res.stdout
    assert "UNEXPLAINED capture.pcap frame 9 esp.seq" in res.stdout
    assert "1 unexplained" in res.stderr
    rows = json.loads(_run("--format", "json", cap).stdout)
    assert [(r["frame"], r["field"], r["fast"], r["tshark"], r["explained"]) for r in rows] == \
        [(9, "esp.seq", [3], [2], False)]


def test_a_planted_decryption_disagreement_fails(monkeypatch, tshark_cache):
    """With keys: our side says an integrity failure where tshark verified."""
    d = SS / "ikev2-gcm"
    real = cc._fast_keyed

    def planted(path, store):
        k = real(path, store)
        st, nh, key, esn = k.esp[9]
        k.esp[9] = ("integrity_failure", None, key, esn)
        return k

    monkeypatch.setattr(cc, "_fast_keyed", planted)
    res = _run(d / "capture.pcap", "--keys", d / "esp_sa")
    assert res.exit_code == 1
    assert "UNEXPLAINED capture.pcap frame 9 esp.decryption" in res.stdout


def test_standard_input_is_refused():
    res = CliRunner().invoke(main, ["crosscheck", "-"], input=b"")
    assert res.exit_code == 2 and "standard input" in res.stderr
