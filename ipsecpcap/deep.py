"""The deep engine: the same analysis over tshark's dissection.

``ipsecpcap sas --engine tshark CAPTURE`` (``analyze(..., engine="tshark")``)
runs tshark over each capture (:mod:`ipsecpcap.tsharkview`) and feeds a
:class:`~ipsecpcap.tracker.Tracker` through the same sink methods the fast
decoder calls (``esp``, ``esp_sample``, ``ah``, ``ike``, ``keepalive``,
``flow``, ``icmp_error``, ``truncated_ipsec``; see
:class:`ipsecpcap.decode.Sink`), so every table, the SA lifecycle, the
anti-replay analysis and the findings are built from tshark's view by the
same code as for the fast path.

Where each value comes from
===========================

* **From tshark's own fields:** which frames carry ESP, AH, IKE (UDP 500,
  UDP 4500 behind the non-ESP marker), NAT-T keep-alives and plaintext;
  addresses, ports, IP lengths, TCP flags, ICMP types; ESP and AH SPIs and
  sequence numbers, AH next header; IP reassembly (which frame completed a
  datagram and from how many fragments); with keys, which ESP packets tshark
  decrypted and whether their ICV verified (``esp.icv_good`` /
  ``esp.icv_bad``), and the traffic inside them (a flow marked with the SPI,
  as the fast path's ``KeyedDecoder`` does; a packet whose ICV failed gives
  no flow, as ours never hands back unverified plaintext).
* **Parsed by our dissectors from bytes tshark hands back:** the content of
  each IKE message (payloads, proposals, KE, nonces, notifies: what the
  tables and rules need) is ``parse_ike`` of ``udp.payload`` (the
  reassembled datagram for an IP-fragmented one).  The cross-check
  (:mod:`ipsecpcap.crosscheck`) does not rely on it: it compares the IKE SPIs,
  exchange type, message ID and payload list from tshark's own fields.
* **Read from the capture:** the first packet of each new ESP SA direction
  (``Tracker.esp_samples``, for the NULL-encryption heuristic).  For ESP in
  UDP it is tshark's ``udp.payload``; tshark's fields do not carry the bytes
  of raw ESP (IP protocol 50), so those few frames are read from the file and
  the IP header and the ESP header found in them by the addresses and the
  SPI and sequence number tshark reported.

IKE decryption in the tables stays ours (``ipsecpcap.ikedecrypt``, from the
raw messages) for both engines; tshark's own IKE decryption is what the
cross-check compares against it.  AH ICVs: tshark does not verify them, so
with the deep engine an AH SA has no verified packets.

Frame accounting follows tshark's classification: ``analysed:esp``,
``analysed:ah``, ``analysed:ah+esp``, ``analysed:ike``,
``analysed:natt-keepalive``, ``analysed:ip-fragment``, ``analysed:ip`` as for
the fast path; ``skipped:non-IP ...`` for frames without IP; and
``malformed:tshark:<layer>`` where tshark marked the frame malformed before
anything could be analysed (tshark does not say truncated or bad length).
The fast path's rules about what a packet must be are applied to tshark's
fields where tshark reads on: an AH header shorter than 12 bytes is
``malformed:bad_length:ah`` (RFC 4302 2.2), an ESP header without its
sequence number ``malformed:truncated:esp``, a UDP 4500 payload too short for
ESP or the non-ESP marker ``malformed:truncated:udpencap``, and a UDP 500
datagram tshark does not take for ISAKMP ``malformed:tshark:isakmp`` (not a
flow, as with the fast path).
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile
from collections import Counter

from .dissectors.ike import parse_ike
from .errors import InputError
from .tracker import Tracker
from .tsharkview import Profile, TsharkFrame, find_tshark, iter_tshark, run_tshark, uat_tables, esp_key_for
from . import tsharkview

IPPROTO = {"icmp": 1, "igmp": 2, "ip": 4, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47, "esp": 50, "ah": 51,
           "icmpv6": 58, "ospf": 89, "pim": 103, "vrrp": 112, "sctp": 132, "l2tp": 115, "etherip": 97,
           "carp": 112, "ipcomp": 108, "mobileip": 55, "dccp": 33, "udplite": 136, "mobility": 135}
IPPROTO_NONE = 59
IKE_PORT, NATT_PORT = 500, 4500
IPV6_EXT = ("ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ipv6.fraghdr", "ipv6.shim6", "ipv6.mipv6")
_EXT_NXT = {"ipv6.hopopts": "ipv6_hopopts_nxt", "ipv6.routing": "ipv6_routing_nxt",
            "ipv6.dstopts": "ipv6_dstopts_nxt", "ipv6.fraghdr": "ipv6_frag_nxt"}
ICMP4_ERRORS = (3, 4, 5, 11, 12)  # unreachable, source quench, redirect, time exceeded, parameter problem
ICMP6_ERRORS = (1, 2, 3, 4)
ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
ICMP6_PAIRS = {128: 129, 129: 128}
ETHERTYPE_NAMES = {0x0806: "ARP", 0x8035: "RARP", 0x88CC: "LLDP", 0x8863: "PPPoE discovery",
                   0x8864: "PPPoE session", 0x8847: "MPLS", 0x8848: "MPLS multicast",
                   0x888E: "EAPOL", 0x88E5: "MACsec", 0x9000: "loopback"}
LINK_LAYERS = ("eth", "ethertype", "vlan", "sll", "null", "raw", "loop", "frame")
MAX_DEPTH = 4
PROGRESS_EVERY = 4096


def _addr(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def _spi_text(spi: int) -> str:
    return f"0x{spi:08x}"


class _Progress:
    """What ``progress`` callbacks read (like the reader the fast path passes)."""

    def __init__(self, name: str, size: int | None):
        self.name = name
        self.frames = 0
        self.bytes_read = None
        self.size = size


class DeepDecoder:
    """Turns tshark's frames into sink calls.  ``tables`` (with keys) says which
    key tshark was given for an SA; ``crypto`` (a :class:`SaCrypto`) receives
    tshark's per-SA verdicts."""

    def __init__(self, sink, tables=None, crypto=None):
        self.sink = sink
        self.counts: Counter = Counter()
        self.tables = tables
        self.crypto = crypto
        self.samples: dict[tuple, tuple] = {}  # (spi, addrs) -> where to read the first packet of a raw ESP SA
        self.unsampled = 0  # ESP SAs seen only inside decrypted ESP: no sample
        self.fragments: set[tuple] = set()  # IP datagrams of which a fragment was seen
        self.completed: set[tuple] = set()  # ... and those tshark reassembled

    # ------------------------------------------------------------ one frame
    def frame(self, f: TsharkFrame) -> str:
        cat = self._classify(f)
        self.counts[cat] += 1
        return cat

    def _classify(self, f: TsharkFrame) -> str:
        protos = f.outer_protocols
        net = next((i for i, p in enumerate(protos) if p in ("ip", "ipv6")), None)
        if net is None:
            return self._non_ip(f, protos)
        dgram = f.datagram
        fragment = f.is_ip_fragment
        whole = f.first("cap_len", 0) >= f.first("frame_len", 0)
        if dgram is not None and (fragment and whole or f.fragment_count):
            # held for reassembly, or completed it (a fragment cut by the snap
            # length takes no part in reassembly, for the fast path as for tshark)
            self.fragments.add(dgram)
            if f.fragment_count:
                self.completed.add(dgram)
        if fragment:
            return "analysed:ip-fragment"
        w = _Walk(self, f)
        return w.ip(net, 0, None)

    def _non_ip(self, f: TsharkFrame, protos) -> str:
        if f.malformed:
            layer = _before_malformed(f.protocols)
            return f"malformed:tshark:{layer}"
        et = None
        if "vlan" in protos and f.get("vlan_etype"):
            et = f.get("vlan_etype")[-1]
        elif "eth" in protos:
            et = f.first("eth_type")
            if et is None:
                return "skipped:non-IP (IEEE 802.3 length field, LLC)"
        elif "sll" in protos:
            et = f.first("sll_etype")
        elif "null" in protos:
            fam = f.first("null_family")
            if fam is not None:
                return f"skipped:non-IP loopback address family {fam}"
        if et is not None:
            if et < 0x0600:
                return "skipped:non-IP (IEEE 802.3 length field, LLC)"
            name = ETHERTYPE_NAMES.get(et)
            return f"skipped:non-IP ethertype 0x{et:04x}" + (f" ({name})" if name else "")
        rest = [p for p in protos if p not in LINK_LAYERS]
        return f"skipped:non-IP ({':'.join(rest) or 'no network layer'})"

    # ------------------------------------------------------------ verdicts
    def esp_verdict(self, f: TsharkFrame, e: int, spi: int, addrs: bytes, src: str, dst: str) -> str | None:
        """With keys: ``ok`` / ``integrity_failure`` / ``undecoded`` for an ESP
        packet tshark had a key for, None otherwise; counted per SA."""
        if self.tables is None:
            return None
        key = esp_key_for(self.tables, spi, src, dst)
        if key is None:
            return None
        # esp.icv_good/icv_bad/protocol occur once per ESP layer tshark decrypted,
        # outermost first (ESP in a decrypted tunnel is decrypted too)
        if f.at("esp_icv_bad", e):
            verdict = "integrity_failure"
        elif f.at("esp_protocol", e) is not None:
            verdict = "ok"
        else:
            verdict = "undecoded"
        if self.crypto is not None:
            from .sacrypto import SaState

            st = self.crypto.states.get((50, spi, addrs))
            if st is None:
                st = self.crypto.states[(50, spi, addrs)] = SaState()
            if st.key is None:
                st.key = key
                st.esn = key.esn
                self.crypto.bound.setdefault(id(key), set()).add((50, spi, addrs))
            self.crypto.count(st, "tshark_undecoded" if verdict == "undecoded" else verdict)
        return verdict

    # ------------------------------------------------------------ after the run
    def fill_samples(self, path, tracker: Tracker) -> None:
        """Read the first packet of each raw ESP SA from the capture (see the module docstring)."""
        if self.unsampled:
            tracker.warnings.append(f"{tracker.captures[0]}: {self.unsampled} ESP SAs seen only inside "
                                    f"decrypted ESP have no first-packet sample (the NULL-encryption check "
                                    f"skips them)")
        if not self.samples:
            return
        from .reader import open_capture

        want: dict[int, list] = {}
        for (spi, addrs), info in self.samples.items():
            want.setdefault(info[0], []).append((spi, addrs, info))
        missing = 0
        try:
            with open_capture(path) as reader:
                for block in reader:
                    for frame, off, caplen in zip(block.frames, block.offsets, block.caplens):
                        todo = want.pop(frame, None)
                        if todo is None:
                            continue
                        data = bytes(block.data[off:off + caplen])
                        for spi, addrs, info in todo:
                            packet = _locate_esp(data, addrs, info)
                            if packet is None:
                                missing += 1
                            else:
                                tracker.esp_sample(spi, addrs, packet)
                    if not want:
                        break
        except Exception as e:  # noqa: BLE001 - tshark read it; the samples are a heuristic's input
            tracker.warnings.append(f"{tracker.captures[0]}: could not read the first ESP packets for the "
                                    f"NULL-encryption check: {e}")
            return
        missing += sum(len(v) for v in want.values())
        if missing:
            tracker.warnings.append(f"{tracker.captures[0]}: {missing} ESP SAs without a first-packet sample "
                                    f"(the NULL-encryption check skips them)")


def _locate_esp(data: bytes, addrs: bytes, info) -> bytes | None:
    _frame, spi, seq, total, v6 = info
    h = len(addrs) >> 1
    pos = data.find(addrs)  # source then destination, as in the IP header
    if pos < 0:
        return None
    ip_start = pos - (8 if v6 else 12)
    s = data.find(spi.to_bytes(4, "big") + seq.to_bytes(4, "big"), pos + 2 * h)
    if s < 0 or ip_start < 0:
        return None
    end = min(len(data), ip_start + total) if total else len(data)
    return data[s:end] if end > s else data[s:]


def _before_malformed(protos) -> str:
    if "_ws.malformed" in protos:
        i = protos.index("_ws.malformed")
        prev = [p for p in protos[:i] if p not in ("ethertype", "data")]
        return prev[-1] if prev else "frame"
    return protos[-1] if protos else "frame"


class _Walk:
    """Walks one frame's outer layers, keeping per-layer instance counters."""

    def __init__(self, dec: DeepDecoder, f: TsharkFrame):
        self.dec = dec
        self.sink = dec.sink
        self.f = f
        self.protos = f.outer_protocols
        self.n = Counter()
        self.nfrags = f.fragment_count
        self.frame = f.frame
        self.ts = f.ts
        self.in_esp = False  # walking what a decrypted ESP packet carried

    def take(self, layer: str) -> int:
        i = self.n[layer]
        self.n[layer] += 1
        return i

    def _malformed(self, i: int) -> str | None:
        """If the layer at ``i`` is tshark's malformed marker: the category."""
        if i < len(self.protos) and self.protos[i] == "_ws.malformed":
            return f"malformed:tshark:{_before_malformed(self.protos[:i + 1])}"
        return None

    # ------------------------------------------------------------ IP
    def ip(self, i: int, depth: int, protected_by: str | None) -> str:
        f = self.f
        name = self.protos[i]
        k = self.take(name)
        if name == "ip":
            src, dst = f.at("ip_src", k), f.at("ip_dst", k)
            if src is None or dst is None:
                return self._malformed(i + 1) or "malformed:tshark:ip"
            hdr = f.at("ip_hdr_len", k, 20)
            tot = f.at("ip_len", k, 0)
            proto = f.at("ip_proto", k)
            if k == 0 and self.nfrags and f.get("ip_reassembled_length"):
                tot = hdr + f.first("ip_reassembled_length")
            j = i + 1
        else:
            src, dst = f.at("ipv6_src", k), f.at("ipv6_dst", k)
            if src is None or dst is None:
                return self._malformed(i + 1) or "malformed:tshark:ipv6"
            plen = f.at("ipv6_plen", k, 0)
            tot = 40 + plen
            hdr = 40
            proto = f.at("ipv6_nxt", k)
            j = i + 1
            if k == 0 and self.nfrags and f.get("ipv6_reassembled_length"):
                tot = 40 + f.first("ipv6_reassembled_length")
        addrs = _addr(src) + _addr(dst)
        saw_ah = False
        # IPv6 extension headers (their own layers in tshark) and AH
        while j < len(self.protos):
            p = self.protos[j]
            if p in IPV6_EXT:
                e = self.take(p)
                attr = _EXT_NXT.get(p)
                if attr is not None and f.at(attr, e) is not None:
                    proto = f.at(attr, e)
                j += 1
                continue
            if p == "ah":
                a = self.take("ah")
                spi, seq, nh = f.at("ah_spi", a), f.at("ah_seq", a), f.at("ah_next_header", a)
                if spi is None or seq is None:
                    return self._malformed(j + 1) or "malformed:tshark:ah"
                self.sink.ah(self.frame, self.ts, addrs, spi, seq, tot, nh if nh is not None else 0)
                if (f.at("ah_length", a, 1) + 2) * 4 < 12:
                    # RFC 4302 2.2: the header is at least 12 bytes; tshark reads on
                    # after a shorter one, we stop as the fast path does
                    return "malformed:bad_length:ah"
                saw_ah = True
                protected_by = _spi_text(spi)
                proto = nh
                j += 1
                if j >= len(self.protos) or self.protos[j] == "_ws.malformed":
                    return "analysed:ah"
                if depth + 1 >= MAX_DEPTH and self.protos[j] in ("ah",):
                    return "malformed:bad_header:ah.nesting"
                continue
            break
        cat = self.transport(j, proto, addrs, tot, hdr, depth, protected_by)
        if saw_ah:
            if cat == "analysed:ip":
                return "analysed:ah"
            if cat == "analysed:esp":
                return "analysed:ah+esp"
        return cat

    # ------------------------------------------------------------ above IP
    def transport(self, j: int, proto, addrs: bytes, tot: int, hdr: int, depth: int, protected_by) -> str:
        f, sink = self.f, self.sink
        if j >= len(self.protos) or self.protos[j] in ("data",):
            # nothing tshark knows above IP: a flow of the IP protocol number
            sink.flow(self.frame, self.ts, proto if proto is not None else IPPROTO_NONE, addrs, 0, 0, tot, 0,
                      protected_by)
            return "analysed:ip"
        p = self.protos[j]
        bad = self._malformed(j)
        if bad:
            return bad
        if p in ("ip", "ipv6"):
            if depth + 1 >= MAX_DEPTH:
                return "malformed:bad_header:ip.nesting"
            return self.ip(j, depth + 1, protected_by)
        if p == "esp":
            return self.esp(j, addrs, tot, hdr, False, depth, protected_by)
        if p == "udp":
            u = self.take("udp")
            sport, dport = f.at("udp_sport", u), f.at("udp_dport", u)
            if sport is None or dport is None:
                return self._malformed(j + 1) or "malformed:tshark:udp"
            nxt = self.protos[j + 1] if j + 1 < len(self.protos) else None
            if nxt == "udpencap":
                after = self.protos[j + 2] if j + 2 < len(self.protos) else None
                if after == "esp":
                    return self.esp(j + 2, addrs, tot, hdr, True, depth, protected_by)
                if after == "isakmp":
                    return self.ike(j + 2, u, addrs, sport, dport, True)
                payload = self.udp_payload(u)
                if payload == b"\xff":  # RFC 3948 2.2 NAT-keepalive
                    sink.keepalive(self.frame, self.ts, addrs, sport, dport)
                    return "analysed:natt-keepalive"
                sink.flow(self.frame, self.ts, 17, addrs, sport, dport, tot, 0, protected_by)
                return "malformed:tshark:udpencap"
            if nxt == "isakmp":
                return self.ike(j + 1, u, addrs, sport, dport, False)
            if sport == NATT_PORT or dport == NATT_PORT:
                # too short for ESP or the non-ESP marker: tshark leaves it plain UDP
                sink.flow(self.frame, self.ts, 17, addrs, sport, dport, tot, 0, protected_by)
                return "malformed:truncated:udpencap"
            if sport == IKE_PORT or dport == IKE_PORT:
                # UDP 500 that tshark does not take for ISAKMP (e.g. a length field
                # smaller than the header): malformed IKE, not a flow, as for the fast path
                return "malformed:tshark:isakmp"
            sink.flow(self.frame, self.ts, 17, addrs, sport, dport, tot, 0, protected_by)
            return "analysed:ip"
        if p == "tcp":
            t = self.take("tcp")
            sport, dport = f.at("tcp_sport", t), f.at("tcp_dport", t)
            if sport is None or dport is None:
                return self._malformed(j + 1) or "malformed:tshark:tcp"
            sink.flow(self.frame, self.ts, 6, addrs, sport, dport, tot, (f.at("tcp_flags", t) or 0) & 0xFF,
                      protected_by)
            return "analysed:ip"
        if p in ("icmp", "icmpv6"):
            return self.icmp(j, p, addrs, tot, protected_by)
        number = IPPROTO.get(p, proto)
        sink.flow(self.frame, self.ts, number if number is not None else IPPROTO_NONE, addrs, 0, 0, tot, 0,
                  protected_by)
        return "analysed:ip"

    def udp_payload(self, u: int) -> bytes | None:
        """``udp.payload`` of UDP layer ``u`` (an empty payload has no occurrence)."""
        f = self.f
        payloads = f.get("udp_payload")
        idx = 0
        for k in range(u):
            ulen = f.at("udp_length", k, 9)
            if ulen > 8:
                idx += 1
        return payloads[idx] if idx < len(payloads) else None

    # ------------------------------------------------------------ ESP
    def esp(self, j: int, addrs: bytes, tot: int, hdr: int, encap: bool, depth: int, protected_by) -> str:
        f, sink = self.f, self.sink
        e = self.take("esp")
        spi, seq = f.at("esp_spi", e), f.at("esp_seq", e)
        if spi is None:
            return self._malformed(j + 1) or "malformed:tshark:esp"
        if seq is None:  # tshark found the SPI but not the sequence number: cut short
            sink.truncated_ipsec(self.frame, self.ts, addrs, "esp", spi, encap)
            return "malformed:truncated:esp"
        nfrags = self.nfrags if depth == 0 else 0
        if sink.esp(self.frame, self.ts, addrs, spi, seq, tot, encap, nfrags):
            if encap:
                payload = self.udp_payload(self.n["udp"] - 1)
                if payload is not None:
                    sink.esp_sample(spi, addrs, payload)
            elif not self.in_esp:
                # raw ESP on the wire: read from the capture afterwards
                self.dec.samples.setdefault((spi, addrs), (self.frame, spi, seq, tot if not nfrags else 0,
                                                           len(addrs) == 32))
            else:  # ESP inside decrypted ESP: its bytes are not in the capture
                self.dec.unsampled += 1
        if depth >= MAX_DEPTH - 1:
            return "analysed:esp"
        h = len(addrs) >> 1
        src, dst = ipaddress.ip_address(addrs[:h]).compressed, ipaddress.ip_address(addrs[h:]).compressed
        verdict = self.dec.esp_verdict(f, e, spi, addrs, src, dst)
        if verdict == "ok":
            nh = f.at("esp_protocol", e)
            k = j + 1
            if k < len(self.protos) and nh != IPPROTO_NONE:
                p = self.protos[k]
                inner_spi = _spi_text(spi)
                self.in_esp = True
                if p in ("ip", "ipv6"):  # tunnel mode (RFC 4303 3.1.2)
                    self.ip(k, depth + 1, inner_spi)
                else:  # transport mode: the outer header and the decrypted payload
                    self.transport(k, nh, addrs, hdr + self.inner_length(k, p, tot), hdr, depth + 1, inner_spi)
        return "analysed:esp"

    def inner_length(self, k: int, p: str, outer: int) -> int:
        """The length of a decrypted transport-mode payload (what the fast path
        counts, with the outer IP header, as the inner flow's bytes): TCP and
        UDP say it; for anything else tshark's fields do not, and the outer
        datagram's payload length (an upper bound: it still holds the ESP
        header, padding and ICV) stands in."""
        f = self.f
        if p == "tcp":
            t = self.n["tcp"]
            hl, ln = f.at("tcp_hdr_len", t), f.at("tcp_len", t)
            if hl is not None and ln is not None:
                return hl + ln
        if p == "udp":
            ulen = f.at("udp_length", self.n["udp"])
            if ulen is not None:
                return ulen
        return max(outer - self.f.first("ip_hdr_len", 40), 0)

    # ------------------------------------------------------------ IKE
    def ike(self, j: int, u: int, addrs: bytes, sport: int, dport: int, marker: bool) -> str:
        self.take("isakmp")
        payload = self.udp_payload(u)
        if payload is None or (marker and len(payload) < 4):
            return self._malformed(j + 1) or "malformed:tshark:isakmp"
        raw = payload[4:] if marker else payload
        msg = parse_ike(raw)
        self.sink.ike(self.frame, self.ts, addrs, sport, dport, msg, marker, self.nfrags, raw)
        return "analysed:ike"

    # ------------------------------------------------------------ ICMP
    def icmp(self, j: int, p: str, addrs: bytes, tot: int, protected_by) -> str:
        f, sink = self.f, self.sink
        c = self.take(p)
        v6 = p == "icmpv6"
        itype = f.at("icmpv6_type" if v6 else "icmp_type", c)
        code = f.at("icmpv6_code" if v6 else "icmp_code", c)
        if itype is None or code is None:
            return self._malformed(j + 1) or f"malformed:tshark:{p}"
        proto = 58 if v6 else 1
        pair = (ICMP6_PAIRS if v6 else ICMP4_PAIRS).get(itype)
        sink.flow(self.frame, self.ts, proto, addrs, itype, code if pair is None else pair, tot, 0, protected_by)
        quoted = self.f.quoted_protocols
        if (itype in ICMP6_ERRORS if v6 else itype in ICMP4_ERRORS) and quoted:
            sink.icmp_error(self.frame, self.ts, addrs, proto, itype, code,
                            [q for q in quoted if q in ("esp", "ah", "isakmp")], self.quoted_flow())
        return "analysed:ip"

    def quoted_flow(self):
        """(proto, addrs, sport, dport) of the packet an ICMP error quotes, as
        the fast path's quote sink records it (the first flow it would make)."""
        f = self.f
        quoted = f.quoted_protocols
        n = Counter(self.n)
        # the outer layers' counters are in self.n; count on into the quote
        addrs = None
        for q in quoted:
            if q in ("ip", "ipv6"):
                k = n[q]
                n[q] += 1
                src = f.at("ip_src" if q == "ip" else "ipv6_src", k)
                dst = f.at("ip_dst" if q == "ip" else "ipv6_dst", k)
                if src is None or dst is None:
                    return None
                addrs = _addr(src) + _addr(dst)
            elif addrs is None:
                continue
            elif q in ("udp", "tcp"):
                k = n[q]
                sport, dport = f.at(f"{q}_sport", k), f.at(f"{q}_dport", k)
                if sport is None or dport is None:
                    return None
                return (17 if q == "udp" else 6, addrs, sport, dport)
            elif q in ("icmp", "icmpv6"):
                k = n[q]
                v6 = q == "icmpv6"
                itype = f.at("icmpv6_type" if v6 else "icmp_type", k)
                code = f.at("icmpv6_code" if v6 else "icmp_code", k)
                if itype is None:
                    return None
                pair = (ICMP6_PAIRS if v6 else ICMP4_PAIRS).get(itype)
                return (58 if v6 else 1, addrs, itype, code if pair is None else pair)
            elif q in ("esp", "ah"):
                return None if q == "esp" else None
        return None


# ---------------------------------------------------------------- entry point
def analyze_capture_deep(path, *, keys=None, progress=None, crypto=None) -> Tracker:
    """Analyse one capture with tshark into a partial result (a Tracker).

    ``keys`` (a :class:`~ipsecpcap.keymodel.KeyStore`) are converted to the
    UAT tables of the installed tshark in a private, temporary profile;
    ``crypto`` (a :class:`~ipsecpcap.sacrypto.SaCrypto`), if given, receives
    tshark's per-SA verdicts (decrypted, integrity failures) and the keys
    tshark could not be given (``crypto.problems``).  Raises
    :class:`~ipsecpcap.tsharkview.TsharkUnavailable` when tshark is missing
    and :class:`~ipsecpcap.errors.InputError` when it cannot read the capture.
    """
    from .analysis import capture_name

    tshark = find_tshark()
    if path == "-":
        return _from_stdin(keys, progress, crypto)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a capture")
    tables = uat_tables(keys, tshark) if keys is not None and len(keys) else None
    if tables is not None and crypto is not None:
        for p in tables.problems:
            if p not in crypto.problems:
                crypto.problems.append(p)
    tracker = Tracker(capture_name(path))
    dec = DeepDecoder(tracker, tables, crypto)
    keyed = tables is not None
    prof = Profile(tables.uat if tables else None)
    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    prog = _Progress(os.fspath(path), size)
    with prof:
        if tsharkview.cache is not None:
            run = run_tshark(path, prof, keyed)
            frames, stderr = run.frames, run.stderr
        else:
            err: list[str] = []
            frames, stderr = iter_tshark(path, prof, keyed, tshark=tshark, stderr_out=err), None
        n = 0
        for f in frames:
            dec.frame(f)
            n += 1
            if f.ts:
                tracker.first_ts = f.ts if tracker.first_ts is None else min(tracker.first_ts, f.ts)
                tracker.last_ts = f.ts if tracker.last_ts is None else max(tracker.last_ts, f.ts)
            if progress is not None and n % PROGRESS_EVERY == 0:
                prog.frames = n
                progress(prog)
        if stderr is None:
            stderr = "\n".join(err)
    prog.frames = n
    if progress is not None:
        progress(prog)
    tracker.frames = n
    tracker.counts = dict(dec.counts)
    tracker.reassembly = {"reassembled": len(dec.completed), "incomplete": len(dec.fragments - dec.completed),
                          "overlapping_fragments": 0, "oversized": 0}
    for line in (stderr or "").splitlines():
        tracker.warnings.append(f"{tracker.captures[0]}: tshark: {line.strip()}")
    dec.fill_samples(path, tracker)
    return tracker


def _from_stdin(keys, progress, crypto) -> Tracker:
    """tshark reads the capture twice (``-2``) and the samples are read from
    it afterwards: standard input is spooled to a private temporary file."""
    import sys

    fd, tmp = tempfile.mkstemp(prefix="ipsecpcap-stdin-", suffix=".pcap")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        tr = analyze_capture_deep(tmp, keys=keys, progress=progress, crypto=crypto)
        tr.captures = ["-"]
        tr.warnings = [w.replace(os.path.basename(tmp), "-") for w in tr.warnings]
        return tr
    finally:
        os.unlink(tmp)
