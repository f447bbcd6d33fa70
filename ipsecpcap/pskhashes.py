"""IKEv1 Aggressive Mode with a pre-shared key: the parameters of an offline attack on the key.

In Aggressive Mode the responder's first message (message 2) carries HASH_R
in clear, and messages 1 and 2 together carry everything else it covers
(RFC 2409 section 5, and 5.4 for pre-shared keys)::

    SKEYID = prf(pre-shared-key, Ni_b | Nr_b)
    HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)

``prf`` is the HMAC of the negotiated hash (RFC 2409 section 4: no PRF
attribute is defined, so "the HMAC version of the negotiated hash function
is used").  ``SAi_b`` is the body of the initiator's SA payload (everything
after the 4-byte generic header: DOI, situation and every proposal offered),
``IDir_b`` the body of the responder's ID payload, ``Ni_b`` and ``Nr_b`` the
bodies of the nonce payloads, ``g^xi`` and ``g^xr`` the KE payload bodies.
Anyone holding the capture can try candidate keys until HASH_R comes out.
Main Mode encrypts the identities and the hashes, so it yields nothing here.

:func:`psk_hashes` finds every IKEv1 Aggressive Mode exchange whose chosen
proposal authenticates with a pre-shared key (``psk``, or XAUTH over a
pre-shared key: ``xauth-init-psk`` / ``xauth-resp-psk``, whose phase-1 hash
is the same) and returns one :class:`PskParams` per exchange (retransmitted
copies are counted, not repeated), plus one :class:`PskProblem` for each such
exchange whose parameters cannot be had (message 1 or 2 not captured,
encrypted, truncated or missing a payload).

The tools that take these parameters, and their limits (:func:`tool_problem`
says why one cannot take a given exchange):

* ``psk-crack`` (ike-scan 1.9): one line per exchange, the nine fields above
  in lowercase hex, colon-separated, in the order g_xr, g_xi, cky_r, cky_i,
  sai_b, idir_b, ni_b, nr_b, hash_r.  The hash is chosen from HASH_R's length
  (16 bytes MD5, 20 SHA1; any other length stops the whole run), and lines are
  read with ``fgets`` into a 4096-byte buffer: a longer line would be split.
* hashcat: the same line, mode 5300 (IKE-PSK MD5) or 5400 (IKE-PSK SHA1).
  hashcat 6 takes each of the first six fields up to 512 bytes and the six
  together up to 512 bytes (so no MODP-2048 or larger group: g^xr and g^xi
  alone are 512 bytes), and the two nonces together up to 64 bytes; but with
  exactly 64 (strongSwan's two 32-byte nonces) hashcat 6.2.6 reads the line
  and never finds the key (:func:`tool_caveat`, measured).
* John the Ripper (jumbo, format ``ike``): ``$ike$*0*`` and the nine fields
  joined by ``*`` (what its ``ikescan2john.py`` makes of a psk-crack line);
  MD5 or SHA1 by HASH_R's length; each field at most 4095 hex digits.

An exchange a tool cannot take is left out of that tool's output and said
(never silently dropped); one it takes but cannot crack is written and said;
the JSON view lists every exchange found, with the tools that take it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .algorithms import v1_auth
from .dissectors.isakmp import IKE_HEADER_LEN, Problems, iter_chain, message_bounds, parse_header
from .ikesa import IkeSa, addr_text, chosen_proposal, identities, split
from .tracker import V1_AGGRESSIVE as AGGRESSIVE  # (the tracker keeps these messages' bytes for us)
from .tracker import IkeEvent

ZERO = b"\x00" * 8

# IKEv1 payload types (RFC 2408 3.1)
P_SA, P_KE, P_ID, P_HASH, P_NONCE = 1, 4, 5, 8, 10

# phase-1 authentication methods whose SKEYID comes from the pre-shared key
# (RFC 2409 appendix A: 1; draft-beaulieu-ike-xauth-02 5: XAUTHInitPreShared,
# XAUTHRespPreShared)
PSK_METHODS = frozenset({"psk", "xauth-init-psk", "xauth-resp-psk"})

DIGEST_LEN = {"md5": 16, "sha1": 20, "tiger": 24, "sha2-256": 32, "sha2-384": 48, "sha2-512": 64}
HASHCAT_MODE = {"md5": 5300, "sha1": 5400}  # hashcat -m: IKE-PSK MD5 / IKE-PSK SHA1
FIELDS = ("g_xr", "g_xi", "cky_r", "cky_i", "sai_b", "idir_b", "ni_b", "nr_b", "hash_r")
TOOLS = ("psk-crack", "hashcat", "john")

# what the tools read (see the module docstring)
PSK_CRACK_MAX_LINE = 4094  # fgets(buf, 4096): 4095 characters, the newline included
HASHCAT_MAX_FIELD = 512  # bytes, each of g_xr .. idir_b (1024 hex digits)
HASHCAT_MAX_HASH_DATA = 512  # bytes, g_xr .. idir_b together
HASHCAT_MAX_NONCES = 64  # bytes, ni_b and nr_b together
JOHN_MAX_FIELD_HEX = 4095  # hex digits per field (sscanf into char[4096])


@dataclass(frozen=True, slots=True)
class PskParams:
    """One Aggressive Mode exchange authenticated with a pre-shared key."""

    captures: tuple[str, str]  # capture of message 1, of message 2
    frames: tuple[int, int]  # frame of message 1, of message 2 (their first copies)
    ts: float  # message 2
    initiator: str
    initiator_port: int
    responder: str
    responder_port: int
    ispi: str  # 16 hex digits (CKY-I)
    rspi: str  # CKY-R
    initiator_id: str | None
    responder_id: str | None
    auth_method: str  # psk, xauth-init-psk, xauth-resp-psk
    hash: str | None  # negotiated hash: md5, sha1, sha2-256, ...; None when the SA payload shows none
    prf: str | None  # as in the ike table; anything but prf-hmac-<hash> is a PRF attribute no tool knows
    retransmissions: int  # copies of message 1 and message 2 beyond the first
    g_xr: bytes
    g_xi: bytes
    cky_r: bytes
    cky_i: bytes
    sai_b: bytes
    idir_b: bytes
    ni_b: bytes
    nr_b: bytes
    hash_r: bytes

    @property
    def values(self) -> tuple[bytes, ...]:
        return tuple(getattr(self, f) for f in FIELDS)

    @property
    def hashcat_mode(self) -> int | None:
        """5300 (IKE-PSK MD5) or 5400 (IKE-PSK SHA1); None for other hashes.
        Whether hashcat takes this exchange is :func:`tool_problem`'s to say."""
        return HASHCAT_MODE.get(self.hash or "")

    def line(self) -> str:
        """psk-crack's (and hashcat's) line: the nine fields, hex, colon-separated."""
        return ":".join(v.hex() for v in self.values)

    def john(self) -> str:
        """John the Ripper's ``ike`` format (ikescan2john.py: ':' becomes '*')."""
        return "$ike$*0*" + "*".join(v.hex() for v in self.values)

    def to_dict(self) -> dict:
        d = {
            "captures": list(self.captures), "frames": list(self.frames), "ts": self.ts,
            "initiator": self.initiator, "initiator_port": self.initiator_port,
            "responder": self.responder, "responder_port": self.responder_port,
            "ispi": self.ispi, "rspi": self.rspi,
            "initiator_id": self.initiator_id, "responder_id": self.responder_id,
            "auth_method": self.auth_method, "hash": self.hash, "prf": self.prf,
            "hashcat_mode": self.hashcat_mode,
            "tools": [t for t in TOOLS if tool_problem(self, t) is None and tool_caveat(self, t) is None],
            "not_for": {t: p for t in TOOLS if (p := tool_problem(self, t) or tool_caveat(self, t)) is not None},
            "retransmissions": self.retransmissions,
        }
        d.update((f, v.hex()) for f, v in zip(FIELDS, self.values))
        return d


@dataclass(frozen=True, slots=True)
class PskProblem:
    """An Aggressive Mode exchange with a pre-shared key (offered or chosen)
    whose parameters cannot be had from the capture, and why; or, for one
    whose parameters were had, something the analyst should know (message 2
    seen again with other bytes)."""

    capture: str
    frame: int  # its first message seen
    initiator: str | None
    responder: str | None
    ispi: str
    rspi: str
    reason: str

    def text(self) -> str:
        peers = f"{self.initiator} -> {self.responder}" if self.initiator else f"responder {self.responder}"
        return (f"{self.capture} frame {self.frame}: IKEv1 Aggressive Mode {peers} "
                f"(cookies {self.ispi}/{self.rspi}): {self.reason}")


@dataclass
class PskHashes:
    """What :func:`psk_hashes` found."""

    params: list[PskParams] = field(default_factory=list)
    problems: list[PskProblem] = field(default_factory=list)
    other_auth: dict[str, int] = field(default_factory=dict)  # Aggressive Mode exchanges not using a PSK


def tool_problem(p: PskParams, tool: str) -> str | None:
    """Why ``tool`` (psk-crack, hashcat or john) cannot take these
    parameters, or None when it can."""
    if p.hash not in HASHCAT_MODE:
        what = f"hash {p.hash}" if p.hash else "no hash algorithm shown in the responder's SA payload"
        return f"{what}: {tool} takes only MD5 and SHA1"
    if p.prf is not None and p.prf != f"prf-hmac-{p.hash}":
        return f"PRF attribute {p.prf}: {tool} knows only HMAC-{p.hash.upper()}"
    if len(p.hash_r) != DIGEST_LEN[p.hash]:
        return f"HASH_R is {len(p.hash_r)} bytes, {p.hash} gives {DIGEST_LEN[p.hash]}"
    if tool == "psk-crack":
        n = len(p.line())
        if n > PSK_CRACK_MAX_LINE:
            return f"the line is {n} characters, psk-crack reads at most {PSK_CRACK_MAX_LINE}"
    elif tool == "hashcat":
        for name in FIELDS[:6]:
            if len(getattr(p, name)) > HASHCAT_MAX_FIELD:
                return f"{name} is {len(getattr(p, name))} bytes, hashcat takes at most {HASHCAT_MAX_FIELD}"
        data = sum(len(v) for v in p.values[:6])
        if data > HASHCAT_MAX_HASH_DATA:
            return (f"HASH_R covers {data} bytes (g_xr .. idir_b), hashcat takes at most "
                    f"{HASHCAT_MAX_HASH_DATA} (DH groups above 1536 bits do not fit)")
        nonces = len(p.ni_b) + len(p.nr_b)
        if nonces > HASHCAT_MAX_NONCES:
            return f"the nonces are {nonces} bytes together, hashcat takes at most {HASHCAT_MAX_NONCES}"
    elif tool == "john":
        for name, v in zip(FIELDS, p.values):
            if 2 * len(v) > JOHN_MAX_FIELD_HEX:
                return f"{name} is {2 * len(v)} hex digits, john takes at most {JOHN_MAX_FIELD_HEX}"
    else:
        raise ValueError(f"unknown tool {tool!r}")
    return None


def tool_caveat(p: PskParams, tool: str) -> str | None:
    """Why ``tool`` reads these parameters but cannot find the key, or None.

    hashcat 6.2.6 (modes 5300 and 5400) accepts nonces of 64 bytes together
    but then never cracks the line, even with the right key in the word
    list: measured with lines made from a known key, 63 bytes crack, 64 do
    not.  (Its parser appends a 0x80 byte after the nonces in a 64-byte
    buffer, which lands on the stored nonce length.)  strongSwan sends
    32-byte nonces, so its exchanges hit this.
    """
    if tool == "hashcat" and tool_problem(p, tool) is None and len(p.ni_b) + len(p.nr_b) == HASHCAT_MAX_NONCES:
        return (f"the nonces are {HASHCAT_MAX_NONCES} bytes together: hashcat 6.2.6 reads the line but "
                f"does not find the key (it cracks at most {HASHCAT_MAX_NONCES - 1}); psk-crack finds it")
    return None


# ------------------------------------------------------------------ extraction
@dataclass
class _Bodies:
    """Payload bodies of one message, by type: the first of each, and which were cut short."""

    first: dict[int, bytes]
    clipped: set[int]


def _payload_bodies(raw: bytes) -> _Bodies:
    """Walk the payload chain of a cleartext ISAKMP message with the dissector's
    own chain walker and keep each payload's body (after the 4-byte generic
    header, RFC 2408 3.2): the bytes the hashes cover."""
    hdr = parse_header(raw)
    problems = Problems()
    end, declared = message_bounds(raw, hdr, "isakmp", problems)
    first: dict[int, bytes] = {}
    clipped: set[int] = set()
    for el in iter_chain(raw, IKE_HEADER_LEN, end, declared, hdr.next_payload, "isakmp.payloads",
                         lambda i, t: f"isakmp.payload[{i}]", problems):
        if el.type not in first:
            first[el.type] = el.body
            if el.clipped:
                clipped.add(el.type)
    return _Bodies(first, clipped)


_NAMES = {P_SA: "SA", P_KE: "KE", P_ID: "ID", P_HASH: "HASH", P_NONCE: "NONCE"}


def _missing(b: _Bodies, need: tuple[int, ...]) -> str | None:
    absent = [_NAMES[t] for t in need if t not in b.first]
    if absent:
        return f"no {', '.join(absent)} payload"
    cut = [_NAMES[t] for t in need if t in b.clipped]
    if cut:
        return f"{', '.join(cut)} payload cut short (truncated capture)"
    return None


@dataclass
class _Exchange:
    """Messages 1 and 2 of one Aggressive Mode exchange, with their copies."""

    first1: list[IkeEvent] = field(default_factory=list)  # message 1 and its retransmissions
    first2: list[IkeEvent] = field(default_factory=list)  # message 2 and its retransmissions
    differing: list[IkeEvent] = field(default_factory=list)  # later messages 2 with other bytes


def _order(ev: IkeEvent) -> tuple[int, int]:
    return ev.capture, ev.frame


def _group(events: list[IkeEvent]) -> tuple[list[_Exchange], dict[bytes, list[IkeEvent]]]:
    """Pair messages 1 and 2 (IKEv1, Aggressive Mode, message ID 0).

    Message 1 is the one with a zero responder cookie.  Message 2 comes from
    the peer message 1 was sent to, with the responder cookie set; it answers
    the latest message 1 of that initiator cookie before it.  When message 1
    was not captured, message 2 is told from message 3 by its content: it
    carries the SA and KE payloads in clear (message 3 carries a HASH,
    usually encrypted).  Returns the exchanges and the Informational
    messages by initiator cookie (for the error notifies that answered a
    message 1).
    """
    by_ispi: dict[bytes, list[_Exchange]] = {}
    by_pair: dict[tuple[bytes, bytes], _Exchange] = {}
    out: list[_Exchange] = []
    informational: dict[bytes, list[IkeEvent]] = {}
    for ev in sorted(events, key=_order):
        m = ev.msg
        if m.version != 1:
            continue
        if m.exchange_type == 5:
            informational.setdefault(m.ispi, []).append(ev)
            continue
        if m.exchange_type != AGGRESSIVE or m.mid != 0:
            continue
        src, dst = split(ev.addrs)
        if m.rspi == ZERO:
            xs = by_ispi.setdefault(m.ispi, [])
            last = xs[-1] if xs else None
            if last is not None and last.first1 and last.first1[0].raw == ev.raw:
                last.first1.append(ev)  # a retransmission
                continue
            x = _Exchange(first1=[ev])
            xs.append(x)
            out.append(x)
            continue
        pair = (m.ispi, m.rspi)
        x = by_pair.get(pair)
        if x is not None:
            if src == split(x.first2[0].addrs)[0]:
                if ev.raw == x.first2[0].raw:
                    x.first2.append(ev)  # a retransmission
                else:
                    x.differing.append(ev)
            # else: message 3 (or a later one) of the initiator
            continue
        # the first message with this cookie pair: message 2 if it comes from the
        # peer the latest message 1 went to (or, without a message 1, by its content)
        cands = [c for c in by_ispi.get(m.ispi, []) if not c.first2 and split(c.first1[0].addrs)[1] == src]
        if cands:
            x = cands[-1]
        elif any(p.name in ("SA", "KE") for p in m.payloads) and not m.encrypted:
            x = _Exchange()
            out.append(x)
        else:
            continue  # message 3 of an exchange whose first two messages were not captured
        x.first2.append(ev)
        by_pair[pair] = x
    return out, informational


def _notify_answer(x: _Exchange, informational: dict[bytes, list[IkeEvent]]) -> str | None:
    """An error notify in clear from the responder after message 1 (e.g.
    NO-PROPOSAL-CHOSEN, INVALID-ID-INFORMATION)."""
    m1 = x.first1[0]
    responder = split(m1.addrs)[1]
    for ev in informational.get(m1.msg.ispi, []):
        if _order(ev) < _order(m1) or split(ev.addrs)[0] != responder or ev.msg.encrypted:
            continue
        for p in ev.msg.payloads:
            t = p.fields.get("type") if p.name == "N" else None
            if isinstance(t, int) and 0 < t < 16384:
                return str(p.fields.get("type_name") or t)
    return None


def _view(x: _Exchange) -> IkeSa:
    """An IKE SA of just these messages, with the roles known, for the ikesa helpers."""
    events = sorted(x.first1[:1] + x.first2[:1], key=_order)
    first = events[0]
    src, dst = split(first.addrs)
    sa = IkeSa(1, first.msg.ispi, x.first2[0].msg.rspi if x.first2 else ZERO, mode="aggressive", events=events)
    if x.first1:
        sa.initiator, sa.responder = (src, first.sport), (dst, first.dport)
    else:  # only message 2: its sender is the responder
        sa.initiator, sa.responder = (dst, first.dport), (src, first.sport)
    sa.first_sender[0] = sa.initiator[0]
    return sa


def _offered_auth(ev: IkeEvent) -> set[str]:
    out: set[str] = set()
    for p in ev.msg.payloads:
        if p.name != "SA":
            continue
        for prop in p.fields.get("proposals", ()):
            for t in prop.transforms:
                for a in t.attributes:
                    if a.type == 3 and isinstance(a.value, int):  # Authentication Method (RFC 2409 app. A)
                        out.add(v1_auth(a.value))
    return out


def psk_hashes(analysis) -> PskHashes:
    """The Aggressive Mode PSK parameters of an :class:`~ipsecpcap.analysis.Analysis`
    (or anything with a ``tracker`` holding ``ike_events`` and ``captures``)."""
    tracker = analysis.tracker
    exchanges, informational = _group(tracker.ike_events)
    result = PskHashes()
    for x in exchanges:
        _extract(x, informational, tracker.captures, result)
    result.params.sort(key=lambda p: (p.captures[1], p.frames[1]))
    return result


def _extract(x: _Exchange, informational, captures: list[str], result: PskHashes) -> None:
    sa = _view(x)
    first = sa.events[0]
    m1 = x.first1[0] if x.first1 else None
    m2 = x.first2[0] if x.first2 else None
    ini, res = addr_text(sa.initiator[0]), addr_text(sa.responder[0])

    def problem(reason: str) -> None:
        result.problems.append(PskProblem(captures[first.capture], first.frame, ini if m1 else None, res,
                                          first.msg.ispi.hex(), (m2.msg.rspi if m2 else ZERO).hex(), reason))

    chosen = chosen_proposal(sa)
    method = chosen.auth_method if m2 is not None and not m2.msg.encrypted else None
    if method is None:
        # no answer to read the choice from: what the initiator offered
        offered = _offered_auth(m1) if m1 is not None else set()
        if m2 is not None and m2.msg.encrypted:
            if not offered or offered & PSK_METHODS:
                problem("message 2 is encrypted (E flag set), so its HASH_R cannot be read")
            return
        if not offered & PSK_METHODS:
            for name in offered or {"unknown"}:
                result.other_auth[name] = result.other_auth.get(name, 0) + 1
            return
        if m2 is None:
            notify = _notify_answer(x, informational)
            if notify:
                problem(f"offered a pre-shared key; the responder answered with {notify}, not with HASH_R")
            else:
                problem("offered a pre-shared key; message 2 (the responder's answer, with HASH_R) "
                        "was not captured")
        else:
            problem("offered a pre-shared key; the responder's SA payload does not show the chosen method")
        return
    if method not in PSK_METHODS:
        result.other_auth[method] = result.other_auth.get(method, 0) + 1
        return
    if m1 is None:
        problem("message 1 (the initiator's, with g^xi, Ni and the SA offer) was not captured")
        return
    if m1.msg.encrypted:
        problem("message 1 is encrypted (E flag set)")
        return
    b1, b2 = _payload_bodies(m1.raw), _payload_bodies(m2.raw)
    why = _missing(b1, (P_SA, P_KE, P_NONCE))
    if why:
        problem(f"message 1 (frame {m1.frame}): {why}")
        return
    why = _missing(b2, (P_KE, P_NONCE, P_ID, P_HASH))
    if why:
        problem(f"message 2 (frame {m2.frame}): {why}")
        return
    if x.differing:
        frames = ", ".join(str(e.frame) for e in x.differing)
        problem(f"message 2 seen again with other contents (frame {frames}); the first (frame {m2.frame}) "
                f"is used")
    ini_id, res_id = identities(sa, lambda ev: ev.msg.payloads)
    result.params.append(PskParams(
        captures=(captures[m1.capture], captures[m2.capture]), frames=(m1.frame, m2.frame), ts=m2.ts,
        initiator=ini, initiator_port=sa.initiator[1], responder=res, responder_port=sa.responder[1],
        ispi=m1.msg.ispi.hex(), rspi=m2.msg.rspi.hex(), initiator_id=ini_id, responder_id=res_id,
        auth_method=method, hash=chosen.hash_name, prf=chosen.prf,
        retransmissions=len(x.first1) + len(x.first2) - 2,
        # RFC 2409 5: HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
        g_xr=b2.first[P_KE], g_xi=b1.first[P_KE], cky_r=m2.msg.rspi, cky_i=m1.msg.ispi,
        sai_b=b1.first[P_SA], idir_b=b2.first[P_ID],
        # RFC 2409 5: SKEYID = prf(pre-shared-key, Ni_b | Nr_b)
        ni_b=b1.first[P_NONCE], nr_b=b2.first[P_NONCE], hash_r=b2.first[P_HASH],
    ))
