"""Per-frame view of the fast path, for cross-checks against tshark.

The same decoder that feeds the aggregating tracker feeds a recorder here
that keeps one :class:`FrameInfo` per frame: what protocols the frame
carried, its ESP/AH SPI and sequence number, and the IKE header fields.  It
is slower than the analysis (one object per frame) and is meant for tests,
debugging and the engine cross-check, not for large captures.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .decode import Decoder
from .reader import open_capture


@dataclass(frozen=True, slots=True)
class IkeInfo:
    ispi: str
    rspi: str
    version: int
    exchange_type: int
    mid: int
    payloads: tuple[str, ...]
    natt: bool


@dataclass(slots=True)
class FrameInfo:
    frame: int
    ts: float
    status: str  # analysed | skipped | malformed
    category: str  # the full accounting category, e.g. "analysed:esp"
    protocols: list[str] = field(default_factory=list)  # in order: "ah", "esp", "isakmp", "udpencap"
    esp_spi: int | None = None
    esp_seq: int | None = None
    esp_udp: bool = False
    ah_spi: list[int] = field(default_factory=list)
    ah_seq: list[int] = field(default_factory=list)
    ike: IkeInfo | None = None
    ip_fragments: int = 0  # for a frame that completed a reassembly: the fragment count
    quoted: list[str] = field(default_factory=list)  # what the packet quoted in an ICMP error carried


class _Recorder:
    """A decoder sink that remembers what the current frame carried."""

    def __init__(self):
        self.cur: FrameInfo | None = None

    def esp(self, frame, ts, addrs, spi, seq, length, encap, fragments):
        c = self.cur
        c.protocols.append("esp")
        if encap:
            c.protocols.insert(len(c.protocols) - 1, "udpencap")
        c.esp_spi, c.esp_seq, c.esp_udp = spi, seq, encap
        c.ip_fragments = fragments

    def ah(self, frame, ts, addrs, spi, seq, length, next_header):
        c = self.cur
        c.protocols.append("ah")
        c.ah_spi.append(spi)
        c.ah_seq.append(seq)

    def ike(self, frame, ts, addrs, sport, dport, msg, marker, fragments, raw):
        c = self.cur
        if marker:
            c.protocols.append("udpencap")
        c.protocols.append("isakmp")
        c.ike = IkeInfo(msg.ispi.hex(), msg.rspi.hex(), msg.version, msg.exchange_type, msg.mid,
                        tuple(msg.payload_names), marker)
        c.ip_fragments = fragments

    def keepalive(self, frame, ts, addrs, sport, dport):
        self.cur.protocols.append("udpencap")

    def flow(self, frame, ts, proto, addrs, sport, dport, length, tcp_flags, protected_by):
        pass

    def truncated_ipsec(self, frame, ts, addrs, protocol, spi, encap):
        if encap:
            self.cur.protocols.append("udpencap")
        self.cur.protocols.append(protocol)
        if protocol == "esp":
            self.cur.esp_spi, self.cur.esp_udp = spi, encap

    def icmp_error(self, frame, ts, addrs, proto, icmp_type, code, quoted, quoted_flow):
        self.cur.quoted.extend(quoted)


def iter_frames(path, *, block_bytes: int = 1 << 20) -> Iterator[FrameInfo]:
    """Yield one FrameInfo per record of the capture, in frame order."""
    rec = _Recorder()
    dec = Decoder(rec)
    with open_capture(path, block_bytes=block_bytes) as reader:
        for block in reader:
            bad = {f: (kind, detail) for f, kind, detail in block.bad}
            lts = block.linktypes
            recs = zip(block.frames, block.offsets, block.caplens, block.ts)
            out: list[FrameInfo] = []
            for i, (frame, off, caplen, ts) in enumerate(recs):
                lt = lts if isinstance(lts, int) else lts[i]
                rec.cur = FrameInfo(frame, ts, "", "")
                cat = dec.frame(lt, block.data, off, off + caplen, ts, frame)
                rec.cur.category = cat
                rec.cur.status = cat.split(":", 1)[0]
                out.append(rec.cur)
            for f, (kind, detail) in bad.items():
                out.append(FrameInfo(f, 0.0, "malformed", f"malformed:{kind}:record"))
            out.sort(key=lambda x: x.frame)
            yield from out
