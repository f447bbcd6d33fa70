"""Wireshark's view of a capture, frame by frame: the reference for the fast path.

One ``tshark -T fields`` run per capture gives, for every frame, the fields
below (each with all its occurrences, in dissection-tree order).  Results are
cached in memory per (path, mtime, size) and, when a cache directory is given,
on disk (the tests use ``.pytest_cache``), keyed by the tshark version too.

How tshark's view maps onto ours, and where it is normalised here (the tests
compare against the normalised view and say so in their failure messages):

* **ICMP quotes.**  tshark dissects the datagram an ICMP/ICMPv6 error quotes,
  so an ICMP error about an IKE, ESP or AH packet has ``...:icmp:ip:udp:isakmp``
  in ``frame.protocols`` and the quoted packet's SPI, sequence number and IKE
  header in the fields.  Our fast path classifies the frame by its outer
  headers: the ICMP message is a flow, and what its quote carried is kept
  apart (``FrameInfo.quoted``), never in ``FrameInfo.protocols``.
  :attr:`TsharkFrame.outer_protocols` is ``frame.protocols`` cut at the first
  ``icmp``/``icmpv6`` layer, and :meth:`TsharkFrame.outer` keeps, of each
  field, only the occurrences that belong to layers before that cut (fields
  occur in the same order as their layers).  What was cut is kept in
  :attr:`TsharkFrame.quoted_protocols`, so a test can list those frames.
* **ISAKMP on UDP 4500** is ``udp:udpencap:isakmp`` (non-ESP marker), ESP in
  UDP is ``udp:udpencap:esp`` and a NAT-keepalive is ``udp:udpencap`` alone,
  the same names our :class:`~ipsecpcap.frames.FrameInfo` uses.
* **IKE payload list.**  ``isakmp.typepayload`` is written for every payload
  tshark dissects, in tree (pre-)order, which includes the Proposal (2) and
  Transform (3) substructures inside an SA payload (IKEv1 SA = 1, IKEv2 SA =
  33).  :func:`top_level_payloads` drops the run of 2/3 that follows an SA;
  what remains is the next-payload chain of the message.  tshark lists no
  payloads for an IKEv1 message with the encryption flag set (it cannot see
  past the header without keys) and only ``SK`` (46) for an IKEv2 one.
* **IP fragments.**  tshark reassembles IPv4 and IPv6 (``ip.defragment`` and
  ``ipv6.defragment`` are forced on) and, with two passes (``-2``), marks
  every fragment with the frame that completed it (``ip.reassembled_in`` /
  ``ipv6.reassembled.in``); the completing frame carries the upper layers and
  ``ip.fragment.count`` / ``ipv6.fragment.count``.  Our decoder does the same:
  the completing frame carries the protocol, the others are ``ip-fragment``.
* **IPv6 extension headers** appear as their own layers (``ipv6.hopopts``,
  ``ipv6.routing``, ...); AH in IPv6 is ``ipv6:ah:...``.  None of this needs
  normalising: only the names esp/ah/isakmp/udpencap are compared.
* **AH+ESP** frames have both ``ah`` and ``esp`` layers; nested AH (AH in a
  tunnel under AH) yields several ``ah.spi`` occurrences, outermost first,
  the same order as ``FrameInfo.ah_spi``.

tshark runs with an empty private configuration directory, so a developer's
own preferences, decryption tables or disabled protocols never leak in.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path

# IPSECPCAP_TSHARK picks another tshark (e.g. a newer build to compare with)
TSHARK = os.environ.get("IPSECPCAP_TSHARK") or shutil.which("tshark") or "/usr/bin/tshark"
SKIP_REASON = "tshark not installed (CI installs it; apt-get install tshark)"

# ICMP errors quote the offending datagram; tshark dissects the quote.
QUOTE_LAYERS = ("icmp", "icmpv6")

# IKE payload substructures tshark also lists as isakmp.typepayload:
# Proposal (2) and Transform (3) inside an SA (IKEv1: 1, IKEv2: 33).
SA_TYPES = (1, 33)
SA_SUBSTRUCTURES = (2, 3)

# (attribute, tshark field, kind); kind says how one occurrence is parsed.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("frame", "frame.number", "int"),
    ("protocols", "frame.protocols", "protocols"),
    ("esp_spi", "esp.spi", "int"),
    ("esp_seq", "esp.sequence", "int"),
    ("ah_spi", "ah.spi", "int"),
    ("ah_seq", "ah.sequence", "int"),
    ("ispi", "isakmp.ispi", "hex"),
    ("rspi", "isakmp.rspi", "hex"),
    ("ike_version", "isakmp.mjver", "int"),
    ("exchange_type", "isakmp.exchangetype", "int"),
    ("mid", "isakmp.messageid", "int"),
    ("payload_types", "isakmp.typepayload", "int"),
    ("ip_mf", "ip.flags.mf", "bool"),
    ("ip_frag_offset", "ip.frag_offset", "int"),
    ("ip_reassembled_in", "ip.reassembled_in", "int"),
    ("ip_fragment_count", "ip.fragment.count", "int"),
    ("ipv6_frag_offset", "ipv6.fraghdr.offset", "int"),
    ("ipv6_frag_more", "ipv6.fraghdr.more", "bool"),
    ("ipv6_reassembled_in", "ipv6.reassembled.in", "int"),
    ("ipv6_fragment_count", "ipv6.fragment.count", "int"),
)
# the protocol layer each field belongs to, for cutting ICMP quotes
FIELD_LAYER = {"esp_spi": "esp", "esp_seq": "esp", "ah_spi": "ah", "ah_seq": "ah", "ispi": "isakmp",
               "rspi": "isakmp", "ike_version": "isakmp", "exchange_type": "isakmp", "mid": "isakmp"}

CACHE_FORMAT = 1  # bump when the parsing above changes what a cached entry holds

ARGS = ("-n", "-2", "-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE", "-T", "fields",
        "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "header=n",
        "-E", "quote=n")


class TsharkError(RuntimeError):
    """tshark could not read the capture at all."""


def tshark_available() -> bool:
    return os.access(TSHARK, os.X_OK)


_version: str | None = None


def tshark_version() -> str:
    """First line of ``tshark -v``, e.g. ``TShark (Wireshark) 4.0.17 (...)``."""
    global _version
    if _version is None:
        out = subprocess.run([TSHARK, "-v"], capture_output=True, text=True, env=_env(), check=False)
        _version = out.stdout.splitlines()[0].strip() if out.stdout else "unknown"
    return _version


@dataclass(frozen=True, slots=True)
class TsharkFrame:
    """One frame as tshark dissected it: every occurrence of every field."""

    frame: int
    protocols: tuple[str, ...]
    esp_spi: tuple[int, ...]
    esp_seq: tuple[int, ...]
    ah_spi: tuple[int, ...]
    ah_seq: tuple[int, ...]
    ispi: tuple[str, ...]  # 16 lowercase hex digits
    rspi: tuple[str, ...]
    ike_version: tuple[int, ...]  # major version
    exchange_type: tuple[int, ...]
    mid: tuple[int, ...]
    payload_types: tuple[int, ...]  # every isakmp.typepayload, tree order (see top_level_payloads)
    ip_mf: tuple[bool, ...]
    ip_frag_offset: tuple[int, ...]  # in 8-octet units
    ip_reassembled_in: tuple[int, ...]
    ip_fragment_count: tuple[int, ...]
    ipv6_frag_offset: tuple[int, ...]
    ipv6_frag_more: tuple[bool, ...]
    ipv6_reassembled_in: tuple[int, ...]
    ipv6_fragment_count: tuple[int, ...]

    # ------------------------------------------------------------ ICMP quotes
    @property
    def outer_protocols(self) -> tuple[str, ...]:
        """``frame.protocols`` up to and including the first ICMP/ICMPv6 layer."""
        for i, p in enumerate(self.protocols):
            if p in QUOTE_LAYERS:
                return self.protocols[:i + 1]
        return self.protocols

    @property
    def quoted_protocols(self) -> tuple[str, ...]:
        """The layers tshark dissected inside an ICMP error's quote (usually empty)."""
        return self.protocols[len(self.outer_protocols):]

    def outer(self, attr: str) -> tuple:
        """The occurrences of field ``attr`` that belong to the outer (not
        ICMP-quoted) layers: as many as the outer protocols have of its layer."""
        values = getattr(self, attr)
        layer = FIELD_LAYER.get(attr)
        if layer is None or not self.quoted_protocols:
            return values
        return values[:self.outer_protocols.count(layer)]

    def has(self, proto: str) -> bool:
        """Whether ``proto`` (esp, ah, isakmp, udpencap) is an outer layer."""
        return proto in self.outer_protocols

    def has_any(self, proto: str) -> bool:
        """Whether ``proto`` is anywhere in ``frame.protocols`` (the manifest's count)."""
        return proto in self.protocols

    @property
    def top_level_payloads(self) -> tuple[int, ...]:
        """The IKE message's payload chain (see :func:`top_level_payloads`);
        empty when the ISAKMP layer is only inside an ICMP quote."""
        if not self.has("isakmp"):
            return ()
        return top_level_payloads(self.payload_types)

    @property
    def fragment_of(self) -> int | None:
        """For an IP fragment that did not complete its datagram: the frame that did."""
        for v in self.ip_reassembled_in + self.ipv6_reassembled_in:
            if v != self.frame:
                return v
        return None

    @property
    def fragment_count(self) -> int:
        """For the frame that completed a reassembly: how many fragments it took."""
        return next(iter(self.ip_fragment_count + self.ipv6_fragment_count), 0)


def top_level_payloads(types: Iterable[int]) -> tuple[int, ...]:
    """Drop the Proposal/Transform substructures tshark lists after each SA.

    ``isakmp.typepayload`` is in tree pre-order, so an SA's proposals and
    their transforms follow it directly.  A malformed message whose chain has
    a top-level payload of type 2 or 3 right after an SA would lose it here;
    none of the captures has one (their chains come from tshark's own next
    payload walk, which only descends into SA payloads).
    """
    out: list[int] = []
    in_sa = False
    for t in types:
        if in_sa and t in SA_SUBSTRUCTURES:
            continue
        in_sa = t in SA_TYPES
        out.append(t)
    return tuple(out)


# ---------------------------------------------------------------- running tshark
def _env() -> dict:
    env = dict(os.environ)
    conf = _empty_config_dir()
    env["WIRESHARK_CONFIG_DIR"] = conf  # personal preferences, UAT tables: none
    env["XDG_CONFIG_HOME"] = conf
    env["HOME"] = conf
    env["LC_ALL"] = "C"
    return env


_conf_dir: str | None = None


def _empty_config_dir() -> str:
    global _conf_dir
    if _conf_dir is None:
        _conf_dir = tempfile.mkdtemp(prefix="ipsecpcap-tshark-conf-")
    return _conf_dir


def _parse_value(kind: str, text: str):
    if kind == "protocols":
        return tuple(text.split(":")) if text else ()
    vals = text.split(",") if text else []
    if kind == "int":  # decimal, or hexadecimal with 0x (BASE_HEX fields)
        return tuple(int(v, 16) if v[:2] in ("0x", "0X") else int(v) for v in vals)
    if kind == "hex":
        return tuple(v.replace(":", "").lower() for v in vals)
    if kind == "bool":
        return tuple(v in ("1", "True", "true") for v in vals)
    raise ValueError(kind)


def run_tshark(path) -> tuple[list[TsharkFrame], str]:
    """Dissect ``path``; return its frames and tshark's standard error.

    tshark exits non-zero for a capture cut short in the middle of a record
    but still prints the frames before it; only no output at all is an error.
    """
    cmd = [TSHARK, *ARGS, "-r", os.fspath(path)]
    for _, field, _ in FIELDS:
        cmd += ["-e", field]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=False)
    stderr = "\n".join(line for line in proc.stderr.splitlines()
                       if "dangerous" not in line)  # "Running as user root ..." noise
    frames = []
    for line in proc.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) != len(FIELDS):
            raise TsharkError(f"{path}: unexpected tshark line ({len(cols)} columns): {line[:200]!r}")
        vals = [_parse_value(kind, c) for (_, _, kind), c in zip(FIELDS, cols)]
        vals[0] = vals[0][0]  # frame.number occurs once
        frames.append(TsharkFrame(*vals))
    if proc.returncode != 0 and not frames:
        raise TsharkError(f"{path}: tshark exited {proc.returncode}: {stderr.strip()}")
    return frames, stderr


class TsharkCache:
    """tshark's frames per capture, computed once per (path, mtime, size).

    ``cache_dir`` (optional) keeps the results across test sessions; entries
    are keyed by the capture's identity, the tshark version and the fields,
    so a new tshark or a changed field list never reads a stale entry.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._mem: dict[tuple, list[TsharkFrame]] = {}
        self._lock = threading.Lock()

    def _key(self, path: Path) -> tuple:
        st = path.stat()
        return (str(path.resolve()), st.st_mtime_ns, st.st_size)

    def _disk_name(self, key: tuple) -> Path | None:
        if self.cache_dir is None:
            return None
        h = hashlib.sha256(json.dumps([CACHE_FORMAT, key, tshark_version(), ARGS, FIELDS]).encode()).hexdigest()[:32]
        return self.cache_dir / f"{h}.json"

    def frames(self, path) -> list[TsharkFrame]:
        path = Path(path)
        key = self._key(path)
        with self._lock:
            hit = self._mem.get(key)
        if hit is not None:
            return hit
        disk = self._disk_name(key)
        frames = None
        if disk is not None and disk.exists():
            try:
                frames = [TsharkFrame(row[0], *map(tuple, row[1:])) for row in json.loads(disk.read_text())]
            except (ValueError, TypeError):
                frames = None  # a torn or old-format entry: recompute
        if frames is None:
            frames, _ = run_tshark(path)
            if disk is not None:
                disk.parent.mkdir(parents=True, exist_ok=True)
                tmp = disk.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps([astuple(f) for f in frames]))
                os.replace(tmp, disk)
        with self._lock:
            self._mem[key] = frames
        return frames

    def by_frame(self, path) -> dict[int, TsharkFrame]:
        return {f.frame: f for f in self.frames(path)}

    def prefetch(self, paths: Iterable, workers: int | None = None) -> None:
        """Run tshark over many captures in parallel (one process each)."""
        paths = [Path(p) for p in paths if Path(p).exists()]
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as ex:
            for _ in ex.map(self._prefetch_one, paths):
                pass

    def _prefetch_one(self, path: Path) -> None:
        try:
            self.frames(path)
        except TsharkError:
            pass  # reported again, with context, when the test asks for it
