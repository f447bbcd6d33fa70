"""Canonical algorithm names across IKEv1, IKEv2 and ESP/AH.

The IANA registries name the same algorithm differently per protocol
(IKEv2 ``ENCR_AES_CBC`` with a Key Length attribute, IKEv1 phase-1
``AES-CBC`` with a Key Length attribute, IPsec DOI ``ESP_AES``).  The tables
use one lower-case spelling, close to strongSwan's proposal keywords, so that
rules and users compare like with like: ``aes-cbc-256``, ``3des-cbc``,
``aes-gcm16-128``, ``chacha20-poly1305``, ``hmac-sha2-256-128``,
``prf-hmac-sha2-256``.  Unknown numbers give ``unknown-<kind>-<n>``.
"""
from __future__ import annotations

# IKEv2 Transform Type 1 (RFC 7296 3.3.2, IANA "Transform Type 1 - Encryption
# Algorithm Transform IDs"); the same numbers are used by the IPsec DOI ESP
# transform IDs of IKEv1 (RFC 2407 4.4.4) for the algorithms both have.
ENCR = {
    1: "des-iv64", 2: "des-cbc", 3: "3des-cbc", 4: "rc5", 5: "idea", 6: "cast", 7: "blowfish",
    8: "3idea", 9: "des-iv32", 10: "rc4", 11: "null", 12: "aes-cbc", 13: "aes-ctr",
    14: "aes-ccm8", 15: "aes-ccm12", 16: "aes-ccm16", 18: "aes-gcm8", 19: "aes-gcm12",
    20: "aes-gcm16", 21: "null-aes-gmac", 22: "seed-cbc", 23: "camellia-cbc", 24: "camellia-ctr",
    25: "camellia-ccm8", 26: "camellia-ccm12", 27: "camellia-ccm16", 28: "chacha20-poly1305",
}
# Ciphers whose key length is chosen by a Key Length attribute
VARIABLE_KEY = {"aes-cbc", "aes-ctr", "aes-ccm8", "aes-ccm12", "aes-ccm16", "aes-gcm8", "aes-gcm12",
                "aes-gcm16", "null-aes-gmac", "camellia-cbc", "camellia-ctr", "camellia-ccm8",
                "camellia-ccm12", "camellia-ccm16", "blowfish", "cast", "rc5"}
AEAD = {"aes-ccm8", "aes-ccm12", "aes-ccm16", "aes-gcm8", "aes-gcm12", "aes-gcm16",
        "chacha20-poly1305", "null-aes-gmac", "camellia-ccm8", "camellia-ccm12", "camellia-ccm16"}

# IKEv2 Transform Type 3 (integrity)
INTEG = {
    0: "none", 1: "hmac-md5-96", 2: "hmac-sha1-96", 3: "des-mac", 4: "kpdk-md5", 5: "aes-xcbc-96",
    6: "hmac-md5-128", 7: "hmac-sha1-160", 8: "aes-cmac-96", 9: "aes-128-gmac", 10: "aes-192-gmac",
    11: "aes-256-gmac", 12: "hmac-sha2-256-128", 13: "hmac-sha2-384-192", 14: "hmac-sha2-512-256",
}
# IKEv2 Transform Type 2 (PRF)
PRF = {1: "prf-hmac-md5", 2: "prf-hmac-sha1", 3: "prf-hmac-tiger", 4: "prf-aes128-xcbc",
       5: "prf-hmac-sha2-256", 6: "prf-hmac-sha2-384", 7: "prf-hmac-sha2-512", 8: "prf-aes128-cmac"}

# IKEv1 phase 1 (RFC 2409 appendix A)
V1_ENCR = {1: "des-cbc", 2: "idea-cbc", 3: "blowfish-cbc", 4: "rc5-r16-b64-cbc", 5: "3des-cbc",
           6: "cast-cbc", 7: "aes-cbc", 8: "camellia-cbc"}
V1_HASH = {1: "md5", 2: "sha1", 3: "tiger", 4: "sha2-256", 5: "sha2-384", 6: "sha2-512"}
V1_AUTH = {1: "psk", 2: "dss-sig", 3: "rsa-sig", 4: "rsa-enc", 5: "rsa-enc-revised", 6: "elgamal-enc",
           7: "elgamal-enc-revised", 8: "ecdsa-sig", 9: "ecdsa-256", 10: "ecdsa-384", 11: "ecdsa-521",
           64221: "hybrid-init-rsa", 64222: "hybrid-resp-rsa", 64223: "hybrid-init-dss",
           64224: "hybrid-resp-dss", 65001: "xauth-init-psk", 65002: "xauth-resp-psk",
           65003: "xauth-init-dss", 65004: "xauth-resp-dss", 65005: "xauth-init-rsa",
           65006: "xauth-resp-rsa", 65007: "xauth-init-rsa-enc", 65008: "xauth-resp-rsa-enc",
           65009: "xauth-init-rsa-enc-revised", 65010: "xauth-resp-rsa-enc-revised"}
# IPsec DOI Authentication Algorithm attribute (RFC 2407 4.5 and later)
V1_IPSEC_AUTH = {1: "hmac-md5-96", 2: "hmac-sha1-96", 3: "des-mac", 4: "kpdk-md5",
                 5: "hmac-sha2-256-128", 6: "hmac-sha2-384-192", 7: "hmac-sha2-512-256",
                 8: "hmac-ripemd160-96", 9: "aes-xcbc-96", 11: "aes-128-gmac", 12: "aes-192-gmac",
                 13: "aes-256-gmac"}
# IPsec DOI AH transform IDs (RFC 2407 4.4.3)
V1_AH = {2: "hmac-md5-96", 3: "hmac-sha1-96", 4: "des-mac", 5: "hmac-sha2-256-128",
         6: "hmac-sha2-384-192", 7: "hmac-sha2-512-256", 8: "hmac-ripemd160-96", 9: "aes-xcbc-96"}

# IKEv2 authentication methods (RFC 7296 3.8 and IANA)
V2_AUTH = {1: "rsa-sig", 2: "psk", 3: "dss-sig", 9: "ecdsa-256", 10: "ecdsa-384", 11: "ecdsa-521",
           12: "generic-secure-password", 13: "null", 14: "digital-signature"}

# Public value length in bytes of a KE payload per DH group (RFC 7296 3.4,
# RFC 3526, RFC 5903, RFC 8031); used to infer PFS from message sizes.
DH_PUBLIC_LEN = {1: 96, 2: 128, 5: 192, 14: 256, 15: 384, 16: 512, 17: 768, 18: 1024,
                 19: 64, 20: 96, 21: 132, 22: 128, 23: 256, 24: 256, 25: 48, 26: 56,
                 27: 56, 28: 64, 29: 96, 30: 128, 31: 32, 32: 56}


def _lookup(table: dict[int, str], kind: str, n: int | None) -> str | None:
    if n is None:
        return None
    return table.get(n, f"unknown-{kind}-{n}")


def cipher(name: str | None, key_bits: int | None) -> str | None:
    """Append the key length to ciphers that take one: aes-cbc + 256 -> aes-cbc-256."""
    if name is None:
        return None
    if key_bits and name in VARIABLE_KEY:
        return f"{name}-{key_bits}"
    return name


def v2_encr(n, key_bits=None):
    return cipher(_lookup(ENCR, "encr", n), key_bits)


def v2_integ(n):
    return _lookup(INTEG, "integ", n)


def v2_prf(n):
    return _lookup(PRF, "prf", n)


def v2_auth(n):
    return _lookup(V2_AUTH, "auth", n)


def v1_encr(n, key_bits=None):
    return cipher(_lookup(V1_ENCR, "encr", n), key_bits)


def v1_hash(n):
    return _lookup(V1_HASH, "hash", n)


def v1_auth(n):
    return _lookup(V1_AUTH, "auth", n)


def v1_esp_encr(transform_id, key_bits=None):
    return cipher(_lookup(ENCR, "encr", transform_id), key_bits)


def v1_ipsec_integ(n):
    return _lookup(V1_IPSEC_AUTH, "integ", n)


def v1_ah(transform_id):
    return _lookup(V1_AH, "integ", transform_id)
