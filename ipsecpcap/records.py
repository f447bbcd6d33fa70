"""The rows of the four tables: typed, frozen, and the one source of every view.

JSON, CSV, the terminal table (and later DataFrames, Parquet and the PDF) are
all renderings of these records.  Field names are stable and documented in
the README; ``SCHEMA_VERSION`` changes when a field is renamed or removed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

SCHEMA_VERSION = 1


class Row:
    """Mixin: dict rendering in field order."""

    __slots__ = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True, slots=True)
class ExchangeRow(Row):
    """One IKE message."""

    capture: str
    frame: int  # 1-based; for an IP-fragmented message, the frame that completed it
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    version: int
    exchange_type: int
    exchange: str
    ispi: str
    rspi: str
    mid: int
    initiator: bool | None  # sent by the IKE SA's original initiator
    response: bool | None
    encrypted: bool
    payloads: list[str]
    length: int
    natt: bool  # carried on UDP 4500 behind the non-ESP marker
    ip_fragments: int  # IP fragments it was reassembled from; 0 when not fragmented
    anomalies: list[str]
    decrypted: bool  # an encrypted message that was verified and decrypted with the keys given
    decryption: str | None  # ok, fragment, integrity_failure, bad_padding, no_key, ...; None if not encrypted


@dataclass(frozen=True, slots=True)
class IkeSaRow(Row):
    """One IKE SA (an SPI pair)."""

    version: int
    ispi: str
    rspi: str
    initiator: str | None
    responder: str | None
    mode: str | None  # main, aggressive, ike_sa_init; None when the capture starts after it
    first_seen: float
    last_seen: float
    first_frame: int
    last_frame: int
    capture: str
    messages: int
    exchanges: dict[str, int]
    enc: str | None
    integ: str | None
    prf: str | None
    dh_group: int | None
    auth_method: str | None
    lifetime: int | None  # seconds (IKEv1 life attributes)
    lifetime_kb: int | None
    vendor_ids: list[str]
    nat_detected: bool | None  # NAT-D hashes disagree with the observed addresses
    natt: bool  # moved to UDP 4500
    notify_errors: list[str]
    initiator_id: str | None  # identities (IKEv1 ID, IKEv2 IDi/IDr), in clear or decrypted
    responder_id: str | None
    key: str | None  # fingerprint of the key that decrypted its messages
    decrypted: int  # messages decrypted and verified


@dataclass(frozen=True, slots=True)
class SaRow(Row):
    """One ESP or AH SA direction."""

    protocol: str  # esp | ah
    spi: str
    src: str
    dst: str
    udp_encap: bool
    packets: int
    bytes: int  # IP datagram bytes (outer header included), from the IP length fields
    first_seen: float
    last_seen: float
    first_frame: int
    last_frame: int
    seq_first: int
    seq_last: int
    capture: str  # capture of first_frame
    last_capture: str  # capture of last_frame
    ip_fragments: int  # IP fragments among its packets (reassembled before counting)
    next_headers: dict[str, int]  # AH: what it protected (esp, tcp, udp, ipv4, ...); ESP: {}
    enc: str | None  # from the key that verified, else from the IKE negotiation seen
    integ: str | None
    decrypted: int  # ESP: packets verified and decrypted; AH: packets whose ICV verified
    integrity_failures: int
    key: str | None  # fingerprint of the matched key


@dataclass(frozen=True, slots=True)
class FlowRow(Row):
    """One non-IPsec 5-tuple, both directions; src is the initiator."""

    proto: str
    src: str
    sport: int
    dst: str
    dport: int
    packets: int
    bytes: int
    packets_fwd: int
    packets_rev: int
    bytes_fwd: int
    bytes_rev: int
    first_seen: float
    last_seen: float
    first_frame: int
    last_frame: int
    state: str | None  # TCP: accepted, rejected, unanswered, midstream; else None
    protected_by: str | None  # SPI of the AH SA that carried it (inside IPsec), else None
    capture: str
