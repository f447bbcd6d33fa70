"""dissectors/iana.py: registry values and vendor IDs.

Expected values are taken from the RFCs and IANA registries named beside
them, not from iana.py; vendor IDs that are MD5 hashes are recomputed here.
"""
from __future__ import annotations

import hashlib

import pytest

from ipsecpcap.dissectors import iana
from ipsecpcap.dissectors.iana import name, vendor_id_name


def test_name_and_unknown_rendering() -> None:
    assert name(iana.IKEV2_PAYLOAD_TYPES, "ikev2-payload-type", 46) == "SK"
    assert name(iana.IKEV2_PAYLOAD_TYPES, "ikev2-payload-type", 99) == "unknown-ikev2-payload-type-99"
    assert name({}, "x", 0) == "unknown-x-0"


@pytest.mark.parametrize(
    ("registry", "code", "expected"),
    [
        # RFC 2408 3.1, RFC 3947 3.1 / 5.1, draft NAT-T, Cisco
        (iana.ISAKMP_PAYLOAD_TYPES, 1, "SA"),
        (iana.ISAKMP_PAYLOAD_TYPES, 10, "NONCE"),
        (iana.ISAKMP_PAYLOAD_TYPES, 13, "VID"),
        (iana.ISAKMP_PAYLOAD_TYPES, 20, "NAT-D"),
        (iana.ISAKMP_PAYLOAD_TYPES, 21, "NAT-OA"),
        (iana.ISAKMP_PAYLOAD_TYPES, 22, "GAP"),
        (iana.ISAKMP_PAYLOAD_TYPES, 130, "NAT-D"),
        (iana.ISAKMP_PAYLOAD_TYPES, 131, "NAT-OA"),
        (iana.ISAKMP_PAYLOAD_TYPES, 132, "CISCO-FRAG"),
        # RFC 7296 3.2, RFC 7383 2.5
        (iana.IKEV2_PAYLOAD_TYPES, 33, "SA"),
        (iana.IKEV2_PAYLOAD_TYPES, 40, "Nonce"),
        (iana.IKEV2_PAYLOAD_TYPES, 46, "SK"),
        (iana.IKEV2_PAYLOAD_TYPES, 53, "SKF"),
        (iana.IKEV2_PAYLOAD_TYPES, 54, "PS"),
        # RFC 2408 / 2409 exchange types, as identifiers
        (iana.ISAKMP_EXCHANGE_TYPES, 2, "main_mode"),
        (iana.ISAKMP_EXCHANGE_TYPES, 4, "aggressive"),
        (iana.ISAKMP_EXCHANGE_TYPES, 6, "transaction"),
        (iana.ISAKMP_EXCHANGE_TYPES, 32, "quick_mode"),
        (iana.ISAKMP_EXCHANGE_TYPES, 33, "new_group_mode"),
        # RFC 7296 3.1, RFC 9242, RFC 9370
        (iana.IKEV2_EXCHANGE_TYPES, 34, "IKE_SA_INIT"),
        (iana.IKEV2_EXCHANGE_TYPES, 37, "INFORMATIONAL"),
        (iana.IKEV2_EXCHANGE_TYPES, 43, "IKE_INTERMEDIATE"),
        (iana.IKEV2_EXCHANGE_TYPES, 44, "IKE_FOLLOWUP_KE"),
        # IKEv2 transform IDs (IANA ikev2-parameters)
        (iana.IKEV2_ENCRYPTION_ALGORITHMS, 12, "ENCR_AES_CBC"),
        (iana.IKEV2_ENCRYPTION_ALGORITHMS, 20, "ENCR_AES_GCM_16"),
        (iana.IKEV2_ENCRYPTION_ALGORITHMS, 21, "ENCR_NULL_AUTH_AES_GMAC"),
        (iana.IKEV2_ENCRYPTION_ALGORITHMS, 28, "ENCR_CHACHA20_POLY1305"),
        (iana.IKEV2_INTEGRITY_ALGORITHMS, 12, "AUTH_HMAC_SHA2_256_128"),
        (iana.IKEV2_KEY_EXCHANGE_METHODS, 14, "MODP-2048"),
        (iana.IKEV2_KEY_EXCHANGE_METHODS, 19, "ECP-256"),
        (iana.IKEV2_KEY_EXCHANGE_METHODS, 28, "brainpoolP256r1"),
        (iana.IKEV2_KEY_EXCHANGE_METHODS, 31, "Curve25519"),
        (iana.IKEV2_KEY_EXCHANGE_METHODS, 32, "Curve448"),
        (iana.IKEV2_KEY_EXCHANGE_METHODS, 36, "ML-KEM-768"),
        # IKEv1 attributes (RFC 2409 appendix A, RFC 2407 4.5, RFC 3947 5.1)
        (iana.IKE_ENCRYPTION_ALGORITHMS, 7, "AES-CBC"),
        (iana.IKE_AUTHENTICATION_METHODS, 65001, "XAUTHInitPreShared"),
        (iana.IKE_AUTHENTICATION_METHODS, 64221, "HybridInitRSA"),
        (iana.IPSEC_ENCAPSULATION_MODES, 3, "UDP-Encapsulated-Tunnel"),
        (iana.IPSEC_ENCAPSULATION_MODES, 61443, "UDP-Encapsulated-Tunnel-draft"),
        (iana.IPSEC_ESP_TRANSFORM_IDENTIFIERS, 12, "ESP_AES-CBC"),
        # notify types
        (iana.ISAKMP_NOTIFY_MESSAGE_TYPES, 14, "NO-PROPOSAL-CHOSEN"),
        (iana.ISAKMP_NOTIFY_MESSAGE_TYPES, 24576, "RESPONDER-LIFETIME"),
        (iana.ISAKMP_NOTIFY_MESSAGE_TYPES, 24578, "INITIAL-CONTACT"),
        (iana.ISAKMP_NOTIFY_MESSAGE_TYPES, 36136, "R-U-THERE"),
        (iana.ISAKMP_NOTIFY_MESSAGE_TYPES, 36137, "R-U-THERE-ACK"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 14, "NO_PROPOSAL_CHOSEN"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 17, "INVALID_KE_PAYLOAD"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 24, "AUTHENTICATION_FAILED"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 38, "TS_UNACCEPTABLE"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 16384, "INITIAL_CONTACT"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 16388, "NAT_DETECTION_SOURCE_IP"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 16390, "COOKIE"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 16393, "REKEY_SA"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 16407, "REDIRECT"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 16430, "IKEV2_FRAGMENTATION_SUPPORTED"),
        (iana.IKEV2_NOTIFY_MESSAGE_TYPES, 16431, "SIGNATURE_HASH_ALGORITHMS"),
        (iana.IKEV2_TRAFFIC_SELECTOR_TYPES, 7, "TS_IPV4_ADDR_RANGE"),
        (iana.IKEV2_IDENTIFICATION_TYPES, 3, "ID_RFC822_ADDR"),
        (iana.IPSEC_IDENTIFICATION_TYPES, 3, "ID_USER_FQDN"),
    ],
)
def test_registry_values(registry: dict[int, str], code: int, expected: str) -> None:
    assert registry[code] == expected


def test_registries_are_int_to_str() -> None:
    registries = [v for k, v in vars(iana).items() if k.isupper() and isinstance(v, dict)]
    assert len(registries) > 40
    for registry in registries:
        for key, value in registry.items():
            assert isinstance(key, (int, bytes)), key
            assert isinstance(value, (str, tuple)), value


def test_transform_id_registries_cover_every_type() -> None:
    for ttype in range(1, 13):
        assert ttype in iana.IKEV2_TRANSFORM_IDS_BY_TYPE
    assert iana.IKEV2_TRANSFORM_IDS_BY_TYPE[6][0] is iana.IKEV2_KEY_EXCHANGE_METHODS  # ADDKE1 (RFC 9370)


@pytest.mark.parametrize(
    "text",
    [
        "RFC 3947",
        "draft-ietf-ipsec-nat-t-ike-00",
        "draft-ietf-ipsec-nat-t-ike-01",
        "draft-ietf-ipsec-nat-t-ike-02",
        "draft-ietf-ipsec-nat-t-ike-03",
        "draft-ietf-ipsec-nat-t-ike-08",
        "strongSwan",
        "FRAGMENTATION",
        "MS-Negotiation Discovery Capable",
        "IKE CGA version 1",
        "KAME/racoon",
    ],
)
def test_md5_vendor_ids(text: str) -> None:
    assert vendor_id_name(hashlib.md5(text.encode()).digest()) == text


def test_special_vendor_ids() -> None:
    # draft-02 as published hashes the name with a trailing newline
    draft02 = hashlib.md5(b"draft-ietf-ipsec-nat-t-ike-02\n").digest()
    assert vendor_id_name(draft02) == "draft-ietf-ipsec-nat-t-ike-02\\n"
    # XAUTH: the first 8 bytes of MD5("draft-ietf-ipsra-isakmp-xauth-06.txt")
    assert vendor_id_name(hashlib.md5(b"draft-ietf-ipsra-isakmp-xauth-06.txt").digest()[:8]) == "XAUTH"
    # RFC 3706 DPD and Cisco Unity carry major/minor versions in the last two bytes
    assert vendor_id_name(bytes.fromhex("afcad71368a1f1c96b8696fc77570100")) == "Dead Peer Detection v1.0"
    unity = hashlib.md5(b"CISCO-UNITY").digest()[:14] + b"\x01\x00"
    assert vendor_id_name(unity) == "Cisco Unity v1.0"
    # MS NT5 ISAKMPOAKLEY + Windows version word
    ms = hashlib.md5(b"MS NT5 ISAKMPOAKLEY").digest()
    assert vendor_id_name(ms + b"\x00\x00\x00\x09") == "MS NT5 ISAKMPOAKLEY Windows 8"
    assert vendor_id_name(ms + b"\x00\x00\x00\x63") == "MS NT5 ISAKMPOAKLEY unknown-ms-nt5-version-99"
    # FRAGMENTATION + capability flags
    assert vendor_id_name(hashlib.md5(b"FRAGMENTATION").digest() + b"\x80\x00\x00\x00") == "FRAGMENTATION"
    # Cisco IKEv2 plain-text vendor IDs
    assert vendor_id_name(b"CISCO-DELETE-REASON") == "CISCO-DELETE-REASON"
    # FreeS/WAN-style "OE" + 10 bytes in 0x40-0x7f (Libreswan vendor.c)
    assert vendor_id_name(b"OE@yBqOrT~I{") == "FreeS/WAN/Openswan/Libreswan"
    assert vendor_id_name(b"OE\x00yBqOrT~I{") is None
    assert vendor_id_name(b"") is None
    assert vendor_id_name(bytes(16)) is None
