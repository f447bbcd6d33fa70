"""Wireshark's view of a capture, frame by frame: one ``tshark -T fields`` run.

This is the independent half of the deep engine (:mod:`ipsecpcap.deep`) and
of the engine cross-check (:mod:`ipsecpcap.crosscheck`): tshark dissects the
capture, and :func:`run_tshark` yields one :class:`TsharkFrame` per frame
with every occurrence of every field in :data:`FIELDS`, in dissection-tree
order.  Nothing here parses packet bytes.

Why tshark is driven directly and not through pyshark
=====================================================

pyshark (a dependency) finds tshark for us (:func:`find_tshark` uses its
lookup, so its ``config.ini`` is honoured), but its packet objects come from
tshark's PDML or JSON output, parsed packet by packet.  Measured on the same
10,000-packet benchmark capture on this project's 2-core machine: pyshark
PDML 760 packets/s, pyshark JSON 2,500/s, pyshark EK 3,600/s; ``tshark -T
fields`` with the fields below 22,000/s.  ``-T fields`` output is also a
plain text that can be cached (the tests keep it in ``.pytest_cache``), and
tshark's two-pass mode (``-2``, needed to know which frame completed an IP
reassembly) is one more argument.

How tshark's view maps onto ours
================================

* **Occurrences and layers.**  A field occurs once per instance of its
  protocol layer, in the order of ``frame.protocols``; :meth:`TsharkFrame.at`
  picks the occurrence of the n-th instance (e.g. the inner IP header of a
  decrypted tunnel-mode packet is ``ip`` instance 1).
* **ICMP quotes.**  tshark dissects the datagram an ICMP/ICMPv6 error
  quotes, so an ICMP error about an IKE, ESP or AH packet has
  ``...:icmp:ip:udp:isakmp`` in ``frame.protocols``.  Our fast path
  classifies the frame by its outer headers: the ICMP message is a flow, and
  what its quote carried is kept apart.  :attr:`TsharkFrame.outer_protocols`
  is ``frame.protocols`` cut after the first ``icmp``/``icmpv6`` layer;
  :attr:`TsharkFrame.quoted_protocols` is the rest.
* **ISAKMP on UDP 4500** is ``udp:udpencap:isakmp`` (non-ESP marker), ESP in
  UDP is ``udp:udpencap:esp`` and a NAT-keepalive is ``udp:udpencap`` alone,
  the same names :class:`ipsecpcap.frames.FrameInfo` uses.
* **IKE payload list.**  ``isakmp.typepayload`` is written for every payload
  tshark dissects, in tree (pre-)order, which includes the Proposal (2) and
  Transform (3) substructures inside an SA payload (IKEv1 SA = 1, IKEv2 SA =
  33).  :func:`top_level_payloads` drops the run of 2/3 that follows an SA;
  what remains is the next-payload chain of the message (followed, for a
  message tshark decrypted, by the chain inside it).  tshark lists no
  payloads for an IKEv1 message with the encryption flag set that it cannot
  decrypt, and only ``SK`` (46) for an IKEv2 one.
* **IP fragments.**  tshark reassembles IPv4 and IPv6 (``ip.defragment`` and
  ``ipv6.defragment`` are forced on) and, with two passes (``-2``), marks
  every fragment with the frame that completed it (``ip.reassembled_in`` /
  ``ipv6.reassembled.in``); the completing frame carries the upper layers and
  ``ip.fragment.count`` / ``ipv6.fragment.count``.
* **Malformed frames** carry ``_ws.malformed`` in ``frame.protocols``.

tshark always runs with a private, temporary configuration directory
(:class:`Profile`): the analyst's own preferences, decryption tables and
disabled protocols never leak in, and the keys given to the deep engine are
written there (mode 0600, in a 0700 directory) and removed afterwards; they
never appear on a command line.
"""
from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import IpsecpcapError, InputError

EXIT_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE: tshark is needed and missing

INSTALL_HINT = ("install it (Debian/Ubuntu: apt-get install tshark; Fedora: dnf install wireshark-cli; "
                "macOS: brew install wireshark) or set IPSECPCAP_TSHARK to its path")


class TsharkUnavailable(IpsecpcapError):
    """tshark is needed (``--engine tshark``, ``crosscheck``) and cannot be run."""

    exit_code = EXIT_UNAVAILABLE


class TsharkError(InputError):
    """tshark could not read the capture at all."""


# ---------------------------------------------------------------- fields
# ICMP errors quote the offending datagram; tshark dissects the quote.
QUOTE_LAYERS = ("icmp", "icmpv6")
# IKE payload substructures tshark also lists as isakmp.typepayload:
# Proposal (2) and Transform (3) inside an SA (IKEv1: 1, IKEv2: 33).
SA_TYPES = (1, 33)
SA_SUBSTRUCTURES = (2, 3)

# (attribute, tshark field, kind, layer).  ``kind`` says how one occurrence
# is parsed; ``layer`` is the frame.protocols name of the layer the field
# belongs to (one occurrence per instance of that layer), None for frame-level
# fields.
FIELDS: tuple[tuple[str, str, str, str | None], ...] = (
    ("frame", "frame.number", "int", None),
    ("ts", "frame.time_epoch", "float", None),
    ("protocols", "frame.protocols", "protocols", None),
    ("cap_len", "frame.cap_len", "int", None),
    ("frame_len", "frame.len", "int", None),
    ("eth_type", "eth.type", "int", "eth"),
    ("vlan_etype", "vlan.etype", "int", "vlan"),
    ("sll_etype", "sll.etype", "int", "sll"),
    ("null_family", "null.family", "int", "null"),
    ("ip_src", "ip.src", "str", "ip"),
    ("ip_dst", "ip.dst", "str", "ip"),
    ("ip_len", "ip.len", "int", "ip"),
    ("ip_hdr_len", "ip.hdr_len", "int", "ip"),
    ("ip_proto", "ip.proto", "int", "ip"),
    ("ip_mf", "ip.flags.mf", "bool", "ip"),
    ("ip_frag_offset", "ip.frag_offset", "int", "ip"),
    ("ip_id", "ip.id", "int", "ip"),
    ("ip_reassembled_in", "ip.reassembled_in", "int", None),
    ("ip_fragment_count", "ip.fragment.count", "int", None),
    ("ip_reassembled_length", "ip.reassembled.length", "int", None),
    ("ipv6_src", "ipv6.src", "str", "ipv6"),
    ("ipv6_dst", "ipv6.dst", "str", "ipv6"),
    ("ipv6_plen", "ipv6.plen", "int", "ipv6"),
    ("ipv6_nxt", "ipv6.nxt", "int", "ipv6"),
    ("ipv6_frag_offset", "ipv6.fraghdr.offset", "int", "ipv6.fraghdr"),
    ("ipv6_frag_more", "ipv6.fraghdr.more", "bool", "ipv6.fraghdr"),
    ("ipv6_frag_nxt", "ipv6.fraghdr.nxt", "int", "ipv6.fraghdr"),
    ("ipv6_frag_ident", "ipv6.fraghdr.ident", "int", "ipv6.fraghdr"),
    ("ipv6_hopopts_nxt", "ipv6.hopopts.nxt", "int", "ipv6.hopopts"),
    ("ipv6_routing_nxt", "ipv6.routing.nxt", "int", "ipv6.routing"),
    ("ipv6_dstopts_nxt", "ipv6.dstopts.nxt", "int", "ipv6.dstopts"),
    ("ipv6_reassembled_in", "ipv6.reassembled.in", "int", None),
    ("ipv6_fragment_count", "ipv6.fragment.count", "int", None),
    ("ipv6_reassembled_length", "ipv6.reassembled.length", "int", None),
    ("udp_sport", "udp.srcport", "int", "udp"),
    ("udp_dport", "udp.dstport", "int", "udp"),
    ("udp_length", "udp.length", "int", "udp"),
    ("udp_payload", "udp.payload", "bytes", None),  # absent for an empty payload: see udp_payload_at
    ("tcp_sport", "tcp.srcport", "int", "tcp"),
    ("tcp_dport", "tcp.dstport", "int", "tcp"),
    ("tcp_flags", "tcp.flags", "int", "tcp"),
    ("tcp_hdr_len", "tcp.hdr_len", "int", "tcp"),
    ("tcp_len", "tcp.len", "int", "tcp"),
    ("icmp_type", "icmp.type", "int", "icmp"),
    ("icmp_code", "icmp.code", "int", "icmp"),
    ("icmpv6_type", "icmpv6.type", "int", "icmpv6"),
    ("icmpv6_code", "icmpv6.code", "int", "icmpv6"),
    ("esp_spi", "esp.spi", "int", "esp"),
    ("esp_seq", "esp.sequence", "int", "esp"),
    ("esp_icv_good", "esp.icv_good", "bool", None),
    ("esp_icv_bad", "esp.icv_bad", "bool", None),
    ("esp_protocol", "esp.protocol", "int", None),  # the next header, once decrypted
    ("ah_spi", "ah.spi", "int", "ah"),
    ("ah_seq", "ah.sequence", "int", "ah"),
    ("ah_next_header", "ah.next_header", "int", "ah"),
    ("ah_length", "ah.length", "int", "ah"),
    ("ispi", "isakmp.ispi", "hex", "isakmp"),
    ("rspi", "isakmp.rspi", "hex", "isakmp"),
    ("ike_version", "isakmp.mjver", "int", None),
    ("exchange_type", "isakmp.exchangetype", "int", None),
    ("mid", "isakmp.messageid", "int", None),
    ("ike_length", "isakmp.length", "int", None),
    ("payload_types", "isakmp.typepayload", "int", None),
    ("ike_pad_length", "isakmp.enc.pad_length", "int", None),  # present: tshark decrypted an SK payload
)
# with keys only: expert messages say whether an IKEv2 ICV was wrong
EXPERT_FIELD = ("expert", "_ws.expert.message", "str", None)
FIELDS_KEYED = FIELDS + (EXPERT_FIELD,)
FIELD_LAYER = {a: layer for a, _f, _k, layer in FIELDS}
# isakmp header fields whose occurrences follow the isakmp layers
for _a in ("ike_version", "exchange_type", "mid", "ike_length"):
    FIELD_LAYER[_a] = "isakmp"

CACHE_FORMAT = 3  # bump when the parsing above changes what a cached entry holds

# An occurrence separator no field value contains (expert messages have commas).
AGGREGATOR = "\x1f"
BASE_ARGS = ("-n", "-2", "-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE",
             "-o", "ip.check_checksum:FALSE", "-o", "udp.check_checksum:FALSE", "-o", "tcp.check_checksum:FALSE",
             "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", f"aggregator={AGGREGATOR}",
             "-E", "header=n", "-E", "quote=n")
KEY_ARGS = ("-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE")


# ---------------------------------------------------------------- locating tshark
_versions: dict[str, str] = {}


def find_tshark() -> str:
    """The tshark to run: ``$IPSECPCAP_TSHARK`` if set, else pyshark's lookup
    (its ``config.ini``, then ``$PATH``).  Raises :class:`TsharkUnavailable`."""
    forced = os.environ.get("IPSECPCAP_TSHARK")
    if forced:
        if os.access(forced, os.X_OK) and not os.path.isdir(forced):
            return forced
        raise TsharkUnavailable(f"tshark not found at IPSECPCAP_TSHARK={forced}: {INSTALL_HINT}")
    try:
        from pyshark.tshark.tshark import TSharkNotFoundException, get_process_path
    except ImportError:  # pragma: no cover - pyshark is a dependency
        path = shutil.which("tshark")
    else:
        try:
            path = get_process_path()
        except TSharkNotFoundException:
            path = None
    if not path or not os.access(path, os.X_OK):
        raise TsharkUnavailable(f"tshark not found (the tshark engine and crosscheck run it): {INSTALL_HINT}")
    return path


def tshark_available() -> bool:
    try:
        find_tshark()
    except TsharkUnavailable:
        return False
    return True


def tshark_version(tshark: str | None = None) -> str:
    """First line of ``tshark -v``, e.g. ``TShark (Wireshark) 4.0.17 (...)``."""
    tshark = tshark or find_tshark()
    v = _versions.get(tshark)
    if v is None:
        with Profile() as prof:
            try:
                out = subprocess.run([tshark, "-v"], capture_output=True, text=True, env=prof.env(), check=False)
            except OSError as e:
                raise TsharkUnavailable(f"cannot run {tshark}: {e.strerror or e}: {INSTALL_HINT}") from None
        v = out.stdout.splitlines()[0].strip() if out.stdout else "unknown"
        _versions[tshark] = v
    return v


def short_version(tshark: str | None = None) -> str:
    """``tshark 4.0.17`` (the program and its version number only)."""
    m = re.search(r"(\d+\.\d+\.\d+)", tshark_version(tshark))
    return f"tshark {m.group(1)}" if m else "tshark (unknown version)"


# ---------------------------------------------------------------- one frame
@dataclass(slots=True)
class TsharkFrame:
    """One frame as tshark dissected it: every occurrence of every field.

    ``values`` maps an attribute of :data:`FIELDS` to its occurrences (a
    tuple; absent fields map to nothing and read as ``()``)."""

    frame: int
    ts: float
    protocols: tuple[str, ...]
    values: dict = field(default_factory=dict)
    _outer: tuple | None = None  # cached outer_protocols

    def get(self, attr: str) -> tuple:
        return self.values.get(attr, ())

    def first(self, attr: str, default=None):
        v = self.values.get(attr)
        return v[0] if v else default

    def at(self, attr: str, instance: int, default=None):
        """The occurrence of ``attr`` belonging to the ``instance``-th (0-based)
        layer of its protocol."""
        v = self.values.get(attr)
        if v is None or instance >= len(v):
            return default
        return v[instance]

    # ------------------------------------------------------------ ICMP quotes
    @property
    def outer_protocols(self) -> tuple[str, ...]:
        """``frame.protocols`` up to and including the first ICMP/ICMPv6 layer."""
        o = self._outer
        if o is None:
            o = self.protocols
            for i, p in enumerate(o):
                if p in QUOTE_LAYERS:
                    o = o[:i + 1]
                    break
            self._outer = o
        return o

    @property
    def quoted_protocols(self) -> tuple[str, ...]:
        """The layers tshark dissected inside an ICMP error's quote (usually empty)."""
        return self.protocols[len(self.outer_protocols):]

    def outer(self, attr: str) -> tuple:
        """The occurrences of ``attr`` that belong to the outer (not ICMP-quoted)
        layers: as many as the outer protocols have of its layer."""
        values = self.get(attr)
        layer = FIELD_LAYER.get(attr)
        if layer is None or not self.quoted_protocols:
            return values
        return values[:self.outer_protocols.count(layer)]

    def has(self, proto: str) -> bool:
        """Whether ``proto`` (esp, ah, isakmp, udpencap) is an outer layer."""
        return proto in self.outer_protocols

    def has_any(self, proto: str) -> bool:
        return proto in self.protocols

    @property
    def top_level_payloads(self) -> tuple[int, ...]:
        """The IKE message's payload chain (see :func:`top_level_payloads`);
        empty when the ISAKMP layer is only inside an ICMP quote."""
        if not self.has("isakmp"):
            return ()
        return top_level_payloads(self.get("payload_types"))

    @property
    def fragment_of(self) -> int | None:
        """For an IP fragment that did not complete its datagram: the frame that did."""
        for v in self.get("ip_reassembled_in") + self.get("ipv6_reassembled_in"):
            if v != self.frame:
                return v
        return None

    @property
    def fragment_count(self) -> int:
        """For the frame that completed a reassembly: how many fragments it took."""
        return next(iter(self.get("ip_fragment_count") + self.get("ipv6_fragment_count")), 0)

    @property
    def malformed(self) -> bool:
        return "_ws.malformed" in self.protocols

    @property
    def is_ip_fragment(self) -> bool:
        """An IP fragment tshark held for reassembly: the outermost IP header has
        MF set or a non-zero offset, the frame did not complete a datagram, and
        nothing above IP was dissected (tshark dissects an incomplete first
        fragment it cannot reassemble as if it were whole; so does our decoder)."""
        protos = self.outer_protocols
        if self.fragment_count:
            return False
        net = [i for i, p in enumerate(protos) if p in ("ip", "ipv6")]
        if not net:
            return False
        first, inner = net[0], (net[1:] or [len(protos)])[0]
        mf, off = self.get("ip_mf"), self.get("ip_frag_offset")
        if protos[first] == "ip":
            at, flagged = first, bool(mf) and (mf[0] or (bool(off) and off[0] > 0))
        elif "ipv6.fraghdr" in protos[first:inner] and self.get("ipv6_frag_offset"):
            at = protos.index("ipv6.fraghdr", first, inner)
            flagged = self.get("ipv6_frag_offset")[0] > 0 or bool(self.first("ipv6_frag_more"))
        else:
            return False
        return flagged and protos[at + 1:at + 2] in ((), ("data",))

    @property
    def datagram(self) -> tuple | None:
        """(addresses, identification) of the outermost IP datagram when this
        frame is one of its fragments (or completed it), else None."""
        protos = self.outer_protocols
        net = next((p for p in protos if p in ("ip", "ipv6")), None)
        if net == "ip":
            mf, off = self.first("ip_mf"), self.first("ip_frag_offset", 0)
            if mf or off or self.fragment_count:
                return ("ip", self.first("ip_src"), self.first("ip_dst"), self.first("ip_id"))
        elif net == "ipv6" and self.get("ipv6_frag_ident"):
            off, more = self.first("ipv6_frag_offset", 0), self.first("ipv6_frag_more")
            if off or more or self.fragment_count:
                return ("ipv6", self.first("ipv6_src"), self.first("ipv6_dst"), self.first("ipv6_frag_ident"))
        return None


def top_level_payloads(types: Iterable[int]) -> tuple[int, ...]:
    """Drop the Proposal/Transform substructures tshark lists after each SA.

    ``isakmp.typepayload`` is in tree pre-order, so an SA's proposals and
    their transforms follow it directly.  A malformed message whose chain has
    a top-level payload of type 2 or 3 right after an SA would lose it here;
    none of the fixture captures has one (their chains come from tshark's own
    next payload walk, which only descends into SA payloads).
    """
    out: list[int] = []
    in_sa = False
    for t in types:
        if in_sa and t in SA_SUBSTRUCTURES:
            continue
        in_sa = t in SA_TYPES
        out.append(t)
    return tuple(out)


def _int(v: str) -> int:
    return int(v, 16) if v[:2] in ("0x", "0X") else int(v)


def _bool(v: str) -> bool:
    return v in ("1", "True", "true")


def _hexspi(v: str) -> str:
    return v.replace(":", "").lower()


_PARSERS = {"int": _int, "float": float, "str": str, "bool": _bool, "hex": _hexspi, "bytes": bytes.fromhex,
            "protocols": str}


def _make_plan(fields) -> list:
    """(attribute, parser, is string) per column, for :func:`parse_line`."""
    return [(a, _PARSERS[k], k == "str") for a, _f, k, _l in fields]


_PLANS = {id(FIELDS): _make_plan(FIELDS), id(FIELDS_KEYED): _make_plan(FIELDS_KEYED)}  # module constants


def _plan(fields) -> list:
    if fields is FIELDS:
        return _PLANS[id(FIELDS)]
    if fields is FIELDS_KEYED:
        return _PLANS[id(FIELDS_KEYED)]
    return _make_plan(fields)


def parse_line(line: str, fields) -> TsharkFrame:
    cols = line.rstrip("\n").split("\t")
    if len(cols) != len(fields):
        raise ValueError(f"unexpected tshark line ({len(cols)} columns, {len(fields)} expected): {line[:200]!r}")
    plan = _plan(fields)
    values = {}
    agg = AGGREGATOR
    # most columns are empty: visit only the others (frame number, time and
    # protocols, the first three, are read below)
    for i in [i for i, c in enumerate(cols) if c]:
        if i < 3:
            continue
        c = cols[i]
        attr, parse, text = plan[i]
        if agg not in c:
            values[attr] = (c,) if text else (parse(c),)
        elif text:
            values[attr] = tuple(c.split(agg))
        else:
            values[attr] = tuple(parse(v) for v in c.split(agg) if v != "")
    protos = tuple(cols[2].split(":")) if cols[2] else ()
    return TsharkFrame(int(cols[0]), float(cols[1]) if cols[1] else 0.0, protos, values)


# ---------------------------------------------------------------- private profile
class Profile:
    """A private, temporary tshark configuration directory, removed on exit.

    ``uat`` maps a UAT table name (``esp_sa``, ``ikev1_decryption_table``,
    ``ikev2_decryption_table``) to its lines; they are written with mode 0600
    inside a directory only we can read.  ``WIRESHARK_CONFIG_DIR``, ``HOME``
    and ``XDG_CONFIG_HOME`` point tshark there, so the analyst's own profile
    (``~/.config/wireshark``) is never read nor written.
    """

    def __init__(self, uat: dict[str, list[str]] | None = None, prefs: Iterable[str] = ()):
        self.uat = {k: list(v) for k, v in (uat or {}).items() if v}
        self.prefs = tuple(prefs)
        self.dir: str | None = None

    def __enter__(self) -> "Profile":
        self.dir = tempfile.mkdtemp(prefix="ipsecpcap-tshark-")  # mode 0700
        conf = os.path.join(self.dir, "wireshark")
        os.mkdir(conf, 0o700)
        for name, lines in self.uat.items():
            fd = os.open(os.path.join(conf, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("# written by ipsecpcap for one tshark run; removed afterwards\n")
                f.write("".join(line + "\n" for line in lines))
        return self

    def __exit__(self, *exc) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def env(self) -> dict:
        env = dict(os.environ)
        env["WIRESHARK_CONFIG_DIR"] = os.path.join(self.dir, "wireshark")
        env["XDG_CONFIG_HOME"] = self.dir
        env["HOME"] = self.dir
        env["LC_ALL"] = "C"
        return env

    def args(self) -> tuple[str, ...]:
        out: list[str] = []
        for p in self.prefs:
            out += ["-o", p]
        return tuple(out)

    def digest(self) -> str:
        """Identifies the profile's content for the cache without revealing it
        ("" for an empty profile)."""
        if not self.uat and not self.prefs:
            return ""
        h = hashlib.sha256(b"ipsecpcap-tshark-profile\x00")
        h.update(json.dumps([self.prefs, sorted(self.uat.items())]).encode())
        return h.hexdigest()[:32]


# ---------------------------------------------------------------- running tshark
@dataclass
class TsharkRun:
    """What one tshark run over one capture gave."""

    frames: list[TsharkFrame]
    stderr: str
    returncode: int


_NOISE = ("dangerous", "More fields than required")


def _clean_stderr(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.strip() and not any(n in line for n in _NOISE))


def _fields_for(keyed: bool):
    return FIELDS_KEYED if keyed else FIELDS


def _command(tshark: str, path, profile: Profile, keyed: bool) -> list[str]:
    cmd = [tshark, *BASE_ARGS, *(KEY_ARGS if keyed else ()), *profile.args(), "-r", os.fspath(path)]
    for _a, f, _k, _l in _fields_for(keyed):
        cmd += ["-e", f]
    return cmd


def iter_tshark(path, profile: Profile | None = None, keyed: bool = False, tshark: str | None = None,
                stderr_out: list | None = None) -> Iterator[TsharkFrame]:
    """Stream tshark's frames of ``path``.  ``profile`` is entered here if it
    is not yet.  tshark's standard error (cleaned) is appended to
    ``stderr_out``; a capture tshark cannot read at all raises
    :class:`TsharkError`."""
    tshark = tshark or find_tshark()
    prof = profile or Profile()
    own = prof.dir is None
    if own:
        prof.__enter__()
    fields = _fields_for(keyed)
    try:
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as err:
            try:
                proc = subprocess.Popen(_command(tshark, path, prof, keyed), stdout=subprocess.PIPE, stderr=err,
                                        env=prof.env(), text=True, encoding="utf-8", errors="replace",
                                        bufsize=1 << 16)
            except OSError as e:
                raise TsharkUnavailable(f"cannot run {tshark}: {e.strerror or e}: {INSTALL_HINT}") from None
            n = 0
            try:
                for line in proc.stdout:
                    n += 1
                    yield parse_line(line, fields)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stdout.close()
                rc = proc.wait()
            err.seek(0)
            text = _clean_stderr(err.read())
            if stderr_out is not None:
                stderr_out.append(text)
            if rc != 0 and n == 0:
                raise TsharkError(f"{path}: tshark cannot read it: {_first_line(text) or f'exit status {rc}'}")
    finally:
        if own:
            prof.__exit__(None, None, None)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("tshark: ")
    return ""


def run_tshark(path, profile: Profile | None = None, keyed: bool = False, cache: "TsharkCache | None" = None
               ) -> TsharkRun:
    """Dissect ``path`` whole; return its frames and tshark's standard error.

    tshark exits non-zero for a capture cut short in the middle of a record
    but still prints the frames before it; only no output at all is an error.
    With a ``cache`` (or the module's :data:`cache`, which the tests set), a
    run already made for the same capture, tshark and profile is reused.
    """
    cache = cache if cache is not None else globals()["cache"]
    if cache is not None:
        return cache.run(path, profile, keyed)
    err: list[str] = []
    frames = list(iter_tshark(path, profile, keyed, stderr_out=err))
    return TsharkRun(frames, "\n".join(err), 0)


# ---------------------------------------------------------------- caching (tests)
class TsharkCache:
    """tshark's output per capture, computed once per (capture, tshark, profile).

    ``cache_dir`` (optional) keeps the raw output across sessions, gzipped;
    an entry is keyed by the capture's identity (path, mtime, size), the
    tshark version, the arguments and fields, and a digest of the private
    profile (never the keys themselves).  Meant for test suites over small
    captures: the output is held in memory.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._mem: dict[tuple, TsharkRun] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    def _key(self, path, profile: Profile | None, keyed: bool) -> tuple:
        p = Path(path)
        st = p.stat()
        return (str(p.resolve()), st.st_mtime_ns, st.st_size, profile.digest() if profile else "", keyed)

    def _disk_name(self, key: tuple) -> Path | None:
        if self.cache_dir is None:
            return None
        fields = [f for _a, f, _k, _l in _fields_for(key[-1])]
        h = hashlib.sha256(json.dumps([CACHE_FORMAT, key, tshark_version(), BASE_ARGS, KEY_ARGS, fields])
                           .encode()).hexdigest()[:32]
        return self.cache_dir / f"{h}.tsv.gz"

    def run(self, path, profile: Profile | None = None, keyed: bool = False) -> TsharkRun:
        try:
            key = self._key(path, profile, keyed)
        except FileNotFoundError:
            raise TsharkError(f"{path}: no such file") from None
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            hit = self._mem.get(key)
            if hit is not None:
                return hit
            fields = _fields_for(keyed)
            disk = self._disk_name(key)
            if disk is not None and disk.exists():
                with gzip.open(disk, "rt", encoding="utf-8") as f:
                    doc = json.load(f)
                run = TsharkRun([parse_line(line, fields) for line in doc["stdout"]], doc["stderr"], doc["rc"])
            else:
                run, lines = self._run_tshark(path, profile, keyed)
                if disk is not None:
                    disk.parent.mkdir(parents=True, exist_ok=True)
                    tmp = disk.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
                    with gzip.open(tmp, "wt", encoding="utf-8") as f:
                        json.dump({"stdout": lines, "stderr": run.stderr, "rc": run.returncode}, f)
                    os.replace(tmp, disk)
            self._mem[key] = run
            return run

    @staticmethod
    def _run_tshark(path, profile: Profile | None, keyed: bool) -> tuple[TsharkRun, list[str]]:
        tshark = find_tshark()
        prof = profile or Profile()
        own = prof.dir is None
        if own:
            prof.__enter__()
        try:
            proc = subprocess.run(_command(tshark, path, prof, keyed), capture_output=True, text=True,
                                  encoding="utf-8", errors="replace", env=prof.env(), check=False)
        finally:
            if own:
                prof.__exit__(None, None, None)
        stderr = _clean_stderr(proc.stderr)
        lines = proc.stdout.splitlines()
        if proc.returncode != 0 and not lines:
            raise TsharkError(f"{path}: tshark cannot read it: {_first_line(stderr) or f'exit status {proc.returncode}'}")
        fields = _fields_for(keyed)
        return TsharkRun([parse_line(line, fields) for line in lines], stderr, proc.returncode), lines

    def by_frame(self, path, profile: Profile | None = None, keyed: bool = False) -> dict[int, TsharkFrame]:
        return {f.frame: f for f in self.run(path, profile, keyed).frames}


# The cache :func:`run_tshark` uses when none is passed (None: no caching).
# The test suite sets it for the session; the command line never does.
cache: TsharkCache | None = None


# ---------------------------------------------------------------- keys -> UAT tables
# The algorithm names each tshark knows are learnt by loading candidate UAT
# lines into it (``tshark -G currentprefs`` reports a line it rejects as
# ``<table>:<line>: invalid value``); the results are kept per tshark.
_UAT_ERROR = re.compile(r"(esp_sa|ikev1_decryption_table|ikev2_decryption_table):(\d+): (.*)")


@dataclass
class UatDialect:
    """What one tshark accepts in its UAT tables."""

    esp_columns: int  # 8 (Wireshark 4.0 .. 4.2) or 10 (SN and ESN high bits)
    bad_names: set = field(default_factory=set)  # (table, name) pairs it rejected
    good_names: set = field(default_factory=set)


_dialects: dict[str, UatDialect] = {}
_dialect_lock = threading.Lock()


def _probe(tshark: str, uat: dict[str, list[str]]) -> list[tuple[str, int, str]]:
    """Load ``uat`` into tshark; return the (table, 0-based line, message) it complained about."""
    with Profile(uat) as prof:
        proc = subprocess.run([tshark, "-G", "currentprefs"], capture_output=True, text=True, env=prof.env(),
                              check=False)
    out = []
    for line in proc.stderr.splitlines():
        if "More fields than required" in line:
            m = re.search(r"(esp_sa|ikev1_decryption_table|ikev2_decryption_table):(\d+)", line)
            if m:
                out.append((m.group(1), int(m.group(2)) - 2, "more fields"))  # -2: our header comment line
            continue
        m = _UAT_ERROR.search(line)
        if m:
            out.append((m.group(1), int(m.group(2)) - 2, m.group(3)))
    return out


def dialect(tshark: str | None = None) -> UatDialect:
    """The UAT column layout of ``tshark`` (probed once per tshark)."""
    tshark = tshark or find_tshark()
    with _dialect_lock:
        d = _dialects.get(tshark)
        if d is None:
            line = '"IPv4","192.0.2.1","192.0.2.2","0x00000001","NULL","","NULL","","32-bit","0"'
            errs = _probe(tshark, {"esp_sa": [line]})
            d = _dialects[tshark] = UatDialect(8 if any(e[2] == "more fields" for e in errs) else 10)
        return d


def accepted(tshark: str, candidates: dict[str, list[str]]) -> UatDialect:
    """Teach the dialect which of the candidate lines' algorithm names tshark
    accepts.  ``candidates`` maps a table to lines whose only unknown is the
    algorithm name; each rejected line costs one more probe."""
    d = dialect(tshark)
    with _dialect_lock:
        todo = {t: [ln for ln in lines if (t, ln) not in d.good_names and (t, ln) not in d.bad_names]
                for t, lines in candidates.items()}
        todo = {t: v for t, v in todo.items() if v}
        while todo:
            errs = [e for e in _probe(tshark, todo) if e[2] != "more fields"]
            if not errs:
                for t, lines in todo.items():
                    d.good_names.update((t, ln) for ln in lines)
                break
            for t, i, _msg in errs[:1]:  # tshark stops a table at its first bad line
                if 0 <= i < len(todo.get(t, [])):
                    d.bad_names.add((t, todo[t].pop(i)))
                else:  # a complaint we cannot place: give up on that table
                    d.bad_names.update((t, ln) for ln in todo.pop(t, []))
            todo = {t: v for t, v in todo.items() if v}
    return d


def _addr_column(spec: str | None) -> str:
    """A key's address (or CIDR prefix) as Wireshark's esp_sa takes it: one
    address, or ``*`` for any (Wireshark has no prefixes)."""
    if spec is None:
        return "*"
    try:
        net = ipaddress.ip_network(spec, strict=False)
    except ValueError:
        return "*"
    if net.num_addresses == 1:
        return str(net.network_address)
    return "*"


def _family(key) -> str:
    for spec in (key.src, key.dst):
        if spec:
            try:
                return "IPv6" if ipaddress.ip_network(spec, strict=False).version == 6 else "IPv4"
            except ValueError:
                pass
    return "Any"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class UatTables:
    """The UAT lines for one set of keys, and what tshark could not be given."""

    uat: dict[str, list[str]]
    esp_lines: list = field(default_factory=list)  # (EspKey, family, src, dst, spi) per esp_sa line, in order
    problems: list[str] = field(default_factory=list)  # one line each, keys by fingerprint
    left_out: set = field(default_factory=set)  # id() of keys tshark was not given


def uat_tables(store, tshark: str | None = None) -> UatTables:
    """Convert a :class:`~ipsecpcap.keymodel.KeyStore` to the UAT tables the
    installed tshark expects (its esp_sa column count and algorithm names are
    probed).  Keys tshark cannot use are left out and said in ``problems``."""
    from .keys import WIRESHARK_ESP_AUTH, WIRESHARK_ESP_ENC, WIRESHARK_IKEV2_ENC, WIRESHARK_IKEV2_INTEG

    tshark = tshark or find_tshark()
    version = short_version(tshark)
    out = UatTables({"esp_sa": [], "ikev1_decryption_table": [], "ikev2_decryption_table": []})
    if store is None:
        return out
    d = dialect(tshark)
    enc_names = _reverse(WIRESHARK_ESP_ENC)
    auth_names = _reverse(WIRESHARK_ESP_AUTH)
    auth_names.setdefault("none", []).insert(0, "NULL")

    def esp_line(fam, src, dst, spi, enc, ekey, auth, akey, esn, esn_high) -> str:
        cols = [fam, src, dst, spi, enc, ekey, auth, akey]
        if d.esp_columns == 10:
            cols += ["64-bit" if esn else "32-bit", str(esn_high if esn else 0)]
        return ",".join(_q(c) for c in cols)

    # 1. learn which spellings this tshark takes (dummy keys: only names are checked)
    cand: dict[str, list[str]] = {"esp_sa": [], "ikev2_decryption_table": []}
    for k in store.esp:
        if k.protocol != "esp":
            continue
        for e in enc_names.get(k.enc, []):
            cand["esp_sa"].append(esp_line("IPv4", "*", "*", "*", e, "", "NULL", "", False, 0))
        for a in auth_names.get(k.integ, []):
            cand["esp_sa"].append(esp_line("IPv4", "*", "*", "*", "NULL", "", a, "", False, 0))
    v2_enc = {}
    for name, spec in WIRESHARK_IKEV2_ENC.items():
        if spec is not None:
            v2_enc.setdefault(spec, []).append(name)
    v2_integ = _reverse(WIRESHARK_IKEV2_INTEG)
    for k in store.ikev2:
        for e in v2_enc.get((k.enc, len(k.sk_ei or k.sk_er)), []):
            cand["ikev2_decryption_table"].append(_ikev2_line("0" * 16, "0" * 16, "", "", e, "", "", "NONE [RFC4306]"))
        for a in v2_integ.get(k.integ, []):
            cand["ikev2_decryption_table"].append(_ikev2_line("0" * 16, "0" * 16, "", "", "NULL [RFC2410]", "", "", a))
    accepted(tshark, cand)

    def ok(table, line) -> bool:
        return (table, line) in d.good_names

    # 2. the real lines, with the first spelling tshark took
    for k in store.esp:
        if k.protocol != "esp":
            out.problems.append(f"{k.source or k.fingerprint}: AH key {k.fingerprint} not given to tshark "
                                f"({version} does not verify AH)")
            out.left_out.add(id(k))
            continue
        enc = next((e for e in enc_names.get(k.enc, [])
                    if ok("esp_sa", esp_line("IPv4", "*", "*", "*", e, "", "NULL", "", False, 0))), None)
        auth = next((a for a in auth_names.get(k.integ, [])
                     if ok("esp_sa", esp_line("IPv4", "*", "*", "*", "NULL", "", a, "", False, 0))), None)
        if enc is None or auth is None:
            what = k.enc if enc is None else k.integ
            out.problems.append(f"{k.source or k.fingerprint}: key {k.fingerprint} not given to tshark "
                                f"({version} has no ESP algorithm {what})")
            out.left_out.add(id(k))
            continue
        if k.integ != "none" and k.integ_key == b"" and not k.integ.startswith("any-"):
            # an unknown integrity key: the ICV is skipped (keymodel); Wireshark's way is "ANY n bit"
            bits = {"hmac-sha1-96": 96, "hmac-md5-96": 96, "hmac-sha2-256-128": 128, "hmac-sha2-384-192": 192,
                    "hmac-sha2-512-256": 256, "aes-xcbc-96": 96, "aes-cmac-96": 96,
                    "hmac-sha2-256-96": 96}.get(k.integ)
            skip = next((a for a in auth_names.get(f"any-{bits}", [])
                         if ok("esp_sa", esp_line("IPv4", "*", "*", "*", "NULL", "", a, "", False, 0))), None) \
                if bits else None
            if skip is None:
                out.problems.append(f"{k.source or k.fingerprint}: key {k.fingerprint} not given to tshark "
                                    f"(its integrity key is unknown)")
                out.left_out.add(id(k))
                continue
            auth = skip
        if k.esn and d.esp_columns == 8:
            out.problems.append(f"{k.source or k.fingerprint}: key {k.fingerprint}: {version} has no extended "
                                f"sequence numbers; its ICVs will not verify in tshark")
        fam = _family(k)
        src, dst = _addr_column(k.src), _addr_column(k.dst)
        spi = "*" if k.spi is None else f"0x{k.spi:08x}"
        out.uat["esp_sa"].append(esp_line(fam, src, dst, spi, enc, _hexkey(k.enc_key), auth,
                                          _hexkey(k.integ_key), k.esn, k.esn_high))
        out.esp_lines.append((k, fam, src, dst, k.spi))
    for k in store.ikev2:
        enc = next((e for e in v2_enc.get((k.enc, len(k.sk_ei or k.sk_er)), [])
                    if ok("ikev2_decryption_table",
                          _ikev2_line("0" * 16, "0" * 16, "", "", e, "", "", "NONE [RFC4306]"))), None)
        integ = next((a for a in v2_integ.get(k.integ, [])
                      if ok("ikev2_decryption_table",
                            _ikev2_line("0" * 16, "0" * 16, "", "", "NULL [RFC2410]", "", "", a))), None)
        if enc is None or integ is None:
            what = k.enc if enc is None else k.integ
            out.problems.append(f"{k.source or k.fingerprint}: IKEv2 key {k.fingerprint} not given to tshark "
                                f"({version} has no IKEv2 algorithm {what})")
            out.left_out.add(id(k))
            continue
        out.uat["ikev2_decryption_table"].append(_ikev2_line(
            k.ispi.hex(), k.rspi.hex(), k.sk_ei.hex(), k.sk_er.hex(), enc, k.sk_ai.hex(), k.sk_ar.hex(), integ))
    for k in store.ikev1:
        out.uat["ikev1_decryption_table"].append(f"{k.icookie.hex()},{k.enc_key.hex()}")
    return out


def parse_uat_line(line: str) -> list[str]:
    """The columns of one UAT line as written here (quoted or bare, comma-separated)."""
    import csv

    return next(csv.reader([line], escapechar="\\"))


def _ikev2_line(ispi, rspi, ei, er, enc, ai, ar, integ) -> str:
    return ",".join([ispi, rspi, ei, er, _q(enc), ai, ar, _q(integ)])


def _hexkey(b: bytes) -> str:
    return "0x" + b.hex() if b else ""


def _reverse(table: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, canon in table.items():
        if canon is not None:
            out.setdefault(canon, []).append(name)
    return out


def esp_key_for(tables: UatTables, spi: int, src: str, dst: str):
    """The key of the first esp_sa line that matches an SA, as Wireshark looks
    it up (protocol family, source, destination, SPI; ``*`` matches any)."""
    fam = "IPv6" if ":" in src else "IPv4"
    for k, kfam, ksrc, kdst, kspi in tables.esp_lines:
        if kfam not in ("Any", fam):
            continue
        if ksrc not in ("*", src) or kdst not in ("*", dst):
            continue
        if kspi is not None and kspi != spi:
            continue
        return k
    return None
