"""dissectors/isakmp.py: IKEv1 messages written out field by field.

Each message below was also wrapped in a UDP/500 pcap and opened with
tshark 4.0 while writing these tests; tshark dissected every well-formed one
without an expert error and with the same payload list.
"""
from __future__ import annotations

import hashlib

from ipsecpcap.dissectors import iana
from ipsecpcap.dissectors.isakmp import Problems, parse_attributes, parse_isakmp
from ipsecpcap.dissectors.records import Attribute, IkeMessage

ICOOKIE = "0102030405060708"
RCOOKIE = "a1a2a3a4a5a6a7a8"

# ------------------------------------------------------------------ Main Mode
MAIN_MODE_SA = bytes.fromhex(
    ICOOKIE  # initiator cookie
    + "0000000000000000"  # responder cookie: 0 in the first message
    "01"  # next payload: SA
    "10"  # version 1.0
    "02"  # exchange: Identity Protection (Main Mode)
    "00"  # flags: none
    "00000000"  # message ID 0
    "0000008c"  # length 140
    # SA payload
    "0d"  # next payload: VID
    "00"  # reserved
    "005c"  # payload length 92 = 4 + 8 + 80
    "00000001"  # DOI: IPSEC
    "00000001"  # situation: SIT_IDENTITY_ONLY
    #   Proposal payload
    "00"  # next payload: none (last proposal)
    "00"  # reserved
    "0050"  # length 80 = 8 + 40 + 32
    "01"  # proposal #1
    "01"  # protocol: PROTO_ISAKMP
    "00"  # SPI size 0
    "02"  # 2 transforms
    #     Transform payload 1
    "03"  # next payload: T
    "00"  # reserved
    "0028"  # length 40 = 8 + 32
    "01"  # transform #1
    "01"  # transform ID: KEY_IKE
    "0000"  # reserved2
    "80010007"  # TV Encryption Algorithm = AES-CBC
    "800e0100"  # TV Key Length = 256
    "80020002"  # TV Hash Algorithm = SHA
    "80030001"  # TV Authentication Method = PSK
    "8004000e"  # TV Group Description = MODP-2048 (14)
    "800b0001"  # TV Life Type = seconds
    "000c0004"  # TLV Life Duration, 4 bytes:
    "00007080"  #   28800
    #     Transform payload 2
    "00"  # next payload: none (last transform)
    "00"  # reserved
    "0020"  # length 32 = 8 + 24
    "02"  # transform #2
    "01"  # transform ID: KEY_IKE
    "0000"  # reserved2
    "80010005"  # TV Encryption Algorithm = 3DES-CBC
    "80020001"  # TV Hash Algorithm = MD5
    "8003fde9"  # TV Authentication Method = XAUTHInitPreShared (65001)
    "80040002"  # TV Group Description = MODP-1024
    "800b0001"  # TV Life Type = seconds
    "800c7080"  # TV Life Duration = 28800
    # Vendor ID payload
    "00"  # next payload: none
    "00"  # reserved
    "0014"  # length 20
    "4a131c81070358455c5728f20e95452f"  # MD5("RFC 3947"): NAT-T
)


def test_main_mode_header() -> None:
    msg = parse_isakmp(MAIN_MODE_SA)
    assert isinstance(msg, IkeMessage)
    assert msg.anomalies == ()
    assert (msg.version, msg.minor_version) == (1, 0)
    assert msg.ispi == bytes.fromhex(ICOOKIE)
    assert msg.rspi == bytes(8)
    assert (msg.exchange_type, msg.exchange) == (2, "main_mode")
    assert msg.mid == 0 and msg.length == 140
    assert msg.initiator_flag is None and msg.response_flag is None
    assert msg.encrypted is False
    assert msg.payload_names == ["SA", "VID"]
    assert [p.length for p in msg.payloads] == [92, 20]


def test_main_mode_sa_transforms_and_attributes() -> None:
    sa = parse_isakmp(MAIN_MODE_SA).payloads[0]
    assert sa.fields["doi"] == 1 and sa.fields["doi_name"] == "IPSEC"
    assert sa.fields["situation"] == 1
    (proposal,) = sa.fields["proposals"]
    assert (proposal.number, proposal.protocol, proposal.protocol_name) == (1, 1, "PROTO_ISAKMP")
    assert proposal.spi == b""
    t1, t2 = proposal.transforms
    assert (t1.number, t1.id, t1.id_name) == (1, 1, "KEY_IKE")
    assert t1.attributes == (
        Attribute(1, "Encryption Algorithm", 7, "AES-CBC"),
        Attribute(14, "Key Length", 256, None),
        Attribute(2, "Hash Algorithm", 2, "SHA"),
        Attribute(3, "Authentication Method", 1, "PSK"),
        Attribute(4, "Group Description", 14, "MODP-2048"),
        Attribute(11, "Life Type", 1, "seconds"),
        Attribute(12, "Life Duration", 28800, None),  # the TLV form, decoded to int
    )
    assert [(a.name, a.value_name) for a in t2.attributes[:4]] == [
        ("Encryption Algorithm", "3DES-CBC"),
        ("Hash Algorithm", "MD5"),
        ("Authentication Method", "XAUTHInitPreShared"),
        ("Group Description", "MODP-1024"),
    ]
    assert t2.attributes[5] == Attribute(12, "Life Duration", 28800, None)  # TV form


def test_main_mode_vendor_id_named() -> None:
    vid = parse_isakmp(MAIN_MODE_SA).payloads[1]
    assert vid.fields["data"] == hashlib.md5(b"RFC 3947").digest()
    assert vid.fields["name"] == "RFC 3947"


# ----------------------------------------------------- Quick Mode proposal
QUICK_MODE_PLAIN_SA = bytes.fromhex(
    ICOOKIE + RCOOKIE  # cookies
    + "01"  # next payload: SA
    "10"  # version 1.0
    "20"  # exchange: Quick Mode (32)
    "00"  # flags: none (a test message; real Quick Mode is encrypted)
    "11223344"  # message ID
    "00000054"  # length 84 = 28 + 56
    # SA payload
    "00"  # next payload: none
    "00"  # reserved
    "0038"  # length 56 = 4 + 8 + 44
    "00000001"  # DOI: IPSEC
    "00000001"  # situation: SIT_IDENTITY_ONLY
    #   Proposal
    "00"  # next payload: none
    "00"  # reserved
    "002c"  # length 44 = 8 + 4 (SPI) + 32
    "01"  # proposal #1
    "03"  # protocol: PROTO_IPSEC_ESP
    "04"  # SPI size 4
    "01"  # 1 transform
    "c0ffee01"  # SPI
    #     Transform
    "00"  # next payload: none
    "00"  # reserved
    "0020"  # length 32 = 8 + 24
    "01"  # transform #1
    "0c"  # transform ID: ESP_AES-CBC
    "0000"  # reserved2
    "80010001"  # TV SA Life Type = seconds
    "80020e10"  # TV SA Life Duration = 3600
    "80040003"  # TV Encapsulation Mode = UDP-Encapsulated-Tunnel (RFC 3947)
    "80050002"  # TV Authentication Algorithm = HMAC-SHA
    "80060080"  # TV Key Length = 128
    "8003000e"  # TV Group Description = MODP-2048 (PFS)
)


def test_quick_mode_uses_ipsec_doi_attributes() -> None:
    msg = parse_isakmp(QUICK_MODE_PLAIN_SA)
    assert msg.anomalies == ()
    assert msg.exchange == "quick_mode" and msg.mid == 0x11223344
    (proposal,) = msg.payloads[0].fields["proposals"]
    assert (proposal.protocol_name, proposal.spi) == ("PROTO_IPSEC_ESP", bytes.fromhex("c0ffee01"))
    (transform,) = proposal.transforms
    assert transform.id_name == "ESP_AES-CBC"
    assert [(a.name, a.value, a.value_name) for a in transform.attributes] == [
        ("SA Life Type", 1, "seconds"),
        ("SA Life Duration", 3600, None),
        ("Encapsulation Mode", 3, "UDP-Encapsulated-Tunnel"),
        ("Authentication Algorithm", 2, "HMAC-SHA"),
        ("Key Length", 128, None),
        ("Group Description", 14, "MODP-2048"),
    ]


# ----------------------------------------------------------- Aggressive Mode
AGGRESSIVE = bytes.fromhex(
    ICOOKIE + "0000000000000000"  # cookies
    + "04"  # next payload: KE
    "10"  # version 1.0
    "04"  # exchange: Aggressive
    "00"  # flags
    "00000000"  # message ID
    "00000073"  # length 115
    # KE
    "0a"  # next payload: NONCE
    "00"  # reserved
    "000c"  # length 12
    "0011223344556677"  # key exchange data (8 bytes, short for the test)
    # NONCE
    "05"  # next payload: ID
    "00"  # reserved
    "0014"  # length 20
    "000102030405060708090a0b0c0d0e0f"  # nonce (16 bytes)
    # ID
    "0d"  # next payload: VID
    "00"  # reserved
    "0017"  # length 23 = 4 + 4 + 15
    "03"  # ID type: ID_USER_FQDN
    "11"  # protocol: UDP (17)
    "01f4"  # port 500
    "76706e406578616d706c652e636f6d"  # "vpn@example.com"
    # VID
    "0d"  # next payload: VID
    "00"  # reserved
    "000c"  # length 12
    "09002689dfd6b712"  # XAUTH
    # VID
    "00"  # next payload: none
    "00"  # reserved
    "0014"  # length 20
    "afcad71368a1f1c96b8696fc77570100"  # Dead Peer Detection v1.0 (RFC 3706)
)


def test_aggressive_mode_payloads() -> None:
    msg = parse_isakmp(AGGRESSIVE)
    assert msg.anomalies == ()
    assert msg.exchange == "aggressive"
    assert msg.payload_names == ["KE", "NONCE", "ID", "VID", "VID"]
    ke, nonce, ident, xauth, dpd = msg.payloads
    assert ke.fields == {"data": bytes.fromhex("0011223344556677"), "data_len": 8}
    assert nonce.fields["data_len"] == 16
    assert ident.fields["id_type"] == 3 and ident.fields["id_type_name"] == "ID_USER_FQDN"
    assert (ident.fields["protocol"], ident.fields["port"]) == (17, 500)
    assert ident.fields["value"] == "vpn@example.com"
    assert xauth.fields["name"] == "XAUTH"
    assert dpd.fields["name"] == "Dead Peer Detection v1.0"


# ---------------------------------------------------- encrypted Quick Mode
ENCRYPTED_QUICK_MODE = bytes.fromhex(
    ICOOKIE + RCOOKIE  # cookies
    + "08"  # next payload: HASH (the first payload inside the ciphertext)
    "10"  # version 1.0
    "20"  # exchange: Quick Mode
    "01"  # flags: E (encrypted)
    "deadbeef"  # message ID
    "0000004c"  # length 76 = 28 + 48
) + bytes(range(48))  # 48 bytes of ciphertext (3 AES blocks)


def test_encrypted_quick_mode_is_one_opaque_payload() -> None:
    msg = parse_isakmp(ENCRYPTED_QUICK_MODE)
    assert msg.anomalies == ()
    assert msg.encrypted is True
    assert (msg.exchange, msg.mid, msg.flags) == ("quick_mode", 0xDEADBEEF, 1)
    (payload,) = msg.payloads
    assert payload.name == "encrypted"
    assert payload.fields == {"first_payload": "HASH", "data_len": 48}


# -------------------------------------------------- Informational Delete / N
INFORMATIONAL = bytes.fromhex(
    ICOOKIE + RCOOKIE  # cookies
    + "0c"  # next payload: D
    "10"  # version 1.0
    "05"  # exchange: Informational
    "00"  # flags
    "01020304"  # message ID
    "00000050"  # length 80 = 28 + 20 + 32
    # Delete
    "0b"  # next payload: N
    "00"  # reserved
    "0014"  # length 20 = 4 + 8 + 2 * 4
    "00000001"  # DOI: IPSEC
    "03"  # protocol: PROTO_IPSEC_ESP
    "04"  # SPI size 4
    "0002"  # 2 SPIs
    "c0ffee01"  # SPI 1
    "c0ffee02"  # SPI 2
    # Notification: DPD R-U-THERE
    "00"  # next payload: none
    "00"  # reserved
    "0020"  # length 32 = 4 + 8 + 16 (SPI) + 4 (data)
    "00000001"  # DOI: IPSEC
    "01"  # protocol: PROTO_ISAKMP
    "10"  # SPI size 16 (the two cookies)
    "8d28"  # notify type 36136: R-U-THERE
    + ICOOKIE + RCOOKIE  # SPI: the cookies
    + "0000002a"  # DPD sequence number 42
)


def test_informational_delete_and_notify() -> None:
    msg = parse_isakmp(INFORMATIONAL)
    assert msg.anomalies == ()
    assert msg.exchange == "informational" and msg.payload_names == ["D", "N"]
    delete, notify = msg.payloads
    assert delete.fields == {
        "doi": 1,
        "protocol": 3,
        "protocol_name": "PROTO_IPSEC_ESP",
        "spi_size": 4,
        "spis": (bytes.fromhex("c0ffee01"), bytes.fromhex("c0ffee02")),
    }
    assert notify.fields["type"] == 36136 and notify.fields["type_name"] == "R-U-THERE"
    assert notify.fields["protocol_name"] == "PROTO_ISAKMP"
    assert notify.fields["spi"] == bytes.fromhex(ICOOKIE + RCOOKIE)
    assert notify.fields["data"] == bytes.fromhex("0000002a")


def test_delete_spi_count_mismatch_is_reported() -> None:
    # same message, but "# of SPIs" says 3 while 2 SPIs fit the payload
    data = bytearray(INFORMATIONAL)
    data[28 + 10 : 28 + 12] = b"\x00\x03"
    msg = parse_isakmp(bytes(data))
    assert msg.payloads[0].fields["spis"] == (bytes.fromhex("c0ffee01"), bytes.fromhex("c0ffee02"))
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_length", "isakmp.payload[0](D)")]


# --------------------------------------------------------------------- NAT-T
NAT_D_AND_OA = bytes.fromhex(
    ICOOKIE + RCOOKIE  # cookies
    + "14"  # next payload: NAT-D (20, RFC 3947)
    "10"  # version 1.0
    "02"  # exchange: Main Mode (message 3)
    "00"  # flags
    "00000000"  # message ID
    "00000064"  # length 100 = 28 + 24 + 24 + 12 + 12
    # NAT-D
    "14"  # next payload: NAT-D
    "00"  # reserved
    "0018"  # length 24
    "1111111111111111111111111111111111111111"  # HASH(CKY-I|CKY-R|IP|port), SHA-1
    # NAT-D
    "83"  # next payload: NAT-OA, draft numbering (131)
    "00"  # reserved
    "0018"  # length 24
    "2222222222222222222222222222222222222222"  # second hash
    # NAT-OA (draft code 131)
    "15"  # next payload: NAT-OA (21)
    "00"  # reserved
    "000c"  # length 12
    "01"  # ID type: ID_IPV4_ADDR
    "000000"  # reserved
    "c0a80001"  # 192.168.0.1
    # NAT-OA
    "00"  # next payload: none
    "00"  # reserved
    "000c"  # length 12
    "01"  # ID type: ID_IPV4_ADDR
    "000000"  # reserved
    "0a000002"  # 10.0.0.2
)


def test_nat_d_and_nat_oa() -> None:
    msg = parse_isakmp(NAT_D_AND_OA)
    assert msg.anomalies == ()
    assert msg.payload_names == ["NAT-D", "NAT-D", "NAT-OA", "NAT-OA"]
    assert [p.type for p in msg.payloads] == [20, 20, 131, 21]
    assert msg.payloads[0].fields == {"hash": bytes.fromhex("11" * 20)}
    assert msg.payloads[2].fields == {"id_type": 1, "id_type_name": "ID_IPV4_ADDR", "address": "192.168.0.1"}
    assert msg.payloads[3].fields["address"] == "10.0.0.2"


def test_draft_nat_d_code_15_in_main_mode() -> None:
    # draft-ietf-ipsec-nat-t-ike-04..08 used 15 for NAT-D; outside GDOI it is
    # not SAK (seen in tcpdump's ISAKMP_sa_setup.pcap)
    data = bytearray(NAT_D_AND_OA)
    data[16] = 15  # header next payload
    data[28] = 15  # first NAT-D's next payload
    msg = parse_isakmp(bytes(data))
    assert msg.payload_names[:2] == ["NAT-D", "NAT-D"]
    assert [p.type for p in msg.payloads[:2]] == [15, 15]
    assert msg.payloads[1].fields == {"hash": bytes.fromhex("22" * 20)}


# -------------------------------------------------------- identity rendering
def _id_message(id_type: int, id_data: str) -> bytes:
    body = bytes([id_type, 0]) + b"\x00\x00" + bytes.fromhex(id_data)
    payload = b"\x00\x00" + (4 + len(body)).to_bytes(2, "big") + body
    header = bytes.fromhex(ICOOKIE + RCOOKIE + "05" "10" "02" "00" "00000000")
    return header + (28 + len(payload)).to_bytes(4, "big") + payload


def test_id_values_are_readable() -> None:
    cases = {
        (1, "c0000201"): "192.0.2.1",
        (2, "766f6e2e6578616d706c65"): "von.example",
        (4, "0a000000" "ffffff00"): "10.0.0.0/24",
        (4, "0a000000" "ff00ff00"): "10.0.0.0/255.0.255.0",
        (5, "20010db8" + "00" * 11 + "01"): "2001:db8::1",
        (6, "20010db8" + "00" * 12 + "ff" * 8 + "00" * 8): "2001:db8::/64",
        (7, "0a000001" "0a0000ff"): "10.0.0.1-10.0.0.255",
        (11, "6b6579"): "6b6579",  # KEY_ID: hex
    }
    for (id_type, id_data), want in cases.items():
        msg = parse_isakmp(_id_message(id_type, id_data))
        assert msg.anomalies == (), (id_type, msg.anomalies)
        assert msg.payloads[0].fields["value"] == want, id_type


def test_der_dn_identity() -> None:
    dn = bytes.fromhex(
        "3033"  # SEQUENCE (RDNSequence), 51 bytes
        "310b" "3009" "0603550406" "13024348"  # SET { SEQ { id-at-countryName, PrintableString "CH" } }
        "3113" "3011" "060355040a" "0c0a7374726f6e675377616e"  # O, UTF8String "strongSwan"
        "310f" "300d" "0603550403" "0c066d6f6f6e2e6f"  # CN, UTF8String "moon.o"
    )
    msg = parse_isakmp(_id_message(9, dn.hex()))
    assert msg.anomalies == ()
    assert msg.payloads[0].fields["value"] == "C=CH, O=strongSwan, CN=moon.o"
    # not DER at all: falls back to hex, no exception
    assert parse_isakmp(_id_message(9, "30ff00")).payloads[0].fields["value"] == "30ff00"


def test_id_address_with_wrong_length() -> None:
    msg = parse_isakmp(_id_message(1, "c00002"))  # IPv4 needs 4 bytes
    assert msg.payloads[0].fields["value"] == "c00002"
    assert [a.kind for a in msg.anomalies] == ["bad_length"]


# ------------------------------------------------------------- malformations
def test_zero_length_payload_stops_the_walk() -> None:
    data = bytearray(AGGRESSIVE)
    data[28 + 12 + 2 : 28 + 12 + 4] = b"\x00\x00"  # NONCE length 0
    msg = parse_isakmp(bytes(data))
    assert msg.payload_names == ["KE"]
    assert [(a.kind, a.where) for a in msg.anomalies] == [("loop", "isakmp.payload[1](NONCE)")]


def test_payload_length_below_four() -> None:
    data = bytearray(AGGRESSIVE)
    data[28 + 2 : 28 + 4] = b"\x00\x03"  # KE length 3
    msg = parse_isakmp(bytes(data))
    assert msg.payloads == ()
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_length", "isakmp.payload[0](KE)")]


def test_payload_length_past_the_message_end() -> None:
    data = bytearray(AGGRESSIVE)
    data[-20 + 2 : -20 + 4] = b"\x00\x40"  # last VID says 64 bytes, 20 remain
    msg = parse_isakmp(bytes(data))
    assert msg.payload_names == ["KE", "NONCE", "ID", "VID"]
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_length", "isakmp.payload[4](VID)")]


def test_capture_cut_short_keeps_the_partial_payload() -> None:
    msg = parse_isakmp(AGGRESSIVE[:-10])  # snaplen cut inside the last VID
    assert [(a.kind, a.where) for a in msg.anomalies] == [
        ("truncated", "isakmp.header"),
        ("truncated", "isakmp.payload[4](VID)"),
    ]
    assert msg.payloads[-1].fields["data"] == bytes.fromhex("afcad71368a1")


def test_trailing_data_after_message_and_after_last_payload() -> None:
    msg = parse_isakmp(AGGRESSIVE + b"\x00\x00\x00")
    assert [(a.kind, a.where) for a in msg.anomalies] == [("trailing_data", "isakmp.header")]
    assert msg.payload_names == ["KE", "NONCE", "ID", "VID", "VID"]
    # header length covers 3 more bytes than the payload chain uses
    data = bytearray(AGGRESSIVE + b"\x00\x00\x00")
    data[24:28] = (len(data)).to_bytes(4, "big")
    msg = parse_isakmp(bytes(data))
    assert [(a.kind, a.where) for a in msg.anomalies] == [("trailing_data", "isakmp.payloads")]


def test_chain_announces_a_payload_the_message_does_not_have() -> None:
    data = bytearray(AGGRESSIVE)
    data[-20] = 11  # the last VID says an N payload follows
    msg = parse_isakmp(bytes(data))
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_length", "isakmp.payload[5](N)")]


def test_unknown_payload_type() -> None:
    data = bytearray(AGGRESSIVE)
    data[28 + 12] = 99  # NONCE's next payload: 99 (unassigned)
    msg = parse_isakmp(bytes(data))
    assert msg.payloads[2].name == "unknown-isakmp-payload-type-99"
    assert msg.payloads[2].fields == {"data_len": 19}


def test_proposal_longer_than_its_sa() -> None:
    data = bytearray(MAIN_MODE_SA)
    data[28 + 12 + 2 : 28 + 12 + 4] = b"\x00\x60"  # proposal says 96, the SA holds 80
    msg = parse_isakmp(bytes(data))
    assert msg.payload_names == ["SA", "VID"]  # the outer chain is intact
    assert msg.payloads[0].fields["proposals"] == ()
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_length", "isakmp.payload[0](SA).proposal[0]")]


def test_attribute_running_past_its_transform() -> None:
    data = bytearray(MAIN_MODE_SA)
    life = MAIN_MODE_SA.index(bytes.fromhex("000c0004"))
    data[life + 2 : life + 4] = b"\x00\x40"  # Life Duration says 64 value bytes
    msg = parse_isakmp(bytes(data))
    t1 = msg.payloads[0].fields["proposals"][0].transforms[0]
    assert len(t1.attributes) == 6
    assert [(a.kind, a.where) for a in msg.anomalies] == [
        ("bad_length", "isakmp.payload[0](SA).proposal[0].transform[0].attribute[6]")
    ]


def test_long_tlv_attribute_stays_bytes() -> None:
    problems = Problems()
    attrs = parse_attributes(
        bytes.fromhex(
            "0006"  # AF=0 (TLV), class 6: Group Prime/Irreducible Polynomial
            "0009"  # length 9: too long for an int
            "ffffffffffffffffff"
        ),
        "x", problems, iana.IKE_ATTRIBUTE_CLASSES, "ike-attribute", iana.IKE_ATTRIBUTE_VALUES,
    )
    assert attrs == (Attribute(6, "Group Prime/Irreducible Polynomial", b"\xff" * 9, None),)
    assert problems.items == []


def test_short_and_empty_input() -> None:
    assert parse_isakmp(b"").anomalies[0].kind == "truncated"
    msg = parse_isakmp(MAIN_MODE_SA[:20])
    assert msg.ispi == bytes.fromhex(ICOOKIE) and msg.payloads == ()
    assert [a.kind for a in msg.anomalies] == ["truncated"]


def test_header_length_below_header_size() -> None:
    data = bytearray(AGGRESSIVE)
    data[24:28] = b"\x00\x00\x00\x00"
    msg = parse_isakmp(bytes(data))
    assert [(a.kind, a.where) for a in msg.anomalies] == [("bad_length", "isakmp.header")]
    assert msg.payload_names == ["KE", "NONCE", "ID", "VID", "VID"]  # walked to the data's end
