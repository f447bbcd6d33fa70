"""``ipsecpcap psk-hashes``: IKEv1 Aggressive Mode PSK parameters for offline cracking.

References, none of them our own earlier output:

* the strongSwan recording ``fixtures/strongswan/ikev1-aggressive-psk``: its
  pre-shared key (``PSK = ...`` in tools/strongswan/make_captures.py) and the
  initiator's charon log at level 4, which dumps SKEYID, the data HASH_R
  covers ("HASH_R data") and HASH_R itself;
* ike-scan's ``psk-crack`` (Debian package ike-scan), run over our output
  with a small dictionary: it must find the key;
* tshark's dissection (PDML: each payload's bytes, and the chosen hash and
  authentication method) for the public Aggressive Mode captures in
  fixtures/public: zeek-spicy-ipsec's (PSK, SHA1) and Wireshark's bug 12620
  capture (XAUTH over PSK, SHA2-256, which no cracking tool takes).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from ipsecpcap.analysis import analyze
from ipsecpcap.cli import main
from ipsecpcap.pskhashes import FIELDS, PskParams, psk_hashes, tool_caveat, tool_problem

ROOT = Path(__file__).resolve().parents[2]
SS = ROOT / "fixtures/strongswan/ikev1-aggressive-psk"
SS_CAP = SS / "capture.pcap"
MAIN_MODE = ROOT / "fixtures/strongswan/ikev1-main-quick/capture.pcap"
ZEEK = ROOT / "fixtures/public/zeek-spicy-ipsec/ipsec-ikev1-isakmp-aggressive-mode.pcap"
WS12620 = ROOT / "fixtures/public/wireshark/ikev1-bug-12620.pcapng.gz"

NO_PSK_CRACK = "psk-crack (Debian package ike-scan) is not installed: .ci/run installs it"


def psk() -> bytes:
    text = (ROOT / "tools/strongswan/make_captures.py").read_text()
    return re.search(r'^PSK = "([^"]+)"', text, re.M).group(1).encode()


def prf(key: bytes, data: bytes, hash_name: str = "sha1") -> bytes:
    # RFC 2409 4: without a negotiated PRF, prf is the HMAC of the negotiated hash
    return hmac.new(key, data, hash_name).digest()


def run(*args):
    return CliRunner().invoke(main, ["psk-hashes", *map(str, args)], catch_exceptions=False)


def found(*paths):
    return psk_hashes(analyze([str(p) for p in paths]))


# ------------------------------------------------------------- charon's own numbers
def charon_dumps(log: Path) -> dict[str, bytes]:
    """The hex dumps of a charon log, ``label => n bytes @ addr`` then rows
    ``off: XX XX ...`` (the first dump of each label)."""
    out: dict[str, bytes] = {}
    label, n, buf = None, 0, bytearray()
    for line in log.read_text().splitlines():
        msg = line.split("> ", 1)[1] if "> " in line else ""
        if label is not None:
            row = re.match(r"\s*(\d+): ((?:[0-9A-F]{2} ){1,16})", msg + " ")
            if row and int(row.group(1)) == len(buf):
                buf.extend(bytes.fromhex(row.group(2)))
                if len(buf) >= n:
                    out.setdefault(label, bytes(buf[:n]))
                    label = None
                continue
            label = None
        head = re.match(r"(.+?) => (\d+) bytes @ 0x[0-9a-f]+$", msg)
        if head:
            label, n, buf = head.group(1), int(head.group(2)), bytearray()
    return out


def test_strongswan_parameters_are_the_bytes_charon_hashed():
    """Every field is the right bytes: the initiator's charon log dumps the data
    HASH_R covers, HASH_R, and SKEYID (= prf(PSK, Ni_b | Nr_b))."""
    r = found(SS_CAP)
    assert r.problems == [] and len(r.params) == 1
    p = r.params[0]
    logged = charon_dumps(SS / "charon-moon.log")  # moon initiated (expected.json)
    assert p.g_xr + p.g_xi + p.cky_r + p.cky_i + p.sai_b + p.idir_b == logged["HASH_R data"]
    assert p.hash_r == logged["HASH_R"]
    assert prf(psk(), p.ni_b + p.nr_b) == logged["SKEYID"]
    # what the recording says of the exchange
    expected = json.loads((SS / "expected.json").read_text())
    moon, sun = expected["hosts"]["moon"], expected["hosts"]["sun"]
    assert (p.initiator, p.responder) == (moon["address"], sun["address"])
    assert (p.initiator_id, p.responder_id) == (moon["id"], sun["id"])
    assert (p.auth_method, p.hash, p.hashcat_mode) == ("psk", "sha1", 5400)  # AES-CBC-192/SHA1/MODP-1536
    assert p.frames == (3, 4) and p.retransmissions == 0
    assert len(p.g_xr) == len(p.g_xi) == 192  # MODP-1536


def test_hash_r_recomputed_with_the_psk_and_not_with_another():
    p = found(SS_CAP).params[0]
    data = p.g_xr + p.g_xi + p.cky_r + p.cky_i + p.sai_b + p.idir_b
    assert prf(prf(psk(), p.ni_b + p.nr_b), data) == p.hash_r  # RFC 2409 5.4
    for wrong in (psk() + b"!", psk()[:-1], b""):
        assert prf(prf(wrong, p.ni_b + p.nr_b), data) != p.hash_r
    # a field swapped with its neighbour no longer gives HASH_R
    swapped = p.g_xi + p.g_xr + p.cky_r + p.cky_i + p.sai_b + p.idir_b
    assert prf(prf(psk(), p.ni_b + p.nr_b), swapped) != p.hash_r


# ------------------------------------------------------------------- psk-crack
@pytest.mark.skipif(shutil.which("psk-crack") is None, reason=NO_PSK_CRACK)
def test_psk_crack_finds_the_key_in_our_output(tmp_path):
    hashes = tmp_path / "hashes.txt"
    r = run("-o", hashes, SS_CAP, ZEEK)  # two exchanges, two lines
    assert r.exit_code == 0 and r.stdout == ""
    assert len(hashes.read_text().splitlines()) == 2
    words = tmp_path / "words.txt"
    words.write_text("secret\nvpn\n" + psk().decode() + "\ncisco123\n")
    out = subprocess.run(["psk-crack", "-d", str(words), str(hashes)], capture_output=True, text=True,
                         check=True).stdout
    hash_r = found(SS_CAP).params[0].hash_r.hex()
    assert f'key "{psk().decode()}" matches SHA1 hash {hash_r}' in out, out
    assert out.count("no match found for SHA1 hash") == 1  # zeek's key is not in the list
    words.write_text("secret\nvpn\n")
    out = subprocess.run(["psk-crack", "-d", str(words), str(hashes)], capture_output=True, text=True,
                         check=True).stdout
    assert f"no match found for SHA1 hash {hash_r}" in out and "matches" not in out


# ---------------------------------------------------------------- tshark, public
def tshark_payloads(path: Path) -> dict[int, list[tuple[int, bytes]]]:
    """frame -> [(payload type, whole payload bytes)] of the top-level ISAKMP
    payloads, as tshark dissects them (PDML)."""
    xml = subprocess.run(["tshark", "-r", str(path), "-Y", "isakmp", "-T", "pdml"], capture_output=True,
                         check=True).stdout
    out: dict[int, list[tuple[int, bytes]]] = {}
    for packet in ET.fromstring(xml).iter("packet"):
        frame = int(packet.find("proto[@name='geninfo']/field[@name='num']").get("show"))
        isakmp = packet.find("proto[@name='isakmp']")
        out[frame] = [(int(f.get("show")), bytes.fromhex(f.get("value")))
                      for f in isakmp.findall("field[@name='isakmp.typepayload']")]  # direct children only
        out[frame].append((-1, bytes.fromhex(isakmp.find("field[@name='isakmp.ispi']").get("value"))))
        out[frame].append((-2, bytes.fromhex(isakmp.find("field[@name='isakmp.rspi']").get("value"))))
        attrs = {f.get("name"): int(f.get("show")) for f in isakmp.iter("field")
                 if f.get("name") in ("isakmp.ike.attr.hash_algorithm", "isakmp.ike.attr.authentication_method")}
        out[frame].extend((-3, bytes([v])) if k.endswith("hash_algorithm") else (-4, v.to_bytes(2, "big"))
                          for k, v in attrs.items())
    return out


def body(payloads, ptype: int) -> bytes:
    # the body follows the 4-byte generic header (RFC 2408 3.2)
    return next(b for t, b in payloads if t == ptype)[4:] if ptype > 0 else next(b for t, b in payloads if t == ptype)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed: .ci/run installs it")
@pytest.mark.parametrize("path, hash_name, auth, hash_attr, auth_attr", [
    (ZEEK, "sha1", "psk", 2, 1),  # RFC 2409 app. A: SHA = 2, pre-shared key = 1
    (WS12620, "sha2-256", "xauth-init-psk", 4, 65001),  # SHA2-256 = 4, XAUTHInitPreShared = 65001
], ids=["zeek-aggressive", "wireshark-12620"])
def test_public_aggressive_captures_against_tshark(path, hash_name, auth, hash_attr, auth_attr):
    r = found(path)
    assert r.problems == [] and len(r.params) == 1
    p = r.params[0]
    ts = tshark_payloads(path)
    m1, m2 = ts[p.frames[0]], ts[p.frames[1]]
    # SA 1, KE 4, ID 5, HASH 8, NONCE 10; -1/-2 the cookies
    want = {"g_xr": body(m2, 4), "g_xi": body(m1, 4), "cky_r": body(m2, -2), "cky_i": body(m1, -1),
            "sai_b": body(m1, 1), "idir_b": body(m2, 5), "ni_b": body(m1, 10), "nr_b": body(m2, 10),
            "hash_r": body(m2, 8)}
    assert {f: getattr(p, f).hex() for f in FIELDS} == {f: v.hex() for f, v in want.items()}
    # the responder's SA payload holds the one chosen transform
    assert body(m2, -3) == bytes([hash_attr]) and body(m2, -4) == auth_attr.to_bytes(2, "big")
    assert (p.hash, p.auth_method) == (hash_name, auth)
    assert len(p.hash_r) == hashlib.new(hash_name.replace("sha2-", "sha")).digest_size


def test_sha2_exchange_is_said_and_left_out_of_the_cracker_formats():
    for fmt in ("psk-crack", "hashcat", "john"):
        r = run("--format", fmt, WS12620)
        assert r.exit_code == 0 and r.stdout == ""
        assert "frames 1,2" in r.stderr and "left out: hash sha2-256" in r.stderr and "MD5 and SHA1" in r.stderr
        assert "no IKEv1 Aggressive Mode pre-shared key parameters written (1 left out" in r.stderr
    rows = json.loads(run("--format", "json", WS12620).stdout)
    assert len(rows) == 1
    row = rows[0]
    assert (row["hash"], row["hashcat_mode"], row["tools"]) == ("sha2-256", None, [])
    assert set(row["not_for"]) == {"psk-crack", "hashcat", "john"}
    assert (row["initiator_id"], row["responder_id"]) == ("mpa@tablet.localdomain", "moon.localdomain")


# ----------------------------------------------------------------- formats, CLI
def test_formats_and_output_file(tmp_path):
    p = found(SS_CAP).params[0]
    line = run(SS_CAP).stdout
    assert line == ":".join(getattr(p, f).hex() for f in FIELDS) + "\n"
    assert re.fullmatch(r"([0-9a-f]+:){8}[0-9a-f]+\n", line)
    # hashcat -m 5300/5400 read psk-crack's line as it is
    hc = run("--format", "hashcat", SS_CAP)
    assert hc.stdout == line
    # ...but hashcat 6.2.6 does not crack 64 bytes of nonces (strongSwan's 2 x 32): said
    assert len(p.ni_b) + len(p.nr_b) == 64 and "hashcat 6.2.6 reads the line but does not find the key" in hc.stderr
    # John the Ripper: what its ikescan2john.py makes of psk-crack's line
    assert run("--format", "john", SS_CAP).stdout == "$ike$*0*" + line.rstrip("\n").replace(":", "*") + "\n"
    rows = json.loads(run("--format", "json", SS_CAP).stdout)
    assert rows[0]["frames"] == [3, 4] and rows[0]["captures"] == ["capture.pcap"] * 2
    assert rows[0]["hashcat_mode"] == 5400 and rows[0]["tools"] == ["psk-crack", "john"]
    assert {f: rows[0][f] for f in FIELDS} == {f: getattr(p, f).hex() for f in FIELDS}
    out = tmp_path / "h.txt"
    r = run("-o", out, SS_CAP)
    assert r.exit_code == 0 and r.stdout == "" and out.read_text() == line
    assert [x.name for x in tmp_path.iterdir()] == ["h.txt"]  # no temporary file left behind


def test_main_mode_yields_nothing():
    """Main Mode with a pre-shared key encrypts the IDs and the hashes."""
    r = found(MAIN_MODE)
    assert (r.params, r.problems) == ([], [])
    res = run(MAIN_MODE)
    assert res.exit_code == 0 and res.stdout == ""
    assert res.stderr == "ipsecpcap: no IKEv1 Aggressive Mode pre-shared key parameters written\n"
    assert run("--format", "json", MAIN_MODE).stdout == "[]\n"


def test_bad_input_is_one_line_and_exit_3(tmp_path):
    bad = tmp_path / "x.pcap"
    bad.write_text("not a capture\n")
    p = subprocess.run([sys.executable, "-c", "from ipsecpcap.cli import main; main()", "psk-hashes", str(bad)],
                       capture_output=True, text=True)
    assert p.returncode == 3 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("ipsecpcap: error: ")


# ------------------------------------------------ edited copies of the recording
def read_pcap(path: Path) -> tuple[bytes, list[list]]:
    """Classic little-endian pcap: the global header and [record header, data] per frame."""
    raw = path.read_bytes()
    assert raw[:4] == b"\xd4\xc3\xb2\xa1"
    off, recs = 24, []
    while off < len(raw):
        incl = struct.unpack_from("<I", raw, off + 8)[0]
        recs.append([bytearray(raw[off:off + 16]), bytearray(raw[off + 16:off + 16 + incl])])
        off += 16 + incl
    return raw[:24], recs


def write_pcap(path: Path, header: bytes, recs) -> Path:
    with open(path, "wb") as f:
        f.write(header)
        for hdr, data in recs:
            struct.pack_into("<I", hdr, 8, len(data))  # captured length; the original length stays
            f.write(bytes(hdr) + bytes(data))
    return path


def isakmp_offset(frame: bytes) -> int:
    # Ethernet (14), IPv4 header (IHL words), UDP (8), and the non-ESP marker on port 4500
    ihl = (frame[14] & 0x0F) * 4
    dport = struct.unpack_from("!H", frame, 14 + ihl + 2)[0]
    return 14 + ihl + 8 + (4 if dport == 4500 else 0)


def recording():
    header, recs = read_pcap(SS_CAP)
    return header, {i + 1: r for i, r in enumerate(recs)}  # frame 3: message 1, 4: message 2, 5: message 3


def test_message_2_missing_is_said(tmp_path):
    header, fr = recording()
    cap = write_pcap(tmp_path / "no-msg2.pcap", header, [r for n, r in fr.items() if n != 4])
    r = found(cap)
    assert r.params == [] and len(r.problems) == 1
    assert "message 2 (the responder's answer, with HASH_R) was not captured" in r.problems[0].reason
    res = run(cap)
    assert res.exit_code == 0 and res.stdout == ""
    assert "no-msg2.pcap frame 3: IKEv1 Aggressive Mode 192.0.2.1 -> 192.0.2.2" in res.stderr


def test_message_1_missing_is_said(tmp_path):
    header, fr = recording()
    cap = write_pcap(tmp_path / "no-msg1.pcap", header, [r for n, r in fr.items() if n != 3])
    r = found(cap)
    assert r.params == [] and len(r.problems) == 1
    assert "message 1" in r.problems[0].reason and "not captured" in r.problems[0].reason
    assert r.problems[0].frame == 3  # message 2 is the third frame of this copy


def test_retransmissions_make_one_line(tmp_path):
    header, fr = recording()
    recs = [fr[1], fr[2], fr[3], fr[3], fr[4], fr[3], fr[4], fr[5]] + [fr[n] for n in range(6, len(fr) + 1)]
    cap = write_pcap(tmp_path / "retrans.pcap", header, recs)
    r = found(cap)
    assert len(r.params) == 1 and r.problems == []
    assert r.params[0].frames == (3, 5) and r.params[0].retransmissions == 3
    assert r.params[0].values == found(SS_CAP).params[0].values
    assert len(run(cap).stdout.splitlines()) == 1


def test_message_2_with_other_bytes_is_noted(tmp_path):
    header, fr = recording()
    other = [bytearray(fr[4][0]), bytearray(fr[4][1])]
    other[1][-1] ^= 0xFF  # the last byte of HASH_R
    cap = write_pcap(tmp_path / "differ.pcap", header, [fr[1], fr[2], fr[3], fr[4], other, fr[5]])
    r = found(cap)
    assert len(r.params) == 1 and r.params[0].hash_r == found(SS_CAP).params[0].hash_r
    assert len(r.problems) == 1 and "seen again with other contents (frame 5)" in r.problems[0].reason


def test_truncated_message_2_is_said(tmp_path):
    header, fr = recording()
    cut = [fr[4][0], fr[4][1][:-8]]  # snap length: the HASH payload (the last one) loses 8 bytes
    cap = write_pcap(tmp_path / "cut.pcap", header, [fr[3], cut, fr[5]])
    r = found(cap)
    assert r.params == [] and len(r.problems) == 1
    assert r.problems[0].reason == "message 2 (frame 2): HASH payload cut short (truncated capture)"


def test_encrypted_message_2_is_said(tmp_path):
    header, fr = recording()
    enc = [fr[4][0], bytearray(fr[4][1])]
    off = isakmp_offset(enc[1])
    enc[1][off + 19] |= 0x01  # RFC 2408 3.1: the E(ncryption) flag
    ihl = (enc[1][14] & 0x0F) * 4
    enc[1][14 + ihl + 6:14 + ihl + 8] = b"\x00\x00"  # no UDP checksum (RFC 768), it no longer fits
    cap = write_pcap(tmp_path / "enc.pcap", header, [fr[3], enc, fr[5]])
    r = found(cap)
    assert r.params == [] and len(r.problems) == 1
    assert "message 2 is encrypted" in r.problems[0].reason


def test_several_exchanges_in_one_capture_and_across_captures(tmp_path):
    header, fr = recording()
    _, zeek = read_pcap(ZEEK)  # Ethernet too
    cap = write_pcap(tmp_path / "both.pcap", header, list(fr.values()) + zeek)
    one = found(cap)
    assert len(one.params) == 2 and one.problems == []
    apart = found(SS_CAP, ZEEK)
    assert [p.values for p in one.params] == [p.values for p in apart.params]
    assert [p.captures for p in apart.params] == [("capture.pcap",) * 2, (ZEEK.name,) * 2]
    assert len(run(cap).stdout.splitlines()) == 2


# --------------------------------------------------------------- tool limits
def params(**kw) -> PskParams:
    base = dict(captures=("c", "c"), frames=(1, 2), ts=0.0, initiator="a", initiator_port=500, responder="b",
                responder_port=500, ispi="00" * 8, rspi="11" * 8, initiator_id=None, responder_id=None,
                auth_method="psk", hash="sha1", prf="prf-hmac-sha1", retransmissions=0,
                g_xr=b"\x01" * 128, g_xi=b"\x02" * 128, cky_r=b"\x11" * 8, cky_i=b"\x00" * 8, sai_b=b"\x03" * 52,
                idir_b=b"\x04" * 12, ni_b=b"\x05" * 20, nr_b=b"\x06" * 20, hash_r=b"\x07" * 20)
    base.update(kw)
    return PskParams(**base)


def test_tool_limits():
    ok = params()  # MODP-1024, 20-byte nonces: every tool
    assert [tool_problem(ok, t) or tool_caveat(ok, t) for t in ("psk-crack", "hashcat", "john")] == [None] * 3
    md5 = params(hash="md5", prf="prf-hmac-md5", hash_r=b"\x07" * 16)
    assert md5.hashcat_mode == 5300 and tool_problem(md5, "psk-crack") is None
    # MODP-2048: g^xr and g^xi are 512 bytes together, over hashcat's 512 for all six fields
    big = params(g_xr=b"\x01" * 256, g_xi=b"\x02" * 256)
    assert "hashcat takes at most 512" in tool_problem(big, "hashcat") and tool_problem(big, "psk-crack") is None
    # MODP-8192: the line is longer than psk-crack's 4096-byte line buffer; john takes 2048 hex digits a field
    huge = params(g_xr=b"\x01" * 1024, g_xi=b"\x02" * 1024)
    assert "psk-crack reads at most 4094" in tool_problem(huge, "psk-crack") and tool_problem(huge, "john") is None
    assert "john takes at most 4095" in tool_problem(params(sai_b=b"\x03" * 2048), "john")
    assert "hashcat takes at most 64" in tool_problem(params(ni_b=b"\x05" * 40, nr_b=b"\x06" * 40), "hashcat")
    assert "HASH_R is 16 bytes, sha1 gives 20" in tool_problem(params(hash_r=b"\x07" * 16), "john")
    assert "PRF attribute" in tool_problem(params(prf="unknown-v1-prf-1"), "psk-crack")
    assert "takes only MD5 and SHA1" in tool_problem(params(hash=None), "hashcat")


# ------------------------------------------------------------------- hashcat
def rewrite(frame: bytes, new_bodies: dict[int, bytes]) -> bytearray:
    """The frame with some ISAKMP payload bodies replaced (by payload type),
    every length after them fixed: payload, ISAKMP (RFC 2408 3.1-3.2), UDP,
    IPv4 (and its header checksum); the UDP checksum is left out (0)."""
    off = isakmp_offset(frame)
    msg = bytes(frame[off:])
    out, pos, ptype = bytearray(msg[:28]), 28, msg[16]
    while ptype:
        nxt, _, length = struct.unpack_from("!BBH", msg, pos)
        body = new_bodies.get(ptype, msg[pos + 4:pos + length])
        out += struct.pack("!BBH", nxt, 0, 4 + len(body)) + body
        pos, ptype = pos + length, nxt
    struct.pack_into("!I", out, 24, len(out))
    f = bytearray(frame[:off]) + out
    ihl = (f[14] & 0x0F) * 4
    struct.pack_into("!H", f, 16, len(f) - 14)  # IPv4 total length
    struct.pack_into("!H", f, 24, 0)
    words = struct.unpack(f"!{ihl // 2}H", bytes(f[14:14 + ihl]))
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", f, 24, ~s & 0xFFFF)  # RFC 791 header checksum
    struct.pack_into("!HH", f, 14 + ihl + 4, len(f) - 14 - ihl, 0)  # UDP length, no checksum
    return f


def short_nonce_recording(tmp_path: Path) -> Path:
    """The recording's Aggressive Mode with 16-byte nonces, HASH_R recomputed
    with the recording's PSK (RFC 2409 5.4), everything else unchanged."""
    header, fr = recording()
    p = found(SS_CAP).params[0]
    ni, nr = p.ni_b[:16], p.nr_b[:16]
    data = p.g_xr + p.g_xi + p.cky_r + p.cky_i + p.sai_b + p.idir_b
    hash_r = prf(prf(psk(), ni + nr), data)
    m1 = [fr[3][0], rewrite(fr[3][1], {10: ni})]
    m2 = [fr[4][0], rewrite(fr[4][1], {10: nr, 8: hash_r})]
    return write_pcap(tmp_path / "short-nonces.pcap", header, [m1, m2])


@pytest.mark.skipif(shutil.which("psk-crack") is None, reason=NO_PSK_CRACK)
def test_short_nonce_copy_still_cracks_with_psk_crack(tmp_path):
    cap = short_nonce_recording(tmp_path)
    p = found(cap).params[0]
    assert (len(p.ni_b), len(p.nr_b)) == (16, 16) and tool_caveat(p, "hashcat") is None
    hashes, words = tmp_path / "h.txt", tmp_path / "w.txt"
    hashes.write_text(run(cap).stdout)
    words.write_text(psk().decode() + "\n")
    out = subprocess.run(["psk-crack", "-d", str(words), str(hashes)], capture_output=True, text=True).stdout
    assert f'key "{psk().decode()}" matches SHA1 hash {p.hash_r.hex()}' in out, out


def hashcat(tmp_path: Path, hashes: str, words: str) -> str:
    (tmp_path / "hc.txt").write_text(hashes)
    (tmp_path / "words.txt").write_text(words)
    p = subprocess.run(["hashcat", "-m", "5400", "-a", "0", "--potfile-disable", "--quiet",
                        "--session", f"ipsecpcap-test-{os.getpid()}", "--restore-disable", str(tmp_path / "hc.txt"), str(tmp_path / "words.txt")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    if "No OpenCL, Metal, HIP or CUDA installation found" in p.stdout + p.stderr:
        pytest.skip("hashcat has no OpenCL device (e.g. apt-get install pocl-opencl-icd ocl-icd-libopencl1)")
    return p.stdout


@pytest.mark.skipif(shutil.which("hashcat") is None,
                    reason="hashcat is not installed (optional; CI does not install it)")
def test_hashcat_mode_5400_cracks_our_line(tmp_path):
    cap = short_nonce_recording(tmp_path)
    out = hashcat(tmp_path, run("--format", "hashcat", cap).stdout, "secret\n" + psk().decode() + "\n")
    assert out.rstrip("\n").endswith(":" + psk().decode()), out
    # the recording itself (2 x 32-byte nonces): hashcat 6.2.6 reads it but never finds the key, as said
    version = subprocess.run(["hashcat", "--version"], capture_output=True, text=True).stdout.strip()
    if version.startswith("v6.2."):
        out = hashcat(tmp_path, run("--format", "hashcat", SS_CAP).stdout, psk().decode() + "\n")
        assert psk().decode() not in out


def test_damaged_messages_never_raise():
    """Random byte changes and cuts in the three Aggressive Mode messages: every
    outcome is parameters, a problem said, or nothing (another exchange or
    method); never an exception."""
    import random
    from types import SimpleNamespace

    from ipsecpcap.analysis import analyze_capture
    from ipsecpcap.dissectors.isakmp import parse_isakmp
    from ipsecpcap.tracker import IkeEvent

    # (analyze_capture keeps the bytes of every message; analyze, without IKE keys, not those
    # of encrypted ones, like the third here)
    events = sorted(analyze_capture(str(SS_CAP)).ike_events, key=lambda e: e.frame)[:3]
    rng = random.Random(2409)
    outcomes = set()
    for _ in range(300):
        damaged = []
        for ev in events:
            raw = bytearray(ev.raw)
            for _ in range(rng.choice((0, 0, 1, 3))):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            if rng.random() < 0.2:
                raw = raw[:rng.randrange(len(raw))]
            damaged.append(IkeEvent(0, ev.frame, ev.ts, ev.addrs, ev.sport, ev.dport, ev.marker, 0,
                                    parse_isakmp(bytes(raw)), bytes(raw)))
        r = psk_hashes(SimpleNamespace(tracker=SimpleNamespace(ike_events=damaged, captures=["x"])))
        for p in r.params:
            assert len(p.line().split(":")) == 9 and all(p.values[:4])
        outcomes.add((bool(r.params), bool(r.problems)))
    assert {(True, False), (False, True)} <= outcomes
