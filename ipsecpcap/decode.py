"""The fast path: classify every frame by fixed offsets and feed a sink.

This is the hot loop.  It walks the records of a :class:`~ipsecpcap.reader.Block`
with ``struct.unpack_from`` on the block's shared buffer and never builds a
per-packet object for the common cases (ESP, AH, ESP in UDP, plaintext TCP and
UDP).  The rare packets -- IKE messages, IP fragments -- go to the full
dissectors (``ipsecpcap.dissectors``) through the sink.

Every frame gets exactly one accounting category (see :mod:`ipsecpcap.accounting`):

* ``analysed:<what>`` -- esp, ah (AH over anything but ESP), ah+esp, ike,
  natt-keepalive, ip-fragment (a fragment kept for reassembly, or a later
  fragment of a datagram not captured whole), ip (other IP traffic)
* ``skipped:<reason>`` -- not IP (with the ethertype or link type)
* ``malformed:<kind>:<where>`` -- kind is truncated, bad_length or bad_header

The sink is duck-typed (see :class:`Sink`); the tracker aggregates, the frame
recorder (``ipsecpcap.frames``) keeps one row per frame for cross-checks.
"""
from __future__ import annotations

import struct
from functools import lru_cache
from typing import Protocol

from .dissectors.ike import IKE_HEADER_LEN, summarize_ike
from .dissectors.records import IkeMessage, IkeSummary
from .reassembly import Reassembler

# ------------------------------------------------------------------ link types
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_DLT_RAW1 = 12  # DLT_RAW on most BSDs
LINKTYPE_DLT_RAW2 = 14  # DLT_RAW on OpenBSD
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
RAW_LINKTYPES = (LINKTYPE_RAW, LINKTYPE_DLT_RAW1, LINKTYPE_DLT_RAW2)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)
ETHERTYPE_NAMES = {0x0806: "ARP", 0x8035: "RARP", 0x88CC: "LLDP", 0x8863: "PPPoE discovery",
                   0x8864: "PPPoE session", 0x8847: "MPLS", 0x8848: "MPLS multicast",
                   0x888E: "EAPOL", 0x88E5: "MACsec", 0x9000: "loopback"}
# BSD loopback address families for IPv4 and IPv6 (DLT_NULL is in host byte
# order, DLT_LOOP in network byte order; both orders are tried).
AF_INET = 2
AF_INET6 = (10, 24, 28, 30)  # Linux, NetBSD/OpenBSD, FreeBSD, Darwin

# ------------------------------------------------------------------ IP
IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_MOBILITY = 135
IPV6_EXT_SIMPLE = (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS, IPPROTO_MOBILITY)

IKE_PORT = 500
NATT_PORT = 4500

# ICMP error messages, which quote the offending packet
ICMP4_ERRORS = (3, 4, 5, 11, 12)  # unreachable, source quench, redirect, time exceeded, parameter problem
ICMP6_ERRORS = (1, 2, 3, 4)  # unreachable, packet too big, time exceeded, parameter problem
# ICMP request/reply types: each maps to its counterpart
ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
ICMP6_PAIRS = {128: 129, 129: 128}

MAX_DEPTH = 4  # IP-in-IP nesting we follow before calling a packet malformed

_u16 = struct.Struct("!H").unpack_from
_u32 = struct.Struct("!I").unpack_from
_le32 = struct.Struct("<I").unpack_from
# IPv4 (RFC 791): total length @2, flags+fragment offset @6, protocol @9
_ip4 = struct.Struct("!2xHxxHxB").unpack_from
_ip4_id = struct.Struct("!4xH").unpack_from
# IPv6 (RFC 8200): payload length @4, next header @6
_ip6 = struct.Struct("!4xHB").unpack_from
# UDP (RFC 768) / TCP (RFC 9293) ports; TCP flags @13
_ports = struct.Struct("!HH").unpack_from
_ports_len = struct.Struct("!HHH").unpack_from
_espu = struct.Struct("!II").unpack_from
_ah = struct.Struct("!BBxxII").unpack_from


class Sink(Protocol):  # pragma: no cover - documentation of the interface
    def esp(self, frame: int, ts: float, addrs: bytes, spi: int, seq: int, length: int,
            encap: bool, fragments: int) -> bool | None: ...  # true: a new SA, send esp_sample
    def esp_sample(self, spi: int, addrs: bytes, packet) -> None: ...  # first packet of a new ESP SA
    def ah(self, frame: int, ts: float, addrs: bytes, spi: int, seq: int, length: int,
           next_header: int) -> None: ...
    def ike(self, frame: int, ts: float, addrs: bytes, sport: int, dport: int, msg: IkeSummary | IkeMessage,
            marker: bool, fragments: int, raw: bytes) -> None: ...
    def keepalive(self, frame: int, ts: float, addrs: bytes, sport: int, dport: int) -> None: ...
    def flow(self, frame: int, ts: float, proto: int, addrs: bytes, sport: int, dport: int,
             length: int, tcp_flags: int, protected_by: str | None) -> None: ...
    def icmp_error(self, frame: int, ts: float, addrs: bytes, proto: int, icmp_type: int, code: int,
                   quoted: list[str], quoted_flow: tuple | None) -> None: ...
    def truncated_ipsec(self, frame: int, ts: float, addrs: bytes, protocol: str, spi: int,
                        encap: bool) -> None: ...


class Decoder:
    """Classifies frames and feeds ``sink``; counts every frame in ``counts``.

    ``counts`` maps an accounting category to a number of frames.  The
    decoder owns the IP reassembler, whose pending fragments are part of the
    partial result (see :meth:`finish`).
    """

    __slots__ = ("sink", "counts", "reasm")

    # the IKE dissector: what the tracker keeps of a message (an IkeSummary, quick for the
    # encrypted ones); the vectorised path's recording decoder leaves the parsing to the
    # process that applies the records (see ipsecpcap.vector)
    parse_ike = staticmethod(summarize_ike)

    def __init__(self, sink, reassembler: Reassembler | None = None):
        self.sink = sink
        self.counts: dict[str, int] = {}
        self.reasm = reassembler if reassembler is not None else Reassembler()

    # -------------------------------------------------------------- blocks
    def run_block(self, block) -> None:
        counts = self.counts
        for frame, kind, detail in block.bad:
            cat = f"malformed:{kind}:record"
            counts[cat] = counts.get(cat, 0) + 1
        lts = block.linktypes
        data = block.data
        frame_fn = self.frame
        if isinstance(lts, int):
            for frame, off, caplen, origlen, ts in zip(block.frames, block.offsets, block.caplens,
                                                       block.origlens, block.ts):
                cat = frame_fn(lts, data, off, off + caplen, ts, frame)
                counts[cat] = counts.get(cat, 0) + 1
        else:
            for frame, off, caplen, origlen, ts, lt in zip(block.frames, block.offsets, block.caplens,
                                                           block.origlens, block.ts, lts):
                cat = frame_fn(lt, data, off, off + caplen, ts, frame)
                counts[cat] = counts.get(cat, 0) + 1

    # -------------------------------------------------------------- one frame
    def frame(self, lt: int, buf, o: int, end: int, ts: float, frame: int) -> str:
        """Classify one frame whose bytes are ``buf[o:end]``; return its category."""
        if lt == LINKTYPE_ETHERNET:
            if end - o < 14:
                return "malformed:truncated:ethernet"
            et = _u16(buf, o + 12)[0]
            o += 14
            while et in VLAN_TPIDS:  # IEEE 802.1Q / 802.1ad tags, possibly stacked
                if end - o < 4:
                    return "malformed:truncated:vlan"
                et = _u16(buf, o + 2)[0]
                o += 4
            if et == ETH_IPV4:
                return self.ipv4(buf, o, end, ts, frame, 0, None)
            if et == ETH_IPV6:
                return self.ipv6(buf, o, end, ts, frame, 0, None)
            if et < 0x0600:
                return "skipped:non-IP (IEEE 802.3 length field, LLC)"
            return _skip_ethertype(et)
        if lt in RAW_LINKTYPES:
            return self.ip_any(buf, o, end, ts, frame)
        if lt == LINKTYPE_NULL or lt == LINKTYPE_LOOP:
            if end - o < 4:
                return "malformed:truncated:loopback"
            fam = _le32(buf, o)[0] if lt == LINKTYPE_NULL else _u32(buf, o)[0]
            fam_swapped = _u32(buf, o)[0] if lt == LINKTYPE_NULL else _le32(buf, o)[0]
            if fam == AF_INET or fam_swapped == AF_INET:
                return self.ipv4(buf, o + 4, end, ts, frame, 0, None)
            if fam in AF_INET6 or fam_swapped in AF_INET6:
                return self.ipv6(buf, o + 4, end, ts, frame, 0, None)
            return f"skipped:non-IP loopback address family {fam}"
        if lt == LINKTYPE_IPV4:
            return self.ipv4(buf, o, end, ts, frame, 0, None)
        if lt == LINKTYPE_IPV6:
            return self.ipv6(buf, o, end, ts, frame, 0, None)
        if lt == LINKTYPE_LINUX_SLL:
            # Linux cooked capture v1: 16-byte header, protocol (ethertype) at 14
            if end - o < 16:
                return "malformed:truncated:sll"
            et = _u16(buf, o + 14)[0]
            o += 16
        elif lt == LINKTYPE_LINUX_SLL2:
            # Linux cooked capture v2: 20-byte header, protocol at 0
            if end - o < 20:
                return "malformed:truncated:sll2"
            et = _u16(buf, o)[0]
            o += 20
        else:
            return f"skipped:unsupported link type {lt}"
        if et == ETH_IPV4:
            return self.ipv4(buf, o, end, ts, frame, 0, None)
        if et == ETH_IPV6:
            return self.ipv6(buf, o, end, ts, frame, 0, None)
        return _skip_ethertype(et)

    def ip_any(self, buf, o, end, ts, frame, depth=0, protected_by=None):
        if end - o < 1:
            return "malformed:truncated:ip"
        v = buf[o] >> 4
        if v == 4:
            return self.ipv4(buf, o, end, ts, frame, depth, protected_by)
        if v == 6:
            return self.ipv6(buf, o, end, ts, frame, depth, protected_by)
        return f"malformed:bad_header:ip.version={v}"

    # -------------------------------------------------------------- IPv4
    def ipv4(self, buf, o, end, ts, frame, depth, protected_by):
        if end - o < 20:
            return "malformed:truncated:ipv4"
        vihl = buf[o]
        if vihl >> 4 != 4:
            return "malformed:bad_header:ipv4.version"
        ihl = (vihl & 15) * 4  # RFC 791: IHL counts 32-bit words
        tot, frag, proto = _ip4(buf, o)
        if ihl < 20 or tot < ihl:
            return "malformed:bad_length:ipv4"
        if end - o < ihl:
            return "malformed:truncated:ipv4.options"
        addrs = buf[o + 12:o + 20]  # source and destination, 4 bytes each
        # Ethernet pads short frames: the datagram ends at the total length.
        # A capture cut by the snap length ends earlier; dissect what is there.
        if o + tot < end:
            end = o + tot
        if frag & 0x3FFF:  # MF flag or a non-zero fragment offset (RFC 791)
            if o + tot > end:
                # Not all of the fragment was captured: it cannot take part in
                # reassembly.  A first fragment is dissected for what it shows
                # (as Wireshark does); a later one is only counted.
                if frag & 0x1FFF:
                    return "analysed:ip-fragment"
                return self.transport(proto, buf, o + ihl, end, addrs, tot, ts, frame, depth, protected_by, 0)
            done = self.reasm.add4(addrs, _ip4_id(buf, o)[0], proto, (frag & 0x1FFF) * 8,
                                   bool(frag & 0x2000), buf[o + ihl:end], ts, frame)
            if done is None:
                return "analysed:ip-fragment"
            payload, nfrags = done
            return self.transport(proto, payload, 0, len(payload), addrs, ihl + len(payload), ts, frame,
                                  depth, protected_by, nfrags)
        return self.transport(proto, buf, o + ihl, end, addrs, tot, ts, frame, depth, protected_by, 0)

    # -------------------------------------------------------------- IPv6
    def ipv6(self, buf, o, end, ts, frame, depth, protected_by):
        if end - o < 40:
            return "malformed:truncated:ipv6"
        if buf[o] >> 4 != 6:
            return "malformed:bad_header:ipv6.version"
        plen, nh = _ip6(buf, o)
        addrs = buf[o + 8:o + 40]
        if plen:  # 0 means a jumbogram (RFC 2675) or a bad length; use what is captured
            if o + 40 + plen < end:
                end = o + 40 + plen
        tot = 40 + plen if plen else end - o
        p = o + 40
        saw_ah = False
        # RFC 8200 section 4: walk the extension headers
        while True:
            if nh in IPV6_EXT_SIMPLE:
                if end - p < 8:
                    return "malformed:truncated:ipv6.exthdr"
                nh, hlen = buf[p], (buf[p + 1] + 1) * 8  # RFC 8200 4.3: 8-octet units, first not counted
                p += hlen
                if p > end:
                    return "malformed:truncated:ipv6.exthdr"
            elif nh == IPPROTO_FRAGMENT:
                if end - p < 8:
                    return "malformed:truncated:ipv6.fragment"
                nxt = buf[p]
                offm = _u16(buf, p + 2)[0]
                ident = _u32(buf, p + 4)[0]
                # RFC 8200 4.5: offset in 8-octet units (upper 13 bits), M flag (bit 0)
                if offm & 0xFFF9 == 0:
                    # atomic fragment (offset 0, M clear): not really fragmented
                    nh = nxt
                    p += 8
                    continue
                if o + tot > end:  # not all captured: see ipv4()
                    if offm & 0xFFF8:
                        return "analysed:ip-fragment"
                    nh = nxt
                    p += 8
                    continue
                done = self.reasm.add6(addrs, ident, nxt, offm & 0xFFF8, bool(offm & 1),
                                       buf[p + 8:end], ts, frame)
                if done is None:
                    return "analysed:ip-fragment"
                payload, nfrags = done
                return self.transport(nxt, payload, 0, len(payload), addrs, 40 + len(payload), ts, frame,
                                      depth, protected_by, nfrags)
            elif nh == IPPROTO_AH:
                cat = self.ah(buf, p, end, addrs, tot, ts, frame, depth)
                if cat is not None:
                    return cat
                # AH as an extension header: continue with what it protects
                saw_ah = True
                nh = buf[p]
                protected_by = _spi_text(_u32(buf, p + 4)[0])
                p += (buf[p + 1] + 2) * 4
            else:
                break
        cat = self.transport(nh, buf, p, end, addrs, tot, ts, frame, depth, protected_by, 0)
        return _under_ah(cat) if saw_ah else cat

    # -------------------------------------------------------------- AH
    def ah(self, buf, p, end, addrs, tot, ts, frame, depth):
        """Record an AH header at ``p``.  Returns a category if the frame ends
        here (malformed), None to continue into the next header."""
        if end - p < 12:
            return "malformed:truncated:ah"
        nh, plen, spi, seq = _ah(buf, p)
        self.sink.ah(frame, ts, addrs, spi, seq, tot, nh)
        hlen = (plen + 2) * 4  # RFC 4302, section 2.2
        if hlen < 12:
            return "malformed:bad_length:ah"
        if p + hlen > end:
            # the capture (snap length) ends inside or right after AH: nothing to follow
            return "analysed:ah"
        return None

    # -------------------------------------------------------------- transport
    def transport(self, proto, buf, p, end, addrs, iplen, ts, frame, depth, protected_by, nfrags):
        """Dispatch on the IP protocol of a datagram whose payload is buf[p:end]."""
        sink = self.sink
        if proto == IPPROTO_ESP:
            if end - p < 8:
                if end - p >= 4:
                    sink.truncated_ipsec(frame, ts, addrs, "esp", _u32(buf, p)[0], False)
                return "malformed:truncated:esp"
            spi, seq = _espu(buf, p)
            if sink.esp(frame, ts, addrs, spi, seq, iplen, False, nfrags):  # true for a new SA only
                sink.esp_sample(spi, addrs, buf[p:end])
            return "analysed:esp"
        if proto == IPPROTO_UDP:
            if end - p < 8:
                return "malformed:truncated:udp"
            sport, dport, ulen = _ports_len(buf, p)
            if ulen >= 8 and p + ulen < end:  # RFC 768: length includes the 8-byte header
                end = p + ulen
            q = p + 8
            # the UDP length tells how much was sent, even when less was captured
            reported = ulen - 8 if ulen >= 8 else end - q
            if sport == NATT_PORT or dport == NATT_PORT:
                n = end - q
                if n == 1 and buf[q] == 0xFF:  # RFC 3948 2.2 NAT-keepalive
                    sink.keepalive(frame, ts, addrs, sport, dport)
                    return "analysed:natt-keepalive"
                if n >= 4 and buf[q:q + 4] == b"\x00\x00\x00\x00":  # RFC 3948 2.1 non-ESP marker
                    return self.ike(buf, q + 4, end, reported - 4, addrs, sport, dport, ts, frame, True, nfrags)
                if n >= 8:
                    spi, seq = _espu(buf, q)
                    if sink.esp(frame, ts, addrs, spi, seq, iplen, True, nfrags):  # true for a new SA only
                        sink.esp_sample(spi, addrs, buf[q:end])
                    return "analysed:esp"
                if n >= 4 and reported >= 8:  # an ESP header cut by the snap length
                    sink.truncated_ipsec(frame, ts, addrs, "esp", _u32(buf, q)[0], True)
                    return "malformed:truncated:esp"
                if sport == IKE_PORT or dport == IKE_PORT:
                    return self.ike(buf, q, end, reported, addrs, sport, dport, ts, frame, False, nfrags)
                sink.flow(frame, ts, IPPROTO_UDP, addrs, sport, dport, iplen, 0, protected_by)
                return "malformed:truncated:udpencap"
            if sport == IKE_PORT or dport == IKE_PORT:
                return self.ike(buf, q, end, reported, addrs, sport, dport, ts, frame, False, nfrags)
            sink.flow(frame, ts, IPPROTO_UDP, addrs, sport, dport, iplen, 0, protected_by)
            return "analysed:ip"
        if proto == IPPROTO_TCP:
            if end - p < 14:
                return "malformed:truncated:tcp"
            sport, dport = _ports(buf, p)
            sink.flow(frame, ts, IPPROTO_TCP, addrs, sport, dport, iplen, buf[p + 13], protected_by)
            return "analysed:ip"
        if proto == IPPROTO_AH:  # AH in IPv4 (in IPv6 it is walked as an extension header)
            cat = self.ah(buf, p, end, addrs, iplen, ts, frame, depth)
            if cat is not None:
                return cat
            if depth >= MAX_DEPTH:
                return "malformed:bad_header:ah.nesting"
            # continue into what AH protects (ESP for AH+ESP, TCP/UDP in
            # transport mode, IP in tunnel mode)
            nh = buf[p]
            hlen = (buf[p + 1] + 2) * 4
            return _under_ah(self.transport(nh, buf, p + hlen, end, addrs, iplen, ts, frame, depth + 1,
                                            _spi_text(_u32(buf, p + 4)[0]), nfrags))
        if proto == IPPROTO_IPIP or proto == IPPROTO_IPV6:
            # IP in IP: tunnel mode under AH, or a plain IP-in-IP tunnel
            if depth >= MAX_DEPTH:
                return "malformed:bad_header:ip.nesting"
            if proto == IPPROTO_IPIP:
                return self.ipv4(buf, p, end, ts, frame, depth + 1, protected_by)
            return self.ipv6(buf, p, end, ts, frame, depth + 1, protected_by)
        if proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            if end - p < 2:
                return "malformed:truncated:icmp"
            # type and code take the place of the ports, as Zeek does
            return self.icmp(proto, buf, p, end, addrs, iplen, ts, frame, protected_by)
        if proto == IPPROTO_NONE:
            sink.flow(frame, ts, proto, addrs, 0, 0, iplen, 0, protected_by)
            return "analysed:ip"
        sink.flow(frame, ts, proto, addrs, 0, 0, iplen, 0, protected_by)
        return "analysed:ip"

    def ike(self, buf, q, end, reported, addrs, sport, dport, ts, frame, marker, nfrags):
        """An IKE message at buf[q:end] (``reported`` bytes were sent)."""
        if reported < IKE_HEADER_LEN:
            # too short for the 28-byte header (RFC 7296 3.1): not an IKE message
            return "malformed:truncated:isakmp"
        if end - q >= IKE_HEADER_LEN and _u32(buf, q + 24)[0] < IKE_HEADER_LEN:
            # a length field smaller than the header cannot describe a message;
            # Wireshark does not take such a datagram as ISAKMP either
            return "malformed:bad_length:isakmp"
        data = bytes(buf[q:end])
        self.sink.ike(frame, ts, addrs, sport, dport, self.parse_ike(data), marker, nfrags, data)
        return "analysed:ike"

    def icmp(self, proto, buf, p, end, addrs, iplen, ts, frame, protected_by):
        """ICMP and ICMPv6; an error message quotes the packet that caused it
        (RFC 792, RFC 4443 2.4), which is dissected for what it carried."""
        itype, code = buf[p], buf[p + 1]
        # a request and its reply make one flow: the reply's "ports" are the
        # request's reversed (echo 8/0, timestamp 13/14, ...; ICMPv6 echo 128/129)
        pair = (ICMP4_PAIRS if proto == IPPROTO_ICMP else ICMP6_PAIRS).get(itype)
        self.sink.flow(frame, ts, proto, addrs, itype, code if pair is None else pair, iplen, 0, protected_by)
        if ((itype in ICMP4_ERRORS if proto == IPPROTO_ICMP else itype in ICMP6_ERRORS) and end - p > 8
                and type(self.sink) is not _QuoteSink):  # one level of quoting is enough
            qs = _QuoteSink()
            q = Decoder(qs, _NO_REASSEMBLY)
            q.ip_any(buf, p + 8, end, ts, frame, MAX_DEPTH - 1, None)
            self.sink.icmp_error(frame, ts, addrs, proto, itype, code, qs.protocols, qs.quoted_flow)
        return "analysed:ip"

    def finish(self) -> None:
        """Account for fragments that never completed a datagram."""
        self.reasm.expire_all()


class _QuoteSink:
    """Collects what the packet quoted in an ICMP error carried; counts nothing."""

    __slots__ = ("protocols", "quoted_flow")

    def __init__(self):
        self.protocols: list[str] = []
        self.quoted_flow: tuple | None = None  # (proto, addrs, sport, dport) of the quoted packet

    def esp(self, frame, ts, addrs, spi, seq, length, encap, fragments):
        self.protocols.append("esp")

    def ah(self, frame, ts, addrs, spi, seq, length, next_header):
        self.protocols.append("ah")

    def ike(self, frame, ts, addrs, sport, dport, msg, marker, fragments, raw):
        self.protocols.append("isakmp")
        self.quoted_flow = (IPPROTO_UDP, addrs, sport, dport)

    def keepalive(self, frame, ts, addrs, sport, dport):
        pass

    def flow(self, frame, ts, proto, addrs, sport, dport, length, tcp_flags, protected_by):
        if self.quoted_flow is None:
            self.quoted_flow = (proto, addrs, sport, dport)

    def icmp_error(self, *args):
        pass

    def truncated_ipsec(self, frame, ts, addrs, protocol, spi, encap):
        self.protocols.append(protocol)


class _NoReassembly(Reassembler):
    """Quoted packets are never reassembled: a fragment quote is what it is."""

    def _add(self, key, offset, more, data, ts):
        return None


_NO_REASSEMBLY = _NoReassembly()


def _under_ah(cat: str) -> str:
    """The category of a frame whose AH protected what ``cat`` describes."""
    if cat == "analysed:ip":
        return "analysed:ah"
    if cat == "analysed:esp":
        return "analysed:ah+esp"
    return cat


def _skip_ethertype(et: int) -> str:
    name = ETHERTYPE_NAMES.get(et)
    return f"skipped:non-IP ethertype 0x{et:04x}" + (f" ({name})" if name else "")


@lru_cache(maxsize=4096)  # one string per SPI: every flow carried inside the SA keeps it
def _spi_text(spi: int) -> str:
    return f"0x{spi:08x}"


class KeyedDecoder(Decoder):
    """The decoder with keys: opens ESP and verifies AH as it goes, and feeds
    what ESP protected back into the analysis (marked with the SPI).

    The key-less fast path is :class:`Decoder`, untouched; only analyses
    with keys pay for this.  ``opened`` holds, for the frame just decoded,
    what the writer of a decrypted capture needs.
    """

    __slots__ = ("crypto", "_ip", "opened")

    def __init__(self, sink, crypto, reassembler: Reassembler | None = None):
        super().__init__(sink, reassembler)
        self.crypto = crypto
        self._ip = None  # (buffer, offset) of the IP header being decoded, for AH
        self.opened = None  # (ip buffer, ip offset, esp offset, udp, EspOpened) of the last frame

    def frame(self, lt, buf, o, end, ts, frame):
        self.opened = None
        return Decoder.frame(self, lt, buf, o, end, ts, frame)

    def ipv4(self, buf, o, end, ts, frame, depth, protected_by):
        self._ip = (buf, o, end, 4)
        return Decoder.ipv4(self, buf, o, end, ts, frame, depth, protected_by)

    def ipv6(self, buf, o, end, ts, frame, depth, protected_by):
        self._ip = (buf, o, end, 6)
        return Decoder.ipv6(self, buf, o, end, ts, frame, depth, protected_by)

    def ah(self, buf, p, end, addrs, tot, ts, frame, depth):
        cat = Decoder.ah(self, buf, p, end, addrs, tot, ts, frame, depth)
        ip = self._ip
        if ip is not None and ip[0] is buf and end - p >= 12:
            nh, plen, spi, seq = _ah(buf, p)
            self.crypto.ah(spi, addrs, seq, bytes(buf[ip[1]:ip[2]]), p - ip[1])
        return cat

    def transport(self, proto, buf, p, end, addrs, iplen, ts, frame, depth, protected_by, nfrags):
        cat = Decoder.transport(self, proto, buf, p, end, addrs, iplen, ts, frame, depth, protected_by, nfrags)
        if cat != "analysed:esp" or depth >= MAX_DEPTH:
            return cat
        udp = proto == IPPROTO_UDP
        q = p + 8 if udp else p
        if udp:  # RFC 3948 2.1: the ESP packet is the UDP payload (as Decoder.transport cuts it)
            ulen = _ports_len(buf, p)[2]
            if ulen >= 8 and p + ulen < end:
                end = p + ulen
        spi, seq = _espu(buf, q)
        res = self.crypto.esp(spi, addrs, seq, bytes(buf[q:end]))
        if res is None:
            return cat
        ip = self._ip
        own_ip = ip is not None and ip[0] is buf
        if self.opened is None and own_ip:
            self.opened = (buf, ip[1], q, udp, res)
        if res.status != "ok":
            return cat
        inner, nh, spi_text = res.payload, res.next_header, _spi_text(spi)
        if nh == IPPROTO_IPIP or nh == IPPROTO_IPV6:  # tunnel mode (RFC 4303 3.1.2)
            self.ip_any(inner, 0, len(inner), ts, frame, depth + 1, spi_text)
        elif nh != IPPROTO_NONE:  # transport mode; 59 is a TFC dummy packet (RFC 4303 2.6)
            outer_hdr = p - ip[1] if own_ip else 0
            self.transport(nh, inner, 0, len(inner), addrs, outer_hdr + len(inner), ts, frame,
                           depth + 1, spi_text, 0)
        return cat
