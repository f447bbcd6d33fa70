"""EspCipher on real captures, with the keys their authors published.

References, each independent of ipsecpcap:
* packetgen-plugin-ipsec: every capture holds the cleartext packet its spec
  expects after decryption, next to the encrypted one (fixtures/public/
  packetgen-plugin-ipsec/KEYS.derived.txt);
* tcpdump: the upstream expected outputs (esp1.out, esp2.out, esp5.out) that
  tcpdump 4.99 prints with these keys;
* Wireshark: tshark 4.0's decrypted data (``-x``, "Decrypted Data"), and the
  string Wireshark's own test suite greps for (EXPECTED.derived.tsv);
* strongSwan: our recordings, keys from charon's logs (expected.json); tshark
  for the ciphers it knows.

Key files are parsed here (crypto_helpers.read_esp_sa / strongswan_keys), not
with the project's key loader.  ESP is cut out of the frames with dpkt.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil

import dpkt
import pytest
from crypto_helpers import PUBLIC, STRONGSWAN, esp_packets, frames, read_esp_sa, strongswan_keys, tshark_decrypted

from ipsecpcap.crypto.esp import EspCipher

PG = PUBLIC / "packetgen-plugin-ipsec"
TD = PUBLIC / "tcpdump"
WS = PUBLIC / "wireshark"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def ciphers(keys):
    return {k.spi: EspCipher(k) for k in keys}


def ip_frame(path, number: int) -> bytes:
    for n, buf in frames(path):
        if n == number:
            eth = dpkt.ethernet.Ethernet(buf)
            return bytes(eth.data)[:eth.data.len]
    raise KeyError(number)


# ----------------------------------------------------------------------------- packetgen


@pytest.mark.parametrize("capture,keyfile,enc", [
    ("esp4-cbc.pcapng", "keys.derived.esp_sa", "aes-cbc"),  # AES-128-CBC, no ICV
    ("esp4-ctr-hmac.pcapng", "keys-ctr.derived.esp_sa", "aes-ctr"),  # RFC 3686 + HMAC-SHA-256-96
    ("esp4-gcm.pcapng", "keys-gcm.derived.esp_sa", "aes-gcm16"),
    ("esp-tfc.pcapng", "keys.derived.esp_sa", "aes-gcm16"),  # 916 bytes of TFC padding inside
])
def test_packetgen_tunnel_equals_the_cleartext_frame(capture, keyfile, enc):
    keys = [k for k, _ in read_esp_sa(PG / keyfile)]
    by_spi = ciphers(keys)
    (n, _, esp), *others = list(esp_packets(PG / capture))
    assert n == 1 and {int.from_bytes(e[:4], "big") for _, _, e in others}.isdisjoint(by_spi)  # frame 3: no key
    c = by_spi[int.from_bytes(esp[:4], "big")]
    assert c.enc.name == enc
    r = c.open(esp)
    assert (r.status, r.next_header) == ("ok", 4), r.detail
    assert r.payload == ip_frame(PG / capture, 2)  # the spec's expected cleartext packet
    if capture == "esp-tfc.pcapng":
        assert (r.tfc_len, r.pad_len) == (916, 2)  # KEYS.derived.txt: 916 bytes of TFC padding, ESP padding 01 02
    else:
        assert r.tfc_len == 0
    assert c.verify(esp)


def test_packetgen_transport_esn_needs_the_esn_high_bits():
    """tshark 4.0 decrypts it but fails the ICV: it has no ESN option.  With seq_hi = 0 in the AAD it verifies."""
    by_spi = ciphers(k for k, _ in read_esp_sa(PG / "keys.derived.esp_sa"))
    found = [(n, esp) for n, _, esp in esp_packets(PG / "esp-transport-esn.pcapng")
             if int.from_bytes(esp[:4], "big") == 0xC84340A5]
    assert [n for n, _ in found] == [2]
    c, esp = by_spi[0xC84340A5], found[0][1]
    assert c.open(esp).status == "integrity_failure"  # 8-byte AAD: what tshark 4.0 does
    assert not c.verify(esp)
    r = c.open(esp, 0)  # KEYS.derived.txt: ESN, high-order 32 bits = 0
    assert (r.status, r.next_header) == ("ok", 1), r.detail  # transport mode, ICMP
    icmp = dpkt.icmp.ICMP(r.payload)
    assert icmp.type == dpkt.icmp.ICMP_ECHOREPLY
    assert c.verify(esp, 0) and not c.verify(esp, 1)


# ----------------------------------------------------------------------------- tcpdump

LINE = re.compile(r"^\s*(\d+)\s.*?: (?:IP (\S+) > (\S+): )?ESP\(spi=(0x[0-9a-f]+),seq=(0x[0-9a-f]+)\), length (\d+)")
ICMP = re.compile(r"IP (\S+) > (\S+): ICMP echo request, id (\d+), seq (\d+), length (\d+)$")


def tcpdump_expected(out_file: str) -> dict[int, tuple]:
    """frame -> (inner src, inner dst, icmp id, icmp seq, icmp length) from an upstream .out file."""
    res = {}
    for line in (TD / out_file).read_text().splitlines():
        m, i = LINE.match(line), ICMP.search(line)
        if m and i:
            res[int(m.group(1))] = (i.group(1), i.group(2), int(i.group(3)), int(i.group(4)), int(i.group(5)))
    return res


def icmp_summary(inner: bytes) -> tuple:
    ip = dpkt.ip.IP(inner)
    assert ip.p == 1 and len(inner) == ip.len
    echo = ip.data.data
    return (".".join(map(str, ip.src)), ".".join(map(str, ip.dst)), echo.id, echo.seq, len(ip.data))


@pytest.mark.parametrize("capture,keyfile,expected,integ", [
    ("02-sunrise-sunset-esp.pcap", "esp1-secrets.derived.esp_sa", "esp1.out", "any-96"),  # 3DES-CBC
    ("08-sunrise-sunset-aes.pcap", "esp-secrets.derived.esp_sa", "esp5.out", "any-96"),  # AES-256-CBC
])
@pytest.mark.parametrize("as_written", ["any-96", "hmac-sha1-96"])
def test_tcpdump_tunnels_match_tcpdump_output(capture, keyfile, expected, integ, as_written):
    """tcpdump's "-hmac96": a 12-byte ICV whose key was not published.  The Wireshark form of the
    key file says "ANY 96 bit authentication [no checking]" (any-96); a loader may also keep the
    HMAC name without a key.  Either way the ICV is skipped and the result says so."""
    written = [k for k, _ in read_esp_sa(TD / keyfile)]
    assert {k.integ for k in written} == {integ}
    keys = [dataclasses.replace(k, integ=as_written) for k in written]
    by_spi = ciphers(keys)
    want = tcpdump_expected(expected)
    got = {}
    for n, _, esp in esp_packets(TD / capture):
        c = by_spi[int.from_bytes(esp[:4], "big")]
        assert c.integ.name == as_written and c.icv_len == 12
        r = c.open(esp)
        assert (r.status, r.next_header) == ("ok", 4), (n, r.detail)
        assert "not checked" in r.detail
        got[n] = icmp_summary(r.payload)
    assert got == want and len(got) == 8


def test_tcpdump_nested_esp_in_esp():
    """08-sunrise-sunset-esp2: SA 0x12345678 carries IP/ESP SA 0xabcdabcd carrying the ICMP (esp2.out)."""
    by_spi = ciphers(k for k, _ in read_esp_sa(TD / "esp-secrets.derived.esp_sa"))
    got = {}
    for n, _, esp in esp_packets(TD / "08-sunrise-sunset-esp2.pcap"):
        outer = by_spi[0x12345678].open(esp)
        assert (outer.status, outer.next_header) == ("ok", 4)
        mid = dpkt.ip.IP(outer.payload)
        assert mid.p == 50 and ".".join(map(str, mid.dst)) == "192.0.1.1"
        inner_esp = bytes(mid)[mid.hl * 4:mid.len]
        inner = by_spi[int.from_bytes(inner_esp[:4], "big")].open(inner_esp)
        assert (inner.status, inner.next_header) == ("ok", 4)
        got[n] = icmp_summary(inner.payload)
    assert got == tcpdump_expected("esp2.out") and len(got) == 8


def test_tcpdump_espudp1_decrypts_with_the_esp1_key_only():
    """NAT-T (UDP 4500).  The README: the esp1 key decrypts it; esp-secrets.txt's key (upstream's test) does not."""
    right = ciphers(k for k, _ in read_esp_sa(TD / "esp1-secrets.derived.esp_sa"))
    wrong = ciphers(k for k, _ in read_esp_sa(TD / "esp-secrets.derived.esp_sa"))
    pkts = list(esp_packets(TD / "espudp1.pcap"))
    assert len(pkts) == 8
    for n, _, esp in pkts:
        r = right[0x12345678].open(esp)
        assert (r.status, r.next_header) == ("ok", 4)
        assert icmp_summary(r.payload)[:2] == ("192.0.2.1", "192.0.1.1")
        # no ICV to check: the padding is the only evidence, and the wrong key fails it
        assert wrong[0x12345678].open(esp).status == "bad_padding"


# ----------------------------------------------------------------------------- Wireshark


def test_wireshark_esp_bug_12671():
    """AES-CBC + HMAC-SHA1-96 both ways; the ICV really is checked here."""
    by_spi = ciphers(k for k, _ in read_esp_sa(WS / "esp_sa.tmpl"))
    expected = next(line.split("\t")[-1] for line in (WS / "EXPECTED.derived.tsv").read_text().splitlines()
                    if line.startswith("esp-bug-12671"))
    seen = set()
    for n, _, esp in esp_packets(WS / "esp-bug-12671.pcapng.gz"):
        c = by_spi[int.from_bytes(esp[:4], "big")]
        assert c.integ.name == "hmac-sha1-96"
        r = c.open(esp)
        assert (r.status, r.next_header, r.detail) == ("ok", 4, ""), n
        assert bytes.fromhex(expected) in r.payload  # what Wireshark's test suite looks for
        assert dpkt.ip.IP(r.payload).p == 1
        seen.add(int.from_bytes(esp[:4], "big"))
        bad = bytearray(esp)
        bad[-1] ^= 0x80
        assert c.open(bytes(bad)).status == "integrity_failure"
    assert seen == {0x070883C2, 0xC254FE64}


# ----------------------------------------------------------------------------- strongSwan

SCENARIOS = sorted(p.name for p in STRONGSWAN.iterdir() if (p / "capture.pcap").exists())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_strongswan_every_esp_packet_verifies_and_decrypts(scenario):
    d = STRONGSWAN / scenario
    exp = json.loads((d / "expected.json").read_text())
    keys = strongswan_keys(d)
    by_spi = ciphers(keys)
    assert all(c.problem is None for c in by_spi.values())
    per_spi: dict[str, int] = {}
    for n, outer, esp in esp_packets(d / "capture.pcap"):
        spi = int.from_bytes(esp[:4], "big")
        c = by_spi[spi]
        r = c.open(esp)
        assert (r.status, r.next_header, r.detail, r.tfc_len) == ("ok", 4, "", 0), (n, hex(spi))
        inner = dpkt.ip.IP(r.payload)
        assert len(r.payload) == inner.len and inner.p in (1, 6, 17)
        addrs = {".".join(map(str, inner.src)), ".".join(map(str, inner.dst))}
        assert addrs == {"10.1.0.1", "10.2.0.1"}  # the two protected subnets (tunnel mode)
        per_spi[f"0x{spi:08x}"] = per_spi.get(f"0x{spi:08x}", 0) + 1
    assert per_spi == exp["capture"]["esp_per_spi"]  # every ESP packet tshark counted, fragments reassembled


# ----------------------------------------------------------------------------- against tshark

TSHARK_CASES = [
    ("wireshark", WS / "esp-bug-12671.pcapng.gz", WS / "esp_sa.tmpl"),
    ("tcpdump-espudp1", TD / "espudp1.pcap", TD / "esp1-secrets.derived.esp_sa"),
    ("tcpdump-esp2-nested", TD / "08-sunrise-sunset-esp2.pcap", TD / "esp-secrets.derived.esp_sa"),
    ("packetgen-tfc", PG / "esp-tfc.pcapng", PG / "keys.derived.esp_sa"),
    ("packetgen-ctr-hmac", PG / "esp4-ctr-hmac.pcapng", PG / "keys-ctr.derived.esp_sa"),
    ("strongswan-gcm", STRONGSWAN / "ikev2-gcm" / "capture.pcap", STRONGSWAN / "ikev2-gcm" / "esp_sa"),
    ("strongswan-natt-fragments", STRONGSWAN / "ikev2-natt" / "capture.pcap", STRONGSWAN / "ikev2-natt" / "esp_sa"),
    ("strongswan-ikev1-sha1", STRONGSWAN / "ikev1-aggressive-psk" / "capture.pcap",
     STRONGSWAN / "ikev1-aggressive-psk" / "esp_sa"),
]


@needs_tshark
@pytest.mark.parametrize("name,capture,keyfile", TSHARK_CASES, ids=[c[0] for c in TSHARK_CASES])
def test_decrypted_bytes_equal_tsharks(name, capture, keyfile):
    entries = read_esp_sa(keyfile)
    by_spi = ciphers(k for k, _ in entries)
    theirs = tshark_decrypted(capture, [line for _, line in entries])
    compared = 0
    for n, _, esp in esp_packets(capture):
        c = by_spi.get(int.from_bytes(esp[:4], "big"))
        if c is None:  # packetgen's frame 3: no published key, neither decrypts it
            assert n not in theirs
            continue
        blocks = theirs.get(n)
        assert blocks, f"tshark did not decrypt frame {n}"
        r = c.open(esp)
        assert r.status == "ok"
        data = blocks[0]  # the outermost ESP of the frame
        # tshark's "Decrypted Data" is the plaintext with TFC, padding, pad length and next header
        assert data[:len(r.payload)] == r.payload, n
        assert (data[-2], data[-1]) == (r.pad_len, r.next_header), n
        assert len(data) == len(r.payload) + r.tfc_len + r.pad_len + 2, n
        compared += 1
    assert compared >= 1
