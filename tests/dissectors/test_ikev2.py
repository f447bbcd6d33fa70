"""dissectors/ikev2.py: IKEv2 messages written out field by field.

Each well-formed message below was also wrapped in a UDP/500 pcap and opened
with tshark 4.0 while writing these tests: same payloads, no expert warning or
error (one note: PLAIN_PAYLOADS' INTERNAL_IP4_DNS attribute is empty).
"""
from __future__ import annotations

import hashlib

from ipsecpcap.dissectors.ike import parse_ike
from ipsecpcap.dissectors.ikev2 import parse_ikev2
from ipsecpcap.dissectors.records import Attribute, TrafficSelector

SPII = "0102030405060708"
SPIR = "a1a2a3a4a5a6a7a8"
STRONGSWAN_VID = hashlib.md5(b"strongSwan").hexdigest()

# --------------------------------------------------------------- IKE_SA_INIT
IKE_SA_INIT = bytes.fromhex(
    SPII  # IKE SA initiator's SPI
    + "0000000000000000"  # responder's SPI: 0 in the request
    + "21"  # next payload: SA (33)
    "20"  # version 2.0
    "22"  # exchange: IKE_SA_INIT (34)
    "08"  # flags: I (initiator), request
    "00000000"  # message ID 0
    "000000d4"  # length 212
    # SA
    "22"  # next payload: KE
    "00"  # C bit 0, reserved
    "0030"  # length 48 = 4 + 44
    #   Proposal substructure
    "00"  # last substruc: 0 (only proposal)
    "00"  # reserved
    "002c"  # length 44 = 8 + 12 + 8 + 8 + 8
    "01"  # proposal #1
    "01"  # protocol: IKE
    "00"  # SPI size 0
    "04"  # 4 transforms
    #     Transform substructures
    "03" "00" "000c"  # more transforms, reserved, length 12
    "01" "00" "000c"  # type 1 ENCR, reserved, ID 12 ENCR_AES_CBC
    "800e0100"  # TV attribute Key Length = 256
    "03" "00" "0008"  # more, length 8
    "02" "00" "0005"  # type 2 PRF, ID 5 PRF_HMAC_SHA2_256
    "03" "00" "0008"  # more, length 8
    "03" "00" "000c"  # type 3 INTEG, ID 12 AUTH_HMAC_SHA2_256_128
    "00" "00" "0008"  # last, length 8
    "04" "00" "001f"  # type 4 KE, ID 31 Curve25519
    # KE
    "28"  # next payload: Nonce (40)
    "00"  # C 0
    "0028"  # length 40 = 4 + 4 + 32
    "001f"  # group 31
    "0000"  # reserved
    + "ab" * 32  # key exchange data
    + "29"  # Nonce's next payload: N (41)
    "00"  # C 0
    "0014"  # length 20
    "000102030405060708090a0b0c0d0e0f"  # nonce (16 bytes)
    # N
    "29"  # next payload: N
    "00"  # C 0
    "001c"  # length 28 = 4 + 4 + 20
    "00"  # protocol: none
    "00"  # SPI size 0
    "4004"  # type 16388 NAT_DETECTION_SOURCE_IP
    "1111111111111111111111111111111111111111"  # SHA-1(SPIs | IP | port)
    # N
    "2b"  # next payload: V (43)
    "00"  # C 0
    "001c"  # length 28
    "00"  # protocol: none
    "00"  # SPI size 0
    "4005"  # type 16389 NAT_DETECTION_DESTINATION_IP
    "2222222222222222222222222222222222222222"
    # V
    "00"  # next payload: none
    "00"  # C 0
    "0014"  # length 20
    + STRONGSWAN_VID  # MD5("strongSwan")
)


def test_ike_sa_init_header() -> None:
    msg = parse_ikev2(IKE_SA_INIT)
    assert msg.anomalies == ()
    assert (msg.version, msg.minor_version) == (2, 0)
    assert (msg.exchange_type, msg.exchange) == (34, "IKE_SA_INIT")
    assert msg.initiator_flag is True and msg.response_flag is False
    assert msg.encrypted is False
    assert msg.payload_names == ["SA", "KE", "Nonce", "N", "N", "V"]
    assert parse_ike(IKE_SA_INIT) == msg


def test_ike_sa_init_proposal() -> None:
    (proposal,) = parse_ikev2(IKE_SA_INIT).payloads[0].fields["proposals"]
    assert (proposal.number, proposal.protocol_name, proposal.spi) == (1, "IKE", b"")
    assert [(t.type_name, t.id, t.id_name) for t in proposal.transforms] == [
        ("ENCR", 12, "ENCR_AES_CBC"),
        ("PRF", 5, "PRF_HMAC_SHA2_256"),
        ("INTEG", 12, "AUTH_HMAC_SHA2_256_128"),
        ("KE", 31, "Curve25519"),
    ]
    assert proposal.transforms[0].attributes == (Attribute(14, "Key Length", 256, None),)


def test_ike_sa_init_ke_nonce_notify_vendor() -> None:
    _, ke, nonce, src, dst, vid = parse_ikev2(IKE_SA_INIT).payloads
    assert (ke.fields["group"], ke.fields["group_name"], ke.fields["data_len"]) == (31, "Curve25519", 32)
    assert nonce.fields["data"] == bytes(range(16))
    assert (src.fields["type"], src.fields["type_name"]) == (16388, "NAT_DETECTION_SOURCE_IP")
    assert dst.fields["type_name"] == "NAT_DETECTION_DESTINATION_IP"
    assert dst.fields["data"] == bytes.fromhex("22" * 20) and dst.fields["spi"] == b""
    assert vid.fields["name"] == "strongSwan"
    assert not any(p.critical for p in parse_ikev2(IKE_SA_INIT).payloads)


# -------------------------------------------------------------- IKE_AUTH (SK)
IKE_AUTH_SK = bytes.fromhex(
    SPII + SPIR  # SPIs
    + "2e"  # next payload: SK (46)
    "20"  # version 2.0
    "23"  # exchange: IKE_AUTH (35)
    "08"  # flags: I
    "00000001"  # message ID 1
    "00000060"  # length 96 = 28 + 68
    # SK
    "23"  # next payload: IDi (35), the first payload inside the ciphertext
    "00"  # C 0
    "0044"  # length 68 = 4 + 64
) + bytes(range(64))  # IV + ciphertext + ICV


def test_ike_auth_sk_is_opaque_and_last() -> None:
    msg = parse_ikev2(IKE_AUTH_SK)
    assert msg.anomalies == ()
    assert msg.encrypted is True
    assert (msg.exchange, msg.mid) == ("IKE_AUTH", 1)
    (sk,) = msg.payloads
    assert sk.name == "SK"
    assert sk.fields == {"inner_next_payload": 35, "inner_next_payload_name": "IDi", "data_len": 64}


def test_bytes_after_sk_are_trailing_data() -> None:
    data = bytearray(IKE_AUTH_SK + b"\x00" * 8)
    data[24:28] = len(data).to_bytes(4, "big")  # the header covers them
    msg = parse_ikev2(bytes(data))
    assert msg.payload_names == ["SK"]
    assert [(a.kind, a.where) for a in msg.anomalies] == [("trailing_data", "ikev2.payloads")]


# ---------------------------------------------------------------------- SKF
def _skf(number: int, total: int, inner: int) -> bytes:
    return bytes.fromhex(
        SPII + SPIR  # SPIs
        + "35"  # next payload: SKF (53)
        "20"  # version 2.0
        "23"  # exchange: IKE_AUTH
        "08"  # flags: I
        "00000001"  # message ID 1
        "00000044"  # length 68 = 28 + 40
        # SKF
        + f"{inner:02x}"  # next payload: inner first payload (fragment 1 only)
        + "00"  # C 0
        "0028"  # length 40 = 4 + 4 + 32
        + f"{number:04x}"  # fragment number
        + f"{total:04x}"  # total fragments
    ) + bytes(32)  # IV + encrypted fragment + ICV


def test_skf_first_fragment() -> None:
    msg = parse_ikev2(_skf(1, 3, 35))
    assert msg.anomalies == ()
    assert msg.encrypted is True
    (skf,) = msg.payloads
    assert skf.name == "SKF"
    assert skf.fields == {
        "number": 1,
        "total": 3,
        "inner_next_payload": 35,
        "inner_next_payload_name": "IDi",
        "data_len": 32,
    }


def test_skf_bad_numbering() -> None:
    assert parse_ikev2(_skf(2, 3, 0)).anomalies == ()
    msg = parse_ikev2(_skf(4, 3, 0))  # fragment 4 of 3
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_header", "ikev2.payload[0](SKF)")]
    msg = parse_ikev2(_skf(2, 3, 35))  # only fragment 1 may name the inner payload
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_header", "ikev2.payload[0](SKF)")]


# ------------------------------------------- unencrypted payload coverage
# Not a real exchange (these payloads travel inside SK); written in the clear
# to exercise every decoder.
PLAIN_PAYLOADS = bytes.fromhex(
    SPII + SPIR  # SPIs
    + "23"  # next payload: IDi
    "20"  # version 2.0
    "25"  # exchange: INFORMATIONAL (37)
    "20"  # flags: R (response), not initiator
    "00000005"  # message ID 5
    "000000de"  # length 222 = 28 + 24 + 16 + 24 + 48 + 20 + 14 + 16 + 25 + 7
    # IDi
    "27"  # next payload: AUTH (39)
    "00"  # C 0
    "0018"  # length 24 = 4 + 4 + 16
    "02"  # ID type: ID_FQDN
    "000000"  # reserved
    "6d6f6f6e2e6578616d706c652e6f7267"  # "moon.example.org"
    # AUTH
    "2c"  # next payload: TSi (44)
    "00"  # C 0
    "0010"  # length 16 = 4 + 4 + 8
    "02"  # method: Shared Key Message Integrity Code
    "000000"  # reserved
    "0102030405060708"  # authentication data
    # TSi
    "2d"  # next payload: TSr (45)
    "00"  # C 0
    "0018"  # length 24 = 4 + 4 + 16
    "01"  # 1 traffic selector
    "000000"  # reserved
    "07"  # TS_IPV4_ADDR_RANGE
    "06"  # IP protocol: TCP
    "0010"  # selector length 16
    "0000"  # start port 0
    "ffff"  # end port 65535
    "0a000000"  # 10.0.0.0
    "0a0000ff"  # 10.0.0.255
    # TSr
    "2f"  # next payload: CP (47)
    "00"  # C 0
    "0030"  # length 48 = 4 + 4 + 40
    "01"  # 1 traffic selector
    "000000"  # reserved
    "08"  # TS_IPV6_ADDR_RANGE
    "00"  # any protocol
    "0028"  # selector length 40
    "01f4"  # start port 500
    "01f4"  # end port 500
    "20010db8000000000000000000000000"  # 2001:db8::
    "20010db8000000000000000000000fff"  # 2001:db8::fff
    # CP
    "30"  # next payload: EAP (48)
    "00"  # C 0
    "0014"  # length 20 = 4 + 4 + 8 + 4
    "02"  # CFG_REPLY
    "000000"  # reserved
    "0001" "0004" "0a000102"  # INTERNAL_IP4_ADDRESS, length 4, 10.0.1.2
    "0003" "0000"  # INTERNAL_IP4_DNS, length 0
    # EAP
    "2a"  # next payload: D (42)
    "00"  # C 0
    "000e"  # length 14 = 4 + 10
    "01"  # code: Request
    "07"  # identifier 7
    "000a"  # EAP length 10
    "01"  # type: Identity
    "68656c6c6f"  # "hello"
    # D
    "26"  # next payload: CERTREQ (38)
    "00"  # C 0
    "0010"  # length 16 = 4 + 4 + 2 * 4
    "03"  # protocol: ESP
    "04"  # SPI size 4
    "0002"  # 2 SPIs
    "c0ffee01"
    "c0ffee02"
    # CERTREQ
    "63"  # next payload: 99 (unassigned)
    "00"  # C 0
    "0019"  # length 25 = 4 + 1 + 20
    "04"  # X.509 Certificate - Signature
    "3333333333333333333333333333333333333333"  # SHA-1 of a CA public key
    # unassigned payload type 99, critical
    "00"  # next payload: none
    "80"  # C 1
    "0007"  # length 7
    "abcdef"
)


def test_every_decoder_on_plain_payloads() -> None:
    msg = parse_ikev2(PLAIN_PAYLOADS)
    assert msg.anomalies == ()
    assert msg.initiator_flag is False and msg.response_flag is True
    assert msg.exchange == "INFORMATIONAL"
    assert msg.payload_names == [
        "IDi", "AUTH", "TSi", "TSr", "CP", "EAP", "D", "CERTREQ", "unknown-ikev2-payload-type-99",
    ]
    idi, auth, tsi, tsr, cp, eap, delete, certreq, unknown = msg.payloads
    assert idi.fields["id_type_name"] == "ID_FQDN" and idi.fields["value"] == "moon.example.org"
    assert auth.fields == {"method": 2, "method_name": "Shared Key Message Integrity Code", "data_len": 8}
    assert tsi.fields["selectors"] == (
        TrafficSelector(7, "TS_IPV4_ADDR_RANGE", 6, 0, 65535, "10.0.0.0", "10.0.0.255"),
    )
    assert tsr.fields["selectors"] == (
        TrafficSelector(8, "TS_IPV6_ADDR_RANGE", 0, 500, 500, "2001:db8::", "2001:db8::fff"),
    )
    assert cp.fields["cfg_type_name"] == "CFG_REPLY"
    assert cp.fields["attributes"] == (
        (1, "INTERNAL_IP4_ADDRESS", bytes.fromhex("0a000102")),
        (3, "INTERNAL_IP4_DNS", b""),
    )
    assert eap.fields == {
        "code": 1, "code_name": "Request", "identifier": 7, "eap_type": 1, "eap_type_name": "Identity",
        "data_len": 10,
    }
    assert delete.fields["protocol_name"] == "ESP"
    assert delete.fields["spis"] == (bytes.fromhex("c0ffee01"), bytes.fromhex("c0ffee02"))
    assert certreq.fields == {
        "encoding": 4, "encoding_name": "X.509 Certificate - Signature", "data_len": 20,
    }
    assert unknown.critical is True and unknown.fields == {"data_len": 3}


# ------------------------------------------------------------- malformations
def test_zero_length_payload() -> None:
    data = bytearray(IKE_SA_INIT)
    data[28 + 48 + 2 : 28 + 48 + 4] = b"\x00\x00"  # KE length 0
    msg = parse_ikev2(bytes(data))
    assert msg.payload_names == ["SA"]
    assert [(a.kind, a.where) for a in msg.anomalies] == [("loop", "ikev2.payload[1](KE)")]


def test_length_past_the_end() -> None:
    data = bytearray(IKE_SA_INIT)
    data[-20 + 2 : -20 + 4] = b"\x01\x00"  # V says 256 bytes
    msg = parse_ikev2(bytes(data))
    assert msg.payload_names == ["SA", "KE", "Nonce", "N", "N"]
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_length", "ikev2.payload[5](V)")]


def test_trailing_data() -> None:
    msg = parse_ikev2(IKE_SA_INIT + b"\xff\xff")
    assert [(a.kind, a.where) for a in msg.anomalies] == [("trailing_data", "ikev2.header")]
    assert msg.payload_names == ["SA", "KE", "Nonce", "N", "N", "V"]


def test_unknown_payload_and_exchange_type() -> None:
    data = bytearray(IKE_SA_INIT)
    data[18] = 99  # exchange type
    data[28 + 48 + 40] = 99  # Nonce's next payload
    msg = parse_ikev2(bytes(data))
    assert msg.exchange == "unknown-ikev2-exchange-type-99"
    assert msg.payload_names[3] == "unknown-ikev2-payload-type-99"
    assert msg.payloads[3].fields == {"data_len": 24}


def test_transform_count_mismatch() -> None:
    data = bytearray(IKE_SA_INIT)
    data[28 + 4 + 7] = 5  # "Num Transforms": 5, four follow
    msg = parse_ikev2(bytes(data))
    assert len(msg.payloads[0].fields["proposals"][0].transforms) == 4
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_header", "ikev2.payload[0](SA).proposal[0]")]


def test_transform_length_below_minimum() -> None:
    data = bytearray(IKE_SA_INIT)
    data[28 + 4 + 8 + 2 : 28 + 4 + 8 + 4] = b"\x00\x04"  # first transform: length 4
    msg = parse_ikev2(bytes(data))
    assert msg.payloads[0].fields["proposals"][0].transforms == ()
    assert ("bad_length", "ikev2.payload[0](SA).proposal[0].transform[0]") in [
        (a.kind, a.where) for a in msg.anomalies
    ]
    assert msg.payload_names == ["SA", "KE", "Nonce", "N", "N", "V"]  # outer chain intact


def test_truncated_capture() -> None:
    msg = parse_ikev2(IKE_AUTH_SK[:60])
    assert [(a.kind, a.where) for a in msg.anomalies] == [
        ("truncated", "ikev2.header"),
        ("truncated", "ikev2.payload[0](SK)"),
    ]
    assert msg.payloads[0].fields["data_len"] == 28


def test_wrong_major_version_is_flagged() -> None:
    data = bytearray(IKE_SA_INIT)
    data[17] = 0x10
    msg = parse_ikev2(bytes(data))
    assert msg.anomalies[0].kind == "bad_header"
    assert msg.payload_names == ["SA", "KE", "Nonce", "N", "N", "V"]


def test_dispatch_by_version() -> None:
    assert parse_ike(IKE_SA_INIT).version == 2
    data = bytearray(IKE_SA_INIT)
    data[17] = 0x30  # version 3.0
    msg = parse_ike(bytes(data))
    assert msg.payloads == ()
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_header", "ike.header")]
    assert msg.ispi == bytes.fromhex(SPII) and msg.mid == 0 and msg.length == 212
    short = parse_ike(IKE_SA_INIT[:10])
    assert short.ispi == bytes.fromhex(SPII)[:8] and short.rspi == bytes(8)
    assert [(a.kind, a.where) for a in short.anomalies] == [("truncated", "ike.header")]
