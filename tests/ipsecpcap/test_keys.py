"""Key files in every format -> KeyStore (ipsecpcap/keys.py).

The expected values come from outside the loader: the strongSwan recordings'
expected.json (keys taken from the daemons' logs), the other projects' own
key files read with the csv module, values transcribed from the fixture
files, and the synthetic keys' recipe in fixtures/keys/README.md.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import json
import re
import secrets
import shutil
from pathlib import Path

import pytest

from ipsecpcap.errors import IpsecpcapError
from ipsecpcap.keymodel import EspKey, Ikev2Key, KeyStore
from ipsecpcap.keys import KeyFileError, load_key_file, load_keys

ROOT = Path(__file__).resolve().parents[2]
FX = ROOT / "fixtures"
PUB = FX / "public"
SS = FX / "strongswan"
KEYS = FX / "keys"
SCENARIOS = sorted(p.name for p in SS.iterdir() if (p / "expected.json").is_file())

# strongSwan's transform names (expected.json) -> canonical names
SS_ENC = {"AES_CBC": "aes-cbc", "AES_GCM_16": "aes-gcm16", "CHACHA20_POLY1305": "chacha20-poly1305",
          "3DES_CBC": "3des-cbc", "DES_CBC": "des-cbc", "NULL": "null"}
SS_INTEG = {None: "none", "HMAC_SHA1_96": "hmac-sha1-96", "HMAC_SHA2_256_128": "hmac-sha2-256-128",
            "HMAC_SHA2_512_256": "hmac-sha2-512-256", "HMAC_MD5_96": "hmac-md5-96"}


def expected(scenario: str) -> dict:
    return json.loads((SS / scenario / "expected.json").read_text())


def esp_tuple(k: EspKey) -> tuple:
    return (k.protocol, k.spi, k.src, k.dst, k.enc, k.enc_key.hex(), k.integ, k.integ_key.hex())


def expected_esp(scenario: str) -> set[tuple]:
    out = set()
    for c in expected(scenario)["child_sas"]:
        integ = SS_INTEG[(c["integrity"] or {}).get("algorithm")]
        for sa in c["sas"]:
            out.add(("esp", int(sa["spi"], 16), sa["src"], sa["dst"], SS_ENC[c["encryption"]["algorithm"]],
                     sa["enc_key"], integ, sa["integ_key"] or ""))
    return out


def ikev2_tuple(k: Ikev2Key) -> tuple:
    return (k.ispi.hex(), k.rspi.hex(), k.enc, k.sk_ei.hex(), k.sk_er.hex(), k.integ, k.sk_ai.hex(), k.sk_ar.hex())


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def load(path) -> KeyStore:
    return load_keys([path])


def synthetic(label: str, n: int) -> str:
    """fixtures/keys/README.md: sha256("ipsecpcap-fixture:LABEL:i") blocks."""
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(f"ipsecpcap-fixture:{label}:{i}".encode()).digest()
        i += 1
    return out[:n].hex()


K16, K20, K24, K32 = "00" * 16, "11" * 20, "22" * 24, "33" * 32


# --------------------------------------------------------------------------- strongSwan recordings
# a negotiation failure without a CHILD_SA has no esp_sa
@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if expected(s)["child_sas"]])
def test_strongswan_esp_sa_matches_daemon_log(scenario):
    st = load(SS / scenario / "esp_sa")
    want = expected_esp(scenario)
    if scenario == "ikev2-chacha":  # Wireshark 4.0 has no ChaCha20: the file holds comments only
        assert st.esp == [] and len(st.problems) == 1 and "no keys" in st.problems[0]
        return
    assert {esp_tuple(k) for k in st.esp} == want
    assert len(st.esp) == len(want)
    assert st.problems == []
    assert all(k.esn is None and k.source.format == "esp_sa" for k in st.esp)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if (SS / s / "ikev2_decryption_table").exists()])
def test_strongswan_ikev2_table_matches_daemon_log(scenario):
    st = load(SS / scenario / "ikev2_decryption_table")
    want = set()
    for sa in expected(scenario)["ike_sas"]:
        if sa["version"] != 2 or sa["transforms"]["encryption"] == "CHACHA20_POLY1305":
            continue
        t, k = sa["transforms"], sa["keys"]
        want.add((sa["spi_i"], sa["spi_r"], SS_ENC[t["encryption"]], k["sk_ei"], k["sk_er"],
                  SS_INTEG[t["integrity"]], k.get("sk_ai", ""), k.get("sk_ar", "")))
    assert {ikev2_tuple(k) for k in st.ikev2} == want
    assert len(st.ikev2) == len(want)
    assert st.problems == ([] if want else [f"{SS / scenario / 'ikev2_decryption_table'}: no keys in this file "
                                            "(only blank or comment lines)"])


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if (SS / s / "ikev1_decryption_table").exists()])
def test_strongswan_ikev1_table_matches_daemon_log(scenario):
    st = load(SS / scenario / "ikev1_decryption_table")
    want = {(sa["spi_i"], sa["keys"]["enc_key_ka"]) for sa in expected(scenario)["ike_sas"] if sa["version"] == 1}
    assert {(k.icookie.hex(), k.enc_key.hex()) for k in st.ikev1} == want
    assert st.problems == []


def test_strongswan_scenario_directory_skips_what_is_not_a_key_file():
    d = SS / "ikev1-main-quick"
    st = load_keys([d])
    assert {esp_tuple(k) for k in st.esp} == expected_esp("ikev1-main-quick")
    assert len(st.ikev1) == 1 and st.ikev2 == []
    assert sorted(st.files) == [str(d / "esp_sa"), str(d / "ikev1_decryption_table")]
    others = sorted(p.name for p in d.iterdir() if p.name not in ("esp_sa", "ikev1_decryption_table"))
    assert st.problems == [f"{d / n}: skipped, not a key file (" +
                           ("binary content" if b"\0" in (d / n).read_bytes()[:4096]
                            else "its first line is none of the formats") + ")" for n in others]


def test_save_keys_directory(tmp_path):
    """strongSwan's save-keys plugin writes these three files into one directory."""
    shutil.copy(SS / "ikev2-cbc-rekey" / "esp_sa", tmp_path / "esp_sa")
    shutil.copy(SS / "ikev2-cbc-rekey" / "ikev2_decryption_table", tmp_path / "ikev2_decryption_table")
    shutil.copy(SS / "ikev1-main-quick" / "ikev1_decryption_table", tmp_path / "ikev1_decryption_table")
    (tmp_path / "sub").mkdir()  # not recursed into
    shutil.copy(SS / "ikev2-gcm" / "esp_sa", tmp_path / "sub" / "esp_sa")
    st = load_keys([tmp_path])
    assert (len(st.esp), len(st.ikev2), len(st.ikev1)) == (8, 2, 1)
    assert {esp_tuple(k) for k in st.esp} == expected_esp("ikev2-cbc-rekey")
    assert st.problems == []
    assert [Path(f).name for f in st.files] == ["esp_sa", "ikev1_decryption_table", "ikev2_decryption_table"]
    assert len(st) == 11


def test_directory_with_an_empty_and_a_prose_file(tmp_path):
    shutil.copy(PUB / "wireshark" / "esp_sa.tmpl", tmp_path / "esp_sa")
    (tmp_path / "ikev2_decryption_table").write_text("# This file is automatically generated, DO NOT MODIFY.\n")
    (tmp_path / "NOTES.txt").write_text("Keys for the lab capture of 12 May.\n")
    st = load_keys([tmp_path])
    assert len(st.esp) == 2
    assert st.problems == [f"{tmp_path / 'NOTES.txt'}: skipped, not a key file (its first line is none of the formats)",
                           f"{tmp_path / 'ikev2_decryption_table'}: no keys in this file (only blank or comment lines)"]


def test_a_file_with_errors_in_a_directory_is_not_skipped(tmp_path):
    (tmp_path / "esp_sa").write_text('"IPv4","1.2.3.4","5.6.7.8","0x1","AES-CBC [RFC3602]","0x00"\n')
    with pytest.raises(KeyFileError, match=r"esp_sa:1: expected 8 or 10 comma-separated columns, found 6"):
        load_keys([tmp_path])


# --------------------------------------------------------------------------- Wireshark files of other projects
def test_wireshark_esp_sa_template():
    st = load(PUB / "wireshark" / "esp_sa.tmpl")
    assert [esp_tuple(k) for k in st.esp] == [
        ("esp", 0x070883C2, "192.168.0.1", "192.168.0.100", "aes-cbc", "5de1a4c2c72662c9fda7a7c78cd25623",
         "hmac-sha1-96", "51c9213c18232f8f26c70c4dee6e0e6d56e31e8a"),
        ("esp", 0xC254FE64, "192.168.0.100", "192.168.0.1", "aes-cbc", "88e1dad7140af03b8d4f3d734d21be4b",
         "hmac-sha1-96", "3e00d517c1220d4b7d2950fcc02edd4b6023d278")]
    assert [k.source.line for k in st.esp] == [1, 2]


def test_wireshark_ikev2_template_every_algorithm():
    st = load(PUB / "wireshark" / "ikev2_decryption_table.tmpl")
    got = [(k.ispi.hex(), k.enc, k.integ, len(k.sk_ei), len(k.sk_er), len(k.sk_ai)) for k in st.ikev2]
    assert got == [
        ("1234567890123456", "null", "none", 0, 0, 0),
        ("19ab98963486359f", "3des-cbc", "hmac-sha1-160", 24, 24, 20),
        ("ea684d21597afd36", "aes-ccm12", "none", 19, 19, 0),
        ("a2926ae833c6f138", "aes-ctr", "any-96", 20, 20, 0),
        ("81f24c0acd8fa55c", "aes-ctr", "hmac-sha2-512-256", 28, 28, 64),
        ("191ccd371a7a1f7b", "aes-cbc", "hmac-sha2-256-128", 32, 32, 32),
        ("cd7ae76304b277e2", "aes-ccm16", "none", 35, 35, 0),
        ("5d48bfeeb7d574da", "aes-gcm8", "none", 36, 36, 0),
        ("0158b8fb90b7623d", "aes-gcm16", "none", 36, 36, 0)]
    assert [k.source.line for k in st.ikev2] == list(range(2, 11))
    assert st.problems == []


def test_wireshark_ikev1_template():
    st = load(PUB / "wireshark" / "ikev1_decryption_table.tmpl")
    assert [(k.icookie.hex(), len(k.enc_key)) for k in st.ikev1] == [
        ("fafaeb49382a763c", 24), ("ab3e0f1f8bc3be8e", 32), ("29f6006212625def", 32)]
    assert st.ikev1[0].enc_key.hex() == "735be0cb62f82675c4f7bf8fbab9b56834ba76d6ab4fa240"


def test_packetgen_esp_sa_files():
    st = load_keys([PUB / "packetgen-plugin-ipsec" / n for n in
                    ("keys.derived.esp_sa", "keys-gcm.derived.esp_sa", "keys-ctr.derived.esp_sa")])
    # values from KEYS.derived.txt (transcribed from the project's spec files)
    assert [(hex(k.spi), k.enc, k.enc_key.hex(), k.integ, k.integ_key.hex()) for k in st.esp] == [
        ("0x87654321", "aes-cbc", "000102030405060708090a0b0c0d0e0f", "none", ""),
        ("0xc1e69148", "aes-gcm16", "d5a4eee309983f2da6f52fe84353ab16" + "e6971987", "none", ""),
        ("0xc84340a5", "aes-gcm16", "70b20243dbeb17a81078db80f14adf5e098b32445e0e5529b903e5140ba5883d" + "bc6b7c64",
         "none", ""),
        ("0x87654321", "aes-gcm16", "000102030405060708090a0b0c0d0e0f" + "80818283", "none", ""),
        ("0x87654321", "aes-ctr", "000102030405060708090a0b0c0d0e0f" + "80818283", "hmac-sha2-256-96",
         "101112131415161718191a1b1c1d1e1f")]
    assert st.problems == []


def test_packetgen_ikev2_table():
    st = load(PUB / "packetgen-plugin-ipsec" / "keys.derived.ikev2_decryption_table")
    a, b = st.ikev2
    assert (a.ispi.hex(), a.enc, a.sk_ei.hex(), a.integ, a.sk_ai.hex()) == (
        "21603b835cebcb3f", "aes-cbc", "27a29d9516d8b657e4501d499ca35484", "hmac-sha2-256-128",
        "8dad540e7b992063ce893021dbf48051ba669f79b608fab021742129af192ad5")
    assert (b.enc, len(b.sk_ei), b.integ, b.sk_ai) == ("aes-gcm16", 36, "none", b"")


OPENSWAN_TABLES = sorted(glob.glob(str(PUB / "openswan" / "**" / "*.ikev2_decryption_table"), recursive=True))


@pytest.mark.parametrize("path", OPENSWAN_TABLES, ids=lambda p: Path(p).parent.name + "/" + Path(p).name)
def test_openswan_ikev2_tables(path):
    rows = [r for r in csv.reader(line for line in open(path) if line.strip() and not line.startswith("#"))]
    st = load(path)
    assert [(k.ispi.hex(), k.rspi.hex(), k.sk_ei.hex(), k.sk_ar.hex()) for k in st.ikev2] == \
        [(r[0], r[1], r[2], r[6]) for r in rows]
    assert st.problems == []


def test_openswan_tables_exist():
    assert len(OPENSWAN_TABLES) >= 50


# --------------------------------------------------------------------------- tcpdump -E
def test_tcpdump_esp_secrets_match_the_derived_esp_sa():
    """tcpdump's own test secrets and the esp_sa derived from them hold the same keys.
    tcpdump's -hmac96 is a 12-byte ICV it does not check, which is Wireshark's
    'ANY 96 bit' (any-96) as the derived table says."""
    for txt, sa in (("esp-secrets.txt", "esp-secrets.derived.esp_sa"),
                    ("esp1-secrets.derived.txt", "esp1-secrets.derived.esp_sa")):
        t, w = load(PUB / "tcpdump" / txt), load(PUB / "tcpdump" / sa)
        assert [(k.spi, k.dst, k.enc, k.enc_key) for k in t.esp] == [(k.spi, k.dst, k.enc, k.enc_key) for k in w.esp]
        assert {(k.integ, k.integ_key, k.src) for k in t.esp} == {("any-96", b"", None)}
        assert {(k.integ, k.integ_key, k.src) for k in w.esp} == {("any-96", b"", None)}
        assert t.problems == w.problems == []
        assert t.esp[0].source.format == "tcpdump"
    t = load(PUB / "tcpdump" / "esp-secrets.txt")
    assert [(hex(k.spi), k.dst, k.enc, len(k.enc_key), k.source.line) for k in t.esp] == [
        ("0x12345678", "192.1.2.45", "3des-cbc", 24, 3), ("0xabcdabcd", "192.0.1.1", "3des-cbc", 24, 4),
        ("0xd1234567", "192.1.2.45", "aes-cbc", 32, 5)]


def test_tcpdump_ikev2_pair_matches_the_derived_table():
    t = load(PUB / "tcpdump" / "ikev2pI2-secrets.txt")
    w = load(PUB / "tcpdump" / "ikev2pI2-secrets.derived.ikev2_decryption_table")
    assert [ikev2_tuple(k) for k in t.ikev2] == [ikev2_tuple(k) for k in w.ikev2]
    (k,) = t.ikev2
    assert (k.sk_ai.hex(), k.sk_ar.hex()) == ("4ea8e662b07cdd430f6944c6723e4b82d5722418",
                                              "515b0bd22e6d76b34fdb760aa7bfad80b109b75d")
    assert t.problems == []


def test_tcpdump_ikev2_pairing_any_order_and_lone_half(tmp_path):
    i = "ikev2 I 0x0001020304050607 0x1112131415161718 sha256:0x{a} aes256:0x{e}"
    r = "ikev2 R 0x0001020304050607 0x1112131415161718 sha256:0x{a} aes256:0x{e}"
    p = write(tmp_path, "s", "\n".join([r.format(a="b" * 64, e="d" * 64), "",
                                        "ikev2 I 0x2222222222222222 0x3333333333333333 sha1:0x" + "a" * 40
                                        + " aes128-cbc:0x" + "c" * 32,
                                        i.format(a="a" * 64, e="c" * 64)]) + "\n")
    st = load(p)
    pair, lone = st.ikev2
    assert (pair.enc, pair.integ, pair.sk_ei.hex(), pair.sk_er.hex(), pair.sk_ai.hex(), pair.sk_ar.hex()) == (
        "aes-cbc", "hmac-sha2-256-128", "c" * 64, "d" * 64, "a" * 64, "b" * 64)
    assert pair.source.line == 1
    assert (lone.ispi.hex(), lone.enc, lone.integ, lone.sk_ei.hex(), lone.sk_er, lone.sk_ai.hex(), lone.sk_ar) == (
        "2222222222222222", "aes-cbc", "hmac-sha1-96", "c" * 32, b"", "a" * 40, b"")
    assert st.problems == [
        f"{p}:3: 'ikev2 I' line for 2222222222222222/3333333333333333 has no 'ikev2 R' line: "
        "the responder's keys are unknown",
        f"{p}:3: SK_er is empty: messages from the responder cannot be decrypted"]


def test_tcpdump_ikev2_halves_that_disagree(tmp_path):
    p = write(tmp_path, "s", "ikev2 I 0x0001020304050607 0x1112131415161718 sha1:0x" + "a" * 40 + " aes128:0x"
              + "c" * 32 + "\nikev2 R 0x0001020304050607 0x1112131415161718 md5:0x" + "b" * 32 + " aes128:0x"
              + "d" * 32 + "\n")
    with pytest.raises(KeyFileError) as e:
        load(p)
    assert str(e.value) == (f"{p}:1: the 'ikev2 I' and 'ikev2 R' lines (lines 1 and 2) disagree on the algorithms")


def test_tcpdump_default_sa_commas_ascii_unsupported_and_file(tmp_path):
    inc = write(tmp_path, "more.txt", "0x99@10.9.9.9 des-cbc:0x0102030405060708\n")
    p = write(tmp_path, "s", "\n".join([
        "aes128-cbc-hmac96:0x" + K16,                                   # default SA: any SPI, any address
        "0x1000@10.0.0.1 aes256-cbc:0x" + K32 + ",sha1:0x" + K20,       # comma + auth: integrity of that SA
        "0x2000@2001:db8::1 3des-cbc:0x" + K24 + ", 0x2001@10.0.0.2 none:",   # comma: a second SA
        "0x3000@10.0.0.3 des-cbc:abcdefgh",                             # no 0x: ASCII, as tcpdump reads it
        "0x4000@10.0.0.4 cast128-cbc:0x" + K16,                         # tcpdump knows it, we do not
        "file more.txt",
    ]) + "\n")
    st = load(p)
    got = [(k.spi, k.src, k.dst, k.enc, k.enc_key.hex(), k.integ, k.integ_key.hex()) for k in st.esp]
    assert got == [
        (None, None, None, "aes-cbc", K16, "any-96", ""),
        (0x1000, None, "10.0.0.1", "aes-cbc", K32, "hmac-sha1-96", K20),
        (0x2000, None, "2001:db8::1", "3des-cbc", K24, "none", ""),
        (0x2001, None, "10.0.0.2", "null", "", "none", ""),
        (0x3000, None, "10.0.0.3", "des-cbc", b"abcdefgh".hex(), "none", ""),
        (0x99, None, "10.9.9.9", "des-cbc", "0102030405060708", "none", "")]
    assert st.problems == [
        f"{p}:4: the des-cbc secret has no 0x and is not hex: read as ASCII text, as Wireshark and tcpdump do",
        f"{p}:5: tcpdump encryption algorithm 'cast128-cbc' is not supported by ipsecpcap; key not loaded"]
    assert st.files == [inc, p]


def test_tcpdump_openswan_log_lines(tmp_path):
    lines = [ln for ln in (PUB / "openswan" / "ikev2crypto" / "ct10-parentI2" / "output1.txt").read_text().splitlines()
             if re.match(r"\| ikev2 [IR] 0x", ln)]
    assert len(lines) >= 2
    p = write(tmp_path, "pluto.txt", "\n".join(lines) + "\n")
    st = load(p)
    table = load(PUB / "openswan" / "ikev2crypto" / "ct10-parentI2" / "keys.derived.ikev2_decryption_table")
    assert ikev2_tuple(table.ikev2[0]) in {ikev2_tuple(k) for k in st.ikev2}


# --------------------------------------------------------------------------- ip xfrm state
def test_xfrm_state_plain():
    st = load(KEYS / "xfrm-state.txt")
    want = set()
    for s in ("ikev2-natt", "ikev2-gcm", "ikev2-chacha"):
        c = expected(s)["child_sas"][0]
        for sa in c["sas"]:
            want.add(("esp", int(sa["spi"], 16), sa["src"], sa["dst"], SS_ENC[c["encryption"]["algorithm"]],
                      sa["enc_key"], SS_INTEG[(c["integrity"] or {}).get("algorithm")], sa["integ_key"] or ""))
    assert {esp_tuple(k) for k in st.esp} == want and len(st.esp) == 6
    assert {(k.mode, k.encap, k.esn, k.source.format) for k in st.esp} == {("tunnel", (4500, 4500), False, "xfrm")}
    assert [k.source.line for k in st.esp] == [1, 10, 19, 27, 35, 43]
    assert st.problems == []


def test_xfrm_state_with_statistics():
    st = load(KEYS / "xfrm-state-s.txt")
    want = expected_esp("ikev2-aes256-sha512-modp") | expected_esp("ikev1-aggressive-psk")
    assert {esp_tuple(k) for k in st.esp} == want and len(st.esp) == 6
    assert st.esp[0].source.line == 2  # after the "$ ip -s xfrm state" prompt
    assert st.problems == []


def test_xfrm_esn_states():
    st = load(KEYS / "xfrm-esn.txt")
    assert [(hex(k.spi), k.enc, k.enc_key.hex(), k.integ, k.integ_key.hex(), k.esn, k.mode, k.encap)
            for k in st.esp] == [
        ("0xc3a1e001", "aes-gcm16", synthetic("esn-gcm", 20), "none", "", True, "transport", None),
        ("0xc3a1e002", "aes-cbc", synthetic("esn-aes", 32), "hmac-sha2-256-128", synthetic("esn-sha256", 32), True,
         "transport", None),
        ("0xc3a1e003", "aes-cbc", synthetic("esn-s-aes", 16), "hmac-sha2-256-128", synthetic("esn-s-sha256", 32),
         True, "transport", None)]
    assert st.problems == []


def test_xfrm_algorithms_ah_and_what_is_not_loaded():
    p = KEYS / "xfrm-algorithms.txt"
    st = load(p)
    got = [(k.protocol, hex(k.spi), k.src, k.enc, k.enc_key.hex(), k.integ, k.integ_key.hex()) for k in st.esp]
    s = synthetic
    assert got == [
        ("ah", "0x200", "2001:db8::1", "null", "", "hmac-sha2-256-128", s("ah-sha256", 32)),
        ("ah", "0x201", "203.0.113.1", "null", "", "aes-xcbc-96", s("ah-xcbc", 16)),
        ("esp", "0x301", "203.0.113.1", "3des-cbc", s("3des", 24), "aes-cmac-96", s("cmac", 16)),
        ("esp", "0x302", "203.0.113.1", "aes-ctr", s("ctr", 36), "hmac-sha2-384-192", s("sha384", 48)),
        ("esp", "0x303", "203.0.113.1", "null", "", "hmac-sha1-96", s("null-sha1", 20)),
        ("esp", "0x304", "203.0.113.1", "aes-ccm8", s("ccm", 19), "none", ""),
        ("esp", "0x305", "203.0.113.1", "null-aes-gmac", s("gmac", 20), "none", ""),
        ("esp", "0x306", "203.0.113.1", "des-cbc", s("des", 8), "hmac-md5-96", s("md5", 16)),
        ("esp", "0x308", "203.0.113.1", "aes-gcm16", s("tcp-gcm", 36), "none", "")]
    assert [k.mode for k in st.esp][:2] == ["transport", "tunnel"]
    assert st.problems == [
        f"{p}:49: xfrm encryption algorithm 'cbc(serpent)' is not supported by ipsecpcap; key not loaded",
        f"{p}:51: SPI 0x00000308: encapsulation 'espintcp' (not UDP) is not kept",
        f"{p}:57: SPI 0x00000309: keys hidden ('ip xfrm state' was run with nokeys); not loaded"]


def test_xfrm_inline_variants(tmp_path):
    p = write(tmp_path, "x", "\n".join([
        "src 10.0.0.1 dst 10.0.0.2",
        "\tproto esp spi 0x00000010 reqid 1 mode tunnel",
        "\treplay-window 0 ",
        "\tauth hmac(sha256) 0x" + K32,                     # legacy 'auth': kernel default 96 bits
        '\tenc ecb(cipher_null) ""',
        "src 10.0.0.1 dst 10.0.0.2",
        "\tproto esp spi 0x00000011 reqid 1 mode beet",
        "\treplay-window 0 flag noecn",
        "\taead rfc4106(gcm(aes)) 0x" + K20 + " 32",        # no such ICV length
        "src 10.0.0.1 dst 10.0.0.2",
        "\tproto esp spi 0x00000012 reqid 1 mode tunnel",
        "\tauth-trunc hmac(sha256) 0x" + K32 + " 64",        # no such truncation
        "\tenc cbc(aes) 0x" + K16,
    ]) + "\n")
    st = load(p)
    assert [(k.spi, k.enc, k.enc_key, k.integ, k.integ_key.hex(), k.esn) for k in st.esp] == [
        (0x10, "null", b"", "hmac-sha2-256-96", K32, False)]
    assert st.problems == [f"{p}:9: unknown xfrm AEAD algorithm 'rfc4106(gcm(aes)) 32'; key not loaded",
                           f"{p}:12: unknown xfrm authentication algorithm 'hmac(sha256) 64'; key not loaded"]


def test_xfrm_errors(tmp_path):
    p = write(tmp_path, "x", "src 10.0.0.1 dst 10.0.0.2\n\tproto esp spi 0x1 reqid 1 mode tunnel\n"
              "\taead rfc4106(gcm(aes)) 0x" + K20 + " 128\n\tauth-trunc hmac(sha1) 0x" + K20 + " 96\n")
    with pytest.raises(KeyFileError) as e:
        load(p)
    assert str(e.value) == f"{p}:1: aes-gcm16 is an AEAD cipher and takes no separate integrity algorithm " \
                           "(found hmac-sha1-96)"
    p = write(tmp_path, "y", "src 10.0.0.1 dst 10.0.0.2\n\tproto esp spi 0x1 reqid 1 mode tunnel\n"
              "\tenc cbc(aes) 0x" + "ab" * 20 + "\n")
    with pytest.raises(KeyFileError) as e:
        load(p)
    assert str(e.value) == f"{p}:3: encryption key for aes-cbc is 20 bytes; expected 16, 24 or 32"


# --------------------------------------------------------------------------- our YAML and JSON
def test_yaml_example_holds_the_packetgen_keys():
    y = load(KEYS / "packetgen.keys.yaml")
    pg = load_keys([PUB / "packetgen-plugin-ipsec" / n for n in ("keys.derived.esp_sa", "keys-ctr.derived.esp_sa")])
    assert [esp_tuple(k) for k in y.esp] == [esp_tuple(k) for k in pg.esp]
    assert [(k.esn, k.esn_high, k.mode) for k in y.esp] == [(None, 0, None), (None, 0, None),
                                                           (True, 0, "transport"), (None, 0, None)]
    assert [k.source.line for k in y.esp] == [9, 16, 22, 31]
    assert {k.source.format for k in y.esp} == {"ipsecpcap"}
    table = load(PUB / "packetgen-plugin-ipsec" / "keys.derived.ikev2_decryption_table").ikev2[0]
    (k,) = y.ikev2
    assert (k.ispi, k.rspi, k.enc, k.sk_ei, k.integ, k.sk_ai) == \
        (table.ispi, table.rspi, table.enc, table.sk_ei, table.integ, table.sk_ai)
    assert (k.sk_er, k.sk_ar) == (b"", b"")  # unknown, where the Wireshark table needs zeros
    assert y.problems == [f"{KEYS / 'packetgen.keys.yaml'}:40: SK_er is empty: messages from the responder "
                          "cannot be decrypted"]


def test_json_example_holds_the_strongswan_gcm_keys():
    j = load(KEYS / "ikev2-gcm.keys.json")
    w = load_keys([SS / "ikev2-gcm" / "esp_sa", SS / "ikev2-gcm" / "ikev2_decryption_table"])
    assert [esp_tuple(k) for k in j.esp] == [esp_tuple(k) for k in w.esp]
    assert [ikev2_tuple(k) for k in j.ikev2] == [ikev2_tuple(k) for k in w.ikev2]
    assert {(k.esn, k.mode, k.encap) for k in j.esp} == {(False, "tunnel", (4500, 4500))}
    assert j.problems == []


def test_yaml_everything_the_other_formats_say(tmp_path):
    p = write(tmp_path, "k.yaml", f"""\
# comment
ipsecpcap-keys: 1
esp:
  - protocol: ah
    spi: 512
    src: 2001:db8::1
    dst: "2001:db8::/64"
    integ: "hmac(sha256) 128"
    integ_key: 0x00{"ab" * 31}
  - spi: "*"
    src: "*"
    dst: 10.1.0.0/16
    enc: aes-cbc-256
    enc_key: {K32}
    integ: any-96
  - spi: 0x00000001
    dst: 192.0.2.9
    enc: "TripleDES-CBC [RFC2451]"
    enc_key: "0X{K24.upper()}"
    integ: "HMAC-SHA-1-96 [RFC2404]"
    integ_key: ""
    esn: yes
    esn_high: 0x10
    encap: "4500 4500"
ikev2:
  - ispi: "0x{"12" * 8}"
    rspi: {"34" * 8}
    enc: "AES-GCM-128 with 16 octet ICV [RFC5282]"
    sk_ei: {K20}
    sk_er: {K20}
ikev1:
  - icookie: {"56" * 8}
    enc_key: {K16}
esp_empty_is_fine: []
""".replace("esp_empty_is_fine: []\n", ""))
    st = load(p)
    ah, wild, tdes = st.esp
    assert (ah.protocol, ah.spi, ah.src, ah.dst, ah.enc, ah.integ, ah.integ_key.hex()) == (
        "ah", 512, "2001:db8::1", "2001:db8::/64", "null", "hmac-sha2-256-128", "00" + "ab" * 31)
    assert (wild.spi, wild.src, wild.dst, wild.enc, wild.enc_key.hex(), wild.integ, wild.integ_key) == (
        None, None, "10.1.0.0/16", "aes-cbc", K32, "any-96", b"")
    assert (tdes.spi, tdes.enc, tdes.enc_key.hex(), tdes.integ, tdes.integ_key, tdes.esn, tdes.esn_high,
            tdes.encap) == (1, "3des-cbc", K24, "hmac-sha1-96", b"", True, 16, (4500, 4500))
    (ike,) = st.ikev2
    assert (ike.ispi.hex(), ike.rspi.hex(), ike.enc, ike.integ, ike.sk_ai) == ("12" * 8, "34" * 8, "aes-gcm16",
                                                                               "none", b"")
    assert [(k.icookie.hex(), k.enc_key.hex()) for k in st.ikev1] == [("56" * 8, K16)]
    assert [k.source.line for k in st.esp] == [4, 10, 16] and st.ikev2[0].source.line == 26
    assert st.problems == []


def test_json_with_tabs_and_line_numbers(tmp_path):
    p = write(tmp_path, "k.json", '{\n\t"ipsecpcap-keys": 1,\n\t"esp": [\n\t\t{"spi": "0x5", "enc": "aes-cbc",\n'
              f'\t\t "enc_key": "{K16}"}},\n\t\t{{"spi": "0x6", "enc": "aes-cbc", "enc_key": "{K16[:-2]}"}}\n\t]\n}}\n')
    with pytest.raises(KeyFileError) as e:
        load(p)
    assert str(e.value) == f"{p}:6: enc_key for aes-cbc is 15 bytes; expected 16, 24 or 32"


@pytest.mark.parametrize("text,line,msg", [
    ('ipsecpcap-keys: 1\nesp:\n  - spi: "0x1"\n    enc aes-cbc\n    enc_key: "00"\n', 5,
     "YAML syntax error: could not find expected ':' (while scanning a simple key at line 4)"),
    ('ipsecpcap-keys: 1\nesp:\n  - spi: "0x1"\n      enc: aes-cbc\n', 4,
     "YAML syntax error: expected <block end>, but found '<block mapping start>' (while parsing a block mapping "
     "at line 3)"),
    ("ipsecpcap-keys: 2\n", 1, "unsupported 'ipsecpcap-keys' version '2': this version reads 1"),
    ('ipsecpcap-keys: 1\nesp:\n  - spi: "0x1"\n    enc: aes-cbc\n    enc-key: "00"\n', 5,
     "unknown field 'enc-key' in an 'esp' entry"),
    ('ipsecpcap-keys: 1\nesp:\n  - enc: aes-cbc\n', 3, "missing 'spi'"),
    ('ipsecpcap-keys: 1\nesp:\n  - spi: "0x1"\n    enc: rot13\n', 4, None),
    ('ipsecpcap-keys: 1\nsa:\n  - spi: "0x1"\n', 2, "unknown section 'sa': expected esp, ikev2 or ikev1"),
    ('ipsecpcap-keys: 1\nesp:\n  - spi: "0x1"\n    enc: aes-gcm16\n    enc_key: "' + K20 + '"\n'
     '    integ: hmac-sha1-96\n', 6, "aes-gcm16 is an AEAD cipher and takes no separate integrity algorithm "
                                     "(found hmac-sha1-96)"),
    ('ipsecpcap-keys: 1\nesp:\n  - spi: "0x1"\n    enc: aes-cbc-128\n    enc_key: "' + K32 + '"\n', 5,
     "enc_key for aes-cbc is 32 bytes; the algorithm name says 16"),
    ('ipsecpcap-keys: 1\nikev2:\n  - ispi: "0011"\n', 3, "bad ispi: expected 16 hex digits (8 bytes)"),
    ('ipsecpcap-keys: 1\nesp:\n  - spi: "0x1"\n    enc: aes-cbc\n    enc_key: "' + K16 + '"\n    esn: maybe\n',
     6, "'esn' must be true, false or omitted"),
])
def test_yaml_errors(tmp_path, text, line, msg):
    p = write(tmp_path, "k.yaml", text)
    if msg is None:  # an unknown algorithm is a note, not an error
        st = load(p)
        assert st.esp == [] and st.problems == [f"{p}:{line}: unknown encryption algorithm 'rot13'; key not loaded"]
        return
    with pytest.raises(KeyFileError) as e:
        load(p)
    assert str(e.value) == f"{p}:{line}: {msg}"


# --------------------------------------------------------------------------- Wireshark esp_sa details
def esp_line(src="10.0.0.1", dst="10.0.0.2", spi="0x00000001", enc="AES-CBC [RFC3602]", ek="0x" + K16,
             auth="HMAC-SHA-1-96 [RFC2404]", ak="0x" + K20, proto="IPv4", extra=()):
    return ",".join(f'"{v}"' for v in (proto, src, dst, spi, enc, ek, auth, ak, *extra))


def test_esp_sa_wildcards(tmp_path):
    p = write(tmp_path, "esp_sa", "\n".join([
        esp_line(src="*", dst="192.168.*.*", spi="*"),
        esp_line(src="10.0.0.0/8", dst="10.1.2.3/32"),
        esp_line(proto="IPv6", src="2001:db8::/32", dst="*"),
        esp_line(proto="Any", src="10.*.*.1", spi="0x1234****"),
        esp_line(src="172.16.5.4/12", dst="*.*.*.*"),
    ]) + "\n")
    st = load(p)
    assert [(k.src, k.dst, k.spi) for k in st.esp] == [
        (None, "192.168.0.0/16", None), ("10.0.0.0/8", "10.1.2.3", 1), ("2001:db8::/32", None, 1),
        (None, "10.0.0.2", None), ("172.16.0.0/12", None, 1)]
    assert st.problems == [
        f"{p}:4: source address '10.*.*.1' has a wildcard that is not a prefix: matches any address",
        f"{p}:4: SPI '0x1234****' with a partial wildcard cannot be kept: matches any SPI"]


def test_esp_sa_ten_columns_with_esn(tmp_path):
    p = write(tmp_path, "esp_sa", "\n".join([
        esp_line(extra=("64-bit", "0x00000001")),
        esp_line(extra=("32-bit", "0")),
        esp_line(enc="AES-GCM with 16 octet ICV [RFC4106]", ek="0x" + K20, auth="NULL", ak="",
                 extra=("64-bit", "7")),
        esp_line(),
    ]) + "\n")
    st = load(p)
    assert [(k.esn, k.esn_high, k.enc) for k in st.esp] == [(True, 1, "aes-cbc"), (False, 0, "aes-cbc"),
                                                            (True, 7, "aes-gcm16"), (None, 0, "aes-cbc")]
    bad = write(tmp_path, "esp_sa2", esp_line(extra=("48-bit", "0")) + "\n")
    with pytest.raises(KeyFileError) as e:
        load(bad)
    assert str(e.value) == f"{bad}:1: bad SN '48-bit': expected 32-bit or 64-bit"


def test_esp_sa_every_wireshark_name(tmp_path):
    rows = [  # (encryption, key bytes, authentication, key bytes) -> (enc, integ)
        ("NULL", 0, "HMAC-MD5-96 [RFC2403]", 16, "null", "hmac-md5-96"),
        ("TripleDes-CBC [RFC2451]", 24, "HMAC-SHA-256-96 [draft-ietf-ipsec-ciph-sha-256-00]", 32, "3des-cbc",
         "hmac-sha2-256-96"),
        ("DES-CBC [RFC2405]", 8, "MAC-RIPEMD-160-96 [RFC2857]", 20, "des-cbc", "hmac-ripemd160-96"),
        ("AES-CTR [RFC3686]", 36, "HMAC-SHA-384-192 [RFC4868]", 48, "aes-ctr", "hmac-sha2-384-192"),
        ("AES-CBC [RFC3602]", 24, "HMAC-SHA-512-256 [RFC4868]", 64, "aes-cbc", "hmac-sha2-512-256"),
        ("AES-CBC [RFC3602]", 32, "ANY 128 bit authentication [no checking]", 0, "aes-cbc", "any-128"),
        ("AES-GCM with 8 octet ICV [RFC4106]", 28, "NULL", 0, "aes-gcm8", "none"),
        ("AES-GCM with 12 octet ICV [RFC4106]", 20, "NULL", 0, "aes-gcm12", "none"),
        ("AES-GCM [RFC4106]", 20, "ANY 128 bit authentication [no checking]", 0, "aes-gcm16", "none"),
        ("AES-GCM [RFC4106]", 20, "ANY 64 bit authentication [no checking]", 0, "aes-gcm8", "none"),
        ("NULL Encryption with AES-GMAC [RFC4543]", 20, "NULL", 0, "null-aes-gmac", "none"),
        ("ChaCha20 with Poly1305 [RFC7634]", 36, "NULL", 0, "chacha20-poly1305", "none"),
    ]
    p = write(tmp_path, "esp_sa", "\n".join(esp_line(enc=e, ek="0x" + "5a" * ek, auth=a, ak=("0x" + "a5" * ak) if ak
                                                     else "") for e, ek, a, ak, _, _ in rows) + "\n")
    st = load(p)
    assert [(k.enc, k.integ, len(k.enc_key), len(k.integ_key)) for k in st.esp] == \
        [(r[4], r[5], r[1], r[3]) for r in rows]
    assert st.problems == []


def test_esp_sa_unknown_and_unsupported_algorithms_are_noted(tmp_path):
    p = write(tmp_path, "esp_sa", "\n".join([
        esp_line(enc="BLOWFISH-CBC [RFC2451]"),
        esp_line(enc="SERPENT-CBC"),
        esp_line(auth="HMAC-SHA3"),
        esp_line(),
    ]) + "\n")
    st = load(p)
    assert len(st.esp) == 1 and st.esp[0].source.line == 4
    assert st.problems == [
        f"{p}:1: ESP encryption algorithm 'BLOWFISH-CBC [RFC2451]' is not supported by ipsecpcap; key not loaded",
        f"{p}:2: unknown ESP encryption algorithm 'SERPENT-CBC'; key not loaded",
        f"{p}:3: unknown ESP authentication algorithm 'HMAC-SHA3'; key not loaded"]


def test_hmac_key_length_the_rfc_does_not_ask_for_is_kept_with_a_note(tmp_path):
    p = write(tmp_path, "esp_sa", esp_line(auth="HMAC-SHA-256-128 [RFC4868]", ak="0x" + K16) + "\n")
    st = load(p)
    assert st.esp[0].integ_key.hex() == K16
    assert st.problems == [f"{p}:1: authentication key for hmac-sha2-256-128 is 16 bytes; RFC 4868 asks for 32 "
                           "(key kept)"]


# --------------------------------------------------------------------------- error messages
def error_of(path) -> str:
    with pytest.raises(KeyFileError) as e:
        load_keys([path])
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 4 and isinstance(e.value, IpsecpcapError)
    return msg


def test_errors_esp_sa(tmp_path):
    p = write(tmp_path, "esp_sa", "# keys\n" + esp_line() + "\n" + '"IPv4","1.1.1.1","2.2.2.2","0x1","NULL",""\n')
    assert error_of(p) == f"{p}:3: expected 8 or 10 comma-separated columns, found 6"
    p = write(tmp_path, "a", esp_line(ek="0xZZ" + K16[4:]) + "\n")
    assert error_of(p) == f"{p}:1: bad hex in column 'encryption key': not a hex string"
    p = write(tmp_path, "b", esp_line(ak="0x" + K20 + "a") + "\n")
    assert error_of(p) == f"{p}:1: bad hex in column 'authentication key': odd number of hex digits (41)"
    p = write(tmp_path, "c", esp_line(spi="0xnothex") + "\n")
    assert error_of(p) == f"{p}:1: bad SPI '0xnothex': expected 0x followed by hex digits, a decimal number or *"
    p = write(tmp_path, "d", esp_line(spi="0x1ffffffff") + "\n")
    assert error_of(p) == f"{p}:1: bad SPI: does not fit in 32 bits"
    p = write(tmp_path, "e", esp_line(ek="0x" + K16[2:]) + "\n")
    assert error_of(p) == f"{p}:1: encryption key for aes-cbc is 15 bytes; expected 16, 24 or 32"
    p = write(tmp_path, "f", esp_line(enc="TripleDES-CBC [RFC2451]") + "\n")
    assert error_of(p) == f"{p}:1: encryption key for 3des-cbc is 16 bytes; expected 24"
    p = write(tmp_path, "g", esp_line(enc="AES-GCM with 16 octet ICV [RFC4106]", auth="NULL", ak="") + "\n")
    assert error_of(p) == f"{p}:1: encryption key for aes-gcm16 is 16 bytes; expected 20, 28 or 36 " \
                          "(key + 4-byte salt)"
    p = write(tmp_path, "h", esp_line(src="10.0.0.300") + "\n")
    assert error_of(p) == f"{p}:1: bad source address '10.0.0.300': not an IPv4 or IPv6 address or prefix"
    p = write(tmp_path, "i", esp_line(proto="IPv6") + "\n")
    assert error_of(p) == f"{p}:1: bad source address '10.0.0.1': not an IPv6 address, as the protocol column says"
    p = write(tmp_path, "j", esp_line(enc="AES-CBC [RFC3602]", ek="") + "\n")
    assert error_of(p) == f"{p}:1: encryption key missing for aes-cbc"


def test_errors_ike_tables(tmp_path):
    p = write(tmp_path, "t", "fafaeb49382a763c,735be0cb,extra\n")
    assert error_of(p) == f"{p}:1: expected 2 (ikev1_decryption_table) or 8 (ikev2_decryption_table) " \
                          "comma-separated columns, found 3"
    p = write(tmp_path, "t2", f'0011223344556677,8899aabbccddeeff,{K32},{K32},"AES-CBC-256 [RFC3602]",,,'
                              '"NONE [RFC4306]"\n' + f'0011223344556677,8899aabbccddeeff,{K16},{K16},'
                              '"AES-CBC-256 [RFC3602]",,,"NONE [RFC4306]"\n')
    assert error_of(p) == f"{p}:2: SK_ei for aes-cbc is 16 bytes; the algorithm name says 32"
    p = write(tmp_path, "t3", "0011223344556677,\n")
    assert error_of(p) == f"{p}:1: encryption key missing"
    p = write(tmp_path, "t4", f'0011223344556677,8899aabbccddeeff,{K32},{K32},"AES-CBC-256 [RFC3602]",,,'
                              '"NONE [RFC4306]",""\n')
    assert error_of(p) == f"{p}:1: expected 2 (ikev1_decryption_table) or 8 (ikev2_decryption_table) " \
                          "comma-separated columns, found 9"


def test_errors_file_level(tmp_path):
    p = write(tmp_path, "notes.txt", "\n# keys for case 42\nThe VPN keys are in the safe.\n")
    assert error_of(p) == (f"{p}:3: unknown key file format (its first line is none of the formats): expected "
                           "Wireshark esp_sa, ikev1_decryption_table or ikev2_decryption_table, ip xfrm state "
                           "output, tcpdump -E secrets, or an ipsecpcap-keys YAML/JSON file")
    p = tmp_path / "cap.pcap"
    p.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(16))
    assert error_of(p).startswith(f"{p}: unknown key file format (binary content): expected Wireshark esp_sa")
    p = write(tmp_path, "other.json", '{"scenario": "x"}\n')
    assert error_of(p).startswith(f"{p}:1: unknown key file format (its first line is none of the formats)")
    missing = tmp_path / "nope"
    assert error_of(missing) == f"{missing}: cannot read: No such file or directory"


def test_load_key_file_counts_into_an_existing_store():
    st = KeyStore()
    assert load_key_file(PUB / "wireshark" / "esp_sa.tmpl", st) == 2
    assert load_key_file(str(PUB / "wireshark" / "ikev1_decryption_table.tmpl"), st) == 3
    assert (len(st.esp), len(st.ikev1), len(st)) == (2, 3, 5)


# --------------------------------------------------------------------------- no key material anywhere
def test_no_key_material_in_messages_reprs_or_problems(tmp_path):
    """Random keys through every format and every way of failing: no error
    message, problem line, repr or str may contain any 16-hex-digit run of them."""
    keys: list[str] = []

    def k(n: int) -> str:
        h = secrets.token_hex(n)
        keys.append(h)
        return h

    texts: list[str] = []
    ok = {
        "esp_sa": "\n".join([
            esp_line(ek="0x" + k(16), ak="0x" + k(20)),
            esp_line(enc="AES-GCM with 16 octet ICV [RFC4106]", ek="0x" + k(20).upper(), auth="NULL", ak="",
                     extra=("64-bit", "0")),
            esp_line(auth="HMAC-SHA-256-128 [RFC4868]", ek="0x" + k(16), ak="0x" + k(24)),   # RFC 4868 note
            esp_line(enc="0x" + k(16), ek="0x" + k(16)),                                     # key in the name column
            esp_line(auth=k(20), ek="0x" + k(16)),                                           # bare hex there too
            esp_line(ek=k(7) + "zz"),                                                        # "ASCII" note
        ]) + "\n",
        "ike2": f'0011223344556677,8899aabbccddeeff,{k(16)},{k(16)},"AES-CBC-128 [RFC3602]",{k(32)},{k(32)},'
                f'"HMAC_SHA2_256_128 [RFC4868]"\n'
                f'0011223344556678,8899aabbccddeeff,{k(20)},,"{k(20)}",,,"NONE [RFC4306]"\n',
        "ike1": f"0011223344556677,{k(24)}\n0011223344556678,{k(20)}\n",
        "xfrm": f"src 10.0.0.1 dst 10.0.0.2\n\tproto esp spi 0x1 reqid 1 mode tunnel\n"
                f"\tauth-trunc hmac(sha256) 0x{k(32)} 128\n\tenc cbc(aes) 0x{k(16)}\n"
                f"src 10.0.0.1 dst 10.0.0.2\n\tproto esp spi 0x2 reqid 1 mode tunnel\n"
                f"\tenc {k(16)} 0x{k(16)}\n",
        "tcpdump": f"0x1@10.0.0.1 aes128-cbc-hmac96:0x{k(16)}\n{k(8)}:0x{k(16)}\n"
                   f"ikev2 I 0x0011223344556677 0x8899aabbccddeeff sha1:0x{k(20)} aes128:0x{k(16)}\n",
        "ours.yaml": f"ipsecpcap-keys: 1\nesp:\n  - spi: 1\n    enc: aes-cbc\n    enc_key: 0x{k(16)}\n"
                     f"    integ: hmac-sha1-96\n    integ_key: {k(20)}\n  - spi: 2\n    enc: {k(16)}\n"
                     f"ikev2:\n  - ispi: \"0011223344556677\"\n    rspi: \"8899aabbccddeeff\"\n    enc: aes-cbc\n"
                     f"    sk_ei: {k(16)}\n",
    }
    bad = {
        "len.esp_sa": esp_line(ek="0x" + k(15)) + "\n",
        "odd.esp_sa": esp_line(ak="0x" + k(20) + "f") + "\n",
        "col.esp_sa": f'"IPv4","{k(8)}","0x{k(16)}"\n',
        "addr.esp_sa": esp_line(src=k(16)) + "\n",
        "spi.esp_sa": esp_line(spi="0x" + k(16)) + "\n",
        "sn.esp_sa": esp_line(extra=(k(16), "0")) + "\n",
        "ike.len": f'0011223344556677,8899aabbccddeeff,{k(17)},{k(17)},"AES-CBC-128 [RFC3602]",,,"NONE [RFC4306]"\n',
        "ike.spi": f'{k(8)}z,8899aabbccddeeff,{k(16)},{k(16)},"AES-CBC-128 [RFC3602]",,,"NONE [RFC4306]"\n',
        "y1.yaml": f"ipsecpcap-keys: 1\nesp:\n  - spi: 1\n    enc: aes-cbc\n    enc_key: {k(17)}\n",
        "y2.yaml": f"ipsecpcap-keys: 1\nesp:\n  - spi: 1\n    {k(16)}: aes-cbc\n",
        "y3.yaml": f"ipsecpcap-keys: 1\nesp:\n  - spi: 1\n    enc_key: '{k(16)}\n",
        "y4.yaml": f"ipsecpcap-keys: 1\n{k(16)}:\n  - spi: 1\n",
        "y5.yaml": f"ipsecpcap-keys: 1\nesp:\n  - spi: \"{k(16)}\"\n",
        "j.json": '{"ipsecpcap-keys": 1, "esp": [{"enc_key": "' + k(16) + '" "spi": 1}]}\n',
        "x.xfrm": f"src 10.0.0.1 dst 10.0.0.2\n\tproto esp spi 0x1 reqid 1 mode tunnel\n\tenc cbc(aes) 0x{k(17)}\n",
        "x2.xfrm": f"src 10.0.0.1 dst 10.0.0.2\n\tproto esp spi 0x1 reqid 1 mode tunnel\n\tenc cbc(aes) {k(16)}\n",
        "t.tcpdump": f"0x1@10.0.0.1 aes256-cbc:0x{k(16)}\n",
        "t2.tcpdump": f"0x{k(16)}@10.0.0.1 aes128-cbc:0x{k(16)}\n",
        "t3.tcpdump": f"ikev2 I 0x{k(8)} 0x8899aabbccddeeff sha1:0x{k(20)} aes128:0x{k(17)}\n",
        "unknown": f"{k(16)} {k(16)}\n",
    }
    loaded = 0
    for name, text in ok.items():
        st = load(write(tmp_path, name, text))
        loaded += len(st)
        texts += st.problems + [repr(st), str(st)] + [f(x) for x in st.esp + st.ikev2 + st.ikev1 for f in (repr, str)]
        texts += [x.fingerprint for x in st.esp + st.ikev2 + st.ikev1]
    assert loaded >= 12
    for name, text in bad.items():
        with pytest.raises(KeyFileError) as e:
            load(write(tmp_path, name, text))
        texts.append(str(e.value))
        texts.append(repr(e.value))
    blob = "\n".join(texts).lower()
    assert "withheld" in blob  # the name-column and bad-column cases did say something
    for h in keys:
        for i in range(0, len(h) - 15):
            assert h[i:i + 16] not in blob, f"key material leaked: {h[i:i + 16]}"
    assert not re.search(r"[0-9a-f]{32}", blob.replace("0011223344556677", "").replace("8899aabbccddeeff", ""))
