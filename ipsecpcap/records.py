"""The rows of the four tables: typed, frozen, and the one source of every view.

JSON, CSV, the terminal table (and later DataFrames, Parquet and the PDF) are
all renderings of these records.  Field names are stable and documented in
the README; ``SCHEMA_VERSION`` changes when a field is renamed or removed.
"""
from __future__ import annotations

from dataclasses import asdict, fields

from .dissectors.records import record  # frozen, slotted, built quickly

SCHEMA_VERSION = 1


class Row:
    """Mixin: dict rendering in field order."""

    __slots__ = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@record
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


@record
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
    # lifecycle (ipsecpcap.lifecycle); "ispi/rspi" names an IKE SA
    established: float | None  # when it was established (IKE_AUTH / last phase-1 message / rekey answer)
    established_frame: int | None
    established_by: str | None  # IKE_AUTH, main_mode, aggressive, CREATE_CHILD_SA (a rekey)
    established_frames: list[int]  # frames of the exchanges that made it
    rekey_of: str | None  # the IKE SA it replaced
    rekey_inferred: bool  # rekey_of inferred (no keys; IKEv1 always)
    rekeyed_by: str | None  # the IKE SA that replaced it
    role_swapped: bool | None  # after a rekey: its initiator is the old SA's responder
    collision: bool  # the redundant IKE SA of a rekey collision
    deleted: float | None
    deleted_frame: int | None
    delete_inferred: bool
    observed_lifetime: float  # (deleted or last message) - (established or first message), seconds
    child_sas: int  # child SAs created under it
    quick_modes: int  # IKEv1 Quick Mode exchanges under it


@record
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
    # lifecycle (ipsecpcap.lifecycle)
    ike_sa: str | None  # "ispi/rspi" of the IKE SA that created it
    child_sa: str | None  # id of its child SA (see ChildSaRow.id)
    peer_spi: str | None  # the SPI of the other direction of the same child SA
    created_by: str | None  # IKE_AUTH, CREATE_CHILD_SA, quick_mode; None: made before the capture
    created: float | None  # when the creating exchange was answered
    created_frame: int | None
    rekey_of: str | None  # SPI of the SA it replaced, same direction
    rekey_inferred: bool
    pfs: bool | None  # creating exchange carried KE; None for IKE_AUTH and when unknown
    pfs_inferred: bool
    dh_group: int | None
    collision: bool  # the redundant SA of a rekey collision
    deleted: float | None
    deleted_frame: int | None
    delete_inferred: bool
    # anti-replay and sequence numbers (ipsecpcap.sequence), in capture order
    replays: int  # packets repeating a sequence number already seen on the SA
    gaps: int  # holes: runs of numbers never seen between the lowest and the highest
    missing: int  # numbers in those holes
    reordered: int  # late, new, less than 64 behind the highest (a 64 window accepts them)
    too_old_32: int  # late, new, 32 or more behind: a receiver with a 32 window drops them
    too_old_64: int  # late, new, 64 or more behind
    seq_resets: int  # the counter started again under the same SPI
    esn_wraps: int  # the 32-bit counter went round (extended sequence numbers)
    loss_rate: float  # missing / numbers from the lowest to the highest seen
    replay_rate: float  # replays / packets
    reorder_rate: float  # (reordered + too_old_64) / packets
    seq_exact: bool  # false when a count rests on an approximation (ipsecpcap.sequence says when)
    seq_events: list[dict]  # the first 100 events by frame: replay, gap, reorder, too_old, reset, esn_wrap


@record
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
    state: str | None  # TCP: accepted, rejected, unanswered, midstream; UDP: accepted (answered),
    # rejected (an ICMP error came back), unanswered; else None
    protected_by: str | None  # SPI of the AH SA that carried it (inside IPsec), else None
    capture: str


@record
class ChildSaRow(Row):
    """One child SA (both directions), including those seen only in IKE."""

    id: str  # "0x<SPI initiator->responder>/0x<SPI responder->initiator>", "?" for an unknown SPI
    protocol: str  # esp | ah
    ike_sa: str | None  # "ispi/rspi" of the IKE SA that created it
    initiator: str | None  # who started the creating exchange
    responder: str | None
    spi_i: str | None  # SPI of packets initiator -> responder
    spi_r: str | None
    created_by: str | None  # IKE_AUTH, CREATE_CHILD_SA, quick_mode; None: made before the capture
    created: float | None  # when the creating exchange was answered
    created_frames: list[int]
    rekey_of: str | None  # id of the child SA it replaced
    rekey_inferred: bool
    rekeyed_by: str | None  # id of the child SA that replaced it
    pfs: bool | None
    pfs_inferred: bool
    dh_group: int | None
    collision: bool  # the redundant SA of a rekey collision (RFC 7296 2.8.1)
    packets: int  # both directions
    first_packet: float | None
    last_packet: float | None
    deleted: float | None
    deleted_frame: int | None
    delete_inferred: bool
    lifetime: int | None  # proposed, seconds (IKEv1 Quick Mode life attributes)
    lifetime_kb: int | None
    observed_lifetime: float | None  # (deleted or last packet) - (created or first packet)
    overlap: float | None  # seconds during which it and its successor both carried traffic
    capture: str | None


@record
class TimelineBar(Row):
    """One bar of the SA timeline: an IKE SA or one child SA direction."""

    protocol: str  # ikev1 | ikev2 | esp | ah
    sa: str | None  # IKE "ispi/rspi" or child SPI "0x..." (None: not known)
    src: str | None  # IKE SA: initiator; child SA: sender
    dst: str | None
    ike_sa: str | None
    child_sa: str | None
    start: float  # established / created, else first seen
    end: float  # deleted, else last seen
    first_seen: float | None  # first and last packet (IKE: message)
    last_seen: float | None
    packets: int
    deleted: bool
    collision: bool
    capture: str | None


@record
class TimelineEvent(Row):
    """A point on the SA timeline."""

    ts: float
    frame: int | None
    capture: str | None
    kind: str  # ike_established, ike_rekey, ike_deleted, child_created, child_rekey, child_deleted, rekey_collision
    protocol: str  # of the SA it concerns: ikev1 | ikev2 | esp | ah
    sa: str  # the SA it concerns (IKE "ispi/rspi" or child SA id)
    ike_sa: str | None
    related: str | None  # the SA replaced (rekey, collision)
    inferred: bool


SEVERITIES = ("info", "low", "medium", "high", "critical")  # in increasing order


@record
class FindingRow(Row):
    """One finding of a rule (``ipsecpcap.rules``): what was seen, where, and what to do."""

    rule: str  # the rule's stable id
    severity: str  # one of SEVERITIES
    title: str
    detail: str  # what was seen, in words
    remediation: str
    frames: list[int]  # evidence frame numbers (the first 100; ``frame_count`` says how many in all)
    frame_count: int
    first_seen: float | None
    last_seen: float | None
    capture: str | None  # capture of the first evidence frame
    src: str | None  # endpoints, as the evidence shows them (initiator / sender first)
    dst: str | None
    proto: str | None  # tcp, udp, esp, ah, ikev1, ikev2, ...
    port: int | None  # the server (destination) port, where it matters
    spi: str | None  # ESP/AH SPI(s) concerned, "0x..." (several joined by ",")
    ike_sa: str | None  # "ispi/rspi" of the IKE SA concerned
    policy: str | None  # name of the policy entry (protected host) it concerns
    evidence: dict  # rule-specific facts (e.g. TCP state and bytes each way), JSON-safe
