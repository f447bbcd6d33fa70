"""parse_ikev2_inner / parse_isakmp_inner: the payload chains inside decrypted
IKE messages, written out field by field.

The same payloads are also wrapped in a clear message and given to
parse_ikev2 / parse_isakmp: the inner parsers must decode them identically
(they reuse the same decoders).  Whole-capture decryption is tested in
tests/ipsecpcap/crypto/test_crypto_ike.py.
"""
from __future__ import annotations

import random
import struct

from ipsecpcap.dissectors.ikev2 import parse_ikev2, parse_ikev2_inner
from ipsecpcap.dissectors.isakmp import parse_isakmp, parse_isakmp_inner
from ipsecpcap.dissectors.records import Anomaly, Payload, TrafficSelector

# ------------------------------------------------------------------- IKEv2
# what an IKE_AUTH request's SK payload decrypts to (padding already removed)
V2_INNER = bytes.fromhex(
    # IDi
    "27"  # next payload: AUTH (39)
    "00"  # C bit 0
    "0018"  # length 24 = 4 + 4 + 16
    "03"  # ID type 3: ID_RFC822_ADDR
    "000000"  # reserved
    + b"moon@example.org".hex()
    # AUTH
    + "21"  # next payload: SA (33)
    "00"  # C 0
    "0010"  # length 16 = 4 + 4 + 8
    "02"  # method 2: shared key MIC
    "000000"  # reserved
    "0102030405060708"  # authentication data
    # SA
    "2c"  # next payload: TSi (44)
    "00"  # C 0
    "0024"  # length 36 = 4 + 32
    #   Proposal
    "00"  # last substruc
    "00"  # reserved
    "0020"  # length 32 = 8 + 4 (SPI) + 12 + 8
    "01"  # proposal 1
    "03"  # protocol ESP
    "04"  # SPI size 4
    "02"  # 2 transforms
    "c1e69148"  # SPI
    #     Transforms
    "03" "00" "000c"  # more, reserved, length 12
    "01" "00" "0014"  # ENCR, reserved, ID 20: ENCR_AES_GCM_16
    "800e0080"  # TV Key Length = 128
    "00" "00" "0008"  # last, length 8
    "05" "00" "0000"  # ESN, ID 0: no ESN
    # TSi
    "29"  # next payload: N (41)
    "00"  # C 0
    "0018"  # length 24 = 4 + 4 + 16
    "01"  # 1 selector
    "000000"  # reserved
    "07"  # TS_IPV4_ADDR_RANGE
    "00"  # any IP protocol
    "0010"  # selector length 16
    "0000" "ffff"  # ports 0-65535
    "0a010001" "0a010001"  # 10.1.0.1 - 10.1.0.1
    # N
    "00"  # next payload: none
    "00"  # C 0
    "000c"  # length 12 = 4 + 4 + 4 (SPI)
    "03"  # protocol ESP
    "04"  # SPI size 4
    "4009"  # type 16393: REKEY_SA
    "0a0b0c0d"  # SPI of the SA being rekeyed
)
IDI = 35


def _v2_clear(first: int, chain: bytes) -> bytes:
    """The same chain in a clear IKEv2 message (RFC 7296 3.1 header)."""
    return (bytes(8) + bytes(8) + bytes([first, 0x20, 37, 0x08]) + struct.pack("!II", 1, 28 + len(chain))
            + chain)


def _same(a: tuple[Payload, ...], b: tuple[Payload, ...]) -> bool:
    # Payload.fields is compare=False: compare it explicitly
    return a == b and [p.fields for p in a] == [p.fields for p in b]


def test_ikev2_inner_chain() -> None:
    payloads, anomalies = parse_ikev2_inner(IDI, V2_INNER)
    assert anomalies == ()
    assert [p.name for p in payloads] == ["IDi", "AUTH", "SA", "TSi", "N"]
    assert sum(p.length for p in payloads) == len(V2_INNER)
    idi, auth, sa, tsi, notify = payloads
    assert idi.fields["value"] == "moon@example.org" and idi.fields["id_type_name"] == "ID_RFC822_ADDR"
    assert auth.fields == {"method": 2, "method_name": "Shared Key Message Integrity Code", "data_len": 8}
    (proposal,) = sa.fields["proposals"]
    assert (proposal.protocol_name, proposal.spi.hex()) == ("ESP", "c1e69148")
    assert [(t.type_name, t.id) for t in proposal.transforms] == [("ENCR", 20), ("ESN", 0)]
    assert tsi.fields["selectors"] == (TrafficSelector(7, "TS_IPV4_ADDR_RANGE", 0, 0, 65535, "10.1.0.1", "10.1.0.1"),)
    assert (notify.fields["type_name"], notify.fields["spi"].hex()) == ("REKEY_SA", "0a0b0c0d")


def test_ikev2_inner_decodes_like_the_outer_chain() -> None:
    payloads, _ = parse_ikev2_inner(IDI, V2_INNER)
    assert _same(payloads, parse_ikev2(_v2_clear(IDI, V2_INNER)).payloads)


def test_ikev2_inner_empty() -> None:
    # an empty INFORMATIONAL (liveness check): SK's next payload is 0, no plaintext
    assert parse_ikev2_inner(0, b"") == ((), ())


def test_ikev2_inner_problems() -> None:
    # the padding is already gone: anything after the last payload is an anomaly
    payloads, anomalies = parse_ikev2_inner(IDI, V2_INNER + b"\x00\x00")
    assert len(payloads) == 5
    assert anomalies == (Anomaly("trailing_data", "ikev2.sk.payloads", "2 bytes after the last element"),)
    # the last payload names another one that is not there
    cut = V2_INNER[: len(V2_INNER) - 12]
    payloads, anomalies = parse_ikev2_inner(IDI, cut)
    assert [p.name for p in payloads] == ["IDi", "AUTH", "SA", "TSi"]
    assert [(a.kind, a.where) for a in anomalies] == [("bad_length", "ikev2.sk.payload[4](N)")]
    # a length that runs past the plaintext
    payloads, anomalies = parse_ikev2_inner(IDI, V2_INNER[:20])
    assert payloads == () and [(a.kind, a.where) for a in anomalies] == [("bad_length", "ikev2.sk.payload[0](IDi)")]
    # a length of 0 cannot advance
    payloads, anomalies = parse_ikev2_inner(41, bytes(8))
    assert payloads == () and [a.kind for a in anomalies] == ["loop"]


# ------------------------------------------------------------------- IKEv1
# Quick Mode message 1 after decryption: HASH(1), SA, Ni, then padding
V1_QUICK_MODE = bytes.fromhex(
    # HASH
    "01"  # next payload: SA (1)
    "00"  # reserved
    "0018"  # length 24 = 4 + 20 (HMAC-SHA1)
    + "11" * 20
    # SA
    + "0a"  # next payload: NONCE (10)
    "00"  # reserved
    "0028"  # length 40 = 4 + 8 + 28
    "00000001"  # DOI: IPsec
    "00000001"  # situation: SIT_IDENTITY_ONLY
    #   Proposal
    "00"  # next payload: none (last proposal)
    "00"  # reserved
    "001c"  # length 28 = 8 + 4 (SPI) + 16
    "01"  # proposal 1
    "03"  # protocol: PROTO_IPSEC_ESP
    "04"  # SPI size 4
    "01"  # 1 transform
    "ef0bb277"  # SPI
    #     Transform
    "00"  # next payload: none
    "00"  # reserved
    "0010"  # length 16 = 8 + 8
    "01"  # transform 1
    "0c"  # transform ID 12: ESP_AES
    "0000"  # reserved
    "80060100"  # TV Key Length = 256
    "80050002"  # TV Authentication Algorithm = HMAC-SHA
    # NONCE
    "00"  # next payload: none
    "00"  # reserved
    "0014"  # length 20 = 4 + 16
    + "22" * 16
)
HASH = 8
QUICK_MODE, MAIN_MODE = 32, 2


def _v1_clear(first: int, exchange: int, chain: bytes) -> bytes:
    """The same chain in a clear ISAKMP message (RFC 2408 3.1 header)."""
    return (bytes(8) + bytes(8) + bytes([first, 0x10, exchange, 0]) + struct.pack("!II", 7, 28 + len(chain))
            + chain)


def test_isakmp_inner_chain_then_padding() -> None:
    # RFC 2409 appendix B: padded to the block size; the pad bytes may be anything
    for padding in (b"", b"\x00" * 7 + b"\x07", b"\xa5" * 15, bytes(16)):
        payloads, anomalies = parse_isakmp_inner(HASH, V1_QUICK_MODE + padding, QUICK_MODE)
        assert anomalies == ()
        assert [p.name for p in payloads] == ["HASH", "SA", "NONCE"]
        assert sum(p.length for p in payloads) == len(V1_QUICK_MODE)  # where the padding starts
    hash_, sa, nonce = payloads
    assert hash_.fields["data"] == b"\x11" * 20 and nonce.fields["data"] == b"\x22" * 16
    (proposal,) = sa.fields["proposals"]
    assert (proposal.protocol, proposal.spi.hex()) == (3, "ef0bb277")
    (transform,) = proposal.transforms
    assert transform.id_name == "ESP_AES-CBC"
    assert [(a.name, a.value) for a in transform.attributes] == [("Key Length", 256), ("Authentication Algorithm", 2)]


def test_isakmp_inner_decodes_like_the_outer_chain() -> None:
    payloads, _ = parse_isakmp_inner(HASH, V1_QUICK_MODE + bytes(8), QUICK_MODE)
    assert _same(payloads, parse_isakmp(_v1_clear(HASH, QUICK_MODE, V1_QUICK_MODE)).payloads)


def test_isakmp_inner_names_depend_on_the_exchange() -> None:
    # draft NAT-T payload 15 is NAT-D in Main Mode (RFC 3947 drafts), GDOI SAK elsewhere
    nat_d = bytes.fromhex("00000018") + b"\x33" * 20
    assert [p.name for p in parse_isakmp_inner(15, nat_d, MAIN_MODE)[0]] == ["NAT-D"]
    assert [p.name for p in parse_isakmp_inner(15, nat_d, QUICK_MODE)[0]] == ["SAK"]


def test_isakmp_inner_problems_are_not_padding() -> None:
    # all padding: the header's next payload is 0
    assert parse_isakmp_inner(0, bytes(16), QUICK_MODE) == ((), ())
    # a chain that names a payload the plaintext does not hold
    payloads, anomalies = parse_isakmp_inner(HASH, V1_QUICK_MODE[:44], QUICK_MODE)
    assert [p.name for p in payloads] == ["HASH"]
    assert [(a.kind, a.where) for a in anomalies] == [("bad_length", "isakmp.decrypted.payload[1](SA)")]
    # garbage where the first payload header should be: a wrong key or IV
    payloads, anomalies = parse_isakmp_inner(HASH, b"\x5a" * 32, QUICK_MODE)
    assert payloads == () and anomalies


def test_inner_parsers_never_raise() -> None:
    rng = random.Random(2409)
    seeds = [V2_INNER, V1_QUICK_MODE]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds)) if rng.random() < 0.7 else bytearray(rng.randbytes(rng.randint(0, 64)))
        for _ in range(rng.randint(0, 4)):
            if data and rng.random() < 0.7:
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            else:
                del data[rng.randrange(len(data) + 1):]
        first = rng.choice((0, 1, 8, 15, 33, 35, 41, 46, 53, rng.getrandbits(8)))
        for payloads, anomalies in (parse_ikev2_inner(first, bytes(data)),
                                    parse_isakmp_inner(first, bytes(data), rng.choice((2, 4, 5, 6, 32)))):
            assert all(isinstance(p, Payload) for p in payloads)
            assert all(isinstance(a, Anomaly) for a in anomalies)
