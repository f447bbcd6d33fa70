"""The algorithm registry: sizes per RFC, and the integrity engines against published vectors.

Vector origins are in fixtures/vectors/integrity.json (field ``origin``) and
fixtures/vectors/README.md.
"""
from __future__ import annotations

import pytest
from crypto_helpers import load_vectors, xcbc_reference

from ipsecpcap.crypto import registry

# canonical names of ipsecpcap/keymodel.py
ENC_NAMES = ["null", "aes-cbc", "aes-ctr", "aes-gcm8", "aes-gcm12", "aes-gcm16", "null-aes-gmac", "aes-ccm8",
             "aes-ccm12", "aes-ccm16", "chacha20-poly1305", "3des-cbc", "des-cbc"]
INTEG_NAMES = ["none", "hmac-md5-96", "hmac-sha1-96", "hmac-sha2-256-128", "hmac-sha2-384-192",
               "hmac-sha2-512-256", "aes-xcbc-96", "aes-cmac-96", "hmac-md5-128", "hmac-sha1-160",
               "hmac-sha2-256-96"]

# name: (block, IV on the wire, salt, ICV, key lengths without salt, aead) -- from the RFCs
ENC_SIZES = {
    "null": (1, 0, 0, 0, (0,), False),  # RFC 2410
    "aes-cbc": (16, 16, 0, 0, (16, 24, 32), False),  # RFC 3602 2.1, 2.4
    "aes-ctr": (1, 8, 4, 0, (16, 24, 32), False),  # RFC 3686 3, 5.1
    "aes-gcm8": (1, 8, 4, 8, (16, 24, 32), True),  # RFC 4106 3.1, 8.1
    "aes-gcm12": (1, 8, 4, 12, (16, 24, 32), True),
    "aes-gcm16": (1, 8, 4, 16, (16, 24, 32), True),
    "null-aes-gmac": (1, 8, 4, 16, (16, 24, 32), True),  # RFC 4543 3.1, 7.1
    "aes-ccm8": (1, 8, 3, 8, (16, 24, 32), True),  # RFC 4309 3.1, 7.1
    "aes-ccm12": (1, 8, 3, 12, (16, 24, 32), True),
    "aes-ccm16": (1, 8, 3, 16, (16, 24, 32), True),
    "chacha20-poly1305": (1, 8, 4, 16, (32,), True),  # RFC 7634 2, 4
    "3des-cbc": (8, 8, 0, 0, (24,), False),  # RFC 2451
    "des-cbc": (8, 8, 0, 0, (8,), False),  # RFC 2405
}
INTEG_SIZES = {  # name: (ICV bytes, key lengths or None for any)
    "none": (0, (0,)), "hmac-md5-96": (12, None), "hmac-sha1-96": (12, None),
    "hmac-sha2-256-128": (16, None), "hmac-sha2-384-192": (24, None), "hmac-sha2-512-256": (32, None),
    "aes-xcbc-96": (12, (16,)), "aes-cmac-96": (12, (16,)), "hmac-md5-128": (16, None),
    "hmac-sha1-160": (20, None), "hmac-sha2-256-96": (12, None),
}


def test_every_canonical_name_is_registered():
    assert set(ENC_NAMES) <= set(registry.ENC)
    assert set(INTEG_NAMES) <= set(registry.INTEG)


@pytest.mark.parametrize("name", ENC_NAMES)
def test_encryption_sizes(name):
    a = registry.ENC[name]
    assert (a.block, a.iv_len, a.salt_len, a.icv_len, a.key_lens, a.aead) == ENC_SIZES[name]
    assert a.name == name and a.rfc


@pytest.mark.parametrize("name", INTEG_NAMES)
def test_integrity_sizes(name):
    a = registry.INTEG[name]
    assert (a.icv_len, a.key_lens) == INTEG_SIZES[name]


def test_unchecked_icv_pseudo_algorithms():
    """Wireshark's "ANY <n> bit authentication [no checking]", tcpdump's "-hmac96": a skipped ICV."""
    for bits in (64, 96, 128, 192, 256, 160, 384):
        a = registry.integ_algo(f"any-{bits}")
        assert a.icv_len == bits // 8 and not a.checked and registry.new_mac(a, b"") is None
    for bad in ("any-7", "any-0", "any-x", "any-", "any-1024", None, 96):
        assert registry.integ_algo(bad) is None


INTEGRITY = load_vectors("integrity.json")


@pytest.mark.parametrize("v", INTEGRITY, ids=lambda v: f"{v['integ']}:{v['origin'][:40]}")
def test_integrity_known_answers(v):
    algo = registry.INTEG[v["integ"]]
    mac = registry.new_mac(algo, bytes.fromhex(v["key"]))
    data = bytes.fromhex(v["data"])
    assert mac.icv(data).hex() == v["icv"], v["origin"]
    # the engine takes the message in parts (ESP appends the ESN high bits as a second part)
    cut = len(data) // 3
    assert mac.icv(data[:cut], memoryview(data)[cut:]).hex() == v["icv"]
    assert mac.icv_len == len(bytes.fromhex(v["icv"]))


@pytest.mark.parametrize("v", [v for v in INTEGRITY if "full" in v], ids=lambda v: v["origin"][-15:])
def test_xcbc_full_mac_rfc3566(v):
    k, msg = bytes.fromhex(v["key"]), bytes.fromhex(v["data"])
    assert registry.aes_xcbc_mac(k, msg).hex() == v["full"]
    assert xcbc_reference(k, msg).hex() == v["full"]  # the tests' own reference agrees with the RFC too


def test_split_key_takes_the_salt_from_the_end():
    algo = registry.ENC["aes-gcm16"]
    assert registry.split_key(algo, bytes(range(20))) == (bytes(range(16)), bytes(range(16, 20)))
    assert registry.split_key(registry.ENC["aes-ccm8"], bytes(range(19)))[1] == bytes(range(16, 19))
    assert registry.split_key(registry.ENC["aes-cbc"], b"k" * 16) == (b"k" * 16, b"")


@pytest.mark.parametrize("name,length,ok", [
    ("aes-cbc", 16, True), ("aes-cbc", 24, True), ("aes-cbc", 32, True), ("aes-cbc", 20, False),
    ("aes-gcm16", 20, True), ("aes-gcm16", 36, True), ("aes-gcm16", 16, False), ("aes-gcm16", 32, False),
    ("aes-ccm8", 19, True), ("aes-ccm8", 20, False), ("chacha20-poly1305", 36, True),
    ("chacha20-poly1305", 32, False), ("3des-cbc", 24, True), ("3des-cbc", 16, False),
    ("des-cbc", 8, True), ("null", 0, True), ("null", 4, False), ("aes-ctr", 20, True),
    ("camellia-cbc", 16, False),
])
def test_encryption_key_problems(name, length, ok):
    secret = bytes([0xA5]) * length
    problem = registry.enc_problem(name, secret)
    assert (problem is None) is ok
    if problem:
        assert secret.hex() not in problem and "a5a5" not in problem.lower()  # never key bytes


def test_integrity_key_problems():
    assert registry.integ_problem("aes-xcbc-96", b"x" * 16) is None
    assert "16" in registry.integ_problem("aes-xcbc-96", b"x" * 20)
    assert registry.integ_problem("hmac-sha1-96", b"x" * 7) is None  # HMAC: any length (RFC 2104)
    assert registry.integ_problem("hmac-sha1-96", b"") is not None
    assert registry.integ_problem("hmac-whirlpool", b"x") is not None
    with pytest.raises(ValueError):
        registry.new_mac(registry.INTEG["aes-cmac-96"], b"short")


def test_hmac_long_key_is_hashed_first():
    # RFC 2104 section 2: keys longer than the block are hashed (RFC 4231 test case 6, 131-byte key)
    mac = registry.new_mac(registry.INTEG["hmac-sha2-256-128"], b"\xaa" * 131)
    assert mac.icv(b"Test Using Larger Than Block-Size Key - Hash Key First").hex() == \
        "60e431591ee0b67f0d8a26aacbf5b77f"
