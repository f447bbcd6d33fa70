"""EspCipher: published ESP vectors, a reference encoder, tampering, wrong keys, the trailer rules, fuzzing.

Vector origins: fixtures/vectors/esp_packets.json and ciphers.json (field
``origin``) and fixtures/vectors/README.md.  Packets for algorithms without a
published ESP packet come from the reference encoder in crypto_helpers.py.
"""
from __future__ import annotations

import array
import random

import dpkt
import pytest
from crypto_helpers import HMACS, esp_encode, icv_reference, key, load_vectors, random_key

from ipsecpcap.crypto.esp import DEFAULT_PAD, EspCipher, EspOpened

STATUSES = {"ok", "integrity_failure", "bad_padding", "bad_length", "unsupported"}
AEADS = ["aes-gcm8", "aes-gcm12", "aes-gcm16", "null-aes-gmac", "aes-ccm8", "aes-ccm12", "aes-ccm16",
         "chacha20-poly1305"]
PLAIN = ["null", "aes-cbc", "aes-ctr", "3des-cbc", "des-cbc"]
CHECKED = list(HMACS) + ["aes-xcbc-96", "aes-cmac-96"]
COMBOS = [(e, "none") for e in AEADS] + [(e, i) for e in PLAIN for i in ["none"] + CHECKED]
AUTHENTICATED = [(e, i) for e, i in COMBOS if i != "none" or e in AEADS]


def inner_ipv4(rng: random.Random, size: int = 64) -> bytes:
    icmp = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=rng.randrange(65536), seq=1,
                                                          data=rng.randbytes(size)))
    ip = dpkt.ip.IP(src=b"\x0a\x01\x00\x01", dst=b"\x0a\x02\x00\x01", p=1, ttl=64, data=icmp)
    ip.len = len(ip)
    return bytes(ip)


def inner_ipv6(rng: random.Random, size: int = 40) -> bytes:
    udp = dpkt.udp.UDP(sport=1234, dport=9000, data=rng.randbytes(size))
    udp.ulen = len(udp)
    ip6 = dpkt.ip6.IP6(src=bytes(15) + b"\x01", dst=bytes(15) + b"\x02", nxt=17, hlim=64, data=udp)
    ip6.plen = len(udp)
    return bytes(ip6)


# ----------------------------------------------------------------------------- published vectors

ESP_PACKETS = load_vectors("esp_packets.json")


@pytest.mark.parametrize("v", ESP_PACKETS, ids=lambda v: v["id"])
def test_published_esp_packets(v):
    c = EspCipher(key(v["enc"], bytes.fromhex(v["enc_key"]), v["integ"], bytes.fromhex(v["integ_key"])))
    esp, hi = bytes.fromhex(v["esp"]), v["seq_hi"]
    if "plaintext" in v:
        pt = bytes.fromhex(v["plaintext"])
        pad, nh = pt[-2], pt[-1]
        payload = pt[:-2 - pad]
        assert pt[-2 - pad:-2] == DEFAULT_PAD[:pad]
    else:
        payload, nh, pad = bytes.fromhex(v["payload"]), v["next_header"], None
    r = c.open(esp, hi)
    assert (r.status, r.next_header, r.tfc_len) == ("ok", nh, 0), r.detail
    assert r.payload == payload
    if pad is not None:
        assert r.pad_len == pad
    assert c.verify(esp, hi)
    if "draft_fields" in v:  # the packet carries SPI, the low 32 bits of the sequence number and the IV
        d = v["draft_fields"]
        assert (esp[:4].hex(), esp[4:8].hex(), esp[8:16].hex()) == (d["spi"], d["seq"][-8:], d["nonce"][8:])
    if v["enc"] in AEADS:
        # the AAD carries the sequence number: the wrong ESN assumption fails the tag
        wrong = None if hi is not None else 0x1
        assert c.open(esp, wrong).status == "integrity_failure"
        assert not c.verify(esp, wrong)


def test_published_vectors_cover_esn_and_all_gcm_key_sizes():
    gcm = [v for v in ESP_PACKETS if v["enc"] == "aes-gcm16"]
    assert {len(v["enc_key"]) // 2 - 4 for v in gcm} == {16, 24, 32}
    assert {v["seq_hi"] for v in gcm} >= {None, 0, 0x156F3126, 0xFFFFFFFF}


CIPHERS = load_vectors("ciphers.json")


@pytest.mark.parametrize("v", CIPHERS, ids=lambda v: v["origin"][:40])
def test_cipher_known_answers(v):
    """Below the ESP layer: the key split, the nonce / counter block and the chaining."""
    c = EspCipher(key(v["enc"], bytes.fromhex(v["enc_key"])))
    iv, ct, pt = (bytes.fromhex(v[f]) for f in ("iv", "ciphertext", "plaintext"))
    if v["enc"].startswith("aes-ccm"):  # RFC 4309 nonce = 3-byte salt (end of the key material) | IV
        assert c._aead.decrypt(c._salt + iv, ct, bytes.fromhex(v["aad"]) or None) == pt
        return
    pkt = b"\x00\x00\x00\x01\x00\x00\x00\x01" + iv + ct
    assert c._plain(memoryview(pkt), None) == pt
    # the CBC context is kept across packets: a second packet decrypts the same
    assert c._plain(memoryview(pkt), None) == pt


# ----------------------------------------------------------------------------- reference encoder


@pytest.mark.parametrize("enc,integ", COMBOS)
@pytest.mark.parametrize("seq_hi", [None, 0x01020304])
def test_reference_packets(enc, integ, seq_hi):
    rng = random.Random(f"{enc}/{integ}/{seq_hi}")
    ek, ik = random_key(enc, integ, rng.randbytes)
    c = EspCipher(key(enc, ek, integ, ik))
    for inner, nh in ((inner_ipv4(rng, rng.randrange(0, 300)), 4), (inner_ipv6(rng, rng.randrange(0, 300)), 41)):
        pkt = esp_encode(enc, ek, integ, ik, inner, nh, seq=rng.randrange(1, 2**32), seq_hi=seq_hi,
                         rng=rng.randbytes)
        r = c.open(pkt, seq_hi)
        assert (r.status, r.next_header, r.payload, r.tfc_len) == ("ok", nh, inner, 0), r.detail
        assert c.verify(pkt, seq_hi)
        assert c.open(bytearray(pkt), seq_hi).payload == inner
        assert c.open(memoryview(b"xx" + pkt)[2:], seq_hi).payload == inner
        if (enc, integ) in AUTHENTICATED:  # the ESN high half is authenticated
            other = None if seq_hi is not None else 7
            assert c.open(pkt, other).status == "integrity_failure"
        else:
            assert "unauthenticated" in r.detail


@pytest.mark.parametrize("enc,integ", AUTHENTICATED)
def test_one_tampered_packet_per_integrity_algorithm(enc, integ):
    rng = random.Random(f"tamper/{enc}/{integ}")
    ek, ik = random_key(enc, integ, rng.randbytes)
    c = EspCipher(key(enc, ek, integ, ik))
    pkt = esp_encode(enc, ek, integ, ik, inner_ipv4(rng), 4, rng=rng.randbytes)
    assert c.open(pkt).status == "ok"
    icv = c.icv_len
    body_end = len(pkt) - icv
    for where in (4, 8 + c.iv_len + 3, body_end - 1, body_end, len(pkt) - 1):  # seq, ciphertext, trailer, ICV
        bad = bytearray(pkt)
        bad[where] ^= 0x01
        r = c.open(bytes(bad))
        assert r == EspOpened(r.status, None, None, None, r.detail) and r.status == "integrity_failure", where
        assert not c.verify(bytes(bad))


@pytest.mark.parametrize("enc,integ", AUTHENTICATED)
def test_wrong_key_never_gives_a_payload(enc, integ):
    rng = random.Random(f"wrong/{enc}/{integ}")
    ek, ik = random_key(enc, integ, rng.randbytes)
    ek2, ik2 = random_key(enc, integ, rng.randbytes)
    right, wrong = EspCipher(key(enc, ek, integ, ik)), EspCipher(key(enc, ek2, integ, ik2))
    for seq in range(1, 21):
        pkt = esp_encode(enc, ek, integ, ik, inner_ipv4(rng, rng.randrange(200)), 4, seq=seq, rng=rng.randbytes)
        assert right.open(pkt).status == "ok"
        r = wrong.open(pkt)
        assert (r.status, r.payload, r.next_header) == ("integrity_failure", None, None)
        assert not wrong.verify(pkt)
    if integ != "none":  # right encryption key, wrong integrity key: still refused before decrypting
        half = EspCipher(key(enc, ek, integ, ik2))
        assert half.open(pkt).status == "integrity_failure"


# ----------------------------------------------------------------------------- trailer rules


def test_non_default_padding_is_reported_but_ok_when_authenticated():
    rng = random.Random(1)
    ek, ik = rng.randbytes(16), rng.randbytes(20)
    inner = inner_ipv4(rng, 60)  # 88 + 2 -> 6 bytes of padding for AES-CBC
    pkt = esp_encode("aes-cbc", ek, "hmac-sha1-96", ik, inner, 4, pad=b"\xee" * 6, rng=rng.randbytes)
    r = EspCipher(key("aes-cbc", ek, "hmac-sha1-96", ik)).open(pkt)
    assert (r.status, r.payload, r.pad_len) == ("ok", inner, 6)
    assert "padding" in r.detail


def test_non_default_padding_without_integrity_is_bad_padding():
    rng = random.Random(2)
    ek = rng.randbytes(16)
    pkt = esp_encode("aes-cbc", ek, "none", b"", inner_ipv4(rng, 60), 4, pad=b"\xee" * 6, rng=rng.randbytes)
    r = EspCipher(key("aes-cbc", ek)).open(pkt)
    assert (r.status, r.payload, r.pad_len) == ("bad_padding", None, 6)


def test_pad_length_beyond_the_plaintext_is_bad_padding():
    rng = random.Random(3)
    ik = rng.randbytes(20)
    body = b"\x00\x00\x00\x09\x00\x00\x00\x01" + b"abcd" + bytes([200, 4])  # NULL encryption (RFC 2410)
    pkt = body + icv_reference("hmac-sha1-96", ik, body)
    r = EspCipher(key("null", b"", "hmac-sha1-96", ik)).open(pkt)
    assert (r.status, r.pad_len, r.payload) == ("bad_padding", 200, None)


def test_null_encryption_payload_is_the_cleartext():
    rng = random.Random(4)
    ik = rng.randbytes(32)
    inner = inner_ipv4(rng, 10)
    pkt = esp_encode("null", b"", "hmac-sha2-256-128", ik, inner, 4)
    assert inner in pkt  # RFC 2410: sent in the clear
    r = EspCipher(key("null", b"", "hmac-sha2-256-128", ik)).open(pkt)
    assert (r.status, r.payload, r.next_header) == ("ok", inner, 4)


def test_dummy_packet_next_header_59():
    rng = random.Random(5)
    ek = rng.randbytes(20)
    pkt = esp_encode("aes-gcm16", ek, "none", b"", rng.randbytes(30), 59, rng=rng.randbytes)
    r = EspCipher(key("aes-gcm16", ek)).open(pkt)
    assert (r.status, r.next_header) == ("ok", 59) and "dummy" in r.detail


@pytest.mark.parametrize("make,nh", [(inner_ipv4, 4), (inner_ipv6, 41)])
def test_tfc_padding_after_an_inner_packet_is_cut(make, nh):
    rng = random.Random(6)
    ek = rng.randbytes(36)
    inner = make(rng, 50)
    pkt = esp_encode("chacha20-poly1305", ek, "none", b"", inner + bytes(300), nh, rng=rng.randbytes)
    r = EspCipher(key("chacha20-poly1305", ek)).open(pkt)
    assert (r.status, r.payload, r.tfc_len) == ("ok", inner, 300)
    assert "TFC" in r.detail


def test_tfc_padding_after_a_transport_udp_datagram_is_cut():
    rng = random.Random(7)
    ek = rng.randbytes(20)
    udp = dpkt.udp.UDP(sport=500, dport=53, data=b"query")
    udp.ulen = len(udp)
    pkt = esp_encode("aes-gcm16", ek, "none", b"", bytes(udp) + bytes(64), 17, rng=rng.randbytes)
    r = EspCipher(key("aes-gcm16", ek)).open(pkt)
    assert (r.payload, r.tfc_len) == (bytes(udp), 64)


def test_inner_length_longer_than_payload_is_reported_not_cut():
    rng = random.Random(8)
    ek = rng.randbytes(20)
    inner = bytearray(inner_ipv4(rng, 20))
    inner[2:4] = (len(inner) + 10).to_bytes(2, "big")
    pkt = esp_encode("aes-gcm16", ek, "none", b"", bytes(inner), 4, rng=rng.randbytes)
    r = EspCipher(key("aes-gcm16", ek)).open(pkt)
    assert (r.status, r.payload, r.tfc_len) == ("ok", bytes(inner), 0) and "exceeds" in r.detail


def test_unaligned_trailer_is_reported():
    rng = random.Random(9)
    ek = rng.randbytes(20)
    pkt = esp_encode("aes-gcm16", ek, "none", b"", b"abc", 17, pad=b"", rng=rng.randbytes)  # 5 bytes
    r = EspCipher(key("aes-gcm16", ek)).open(pkt)
    assert r.status == "ok" and "aligned" in r.detail


# ----------------------------------------------------------------------------- lengths, unsupported


@pytest.mark.parametrize("enc,integ", COMBOS)
def test_every_truncation_is_bad_length_or_fails_integrity(enc, integ):
    rng = random.Random(f"trunc/{enc}/{integ}")
    ek, ik = random_key(enc, integ, rng.randbytes)
    c = EspCipher(key(enc, ek, integ, ik))
    pkt = esp_encode(enc, ek, integ, ik, inner_ipv4(rng, 40), 4, rng=rng.randbytes)
    minimum = 8 + c.iv_len + c.icv_len + max(2, c.block)
    for n in range(len(pkt)):
        r = c.open(pkt[:n])
        if n < minimum:
            assert r.status == "bad_length", n
        elif (enc, integ) in AUTHENTICATED:
            assert r.status in ("bad_length", "integrity_failure"), (n, r)
        assert r.status in STATUSES and (r.payload is None) == (r.status != "ok")


def test_cbc_ciphertext_not_a_block_multiple_is_bad_length():
    rng = random.Random(10)
    ek, ik = rng.randbytes(16), rng.randbytes(20)
    pkt = esp_encode("aes-cbc", ek, "hmac-sha1-96", ik, inner_ipv4(rng), 4, rng=rng.randbytes)
    bad = pkt[:40] + b"\x00" * 5 + pkt[40:]
    r = EspCipher(key("aes-cbc", ek, "hmac-sha1-96", ik)).open(bad)
    assert r.status == "bad_length" and "multiple" in r.detail


SECRET = bytes.fromhex("5ec12e75ec12e75ec12e75ec12e75ec1")


@pytest.mark.parametrize("k", [
    key("camellia-cbc", SECRET), key("aes-cbc", SECRET, "hmac-whirlpool", SECRET),
    key("aes-cbc", SECRET[:15]), key("aes-gcm16", SECRET), key("aes-gcm16", SECRET + b"salt", "hmac-sha1-96", SECRET),
    key("aes-cbc", SECRET, "aes-xcbc-96", SECRET + b"x"), key("chacha20-poly1305", SECRET * 2),
    key("aes-cbc", None), key("aes-cbc", SECRET.hex()),
    key(None, SECRET),
])
def test_unusable_keys_are_unsupported_never_raise(k):
    c = EspCipher(k)
    assert c.problem
    r = c.open(b"\x00" * 100)
    assert (r.status, r.payload) == ("unsupported", None)
    assert SECRET.hex() not in r.detail and "5ec1" not in r.detail
    assert not c.verify(b"\x00" * 100)


@pytest.mark.parametrize("integ", ["hmac-sha1-96", "any-96"])
def test_icv_without_its_key_is_skipped_and_said_so(integ):
    """tcpdump -E "3des-cbc-hmac96:KEY" and Wireshark "ANY 96 bit authentication [no checking]"."""
    rng = random.Random(integ)
    ek, ik = rng.randbytes(24), rng.randbytes(20)
    inner = inner_ipv4(rng)
    pkt = esp_encode("3des-cbc", ek, "hmac-sha1-96", ik, inner, 4, rng=rng.randbytes)
    c = EspCipher(key("3des-cbc", ek, integ, b""))
    assert c.problem is None and not c.authenticated and c.icv_len == 12
    r = c.open(pkt)
    assert (r.status, r.payload) == ("ok", inner) and "not checked" in r.detail
    bad = pkt[:-1] + bytes([pkt[-1] ^ 1])
    assert c.open(bad).status == "ok"  # the ICV is not looked at
    assert c.verify(pkt)


def test_seq_hi_out_of_range_does_not_raise():
    c = EspCipher(key("aes-gcm16", bytes(20)))
    for hi in (-1, 2**32, "0", 1.5):
        assert c.open(bytes(64), hi).status == "unsupported"
        assert c.verify(bytes(64), hi) is False


# ----------------------------------------------------------------------------- verify() without integrity


@pytest.mark.parametrize("enc", ["aes-cbc", "3des-cbc", "aes-ctr"])
def test_verify_heuristic_without_integrity(enc):
    rng = random.Random(f"heur/{enc}")
    ek, _ = random_key(enc, "none", rng.randbytes)
    good = EspCipher(key(enc, ek))
    pkts = [esp_encode(enc, ek, "none", b"", inner_ipv4(rng, rng.randrange(100)), 4, rng=rng.randbytes)
            for _ in range(20)]
    assert all(good.verify(p) for p in pkts)
    passed = sum(EspCipher(key(enc, random_key(enc, "none", rng.randbytes)[0])).verify(p)
                 for _ in range(100) for p in pkts)
    assert passed <= 5  # of 2000 wrong-key trials; expected ~0.5 (no padding and a plausible next header: ~1/4000)


# ----------------------------------------------------------------------------- fuzzing


@pytest.mark.parametrize("enc,integ", COMBOS)
def test_fuzz_never_raises(enc, integ):
    rng = random.Random(f"fuzz/{enc}/{integ}")
    ek, ik = random_key(enc, integ, rng.randbytes)
    c = EspCipher(key(enc, ek, integ, ik))
    authenticated = (enc, integ) in AUTHENTICATED
    pkt = esp_encode(enc, ek, integ, ik, inner_ipv4(rng, 80), 4, rng=rng.randbytes)
    inputs = [rng.randbytes(rng.randrange(0, 200)) for _ in range(150)]
    for _ in range(150):  # bit flips and byte edits of a valid packet, random cuts
        bad = bytearray(pkt)
        for _ in range(rng.randrange(1, 4)):
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        inputs.append(bytes(bad))
        inputs.append(pkt[:rng.randrange(len(pkt))])
        inputs.append(pkt + rng.randbytes(rng.randrange(1, 20)))
    for data in inputs:
        for hi in (None, rng.randrange(2**32)):
            r = c.open(data, hi)
            assert isinstance(r, EspOpened) and r.status in STATUSES
            assert (r.payload is None) == (r.status != "ok")
            assert isinstance(c.verify(data, hi), bool)
            if authenticated and data != pkt:
                assert r.status != "ok", "a modified packet passed integrity"


def test_odd_inputs_never_raise():
    c = EspCipher(key("aes-cbc", bytes(16), "hmac-sha1-96", bytes(20)))
    for data in ("text", None, 5, array.array("H", range(50)), memoryview(bytes(64)).cast("I"), b"", bytearray(3)):
        r = c.open(data)
        assert r.status in STATUSES and r.payload is None
        assert c.verify(data) is False


def test_cipher_is_prepared_once():
    # the per-packet path builds no new AEAD / HMAC / CBC objects (prepared in __init__)
    c = EspCipher(key("aes-gcm16", bytes(20)))
    aead = c._aead
    rng = random.Random(11)
    for _ in range(3):
        c.open(esp_encode("aes-gcm16", bytes(20), "none", b"", inner_ipv4(rng), 4, rng=rng.randbytes))
    assert c._aead is aead
