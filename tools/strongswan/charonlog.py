"""Extract IKE / ESP keys and SA lifecycles from strongSwan charon debug logs.

Standard library only.  Used by ``make_captures.py`` and reusable by tests:

    from charonlog import parse_charon_log, merge_hosts
    facts = parse_charon_log(open("charon-moon.log").read().splitlines(), host="moon")

Written against strongSwan 5.9.8 (Debian 12), charon ``filelog`` with

    time_format = %Y-%m-%dT%H:%M:%S, time_add_ms = yes, ike_name = yes,
    ike = 4, chd = 4, mgr = 2, knl = 2, cfg = 2, net = 2, enc = 1 (default)

Log-line formats relied on (``TS`` = ``2026-11-27T00:36:59.982``, ``TT`` = thread
number, ``<CTX>`` = ``<conn|N>`` or ``<N>`` where N is the host-local IKE_SA
unique id; the context is absent for lines not tied to an IKE_SA):

Line frame::

    TS TT[GRP] <CTX> MESSAGE

Hex dumps (level 4, printf ``%B``): a header line followed by continuation
lines of up to 16 bytes, offset in decimal, hex in upper case, then ASCII::

    TS TT[IKE] <t|1> Sk_ei secret => 16 bytes @ 0x5618b87482d0
    TS TT[IKE] <t|1>    0: 7D B2 33 42 3B B4 29 0A B1 9B 06 DD E4 BD 35 B5  }.3B;.).......5.

IKE_SA key dumps (group IKE), IKEv2 (keymat_v2.c)::

    shared Diffie Hellman secret => N bytes     g^ir
    SKEYSEED => N bytes
    Sk_d secret / Sk_ai secret / Sk_ar secret / Sk_ei secret / Sk_er secret /
    Sk_pi secret / Sk_pr secret => N bytes      (Sk_e* incl. 4-byte salt for AES-GCM)

IKE_SA key dumps, IKEv1 (keymat_v1.c)::

    shared Diffie Hellman secret, SKEYID, SKEYID_d, SKEYID_a, SKEYID_e => N bytes
    encryption key Ka => N bytes                (the cipher key, what Wireshark wants)

  A key block is bound to an IKE_SA by the next line of the *same thread*
  (group MGR, level 2) that checks an SA in with a non-zero responder SPI::

    TS TT[MGR] <t|1> checkin IKEv2 SA t[2] with SPIs 6ec8a9fe5fb3815e_i 75d6c5111789d604_r
    TS TT[MGR] <t|1> checkin IKEv1 SA t[1] with SPIs ce0b733c8674655c_i 1f21e6082fd284f5_r

  (for IKE rekeying the keys of the new SA are logged in the *old* SA's context,
  the checkin line names the new one: ``t[2]``).  The proposal is the last
  ``selected proposal: IKE:...`` line of the same thread.

CHILD_SA key dumps (group CHD, keymat_v1.c / keymat_v2.c)::

    DH secret => N bytes                        only with PFS (a DH group in the proposal)
    encryption initiator key => N bytes         key for traffic initiator -> responder
    encryption responder key => N bytes         key for traffic responder -> initiator
    integrity initiator key => N bytes          (absent for AEAD)
    integrity responder key => N bytes

  "initiator" is the initiator of the exchange that created the CHILD_SA
  (IKE_AUTH / CREATE_CHILD_SA / Quick Mode), for IKEv1 as well (keymat_v1
  derives encr_i with the responder's SPI, i.e. for the SA towards the
  responder).  AEAD keys include the 4-byte salt (AES-GCM) / nonce salt
  (ChaCha20-Poly1305).  These dumps come after ``CHILD_SA net{N} state change:
  CREATED => INSTALLING`` and before the SA installation lines in the same IKE_SA
  context::

    TS TT[CHD] <t|1>   using AES_CBC for encryption
    TS TT[CHD] <t|1>   using HMAC_SHA2_256_128 for integrity
    TS TT[CHD] <t|1> adding inbound ESP SA
    TS TT[CHD] <t|1>   SPI 0x987c8723, src 192.0.2.2 dst 192.0.2.1
    TS TT[CHD] <t|1> adding outbound ESP SA          (or: registering outbound ESP SA)
    TS TT[CHD] <t|1>   SPI 0xa0c01af9, src 192.0.2.1 dst 192.0.2.2
    TS TT[IKE] <t|1> CHILD_SA net{1} established with SPIs 987c8723_i a0c01af9_o and TS 10.1.0.1/32 === 10.2.0.1/32

  Our role in the creating exchange is taken from the last ``parsed X request|response``
  line in the same IKE_SA context (a response means we initiated).  The ESP
  proposal is the last ``selected proposal: ESP:...`` line in the context.

Life cycle lines::

    initiating IKE_SA t[1] to 192.0.2.2                       (also "initiating Main Mode IKE_SA", "Aggressive Mode")
    192.0.2.1 is initiating an IKE_SA                          (responder; also "a Main Mode", "a Aggressive Mode")
    IKE_SA t[1] state change: CONNECTING => ESTABLISHED
    IKE_SA t[1] established between 192.0.2.1[moon@x]...192.0.2.2[sun@x]
    IKE_SA t[2] rekeyed between ...                            (context = the SA it replaces)
    CHILD_SA net{1} state change: INSTALLED => REKEYING        (=> REKEYED, DELETING, DELETED, DESTROYING)
    establishing CHILD_SA net{2} reqid 1                       (we initiate a (re)key)
    detected rekeying of CHILD_SA net{1}                       (IKEv1 responder)
    closing CHILD_SA net{1} with SPIs 987c8723_i (252 bytes) a0c01af9_o (0 bytes) and TS ...
    detected CHILD_REKEY collision with CHILD_REKEY            (also IKE_REKEY)
    CHILD_SA rekey collision won, deleting old child net{1}
    CHILD_SA rekey collision lost, deleting redundant child net{3}
    IKE_SA rekey collision won/lost ...
    parsed|generating CREATE_CHILD_SA request|response 2 [ N(REKEY_SA) SA No KE TSi TSr ]

Rekey linkage of CHILD_SAs (which SA a new one replaces) is inferred per IKE_SA
context: a new child (``establishing CHILD_SA X{N}`` or ``X{N} ... CREATED =>
INSTALLING``) and a transition of an older child to ``REKEYING``/``REKEYED``
between two ``parsed``/``generating`` lines are linked; a ``=> REKEYING`` with
no new child yet (IKEv1) is kept pending for the next new child of the context.
"""

from __future__ import annotations

import re
from typing import Iterable

LINE_RE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?) (?P<thread>\d+)\[(?P<grp>[A-Z]+)\] "
    r"(?:<(?:(?P<ikename>[^|>]*)\|)?(?P<ikeuid>\d+)> )?(?P<msg>.*)$"
)
DUMP_HDR_RE = re.compile(r"^(?P<label>\S.*?) => (?P<n>\d+) bytes @ (?:0x[0-9a-f]+|\(nil\))$")
DUMP_ROW_RE = re.compile(r"^\s*(?P<off>\d+): (?P<hex>.{1,48})")
HEXBYTE_RE = re.compile(r"\b[0-9A-F]{2}\b")

CHECKIN_RE = re.compile(
    r"^checkin IKEv(?P<ver>[12]) SA (?P<name>.+?)\[(?P<uid>\d+)\] with SPIs "
    r"(?P<spi_i>[0-9a-f]{16})_i (?P<spi_r>[0-9a-f]{16})_r$"
)
IKE_STATE_RE = re.compile(r"^IKE_SA (?P<name>.+?)\[(?P<uid>\d+)\] state change: (?P<old>\w+) => (?P<new>\w+)$")
IKE_EST_RE = re.compile(
    r"^IKE_SA (?P<name>.+?)\[(?P<uid>\d+)\] (?P<what>established|rekeyed) between "
    r"(?P<laddr>[^\[]+)\[(?P<lid>[^\]]*)\]\.\.\.(?P<raddr>[^\[]+)\[(?P<rid>[^\]]*)\]$"
)
IKE_DELETING_RE = re.compile(
    r"^deleting IKE_SA (?P<name>.+?)\[(?P<uid>\d+)\] between "
    r"(?P<laddr>[^\[]+)\[(?P<lid>[^\]]*)\]\.\.\.(?P<raddr>[^\[]+)\[(?P<rid>[^\]]*)\]$"
)
IKE_REDUNDANT_RE = re.compile(r"^IKE_SA rekey collision (?P<res>won|lost), .*redundant IKE_SA (?P<name>.+?)\[(?P<uid>\d+)\]$")
IKE_INIT_I_RE = re.compile(r"^initiating (?:(?P<mode>Main|Aggressive) Mode )?IKE_SA (?P<name>.+?)\[(?P<uid>\d+)\] to (?P<addr>\S+)$")
IKE_INIT_R_RE = re.compile(r"^(?P<addr>\S+) is initiating an? (?:(?P<mode>Main|Aggressive) Mode )?IKE_SA$")
PROPOSAL_RE = re.compile(r"^selected proposal: (?P<proto>IKE|ESP|AH):(?P<prop>\S+)$")
PARSED_RE = re.compile(r"^(?P<dir>parsed|generating) (?P<xchg>\S+) (?P<kind>request|response) (?P<mid>\d+) \[(?P<payloads>.*)\]$")
CHILD_STATE_RE = re.compile(r"^CHILD_SA (?P<name>.+?)\{(?P<uid>\d+)\} state change: (?P<old>\w+) => (?P<new>\w+)$")
CHILD_ESTABLISHING_RE = re.compile(r"^establishing CHILD_SA (?P<name>.+?)\{(?P<uid>\d+)\}(?: reqid (?P<reqid>\d+))?$")
CHILD_EST_RE = re.compile(
    r"^(?:(?P<dir>inbound|outbound) )?CHILD_SA (?P<name>.+?)\{(?P<uid>\d+)\} established with SPIs "
    r"(?P<spi_in>[0-9a-f]{8})_i (?P<spi_out>[0-9a-f]{8})_o and TS (?P<lts>.+?) === (?P<rts>.+)$"
)
CHILD_CLOSE_RE = re.compile(
    r"^closing CHILD_SA (?P<name>.+?)\{(?P<uid>\d+)\} with SPIs (?P<spi_in>[0-9a-f]{8})_i \((?P<bin>\d+) bytes\) "
    r"(?P<spi_out>[0-9a-f]{8})_o \((?P<bout>\d+) bytes\)"
)
SA_ADD_RE = re.compile(r"^(?P<verb>adding|registering) (?P<dir>inbound|outbound) (?P<proto>ESP|AH) SA$")
SA_SPI_RE = re.compile(r"^\s+SPI 0x(?P<spi>[0-9a-f]{8}), src (?P<src>\S+) dst (?P<dst>\S+)$")
V1_REKEY_RE = re.compile(r"^detected rekeying of CHILD_SA (?P<name>.+?)\{(?P<uid>\d+)\}$")
USING_RE = re.compile(r"^\s+using (?P<alg>\S+) for (?P<what>encryption|integrity)$")
COLLISION_RE = re.compile(r"collision")
DELETE_RE = re.compile(r"^(?P<dir>sending|received) DELETE for (?P<what>ESP CHILD_SA with SPI (?P<spi>[0-9a-f]{8})|IKE_SA (?P<name>.+?)\[(?P<uid>\d+)\])$")

IKE_KEY_LABELS = {
    "shared Diffie Hellman secret": "dh_secret",
    "SKEYSEED": "skeyseed",
    "Sk_d secret": "sk_d",
    "Sk_ai secret": "sk_ai",
    "Sk_ar secret": "sk_ar",
    "Sk_ei secret": "sk_ei",
    "Sk_er secret": "sk_er",
    "Sk_pi secret": "sk_pi",
    "Sk_pr secret": "sk_pr",
    "SKEYID": "skeyid",
    "SKEYID_d": "skeyid_d",
    "SKEYID_a": "skeyid_a",
    "SKEYID_e": "skeyid_e",
    "encryption key Ka": "enc_key_ka",
}
CHILD_KEY_LABELS = {
    "DH secret": "dh_secret",
    "encryption initiator key": "enc_i",
    "encryption responder key": "enc_r",
    "integrity initiator key": "integ_i",
    "integrity responder key": "integ_r",
}
# dumps that start a new IKE key block
IKE_BLOCK_START = {"dh_secret", "skeyseed", "skeyid"}


def split_proposal(prop: str) -> dict:
    """Split a strongSwan proposal string such as
    ``AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048`` or
    ``AES_GCM_16_128/NO_EXT_SEQ`` into its transforms."""
    out = {"encryption": None, "key_bits": None, "integrity": None, "prf": None, "dh_group": None, "esn": None}
    for tok in prop.split("/"):
        if tok in ("NO_EXT_SEQ", "EXT_SEQ"):
            out["esn"] = tok == "EXT_SEQ"
        elif tok.startswith("PRF_"):
            out["prf"] = tok
        elif tok.startswith(("MODP_", "ECP_", "CURVE_", "ECP", "X25519", "X448", "BRAINPOOL")):
            out["dh_group"] = tok
        elif tok.startswith(("HMAC_", "AES_XCBC", "AES_CMAC", "AES_128_GMAC", "AES_192_GMAC", "AES_256_GMAC")):
            out["integrity"] = tok
        elif out["encryption"] is None and tok.startswith("CHACHA20_POLY1305"):
            out["encryption"], out["key_bits"] = "CHACHA20_POLY1305", 256
        elif out["encryption"] is None:
            m = re.match(r"^(?P<alg>.+?)_(?P<bits>\d{3})$", tok)
            if m:
                out["encryption"], out["key_bits"] = m.group("alg"), int(m.group("bits"))
            else:
                out["encryption"] = tok
        else:
            out.setdefault("other", []).append(tok)
    return out


class _Dump:
    __slots__ = ("label", "n", "data", "ctx", "thread", "ts", "grp")

    def __init__(self, label, n, ctx, thread, ts, grp):
        self.label, self.n, self.ctx, self.thread, self.ts, self.grp = label, n, ctx, thread, ts, grp
        self.data = bytearray()


def parse_charon_log(lines: Iterable[str], host: str = "") -> dict:
    """Parse one charon log (one host).  Returns a dict with ``ike_sas`` (by
    host-local unique id), ``children`` (by host-local unique id) and
    ``ike_key_blocks``, ``collisions``, ``exchanges``; see module docstring for
    the line formats used."""
    ike: dict[int, dict] = {}
    child: dict[int, dict] = {}
    key_blocks: list[dict] = []
    collisions: list[dict] = []
    exchanges: list[dict] = []

    dumps: dict[str, _Dump] = {}  # thread -> open dump
    thread_keyblock: dict[str, dict] = {}  # thread -> unbound IKE key block
    thread_ike_prop: dict[str, str] = {}
    thread_resp_mode: dict[str, str] = {}
    thread_last_kind: dict[str, str] = {}
    thread_created: dict[str, int] = {}
    ctx_rekey_init: dict[int, int] = {}
    ctx_esp_prop: dict[int, str] = {}
    ctx_last_kind: dict[int, str] = {}
    ctx_cur_child: dict[int, int] = {}
    ctx_seg_new: dict[int, list] = {}
    ctx_pending_old: dict[int, list] = {}
    ctx_pending_add: dict[int, tuple] = {}
    ctx_using: dict[int, dict] = {}

    def get_ike(uid: int) -> dict:
        if uid not in ike:
            ike[uid] = {"uid": uid, "name": None, "version": None, "spi_i": None, "spi_r": None,
                        "initiated_by_me": None, "mode": None, "local": None, "remote": None,
                        "local_id": None, "remote_id": None, "proposal": None, "keys": {},
                        "states": {}, "cur_state": None, "rekeyed_from": None, "collision": None, "first_seen": None}
        return ike[uid]

    def get_child(uid: int) -> dict:
        if uid not in child:
            child[uid] = {"uid": uid, "name": None, "ike_uid": None, "reqid": None, "role": None,
                          "proposal": None, "using": {}, "keys": {}, "inbound": None, "outbound": None,
                          "ts_local": None, "ts_remote": None, "states": {}, "rekey_of": None,
                          "closed": None, "collision": [], "first_seen": None}
        return child[uid]

    def link(new_uid: int, old_uid: int):
        c = get_child(new_uid)
        if c["rekey_of"] is None and new_uid != old_uid:
            c["rekey_of"] = old_uid

    def finish_dump(d: _Dump):
        hexval = bytes(d.data[: d.n]).hex()
        if d.grp == "IKE" and d.label in IKE_KEY_LABELS:
            key = IKE_KEY_LABELS[d.label]
            blk = thread_keyblock.get(d.thread)
            if blk is None or key in blk["keys"] or (
                    key in IKE_BLOCK_START and any(k not in IKE_BLOCK_START for k in blk["keys"])):
                blk = {"thread": d.thread, "ctx": d.ctx, "ts": d.ts, "keys": {}, "uid": None,
                       "spi_i": None, "spi_r": None, "proposal": thread_ike_prop.get(d.thread), "bound_by": None}
                ctxsa = ike.get(d.ctx) if d.ctx is not None else None
                if ctxsa is not None and ctxsa["cur_state"] in (None, "CREATED", "CONNECTING"):
                    blk["uid"], blk["bound_by"] = d.ctx, "context SA not yet established"
                elif thread_last_kind.get(d.thread) == "response" and ctx_rekey_init.get(d.ctx):
                    blk["uid"], blk["bound_by"] = ctx_rekey_init[d.ctx], "IKE_SA we initiated to rekey the context SA"
                elif thread_created.get(d.thread) is not None:
                    blk["uid"], blk["bound_by"] = thread_created[d.thread], "IKE_SA created on this thread"
                key_blocks.append(blk)
                thread_keyblock[d.thread] = blk
            blk["keys"][key] = hexval
        elif d.grp == "CHD" and d.label in CHILD_KEY_LABELS and d.ctx is not None:
            uid = ctx_cur_child.get(d.ctx)
            if uid is not None:
                get_child(uid)["keys"][CHILD_KEY_LABELS[d.label]] = hexval

    for raw in lines:
        line = raw.rstrip("\n")
        m = LINE_RE.match(line)
        if not m:
            continue
        ts, thread, grp, msg = m.group("ts"), m.group("thread"), m.group("grp"), m.group("msg")
        ctx = int(m.group("ikeuid")) if m.group("ikeuid") else None

        d = dumps.get(thread)
        if d is not None:
            r = DUMP_ROW_RE.match(msg)
            if r and int(r.group("off")) == len(d.data):
                d.data.extend(bytes.fromhex("".join(HEXBYTE_RE.findall(r.group("hex")))))
                if len(d.data) >= d.n:
                    finish_dump(d)
                    del dumps[thread]
                continue
            finish_dump(d)  # truncated dump: keep what we have
            del dumps[thread]
        h = DUMP_HDR_RE.match(msg)
        if h:
            nd = _Dump(h.group("label"), int(h.group("n")), ctx, thread, ts, grp)
            if nd.n == 0:
                finish_dump(nd)
            else:
                dumps[thread] = nd
            continue

        if ctx is not None:
            sa = get_ike(ctx)
            if sa["first_seen"] is None:
                sa["first_seen"] = ts
            if m.group("ikename"):
                sa["name"] = m.group("ikename")

        if (c := CHECKIN_RE.match(msg)):
            uid = int(c.group("uid"))
            sa = get_ike(uid)
            sa["version"] = int(c.group("ver"))
            if c.group("name") != "(unnamed)":
                sa["name"] = c.group("name")
            if int(c.group("spi_r"), 16):
                sa["spi_i"], sa["spi_r"] = c.group("spi_i"), c.group("spi_r")
                blk = thread_keyblock.pop(thread, None)
                if blk is not None and blk["uid"] is None:
                    blk["uid"], blk["bound_by"] = uid, "next checkin on the same thread"
            elif sa["spi_i"] is None:
                sa["spi_i"] = c.group("spi_i")
            continue
        if grp == "MGR":
            continue
        if (c := IKE_STATE_RE.match(msg)):
            uid = int(c.group("uid"))
            sa = get_ike(uid)
            if c.group("name") != "(unnamed)":
                sa["name"] = c.group("name")
            sa["states"].setdefault(c.group("new"), ts)
            sa["cur_state"] = c.group("new")
            if c.group("old") == "CREATED":
                thread_created[thread] = uid
            if c.group("old") == "CREATED" and thread in thread_resp_mode:
                mode, peer = thread_resp_mode.pop(thread)
                sa["initiated_by_me"] = False
                sa["peer_addr"] = peer
                if ctx is not None and ctx != uid:
                    sa["rekeyed_from"] = ctx  # peer rekeys the context SA
                if mode != "IKEv2":
                    sa["mode"] = mode
            continue
        if (c := IKE_EST_RE.match(msg)):
            sa = get_ike(int(c.group("uid")))
            sa.update(local=c.group("laddr"), remote=c.group("raddr"), local_id=c.group("lid"), remote_id=c.group("rid"))
            if c.group("what") == "rekeyed" and ctx is not None and ctx != sa["uid"]:
                sa["rekeyed_from"] = ctx
            continue
        if (c := IKE_DELETING_RE.match(msg)):
            sa = get_ike(int(c.group("uid")))
            if sa["local"] is None:
                sa.update(local=c.group("laddr"), remote=c.group("raddr"))
            continue
        if (c := IKE_REDUNDANT_RE.match(msg)):
            get_ike(int(c.group("uid")))["collision"] = f"redundant (peer's SA won: {msg})" if c.group("res") == "won" \
                else f"redundant (our SA lost: {msg})"
            collisions.append({"ts": ts, "ctx": ctx, "msg": msg})
            continue
        if (c := IKE_INIT_I_RE.match(msg)):
            sa = get_ike(int(c.group("uid")))
            sa["initiated_by_me"] = True
            sa["mode"] = c.group("mode") or sa["mode"]
            sa["peer_addr"] = c.group("addr")
            if ctx is not None and ctx != sa["uid"]:
                ctx_rekey_init[ctx] = sa["uid"]
                sa["rekeyed_from"] = ctx
            continue
        if (c := IKE_INIT_R_RE.match(msg)):
            # the new SA is the one whose CREATED => CONNECTING follows on this thread
            thread_resp_mode[thread] = (c.group("mode") or "IKEv2", c.group("addr"))
            continue
        if (c := PROPOSAL_RE.match(msg)):
            if c.group("proto") == "IKE":
                thread_ike_prop[thread] = c.group("prop")
                if ctx is not None:
                    get_ike(ctx)["proposal"] = get_ike(ctx)["proposal"] or c.group("prop")
            elif ctx is not None:
                ctx_esp_prop[ctx] = c.group("proto") + ":" + c.group("prop")
            continue
        if (c := PARSED_RE.match(msg)):
            exchanges.append({"ts": ts, "ctx": ctx, "dir": c.group("dir"), "exchange": c.group("xchg"),
                              "kind": c.group("kind"), "mid": int(c.group("mid")), "payloads": c.group("payloads").strip()})
            if c.group("dir") == "parsed":
                thread_last_kind[thread] = c.group("kind")
                thread_created.pop(thread, None)
            if ctx is not None:
                if c.group("dir") == "parsed":
                    ctx_last_kind[ctx] = c.group("kind")
                ctx_seg_new[ctx] = []
            continue
        if (c := CHILD_ESTABLISHING_RE.match(msg)):
            uid = int(c.group("uid"))
            ch = get_child(uid)
            ch["name"] = c.group("name")
            ch["first_seen"] = ch["first_seen"] or ts
            if c.group("reqid"):
                ch["reqid"] = int(c.group("reqid"))
            if ctx is not None:
                ch["ike_uid"] = ch["ike_uid"] or ctx
                pend = ctx_pending_old.get(ctx) or []
                if c.group("reqid") and pend:
                    link(uid, pend.pop(0))
                else:
                    ctx_seg_new.setdefault(ctx, []).append(uid)
            continue
        if (c := CHILD_STATE_RE.match(msg)):
            uid = int(c.group("uid"))
            ch = get_child(uid)
            ch["name"] = c.group("name")
            ch["first_seen"] = ch["first_seen"] or ts
            ch["states"].setdefault(c.group("new"), ts)
            old, new = c.group("old"), c.group("new")
            if ctx is not None:
                if old == "CREATED" and new == "INSTALLING":
                    ch["ike_uid"] = ch["ike_uid"] or ctx
                    ctx_cur_child[ctx] = uid
                    if ctx_last_kind.get(ctx):
                        ch["role"] = "initiator" if ctx_last_kind[ctx] == "response" else "responder"
                    if ctx_esp_prop.get(ctx):
                        ch["proposal"] = ctx_esp_prop[ctx]
                    ctx_using[ctx] = ch["using"]
                    pend = [p for p in ctx_pending_old.get(ctx, []) if p != uid]
                    if ch["rekey_of"] is None and pend:
                        link(uid, pend[0])
                        ctx_pending_old[ctx] = [p for p in pend if p != pend[0]]
                    elif ch["rekey_of"] is None:
                        ctx_seg_new.setdefault(ctx, []).append(uid)
                elif new in ("REKEYING", "REKEYED") and old in ("INSTALLED", "REKEYING"):
                    seg = [n for n in ctx_seg_new.get(ctx, []) if n != uid and get_child(n)["rekey_of"] is None]
                    if seg:
                        link(seg[0], uid)
                        ctx_seg_new[ctx] = [n for n in ctx_seg_new[ctx] if n != seg[0]]
                    elif new == "REKEYING":
                        ctx_pending_old.setdefault(ctx, []).append(uid)
                elif new in ("DELETING", "DELETED", "DESTROYING"):
                    if uid in ctx_pending_old.get(ctx, []):
                        ctx_pending_old[ctx].remove(uid)
            continue
        if (c := V1_REKEY_RE.match(msg)):
            continue  # covered by the REKEYING state change
        if (c := USING_RE.match(msg)):
            if ctx is not None and ctx in ctx_using:
                ctx_using[ctx][c.group("what")] = c.group("alg")
            continue
        if (c := SA_ADD_RE.match(msg)):
            if ctx is not None:
                ctx_pending_add[ctx] = (c.group("dir"), c.group("proto"))
            continue
        if (c := SA_SPI_RE.match(msg)):
            if ctx is not None and ctx in ctx_pending_add and ctx in ctx_cur_child:
                direction, proto = ctx_pending_add.pop(ctx)
                ch = get_child(ctx_cur_child[ctx])
                if ch[direction] is None:
                    ch[direction] = {"spi": c.group("spi"), "src": c.group("src"), "dst": c.group("dst"), "proto": proto}
            continue
        if (c := CHILD_EST_RE.match(msg)):
            uid = int(c.group("uid"))
            ch = get_child(uid)
            ch["spi_in_est"], ch["spi_out_est"] = c.group("spi_in"), c.group("spi_out")
            ch["ts_local"], ch["ts_remote"] = c.group("lts"), c.group("rts")
            ch["states"].setdefault("ESTABLISHED_LOG", ts)
            if ctx is not None:
                ch["ike_uid"] = ch["ike_uid"] or ctx
            continue
        if (c := CHILD_CLOSE_RE.match(msg)):
            ch = get_child(int(c.group("uid")))
            ch["closed"] = {"ts": ts, "bytes_in": int(c.group("bin")), "bytes_out": int(c.group("bout"))}
            continue
        if COLLISION_RE.search(msg) and grp == "IKE":
            collisions.append({"ts": ts, "ctx": ctx, "msg": msg})
            cm = re.search(r"(won|lost), deleting (old|redundant) child (?P<name>.+?)\{(?P<uid>\d+)\}", msg)
            if cm:
                get_child(int(cm.group("uid")))["collision"].append(msg)
            continue

    for d in list(dumps.values()):
        finish_dump(d)

    # responder-created IKE_SAs: initiated_by_me False when we never logged "initiating"
    for sa in ike.values():
        if sa["initiated_by_me"] is None:
            sa["initiated_by_me"] = False
    # attach the key blocks (bound when logged, see above, or by the next checkin
    # line of the same thread) to their IKE_SAs; SPIs come from the checkin lines
    for blk in key_blocks:
        if blk["uid"] is None:
            continue
        sa = get_ike(blk["uid"])
        blk["spi_i"], blk["spi_r"] = sa["spi_i"], sa["spi_r"]
        if sa["keys"] and sa["keys"] != blk["keys"]:
            sa.setdefault("other_key_blocks", []).append(blk["keys"])
            continue
        sa["keys"] = dict(blk["keys"])
        sa["keys_ts"] = blk["ts"]
        sa["keys_bound_by"] = blk["bound_by"]
        if blk.get("proposal"):
            sa["proposal"] = blk["proposal"]
    return {"host": host, "ike_sas": ike, "children": child, "ike_key_blocks": key_blocks,
            "collisions": collisions, "exchanges": exchanges}


# --------------------------------------------------------------------------
# Wireshark names (Wireshark 4.0 packet-esp.c / packet-isakmp.c UAT strings)

ESP_ENC_WS = {
    "AES_CBC": "AES-CBC [RFC3602]",
    "AES_CTR": "AES-CTR [RFC3686]",
    "3DES": "TripleDES-CBC [RFC2451]",
    "3DES_CBC": "TripleDES-CBC [RFC2451]",  # strongSwan's own name (encryption_algorithm_names)
    "DES": "DES-CBC [RFC2405]",
    "DES_CBC": "DES-CBC [RFC2405]",
    "NULL": "NULL",
    "AES_GCM_8": "AES-GCM with 8 octet ICV [RFC4106]",
    "AES_GCM_12": "AES-GCM with 12 octet ICV [RFC4106]",
    "AES_GCM_16": "AES-GCM with 16 octet ICV [RFC4106]",
    # "CHACHA20_POLY1305": not in Wireshark 4.0 (added in 4.2 as "ChaCha20 with Poly1305 [RFC7634]")
}
ESP_INTEG_WS = {
    None: "NULL",
    "HMAC_SHA1_96": "HMAC-SHA-1-96 [RFC2404]",
    "HMAC_MD5_96": "HMAC-MD5-96 [RFC2403]",
    "HMAC_SHA2_256_128": "HMAC-SHA-256-128 [RFC4868]",
    "HMAC_SHA2_384_192": "HMAC-SHA-384-192 [RFC4868]",
    "HMAC_SHA2_512_256": "HMAC-SHA-512-256 [RFC4868]",
}
IKEV2_INTEG_WS = {
    None: "NONE [RFC4306]",
    "HMAC_MD5_96": "HMAC_MD5_96 [RFC2403]",
    "HMAC_SHA1_96": "HMAC_SHA1_96 [RFC2404]",
    "HMAC_SHA2_256_128": "HMAC_SHA2_256_128 [RFC4868]",
    "HMAC_SHA2_384_192": "HMAC_SHA2_384_192 [RFC4868]",
    "HMAC_SHA2_512_256": "HMAC_SHA2_512_256 [RFC4868]",
}


def ikev2_enc_ws(alg: str | None, bits: int | None) -> str | None:
    if alg == "AES_CBC" and bits:
        return f"AES-CBC-{bits} [RFC3602]"
    if alg == "AES_CTR" and bits:
        return f"AES-CTR-{bits} [RFC5930]"
    m = re.match(r"^AES_(GCM|CCM)_(8|12|16)$", alg or "")
    if m and bits:
        return f"AES-{m.group(1)}-{bits} with {m.group(2)} octet ICV [RFC5282]"
    if alg in ("3DES", "3DES_CBC"):
        return "3DES [RFC2451]"
    if alg == "NULL":
        return "NULL [RFC2410]"
    return None


def is_aead(alg: str | None) -> bool:
    return bool(alg) and (alg.startswith(("AES_GCM", "AES_CCM", "CHACHA20_POLY1305")))


# --------------------------------------------------------------------------
# merge of both peers' views into one description keyed by SPIs

def _spi_key(spi_i, spi_r):
    return f"{spi_i}_{spi_r}"


def merge_hosts(facts: dict[str, dict]) -> dict:
    """Combine ``parse_charon_log`` results of both peers ({host: facts}) into
    ``{"ike_sas": [...], "child_sas": [...], "checks": [...]}`` keyed by SPIs."""
    checks: list[str] = []
    ike_by_spi: dict[str, dict] = {}
    uid2spi: dict[tuple, str] = {}
    for host, f in facts.items():
        for uid, sa in sorted(f["ike_sas"].items()):
            if not sa["spi_i"] or not sa["spi_r"]:
                continue
            k = _spi_key(sa["spi_i"], sa["spi_r"])
            uid2spi[(host, uid)] = k
            e = ike_by_spi.setdefault(k, {"spi_i": sa["spi_i"], "spi_r": sa["spi_r"], "version": sa["version"],
                                          "name": sa["name"], "initiator": None, "responder": None,
                                          "initiator_id": None, "responder_id": None, "mode": None,
                                          "proposal": None, "keys": {}, "rekey_of": None, "hosts": {}})
            if sa["initiated_by_me"] and sa["local"]:
                e["initiator"], e["responder"] = sa["local"], sa["remote"]
                e["initiator_id"], e["responder_id"] = sa["local_id"], sa["remote_id"]
            elif sa["local"] and e["initiator"] is None:
                e["initiator"], e["responder"] = sa["remote"], sa["local"]
                e["initiator_id"], e["responder_id"] = sa["remote_id"], sa["local_id"]
            elif sa.get("peer_addr"):
                # never established (no "established between" line): the peer's address from
                # "initiating IKE_SA x[n] to ADDR" / "ADDR is initiating an IKE_SA"
                e["responder" if sa["initiated_by_me"] else "initiator"] = \
                    e["responder" if sa["initiated_by_me"] else "initiator"] or sa["peer_addr"]
            if sa["mode"]:
                e["mode"] = sa["mode"]
            if sa.get("collision"):
                e.setdefault("collision", {})[host] = sa["collision"]
            if sa["proposal"] and not e["proposal"]:
                e["proposal"] = sa["proposal"]
            if sa["keys"]:
                if e["keys"] and e["keys"] != sa["keys"]:
                    # DH secret etc. must agree; record disagreement
                    diff = sorted(k2 for k2 in set(e["keys"]) | set(sa["keys"]) if e["keys"].get(k2) != sa["keys"].get(k2))
                    checks.append(f"IKE_SA {k}: keys differ between hosts in {diff}")
                    for k2, v in sa["keys"].items():
                        e["keys"].setdefault(k2, v)
                else:
                    e["keys"] = dict(sa["keys"])
            e["hosts"][host] = {"uid": sa["uid"], "initiated": sa["initiated_by_me"], "states": sa["states"],
                                "has_keys": bool(sa["keys"])}
    # rekey links
    for host, f in facts.items():
        for uid, sa in f["ike_sas"].items():
            if sa["rekeyed_from"] is not None and (host, uid) in uid2spi and (host, sa["rekeyed_from"]) in uid2spi:
                ike_by_spi[uid2spi[(host, uid)]]["rekey_of"] = uid2spi[(host, sa["rekeyed_from"])]
    for e in ike_by_spi.values():
        prop = split_proposal(e["proposal"].split(":", 1)[-1]) if e["proposal"] else {}
        e["transforms"] = prop
        if not e["keys"]:
            checks.append(f"IKE_SA {e['spi_i']}_{e['spi_r']}: no keys logged")
        kb = {}
        for k2, v in e["keys"].items():
            kb[k2 + "_bytes"] = len(v) // 2
        e["key_lengths"] = kb

    # children
    child_by_key: dict[str, dict] = {}
    cuid2key: dict[tuple, str] = {}
    for host, f in facts.items():
        for uid, ch in sorted(f["children"].items()):
            if not ch["inbound"] or not ch["outbound"] or not ch["role"]:
                if ch["name"] and ("INSTALLED" in ch["states"]):
                    checks.append(f"{host}: CHILD_SA {ch['name']}{{{uid}}} incomplete in log")
                continue
            if ch["role"] == "initiator":
                i2r, r2i = ch["outbound"], ch["inbound"]
                ts_i, ts_r = ch["ts_local"], ch["ts_remote"]
            else:
                i2r, r2i = ch["inbound"], ch["outbound"]
                ts_i, ts_r = ch["ts_remote"], ch["ts_local"]
            k = f"{i2r['spi']}_{r2i['spi']}"
            cuid2key[(host, uid)] = k
            prop = split_proposal(ch["proposal"].split(":", 1)[1]) if ch["proposal"] else {}
            enc_alg = ch["using"].get("encryption") or prop.get("encryption")
            integ_alg = ch["using"].get("integrity") or prop.get("integrity")
            keys = ch["keys"]
            # ENCR_NULL has a 0-byte key: charon dumps no "encryption ... key" for it
            null_key = "" if enc_alg == "NULL" else None
            e = child_by_key.get(k)
            if e is None:
                e = child_by_key[k] = {
                    "name": ch["name"], "protocol": i2r.get("proto", "ESP"),
                    "ike_sa": uid2spi.get((host, ch["ike_uid"])),
                    "initiator": i2r["src"], "responder": i2r["dst"],
                    "traffic_selectors": {"initiator": ts_i, "responder": ts_r},
                    "proposal": ch["proposal"],
                    "encryption": {"algorithm": enc_alg, "key_bits": prop.get("key_bits"),
                                   "key_bytes_incl_salt": len(keys.get("enc_i", "")) // 2, "aead": is_aead(enc_alg)},
                    "integrity": {"algorithm": integ_alg, "key_bytes": len(keys.get("integ_i", "")) // 2} if integ_alg else None,
                    "dh_group": prop.get("dh_group"),
                    "pfs": "dh_secret" in keys,
                    "esn": prop.get("esn"),
                    "sas": [
                        {"direction": "initiator->responder", "src": i2r["src"], "dst": i2r["dst"], "spi": "0x" + i2r["spi"],
                         "enc_key": keys.get("enc_i", null_key), "integ_key": keys.get("integ_i")},
                        {"direction": "responder->initiator", "src": r2i["src"], "dst": r2i["dst"], "spi": "0x" + r2i["spi"],
                         "enc_key": keys.get("enc_r", null_key), "integ_key": keys.get("integ_r")},
                    ],
                    "rekey_of": None, "hosts": {},
                }
                if "dh_secret" in keys:
                    e["dh_secret"] = keys["dh_secret"]
            else:
                for sa, ki, kk in ((e["sas"][0], "enc_i", "integ_i"), (e["sas"][1], "enc_r", "integ_r")):
                    if sa["enc_key"] != keys.get(ki, null_key) or sa["integ_key"] != keys.get(kk):
                        checks.append(f"CHILD_SA {k}: keys differ between hosts")
            e["hosts"][host] = {"uid": uid, "role": ch["role"], "reqid": ch["reqid"], "states": ch["states"],
                                "closed": ch["closed"], "collision": ch["collision"],
                                "ike_sa": uid2spi.get((host, ch["ike_uid"]))}
    for e in child_by_key.values():
        if any("redundant child" in msg for h in e["hosts"].values() for msg in h["collision"]):
            e["redundant_after_collision"] = True
    for host, f in facts.items():
        for uid, ch in f["children"].items():
            if ch["rekey_of"] is not None and (host, uid) in cuid2key:
                e = child_by_key[cuid2key[(host, uid)]]
                prev = cuid2key.get((host, ch["rekey_of"]))
                if prev is None:
                    continue
                if e["rekey_of"] is None:
                    e["rekey_of"] = prev
                elif e["rekey_of"] != prev:
                    checks.append(f"CHILD_SA {cuid2key[(host, uid)]}: hosts disagree on rekeyed SA ({e['rekey_of']} vs {prev})")
    # order by first state timestamp
    def first_ts(e):
        return min((min(h["states"].values()) for h in e["hosts"].values() if h["states"]), default="")
    ike_list = sorted(ike_by_spi.values(), key=first_ts)
    child_list = sorted(child_by_key.values(), key=first_ts)
    for e in child_list:
        e["id"] = f"0x{e['sas'][0]['spi'][2:]}/0x{e['sas'][1]['spi'][2:]}"
    for e in ike_list:
        e["id"] = f"{e['spi_i']}/{e['spi_r']}"
    return {"ike_sas": ike_list, "child_sas": child_list, "checks": checks}


def wireshark_tables(merged: dict) -> dict[str, list[str]]:
    """Build Wireshark 4.0 UAT lines: esp_sa, ikev2_decryption_table,
    ikev1_decryption_table.  Unsupported algorithms become '#' comment lines."""
    esp, v2, v1 = [], [], []
    for c in merged["child_sas"]:
        alg = c["encryption"]["algorithm"]
        enc = ESP_ENC_WS.get(alg)
        integ = ESP_INTEG_WS.get((c["integrity"] or {}).get("algorithm") if c["integrity"] else None)
        for sa in c["sas"]:
            if enc is None or integ is None:
                esp.append(f"# {sa['src']} -> {sa['dst']} SPI {sa['spi']} {alg}: not supported by Wireshark 4.0; "
                           f"enc key 0x{sa['enc_key']}")
                continue
            ikey = f"0x{sa['integ_key']}" if sa["integ_key"] else ""
            ekey = f"0x{sa['enc_key']}" if sa["enc_key"] else ""  # NULL encryption: no key
            esp.append(f'"IPv4","{sa["src"]}","{sa["dst"]}","{sa["spi"]}","{enc}","{ekey}","{integ}","{ikey}"')
    for e in merged["ike_sas"]:
        k = e["keys"]
        if e["version"] == 1:
            if k.get("enc_key_ka"):
                v1.append(f"{e['spi_i']},{k['enc_key_ka']}")
            continue
        t = e.get("transforms") or {}
        enc = ikev2_enc_ws(t.get("encryption"), t.get("key_bits"))
        integ = IKEV2_INTEG_WS.get(t.get("integrity")) if t.get("integrity") or is_aead(t.get("encryption")) else None
        if not k.get("sk_ei"):
            continue
        if enc is None or integ is None:
            v2.append(f"# {e['spi_i']},{e['spi_r']} {t.get('encryption')}: not supported by Wireshark 4.0; "
                      f"SK_ei {k.get('sk_ei')} SK_er {k.get('sk_er')}")
            continue
        v2.append(f"{e['spi_i']},{e['spi_r']},{k['sk_ei']},{k['sk_er']},\"{enc}\","
                  f"{k.get('sk_ai', '') if t.get('integrity') else ''},{k.get('sk_ar', '') if t.get('integrity') else ''},\"{integ}\"")
    return {"esp_sa": esp, "ikev2_decryption_table": v2, "ikev1_decryption_table": v1}
