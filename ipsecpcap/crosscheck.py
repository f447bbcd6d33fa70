"""Cross-check: the fast path against Wireshark's dissection, frame by frame.

``ipsecpcap crosscheck CAPTURE... [--keys K]`` (:func:`crosscheck`) dissects
every frame with both engines -- :func:`ipsecpcap.frames.iter_frames` (our
decoder) and tshark (:mod:`ipsecpcap.tsharkview`) -- and compares, per
frame:

* which of ``esp`` / ``ah`` / ``isakmp`` / ``udpencap`` the frame carries;
* the ESP SPI and sequence number, every AH SPI and sequence number;
* the IKE header: initiator and responder SPI, major version, exchange type,
  message ID, and the payload chain (tshark's payload type numbers, named
  with our IANA tables for the message's major version);
* whether the frame is an IP fragment that did not complete a datagram, and,
  for the frame that did, how many fragments it took;
* what an ICMP error's quoted datagram carried (esp / ah / isakmp);
* with keys (a second run of both engines, with the keys): whether each ESP
  packet decrypted and verified (``esp.decryption``: ``ok``,
  ``integrity_failure``, ``no_key``, ...) and what it carried
  (``esp.next_header``), and whether each encrypted IKE message decrypted
  (``ike.decryption``) with the payloads inside it (``ike.payloads``).

tshark's view is normalised in documented ways only (see
:mod:`ipsecpcap.tsharkview`): an ICMP error's quote is compared with what our
decoder says the quote carried, not with the frame's own protocols; an IKEv1
message with the encryption flag set is one ``encrypted`` pseudo-payload on
our side and no payload on tshark's (or, decrypted, ours lists the inner
payloads after ``encrypted``).  AH ICVs are not compared: tshark does not
verify them.

Every other difference is a :class:`Disagreement`.  Where the cause is known
-- tshark is wrong (no ESN, no ChaCha20-Poly1305 in 4.0, a dissector bug), or
the two engines read a broken packet differently -- an :class:`Explanation`
from :data:`EXPLANATIONS` recognises it, and the report says which engine is
believed and why.  An unexplained disagreement makes ``crosscheck`` exit 1.
Each explanation is backed by a test that proves the engine believed (e.g.
the keys the daemon logged, an RFC rule), and the tests pin the frames where
each fires, so none can hide anything else.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .dissectors import iana
from .dissectors.records import IkeMessage
from .errors import InputError
from .frames import FrameInfo, _Recorder
from .tsharkview import Profile, TsharkFrame, dialect, esp_key_for, find_tshark, run_tshark, short_version, \
    uat_tables

QUOTED = ("esp", "ah", "isakmp")


# ---------------------------------------------------------------- our side, per frame
@dataclass(slots=True)
class FastFrame:
    """What our decoder saw in one frame (``info``), with the IKE message it
    parsed and, with keys, the outer ESP packet's decryption."""

    info: FrameInfo
    msg: IkeMessage | None = None
    raw_len: int = 0
    esp_status: str | None = None  # ok | integrity_failure | bad_padding | ... | no_key (None: no ESP)
    esp_next_header: int | None = None
    esp_key: object = None  # the EspKey that opened it
    esp_esn: bool | None = None


class _Rec(_Recorder):
    """The frame recorder of :mod:`ipsecpcap.frames`, keeping the IKE message too."""

    def __init__(self):
        super().__init__()
        self.msg = None

    def ike(self, frame, ts, addrs, sport, dport, msg, marker, fragments, raw):
        if self.cur.ike is None:  # the outer message (a decrypted tunnel may carry more)
            self.msg = (msg, len(raw))
        super().ike(frame, ts, addrs, sport, dport, msg, marker, fragments, raw)


def fast_frames(path) -> Iterator[FastFrame]:
    """Our decoder's view of every frame (the same decoder and recorder as
    :func:`ipsecpcap.frames.iter_frames`, keeping the IKE message)."""
    from .decode import Decoder
    from .reader import open_capture

    rec = _Rec()
    dec = Decoder(rec)
    with open_capture(path, block_bytes=1 << 20) as reader:
        for block in reader:
            lts = block.linktypes
            out: list[FastFrame] = []
            for i, (frame, off, caplen, ts) in enumerate(zip(block.frames, block.offsets, block.caplens, block.ts)):
                lt = lts if isinstance(lts, int) else lts[i]
                rec.cur = FrameInfo(frame, ts, "", "")
                rec.msg = None
                cat = dec.frame(lt, block.data, off, off + caplen, ts, frame)
                rec.cur.category = cat
                rec.cur.status = cat.split(":", 1)[0]
                ff = FastFrame(rec.cur)
                if rec.msg is not None:
                    ff.msg, ff.raw_len = rec.msg
                out.append(ff)
            for f, kind, _detail in block.bad:
                out.append(FastFrame(FrameInfo(f, 0.0, "malformed", f"malformed:{kind}:record")))
            out.sort(key=lambda x: x.info.frame)
            yield from out


class _Tap:
    """Passes the decoder's crypto calls through, keeping the frame's first ESP result."""

    def __init__(self, crypto):
        self.crypto = crypto
        self.first = None

    def esp(self, spi, addrs, seq, data):
        res = self.crypto.esp(spi, addrs, seq, data)
        if self.first is None:
            self.first = (spi, addrs, res)
        return res

    def ah(self, *args):
        return self.crypto.ah(*args)


@dataclass
class _Keyed:
    """Our decoder with keys: the outer ESP verdict per frame, and the IKE exchanges."""

    esp: dict[int, tuple] = field(default_factory=dict)  # frame -> (status, next header, key, esn)
    exchanges: dict[int, object] = field(default_factory=dict)  # frame -> ExchangeRow
    repeats: dict[int, int] = field(default_factory=dict)  # frame -> earlier frame with the same IKE message bytes
    crypto: object = None  # the SaCrypto, with its per-SA states


def _fast_keyed(path, store) -> _Keyed:
    from .decode import KeyedDecoder
    from .reader import open_capture
    from .sacrypto import SaCrypto
    from .tables import ike_tables
    from .tracker import Tracker

    crypto = SaCrypto(store)
    tap = _Tap(crypto)
    tracker = Tracker(os.path.basename(os.fspath(path)))
    dec = KeyedDecoder(tracker, tap)
    out = _Keyed()
    opened: dict[int, tuple] = {}
    with open_capture(path, block_bytes=1 << 20) as reader:
        for block in reader:
            lts = block.linktypes
            for i, (frame, off, caplen, ts) in enumerate(zip(block.frames, block.offsets, block.caplens, block.ts)):
                lt = lts if isinstance(lts, int) else lts[i]
                tap.first = None
                dec.frame(lt, block.data, off, off + caplen, ts, frame)
                if tap.first is not None:
                    opened[frame] = tap.first
    for frame, (spi, addrs, res) in opened.items():
        st = crypto.states.get((50, spi, addrs))
        # the key and ESN flag as they ended up (ESN may be inferred on a later packet)
        out.esp[frame] = ("no_key" if res is None else res.status, None if res is None else res.next_header,
                          st.key if st else None, st.esn if st else None)
    seen: dict[bytes, int] = {}
    for ev in sorted(tracker.ike_events, key=lambda e: e.frame):
        first = seen.setdefault(ev.raw, ev.frame)
        if first != ev.frame:
            out.repeats[ev.frame] = first
    view = ike_tables(tracker, store)
    out.exchanges = {r.frame: r for r in view.exchanges}
    out.crypto = crypto
    return out


# ---------------------------------------------------------------- explanations
@dataclass(frozen=True)
class Explanation:
    """A known cause of a disagreement: where it applies, which engine is
    believed, and why."""

    id: str
    fields: tuple[str, ...]
    believed: str  # "fast" | "tshark"
    reason: str
    applies: Callable[["Context", str, object, object], bool]


@dataclass
class Context:
    """What an explanation may look at for one frame."""

    capture: str
    fast: FastFrame
    tshark: TsharkFrame
    keyed: _Keyed | None = None
    tables: object = None  # tsharkview.UatTables
    tshark_version: str = ""
    esp_columns: int = 8
    store: object = None  # the KeyStore


def _isakmp_length_beyond(ctx: Context, fld, ours, theirs) -> bool:
    m = ctx.fast.msg
    return theirs == () and m is not None and m.length > ctx.fast.raw_len


def _unknown_major(ctx: Context, fld, ours, theirs) -> bool:
    m = ctx.fast.msg
    return theirs == () and m is not None and m.version not in (1, 2)


def _draft_natd(ctx: Context, fld, ours, theirs) -> bool:
    m = ctx.fast.msg
    if m is None or m.version != 1 or m.exchange_type not in (2, 4):
        return False
    ours, theirs = tuple(ours), tuple(theirs)
    i = len(theirs) - 1
    return i >= 0 and theirs[i] == "SAK" and i < len(ours) and ours[i] == "NAT-D" and ours[:i] == theirs[:i]


def _short_payload(ctx: Context, fld, ours, theirs) -> bool:
    m = ctx.fast.msg
    if m is None or not any(a.kind == "bad_length" and "payload" in a.where for a in m.anomalies):
        return False
    ours, theirs = tuple(ours), tuple(theirs)
    return len(theirs) > len(ours) and theirs[:len(ours)] == ours


def _esn(ctx: Context, fld, ours, theirs) -> bool:
    v = ctx.keyed.esp.get(ctx.fast.info.frame) if ctx.keyed else None
    return (ours == "ok" and theirs == "integrity_failure" and v is not None and v[3] is True
            and ctx.esp_columns == 8)


def _left_out(ctx: Context, fld, ours, theirs) -> bool:
    if ours not in ("ok", "fragment") or theirs != "no_key" or ctx.tables is None:
        return False
    if fld == "esp.decryption":
        v = ctx.keyed.esp.get(ctx.fast.info.frame)
        return v is not None and v[2] is not None and id(v[2]) in ctx.tables.left_out
    row = ctx.keyed.exchanges.get(ctx.fast.info.frame)
    if row is None or ctx.store is None:
        return False
    return any(id(k) in ctx.tables.left_out for k in ctx.store.ikev2
               if k.ispi.hex() == row.ispi and k.rspi.hex() == row.rspi)


def _by_trial(ctx: Context, fld, ours, theirs) -> bool:
    if ours != "ok" or theirs not in ("no_key", "integrity_failure") or ctx.tables is None:
        return False
    v = ctx.keyed.esp.get(ctx.fast.info.frame)
    if v is None or v[2] is None or id(v[2]) in ctx.tables.left_out:
        return False
    t = ctx.tshark
    spi, src, dst = t.first("esp_spi"), _outer_addr(t, "src"), _outer_addr(t, "dst")
    if spi is None or src is None:
        return False
    return esp_key_for(ctx.tables, spi, src, dst) is not v[2]


def _ikev1_repeat(ctx: Context, fld, ours, theirs) -> bool:
    if ctx.keyed is None:
        return False
    frame = ctx.fast.info.frame
    row = ctx.keyed.exchanges.get(frame)
    if row is None or row.version != 1 or frame not in ctx.keyed.repeats:
        return False
    if fld == "ike.decryption":
        return ours == "ok" and theirs == "no_key"
    ours, theirs = tuple(ours), tuple(theirs)
    return len(theirs) < len(ours) and theirs == ours[:len(theirs)]


def _outer_addr(t: TsharkFrame, which: str) -> str | None:
    net = next((p for p in t.outer_protocols if p in ("ip", "ipv6")), None)
    if net is None:
        return None
    return t.first(f"{'ip' if net == 'ip' else 'ipv6'}_{which}")


EXPLANATIONS: tuple[Explanation, ...] = (
    Explanation(
        "isakmp-length-beyond-datagram", ("ike.payloads",), "fast",
        "the ISAKMP Length field is larger than the datagram (cut by the snap length, or fuzzed): tshark stops "
        "after the header and lists no payload; ipsecpcap walks the payload chain through the bytes captured and "
        "records the message as truncated",
        _isakmp_length_beyond),
    Explanation(
        "unknown-major-version", ("ike.exchange",), "fast",
        "an unknown ISAKMP major version: tshark dissects the header without an exchange type field; ipsecpcap "
        "reports the exchange type byte the 28-byte header has for every version (RFC 2408 3.1, RFC 7296 3.1)",
        _unknown_major),
    Explanation(
        "draft-nat-d-type-15", ("ike.payloads",), "fast",
        "payload type 15 in IKEv1 Main/Aggressive Mode is the NAT-D of draft-ietf-ipsec-nat-t-ike-02..08 "
        "(RFC 3547's SAK exists only in GDOI GROUPKEY exchanges); tshark reads it as SAK, throws a malformed-"
        "packet exception inside it and stops the payload chain",
        _draft_natd),
    Explanation(
        "payload-length-below-header", ("ike.payloads",), "fast",
        "a payload whose Payload Length is smaller than its own 4-byte generic header has no valid bounds "
        "(RFC 2408 3.2, RFC 7296 3.2): ipsecpcap ends the chain there and records bad_length; tshark lists it "
        "and reads on from inside it",
        _short_payload),
    Explanation(
        "ikev1-repeat-wrong-iv", ("ike.payloads", "ike.decryption"), "fast",
        "a repeat (retransmission, or the same packet captured twice) of an encrypted IKEv1 message: it was "
        "encrypted with the same IV as the original (RFC 2409 appendix B: the IV is the last cipher block of the "
        "exchange's previous message), but tshark chains the IV through every frame it decrypts, so it decrypts "
        "the repeat with the wrong IV, garbles the first block and stops the payload chain after the first "
        "payload; ipsecpcap decrypts the repeat as the original, which tshark itself decodes the same",
        _ikev1_repeat),
    Explanation(
        "tshark-has-no-esn", ("esp.decryption",), "fast",
        "the SA uses extended sequence numbers (RFC 4303 2.2.1): the ICV covers the high 32 bits, which "
        "this tshark's 8-column esp_sa table cannot be told about, so its check fails; ipsecpcap verifies with "
        "them (the key file says ESN, or a 32-bit wrap made it infer ESN)",
        _esn),
    Explanation(
        "key-not-usable-by-tshark", ("esp.decryption", "ike.decryption"), "fast",
        "this tshark does not know the key's algorithm (e.g. ChaCha20-Poly1305 in Wireshark 4.0), so the key "
        "was not given to it; ipsecpcap verified the ICV or AEAD tag with it before decrypting",
        _left_out),
    Explanation(
        "key-found-by-trial", ("esp.decryption",), "fast",
        "the key file names another SPI or address for this key (or names this SPI with another key first): "
        "tshark takes the first esp_sa line whose SPI and addresses match, ipsecpcap binds the key that "
        "verifies the SA's ICV (trial verification)",
        _by_trial),
)


def explain(ctx: Context, fld: str, ours, theirs) -> Explanation | None:
    for e in EXPLANATIONS:
        if fld in e.fields:
            try:
                if e.applies(ctx, fld, ours, theirs):
                    return e
            except (AttributeError, IndexError, KeyError, TypeError):
                continue
    return None


# ---------------------------------------------------------------- comparing one frame
def payload_names(version: int, types: Iterable[int]) -> tuple[str, ...]:
    """tshark's payload type numbers, named as our dissectors name them."""
    if version == 2:
        return tuple(iana.name(iana.IKEV2_PAYLOAD_TYPES, "ikev2-payload-type", t) for t in types)
    return tuple(iana.name(iana.ISAKMP_PAYLOAD_TYPES, "isakmp-payload-type", t) for t in types)


def ours_fragment(f: FrameInfo) -> bool:
    return f.category == "analysed:ip-fragment"


def compare(f: FrameInfo, t: TsharkFrame) -> list[tuple[str, object, object]]:
    """(field, ours, tshark) for every field compared without keys."""
    rows: list[tuple[str, object, object]] = []
    for proto in ("esp", "ah", "isakmp", "udpencap"):
        rows.append((proto, proto in f.protocols, t.has(proto)))
    rows.append(("esp.spi", () if f.esp_spi is None else (f.esp_spi,), t.outer("esp_spi")))
    rows.append(("esp.seq", () if f.esp_seq is None else (f.esp_seq,), t.outer("esp_seq")))
    rows.append(("ah.spi", tuple(f.ah_spi), t.outer("ah_spi")))
    rows.append(("ah.seq", tuple(f.ah_seq), t.outer("ah_seq")))
    ike = f.ike
    rows.append(("ike.ispi", () if ike is None else (ike.ispi,), t.outer("ispi")))
    rows.append(("ike.rspi", () if ike is None else (ike.rspi,), t.outer("rspi")))
    rows.append(("ike.version", () if ike is None else (ike.version,), t.outer("ike_version")))
    rows.append(("ike.exchange", () if ike is None else (ike.exchange_type,), t.outer("exchange_type")))
    rows.append(("ike.mid", () if ike is None else (ike.mid,), t.outer("mid")))
    if ike is not None or t.has("isakmp"):
        version = ike.version if ike is not None else next(iter(t.outer("ike_version")), 1)
        ours = tuple(ike.payloads) if ike is not None else ()
        if ours == ("encrypted",) and version == 1:
            ours = ()  # IKEv1 E flag: tshark lists no payloads (see the module docstring)
        rows.append(("ike.payloads", ours, payload_names(version, t.top_level_payloads)))
    rows.append(("ip.fragment", ours_fragment(f), t.is_ip_fragment))
    rows.append(("icmp.quoted", sorted(p for p in f.quoted if p in QUOTED),
                 sorted(p for p in t.quoted_protocols if p in QUOTED)))
    if f.ip_fragments or t.fragment_count:
        rows.append(("ip.fragments", f.ip_fragments, t.fragment_count))
    return rows


def is_compared(ours, theirs) -> bool:
    """A value field counts only where either side has a value."""
    if isinstance(ours, bool):
        return True
    return bool(ours) or bool(theirs)


def tshark_esp_status(t: TsharkFrame, tables) -> str | None:
    """tshark's verdict on the frame's outer ESP packet (None: no ESP)."""
    spi = next(iter(t.outer("esp_spi")), None)
    if spi is None:
        return None
    src, dst = _outer_esp_addrs(t)
    if tables is None or src is None or esp_key_for(tables, spi, src, dst) is None:
        return "no_key"
    if t.at("esp_icv_bad", 0):
        return "integrity_failure"
    if t.at("esp_protocol", 0) is not None:
        return "ok"
    return "undecoded"


def _outer_esp_addrs(t: TsharkFrame) -> tuple[str | None, str | None]:
    """The addresses of the IP header that carries the outer ESP (the last
    IP layer before it)."""
    protos = t.outer_protocols
    if "esp" not in protos:
        return None, None
    i = protos.index("esp")
    n4 = protos[:i].count("ip")
    n6 = protos[:i].count("ipv6")
    last = max((k for k, p in enumerate(protos[:i]) if p in ("ip", "ipv6")), default=None)
    if last is None:
        return None, None
    if protos[last] == "ip":
        return t.at("ip_src", n4 - 1), t.at("ip_dst", n4 - 1)
    return t.at("ipv6_src", n6 - 1), t.at("ipv6_dst", n6 - 1)


_ICV_BAD = "Integrity Checksum Data is incorrect"
_BLOCKS = "isn't a multiple of block size"


def tshark_ike_status(t: TsharkFrame) -> str | None:
    """tshark's verdict on an encrypted IKE message (None: in clear)."""
    if not t.has("isakmp"):
        return None
    version = t.first("ike_version")
    top = t.top_level_payloads
    if version == 2:
        if not top or top[-1] not in (46, 53) and 46 not in top and 53 not in top:
            return None
        expert = t.get("expert")
        if any(_BLOCKS in m for m in expert):
            return "bad_length"  # RFC 7296 3.14: we check the length before the ICV, so name it first
        if any(_ICV_BAD in m for m in expert):
            return "integrity_failure"
        if t.get("ike_pad_length"):
            return "ok"
        return "no_key"
    return None  # IKEv1: decided with our flag (tshark has no field for it), see compare_keyed


def compare_keyed(ff: FastFrame, kt: TsharkFrame, keyed: _Keyed, tables) -> list[tuple[str, object, object]]:
    """(field, ours, tshark) for the decryption fields (both engines with keys)."""
    rows: list[tuple[str, object, object]] = []
    f = ff.info
    if f.esp_spi is not None or kt.has("esp"):
        v = keyed.esp.get(f.frame)
        ours = v[0] if v is not None else ("no_key" if f.esp_spi is not None else None)
        theirs = tshark_esp_status(kt, tables)
        if ours != "no_key" or theirs != "no_key":
            rows.append(("esp.decryption", ours, theirs))
            if ours == "ok" and theirs == "ok":
                rows.append(("esp.next_header", v[1], kt.at("esp_protocol", 0)))
    row = keyed.exchanges.get(f.frame)
    if row is not None and row.encrypted:
        version = row.version
        ours = row.decryption or "no_key"
        if ours == "fragment":  # an SKF fragment, verified and decrypted: tshark's "ok"
            ours = "ok"
        if version == 2:
            theirs = tshark_ike_status(kt)
        else:  # IKEv1: tshark lists the inner payloads when it decrypted the message
            theirs = "ok" if kt.top_level_payloads else "no_key"
        if ours != "no_key" or theirs != "no_key":
            rows.append(("ike.decryption", ours, theirs))
            if ours == "ok" and theirs in ("ok", "integrity_failure"):
                mine = tuple(p for p in row.payloads if not (version == 1 and p == "encrypted"))
                rows.append(("ike.payloads", mine, payload_names(version, kt.top_level_payloads)))
    return rows


# ---------------------------------------------------------------- the report
@dataclass(frozen=True, slots=True)
class Disagreement:
    capture: str
    frame: int
    field: str
    fast: object
    tshark: object
    explained: bool
    believed: str | None  # "fast" | "tshark" | None (unexplained)
    explanation: str | None  # Explanation.id
    reason: str | None
    keys: bool = False  # found by the run with keys

    FIELDS = ("capture", "frame", "field", "fast", "tshark", "explained", "believed", "explanation", "reason")

    def to_dict(self) -> dict:
        return {k: _show(getattr(self, k)) for k in self.FIELDS}


def _show(v):
    if isinstance(v, tuple):
        return list(v)
    return v


@dataclass
class CrossCheck:
    """The result of :func:`crosscheck`."""

    tshark: str
    captures: list[str] = field(default_factory=list)
    frames: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)  # field -> compared/agree/explained/differ
    key_problems: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Disagreement]:
        return [d for d in self.disagreements if not d.explained]

    @property
    def explained(self) -> list[Disagreement]:
        return [d for d in self.disagreements if d.explained]

    @property
    def ok(self) -> bool:
        return not self.unexplained

    def count(self, fld: str, what: str) -> None:
        s = self.stats.setdefault(fld, {"compared": 0, "agree": 0, "explained": 0, "differ": 0})
        s[what] += 1


def crosscheck(paths: Iterable, keys=None, progress=None) -> CrossCheck:
    """Compare both engines on every frame of every capture (see the module
    docstring).  ``keys``: a KeyStore or key file paths."""
    from .analysis import _key_store, capture_name

    tshark = find_tshark()
    store = _key_store(keys)
    result = CrossCheck(short_version(tshark))
    tables = uat_tables(store, tshark) if store is not None else None
    if tables is not None:
        result.key_problems = list(tables.problems)
    for path in paths:
        if path == "-":
            raise InputError("crosscheck reads each capture twice: give a file, not standard input")
        name = capture_name(path)
        result.captures.append(name)
        check_capture(result, path, name, store, tables)
        if progress is not None:
            progress(path)
    return result


def check_capture(result: CrossCheck, path, name: str, store=None, tables=None) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    ref = {t.frame: t for t in run_tshark(path, Profile(), False).frames}
    try:
        ours = list(fast_frames(path))
    except Exception as e:  # the reader's own errors are InputErrors for the analysis
        from .reader import CaptureError

        if isinstance(e, CaptureError):
            raise InputError(str(e)) from None
        raise
    result.frames += len(ours)
    if sorted(ref) != [f.info.frame for f in ours]:
        only_ours = sorted(set(f.info.frame for f in ours) - set(ref))
        only_theirs = sorted(set(ref) - set(f.info.frame for f in ours))
        result.disagreements.append(Disagreement(
            name, 0, "frame.count", len(ours), len(ref), False, None, None,
            f"frames only ours read: {only_ours[:5]}; only tshark: {only_theirs[:5]}"))
    col = dialect().esp_columns
    version = result.tshark
    for ff in ours:
        t = ref.get(ff.info.frame)
        if t is None:
            continue
        ctx = Context(name, ff, t, None, tables, version, col, store)
        for fld, o, r in compare(ff.info, t):
            _record(result, ctx, fld, o, r, False)
    if store is None or tables is None:
        return
    keyed = _fast_keyed(path, store)
    with Profile(tables.uat) as prof:
        kref = {t.frame: t for t in run_tshark(path, prof, True).frames}
    for ff in ours:
        kt = kref.get(ff.info.frame)
        if kt is None:
            continue
        ctx = Context(name, ff, kt, keyed, tables, version, col, store)
        for fld, o, r in compare_keyed(ff, kt, keyed, tables):
            _record(result, ctx, fld, o, r, True)


def _record(result: CrossCheck, ctx: Context, fld: str, ours, theirs, keyed: bool) -> None:
    if not is_compared(ours, theirs):
        return
    result.count(fld, "compared")
    if ours == theirs:
        result.count(fld, "agree")
        return
    e = explain(ctx, fld, ours, theirs)
    result.count(fld, "explained" if e else "differ")
    result.disagreements.append(Disagreement(
        ctx.capture, ctx.fast.info.frame, fld, ours, theirs, e is not None,
        e.believed if e else None, e.id if e else None,
        e.reason if e else f"unexplained [ours {ctx.fast.info.category}; tshark {':'.join(ctx.tshark.protocols)}]",
        keyed))
