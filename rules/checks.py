"""The built-in checks a rule file names with ``check:``.

Each check takes a :class:`~ipsecpcap.rules.engine.Context` (the analysis,
the policy, the rule and its ``params``) and returns hits: dicts of
:class:`~ipsecpcap.records.FindingRow` fields (``detail`` at least; the
engine adds the rule's id, title, severity and remediation unless a hit
overrides them).  Checks read the tables the earlier layers built; they never
parse packets.  Thresholds and algorithm lists are the rule file's
``params``, so an analyst can tune a rule without touching this file.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from ..ikesa import addr_text, group_exchanges, split

CHECKS = {}


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


ICMP_ERRORS = {"icmp": {3, 4, 5, 11, 12}, "icmpv6": {1, 2, 3, 4}}


def _span(*ts):
    ts = [t for t in ts if t is not None]
    return (min(ts), max(ts)) if ts else (None, None)


def _sa_text(spi_i, spi_r) -> str:
    return "/".join(s or "?" for s in (spi_i, spi_r))


def _entry_for_sa(ctx, addrs, spis=()):
    """The policy entry an SA concerns: one of its endpoints, else a host whose
    traffic it carried (flows inside it, known from decryption or AH)."""
    if ctx.policy is None:
        return None
    e = ctx.policy.entry_for(*addrs)
    if e is not None:
        return e
    inner = ctx.shared.get("inner_entries")
    if inner is None:  # SPI -> the first protected entry among the flows it carried, built once
        inner = ctx.shared["inner_entries"] = {}
        for f in ctx.analysis.flows:
            if f.protected_by and f.protected_by not in inner:
                found = ctx.policy.entry_for(f.dst, f.src)
                if found is not None:
                    inner[f.protected_by] = found
    for s in spis:
        if s and s in inner:
            return inner[s]
    return None


# ---------------------------------------------------------------------------- plaintext
@check
def plaintext_to_protected(ctx):
    """Non-IPsec flows to or from a protected host, outside its exemptions,
    one finding per client, server, protocol and service port."""
    groups: dict[tuple, list] = defaultdict(list)
    for f in ctx.analysis.flows:
        if f.protected_by:  # carried inside ESP (decrypted) or AH
            continue
        if f.proto in ICMP_ERRORS and f.sport in ICMP_ERRORS[f.proto]:
            continue  # an ICMP error answers another flow; it is that flow's "rejected"
        entry = ctx.policy.entry_for(f.dst, f.src)
        if entry is None:
            continue
        port = f.dport if f.proto in ("tcp", "udp", "sctp") else None
        if entry.exempts(f.proto, port):
            continue
        server_is_dst = entry.covers(f.dst)
        groups[(entry.name, f.src, f.dst, f.proto, port, server_is_dst)].append(f)
    out = []
    for (name, src, dst, proto, port, server_is_dst), flows in groups.items():
        states = Counter(f.state or "seen" for f in flows)
        pk_fwd = sum(f.packets_fwd for f in flows)
        pk_rev = sum(f.packets_rev for f in flows)
        by_fwd = sum(f.bytes_fwd for f in flows)
        by_rev = sum(f.bytes_rev for f in flows)
        data_back = any(f.state == "midstream" and f.packets_rev for f in flows)
        if states.get("accepted") or data_back:
            outcome, severity = "accepted", ctx.params.get("severity_accepted", "high")
        elif states.get("rejected"):
            outcome, severity = "rejected", ctx.params.get("severity_rejected", "medium")
        elif proto in ("tcp", "udp"):
            outcome, severity = "unanswered", ctx.params.get("severity_unanswered", "low")
        else:
            outcome = "answered" if pk_rev else "unanswered"
            severity = ctx.params.get("severity_accepted" if pk_rev else "severity_unanswered",
                                      "high" if pk_rev else "low")
        how = {
            ("accepted", "tcp"): "the server accepted it (TCP handshake completed)",
            ("accepted", "udp"): "the server answered",
            ("rejected", "tcp"): "the server rejected it (RST or ICMP unreachable)",
            ("rejected", "udp"): "the server rejected it (ICMP unreachable)",
            ("unanswered", "tcp"): "no answer was captured",
            ("unanswered", "udp"): "no answer was captured",
        }.get((outcome, proto), "an answer was captured" if outcome == "answered" else "no answer was captured")
        role = "to" if server_is_dst else "from"
        host = dst if server_is_dst else src
        svc = f" port {port}" if port is not None else ""
        frames = sorted({f.first_frame for f in flows} | {f.last_frame for f in flows})
        first, last = min(f.first_seen for f in flows), max(f.last_seen for f in flows)
        detail = (f"Plaintext {proto.upper()} {role} protected host {name} ({host}): {src} -> {dst}{svc}, "
                  f"outside the policy's exemptions; {how}. {len(flows)} "
                  f"{'connection' if proto == 'tcp' else 'flow'}{'s' if len(flows) != 1 else ''}, "
                  f"{pk_fwd} packets / {by_fwd} bytes {src} -> {dst}, "
                  f"{pk_rev} packets / {by_rev} bytes back.")
        out.append({
            "severity": severity, "detail": detail, "frames": frames, "first_seen": first, "last_seen": last,
            "capture": min(flows, key=lambda f: (f.first_seen, f.first_frame)).capture,
            "src": src, "dst": dst, "proto": proto, "port": port, "policy": name,
            "evidence": {"outcome": outcome, "states": dict(states), "flows": len(flows),
                         "packets_to_server" if server_is_dst else "packets_from_server": pk_fwd,
                         "packets_back": pk_rev, "bytes_forward": by_fwd, "bytes_back": by_rev,
                         "protected_host": host, "source_ports": sorted({f.sport for f in flows})[:20]},
        })
    return out


# ---------------------------------------------------------------------------- AH + ESP
def _ah_inside_esp(analysis) -> dict[str, str]:
    """AH SA (spi) -> ESP SA (spi) whose decrypted packets carried it: the AH SA's first
    packet is an ESP SA's first packet (the same frame), and the AH did not itself carry ESP."""
    esp_first = {(r.capture, r.first_frame): r.spi for r in analysis.sas if r.protocol == "esp"}
    out = {}
    for r in analysis.sas:
        if r.protocol == "ah" and "esp" not in r.next_headers:
            esp = esp_first.get((r.capture, r.first_frame))
            if esp is not None:
                out[r.spi] = esp
    return out


@check
def ah_esp_double_processing(ctx):
    a = ctx.analysis
    out = []
    for r in a.sas:
        if r.protocol == "ah" and r.next_headers.get("esp"):
            n = r.next_headers["esp"]
            out.append({"detail": f"AH SA {r.spi} ({r.src} -> {r.dst}) carried ESP in {n} of its {r.packets} "
                                  f"packets: AH followed by ESP, each packet authenticated twice.",
                        "frames": [r.first_frame, r.last_frame], "first_seen": r.first_seen,
                        "last_seen": r.last_seen, "capture": r.capture, "src": r.src, "dst": r.dst,
                        "proto": "ah", "spi": r.spi, "ike_sa": r.ike_sa,
                        "evidence": {"order": "ah-then-esp", "packets": n}})
    by_spi = {r.spi: r for r in a.sas}
    for ah, esp in _ah_inside_esp(a).items():
        r = by_spi[ah]
        out.append({"detail": f"ESP SA {esp} carried AH SA {ah} ({r.src} -> {r.dst}) inside it (seen after "
                              f"decryption): {r.packets} packets processed by ESP and AH.",
                    "frames": [r.first_frame, r.last_frame], "first_seen": r.first_seen, "last_seen": r.last_seen,
                    "capture": r.capture, "src": r.src, "dst": r.dst, "proto": "esp", "spi": f"{esp},{ah}",
                    "ike_sa": r.ike_sa, "evidence": {"order": "esp-then-ah", "packets": r.packets}})
    return out


# ---------------------------------------------------------------------------- PFS
@check
def child_sa_without_pfs(ctx):
    out = []
    for c in ctx.analysis.child_sas:
        if c.created_by not in ("CREATE_CHILD_SA", "quick_mode") or c.pfs is not False:
            continue
        entry = _entry_for_sa(ctx, (c.initiator, c.responder), (c.spi_i, c.spi_r))
        if entry is not None and entry.pfs == "none":
            continue  # the policy does not ask for PFS here
        how = ("inferred from the size of the answer (no IKE keys)" if c.pfs_inferred
               else "seen in the exchange's payloads")
        what = f"rekey of {c.rekey_of}" if c.rekey_of else "a new child SA"
        out.append({
            "detail": f"Child SA {c.id} ({what}) was made by {c.created_by} between {c.initiator} and "
                      f"{c.responder} without a KE payload of its own: its keys derive from the IKE SA's "
                      f"key material only, without perfect forward secrecy ({how}).",
            "frames": c.created_frames, "first_seen": c.created, "last_seen": c.deleted or c.last_packet or c.created,
            "capture": c.capture, "src": c.initiator, "dst": c.responder, "proto": c.protocol,
            "spi": ",".join(s for s in (c.spi_i, c.spi_r) if s) or None, "ike_sa": c.ike_sa,
            "policy": entry.name if entry else None,
            "evidence": {"created_by": c.created_by, "inferred": c.pfs_inferred, "rekey_of": c.rekey_of},
        })
    return out


@check
def no_master_key_pfs(ctx):
    a = ctx.analysis
    children = defaultdict(list)
    for c in a.child_sas:
        if c.ike_sa and not c.collision:
            children[c.ike_sa].append(c)
    out = []
    for r in a.ike:
        sa_id = f"{r.ispi}/{r.rspi}"
        kids = children.get(sa_id, [])
        count = max(len(kids), r.quick_modes if r.version == 1 else 0)
        if count < 2:
            continue
        entry = _entry_for_sa(ctx, (r.initiator, r.responder),
                              [s for c in kids for s in (c.spi_i, c.spi_r)])
        if entry is None or entry.pfs != "master":
            continue
        frames = sorted({f for c in kids for f in c.created_frames})
        unit = "Quick Modes" if r.version == 1 else "child SAs"
        out.append({
            "detail": f"{count} {unit} under one {'phase-1' if r.version == 1 else 'IKE'} SA {sa_id} "
                      f"({r.initiator} <-> {r.responder}); policy {entry.name} asks for master-key PFS "
                      f"(one child SA per {'phase-1' if r.version == 1 else 'IKE'} SA), so the later ones "
                      f"derive from key material that also keyed the earlier.",
            "frames": frames or [r.first_frame], "first_seen": r.first_seen, "last_seen": r.last_seen,
            "capture": r.capture, "src": r.initiator, "dst": r.responder, "proto": f"ikev{r.version}",
            "ike_sa": sa_id, "policy": entry.name,
            "spi": ",".join(c.id for c in kids) or None,
            "evidence": {"child_sas": [c.id for c in kids], "quick_modes": r.quick_modes},
        })
    return out


# ---------------------------------------------------------------------------- reuse
REUSE_PAYLOADS = ("KE", "Nonce", "NONCE")  # the payloads the reuse checks look at


def _values(ctx, names: tuple[str, ...]):
    """(value bytes) -> list of (exchange, event) for every payload named ``names``."""
    min_length = ctx.params.get("min_length", 8)
    seen: dict[bytes, dict[tuple, tuple]] = defaultdict(dict)
    for name, data, key, x, ev in _reuse_payloads(ctx):
        if name in names and len(data) >= min_length:
            seen[data].setdefault(key, (x, ev))
    return seen


def _reuse_payloads(ctx) -> list[tuple]:
    """(payload name, value, exchange key, exchange, event) of every KE and nonce payload with
    a value, exchange by exchange: one walk over the IKE messages for the checks that share it."""
    got = ctx.shared.get("reuse_payloads")
    if got is not None:
        return got
    view = ctx.analysis.ike_view
    got = ctx.shared["reuse_payloads"] = []
    for sa in view.sas:
        shown = view.shown(sa)
        if not shown:
            continue
        for x in group_exchanges(sa):
            for ev in x.events:
                for p in shown.get(id(ev), ()):
                    if p.name in REUSE_PAYLOADS:
                        data = p.fields.get("data")
                        if isinstance(data, (bytes, bytearray)):
                            # one exchange: its retransmissions, and the retry of an IKE_SA_INIT after a
                            # COOKIE or INVALID_KE_PAYLOAD (same SPI, same message ID, same sender), which
                            # RFC 7296 2.6 requires to repeat its payloads
                            key = (id(sa), ev.msg.mid, ev.msg.exchange_type, split(ev.addrs)[0])
                            got.append((p.name, bytes(data), key, x, ev))
    return got


def _reuse(ctx, names, what):
    out = []
    for value, uses in _values(ctx, names).items():
        if len(uses) < 2:
            continue
        items = sorted(uses.values(), key=lambda u: (u[1].capture, u[1].frame))
        evs = [ev for _, ev in items]
        senders = sorted({addr_text(split(ev.addrs)[0]) for ev in evs})
        sas = [f"{x.sa.ispi.hex()}/{x.sa.rspi.hex()}" for x, _ in items]
        where = "; ".join(f"{x.name} of IKE SA {s} (frame {ev.frame})" for (x, ev), s in zip(items, sas))
        first, last = _span(*(ev.ts for ev in evs))
        out.append({
            "detail": f"The same {what} ({len(value)} bytes) was sent by {', '.join(senders)} in {len(uses)} "
                      f"different exchanges: {where}.",
            "frames": [ev.frame for ev in evs], "first_seen": first, "last_seen": last,
            "capture": ctx.analysis.tracker.captures[evs[0].capture], "src": senders[0],
            "dst": addr_text(split(evs[0].addrs)[1]), "proto": f"ikev{evs[0].msg.version}", "ike_sa": sas[0],
            "evidence": {"exchanges": len(uses), "ike_sas": sorted(set(sas)), "length": len(value),
                         "value_prefix": value[:8].hex()},
        })
    return out


@check
def dh_public_value_reused(ctx):
    return _reuse(ctx, ("KE",), "Diffie-Hellman public value (KE payload)")


@check
def nonce_reused(ctx):
    return _reuse(ctx, ("Nonce", "NONCE"), "nonce")


@check
def key_material_reused(ctx):
    a = ctx.analysis
    out = []
    # the same key on more than one SA (supplied keys that verified)
    if a.crypto is not None:
        by_material = defaultdict(list)  # (enc, enc_key, integ, integ_key) -> [(state key, key)]
        for (proto, spi, addrs), st in a.crypto.states.items():
            k = st.key
            if k is None or not st.decrypted:
                continue
            if not k.enc_key and not k.integ_key:
                continue  # NULL/none: no key material to reuse
            by_material[(k.enc_key, k.integ_key)].append((proto, spi, addrs, k))
        rows = {(r.protocol, r.spi, r.src, r.dst): r for r in a.sas}
        for uses in by_material.values():
            if len({(p, s) for p, s, _, _ in uses}) < 2:
                continue
            sas = []
            for proto, spi, addrs, _ in uses:
                src, dst = split(addrs)
                r = rows.get(("esp" if proto == 50 else "ah", f"0x{spi:08x}", addr_text(src), addr_text(dst)))
                if r is not None:
                    sas.append(r)
            if len(sas) < 2:
                continue
            sas.sort(key=lambda r: (r.first_seen, r.spi))
            fps = sorted({k.fingerprint for *_, k in uses})
            first, last = _span(*(r.first_seen for r in sas), *(r.last_seen for r in sas))
            out.append({
                "detail": f"The same key material (fingerprint {', '.join(fps)}) verified on {len(sas)} SAs: "
                          + ", ".join(f"{r.protocol} {r.spi} {r.src} -> {r.dst}" for r in sas)
                          + ". Traffic of one SA can be decrypted or forged with the key of another.",
                "frames": [f for r in sas for f in (r.first_frame, r.last_frame)], "first_seen": first,
                "last_seen": last, "capture": sas[0].capture, "src": sas[0].src, "dst": sas[0].dst,
                "proto": sas[0].protocol, "spi": ",".join(r.spi for r in sas),
                "evidence": {"kind": "same_key", "key": fps, "sas": [r.spi for r in sas]},
            })
    # an SPI reused for a different SA: one receiver, one SPI, two child SAs or two senders
    by_recv = defaultdict(list)
    for r in a.sas:
        by_recv[(r.protocol, r.spi, r.dst)].append(r)
    child_by_spi = defaultdict(set)
    for c in a.child_sas:
        for s in (c.spi_i, c.spi_r):
            if s:
                child_by_spi[(c.protocol, s)].add(c.id)
    for (proto, spi, dst), rows in by_recv.items():
        kids = child_by_spi.get((proto, spi), ())
        if len(rows) < 2 and len(kids) < 2:
            continue  # one row: one sender (the common case, asked cheaply)
        senders = sorted({r.src for r in rows})
        kids = sorted(kids)
        if len(senders) < 2 and len(kids) < 2:
            continue
        resets = sum(r.seq_resets for r in rows)
        why = (f"{len(senders)} senders ({', '.join(senders)}) used it" if len(senders) > 1
               else f"{len(kids)} child SAs were negotiated with it ({', '.join(kids)})")
        first, last = _span(*(r.first_seen for r in rows), *(r.last_seen for r in rows))
        out.append({
            "detail": f"SPI {spi} towards {dst} was used for more than one SA: {why}."
                      + (f" Its sequence counter restarted {resets} times." if resets else ""),
            "frames": [f for r in rows for f in (r.first_frame, r.last_frame)], "first_seen": first,
            "last_seen": last, "capture": rows[0].capture, "src": senders[0], "dst": dst, "proto": proto,
            "spi": spi, "evidence": {"kind": "spi_reused", "senders": senders, "child_sas": kids,
                                     "seq_resets": resets}})
    return out


# ---------------------------------------------------------------------------- keying
@check
def manual_keying(ctx):
    a = ctx.analysis
    # the endpoints of every IKE message (the exchanges table's src and dst), from
    # the messages themselves: the table need not be built for this
    ike_pairs = {frozenset(map(addr_text, split(addrs))) for addrs in {ev.addrs for ev in a.tracker.ike_events}}
    groups = defaultdict(list)
    for r in a.sas:
        if r.ike_sa or r.created_by:
            continue
        if frozenset((r.src, r.dst)) in ike_pairs:
            continue  # IKE between these peers: more likely an SA made before the capture began
        groups[frozenset((r.src, r.dst))].append(r)
    out = []
    for pair, rows in groups.items():
        rows.sort(key=lambda r: (r.first_seen, r.spi))
        first, last = _span(*(r.first_seen for r in rows), *(r.last_seen for r in rows))
        peers = sorted(pair)
        listing = ", ".join(f"{r.protocol} {r.spi} {r.src} -> {r.dst}" for r in rows[:10])
        more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
        out.append({
            "detail": f"{len(rows)} SA direction{'s' if len(rows) != 1 else ''} between {' and '.join(peers)} "
                      f"carried {sum(r.packets for r in rows)} packets with no IKE exchange between these peers "
                      f"anywhere in the capture: {listing}{more}. Manually keyed SAs have no key exchange, "
                      f"no rekeying and no PFS.",
            "frames": [f for r in rows for f in (r.first_frame, r.last_frame)], "first_seen": first,
            "last_seen": last, "capture": rows[0].capture, "src": rows[0].src, "dst": rows[0].dst,
            "proto": rows[0].protocol, "spi": ",".join(r.spi for r in rows[:50]),
            "evidence": {"sas": len(rows), "packets": sum(r.packets for r in rows)},
        })
    return out


# ---------------------------------------------------------------------------- NULL / signed only
def null_esp_sas(analysis) -> dict[tuple, str]:
    """ESP SA directions (spi, src, dst) -> how NULL encryption is known:
    ``negotiated`` / ``key`` (the SA's algorithm is NULL) or ``heuristic``
    (its first packet reads as cleartext: ``Analysis.cleartext_esp``)."""
    cleartext = analysis.cleartext_esp
    out = {}
    for r in analysis.sas:
        if r.protocol != "esp":
            continue
        k = (r.spi, r.src, r.dst)
        if r.enc is not None:
            if r.enc.startswith("null") and r.enc != "null-aes-gmac":
                out[k] = "key" if r.key else "negotiated"
        elif k in cleartext:
            out[k] = "heuristic"
    return out


@check
def esp_null_encryption(ctx):
    a = ctx.analysis
    nulls = null_esp_sas(a)
    out = []
    for r in a.sas:
        how = nulls.get((r.spi, r.src, r.dst))
        if how is None:
            continue
        why = {"key": "the key that verified it has NULL encryption",
               "negotiated": "IKE negotiated ENCR_NULL for it",
               "heuristic": "its packets parse as cleartext (ESP trailer and inner header consistent, "
                            "as Wireshark's NULL heuristic checks)"}[how]
        out.append({
            "detail": f"ESP SA {r.spi} ({r.src} -> {r.dst}, {r.packets} packets) uses NULL encryption: {why}. "
                      f"Its traffic is authenticated but readable by anyone on the path.",
            "frames": [r.first_frame, r.last_frame], "first_seen": r.first_seen, "last_seen": r.last_seen,
            "capture": r.capture, "src": r.src, "dst": r.dst, "proto": "esp", "spi": r.spi, "ike_sa": r.ike_sa,
            "evidence": {"how": how, "integ": r.integ, "packets": r.packets},
        })
    return out


@check
def signed_not_encrypted(ctx):
    a = ctx.analysis
    nulls = null_esp_sas(a)
    inside_esp = _ah_inside_esp(a)
    out = []
    for r in a.sas:
        if r.protocol == "ah":
            if r.next_headers.get("esp") or r.spi in inside_esp:
                continue  # AH with ESP: encrypted as well
            what = "AH only (authenticated, not encrypted)"
        elif (r.spi, r.src, r.dst) in nulls:
            what = "ESP with NULL encryption"
        else:
            continue
        entry = _entry_for_sa(ctx, (r.dst, r.src), (r.spi,))
        if entry is None or entry.require != "encrypt":
            continue
        out.append({
            "detail": f"{r.protocol.upper()} SA {r.spi} ({r.src} -> {r.dst}, {r.packets} packets) protects "
                      f"traffic of {entry.name} with {what}, but its policy requires encryption.",
            "frames": [r.first_frame, r.last_frame], "first_seen": r.first_seen, "last_seen": r.last_seen,
            "capture": r.capture, "src": r.src, "dst": r.dst, "proto": r.protocol, "spi": r.spi,
            "ike_sa": r.ike_sa, "policy": entry.name,
            "evidence": {"protection": "ah" if r.protocol == "ah" else "esp-null", "packets": r.packets},
        })
    return out


# ---------------------------------------------------------------------------- algorithms
def _weak_items(params, enc, integ, prf, dh) -> list[tuple[str, str]]:
    """The weak choices, each as (text for the finding, the key ``high``/``child_exclude`` name it by):
    ("encryption 3des-cbc", "3des-cbc"), ("DH group 2", "group 2")."""
    items = []
    for name, value, table in (("encryption", enc, "enc"), ("integrity", integ, "integ"), ("PRF", prf, "prf")):
        if value is None:
            continue
        for weak in params.get(table, []):
            if value == weak or value.startswith(weak + "-"):
                items.append((f"{name} {value}", value))
                break
    if dh is not None and int(dh) in params.get("dh_groups", []):
        items.append((f"DH group {dh}", f"group {dh}"))
    return items


def _weak_severity(items, high) -> dict:
    return {"severity": "high"} if any(key in high for _, key in items) else {}


@check
def weak_crypto(ctx):
    a, p = ctx.analysis, ctx.params
    high = set(p.get("high", []))
    out = []
    for r in a.ike:
        items = _weak_items(p, r.enc, r.integ, r.prf, r.dh_group)
        if r.version == 1 and r.integ in p.get("ikev1_hash", []):
            items.append((f"hash {r.integ}", r.integ))
        if not items:
            continue
        sa_id = f"{r.ispi}/{r.rspi}"
        texts = [t for t, _ in items]
        out.append({
            "detail": f"IKEv{r.version} SA {sa_id} ({r.initiator} <-> {r.responder}) was negotiated with "
                      f"{', '.join(texts)}.",
            "frames": [r.first_frame, r.established_frame or r.last_frame], "first_seen": r.first_seen,
            "last_seen": r.last_seen, "capture": r.capture, "src": r.initiator, "dst": r.responder,
            "proto": f"ikev{r.version}", "ike_sa": sa_id, "evidence": {"weak": texts, "kind": "ike"},
            **_weak_severity(items, high),
        })
    pairs = defaultdict(list)
    for r in a.sas:
        pairs[r.child_sa or (r.protocol, r.spi, r.src, r.dst)].append(r)
    dh_of = {c.id: c.dh_group for c in a.child_sas}
    skip = set(p.get("child_exclude", []))  # e.g. ESP NULL: the rule esp_null_encryption's
    for key, rows in pairs.items():
        r = rows[0]
        dh = dh_of.get(key) if isinstance(key, str) else None
        items = [(t, k) for t, k in _weak_items(p, r.enc, r.integ, None, dh) if k not in skip]
        if not items:
            continue
        texts = [t for t, _ in items]
        spis = ",".join(x.spi for x in rows)
        first, last = _span(*(x.first_seen for x in rows), *(x.last_seen for x in rows))
        out.append({
            "detail": f"{r.protocol.upper()} SA {spis} ({r.src} <-> {r.dst}) uses {', '.join(texts)}"
                      f" ({'from the key that verified it' if r.key else 'as negotiated'}).",
            "frames": [f for x in rows for f in (x.first_frame, x.last_frame)], "first_seen": first,
            "last_seen": last, "capture": r.capture, "src": r.src, "dst": r.dst, "proto": r.protocol,
            "spi": spis, "ike_sa": r.ike_sa, "evidence": {"weak": texts, "kind": "child"},
            **_weak_severity(items, high),
        })
    return out


@check
def aggressive_mode_psk(ctx):
    out = []
    psk = set(ctx.params.get("psk_methods", ["psk"]))
    for r in ctx.analysis.ike:
        if r.version != 1 or r.mode != "aggressive" or r.auth_method not in psk:
            continue
        sa_id = f"{r.ispi}/{r.rspi}"
        frames = [x.frame for x in ctx.analysis.exchanges
                  if x.ispi == r.ispi and x.mid == 0 and x.exchange == "aggressive"][:3]
        out.append({
            "detail": f"IKEv1 Aggressive Mode with pre-shared key authentication ({r.auth_method}) between "
                      f"{r.initiator} and {r.responder} (IKE SA {sa_id}, identities {r.initiator_id or '?'} / "
                      f"{r.responder_id or '?'}): the responder's HASH_R and everything it covers travel in "
                      f"clear, so the PSK can be attacked offline (`ipsecpcap psk-hashes` extracts them).",
            "frames": frames or [r.first_frame], "first_seen": r.first_seen, "last_seen": r.last_seen,
            "capture": r.capture, "src": r.initiator, "dst": r.responder, "proto": "ikev1", "ike_sa": sa_id,
            "evidence": {"auth_method": r.auth_method, "initiator_id": r.initiator_id,
                         "responder_id": r.responder_id},
        })
    return out


# ---------------------------------------------------------------------------- negotiation
V1_ANSWERED = (2, 4, 32)  # IKEv1 Main Mode, Aggressive Mode, Quick Mode: each message is answered
@check
def ike_negotiation_failed(ctx):
    """Error notifies in clear or decrypted, and requests never answered.  A generator: a long
    capture has tens of thousands of unanswered liveness checks, each hit is made into its
    finding before the next is made."""
    a = ctx.analysis
    view = a.ike_view
    p = ctx.params
    recovered_ok = set(p.get("recoverable", []))
    established = {f"{r.ispi}/{r.rspi}": r.established for r in a.ike}
    end = a.tracker.last_ts
    captures = a.tracker.captures
    grace = p.get("grace_seconds", 5.0)
    for sa in view.sas:
        sa_id = f"{sa.ispi.hex()}/{sa.rspi.hex()}"
        proto = f"ikev{sa.version}"  # (one string for every hit of the IKE SA)
        errors = []  # (event, notify name)
        shown = view.shown(sa)
        for ev in view.shown_events(sa):
            for pl in shown[id(ev)]:
                t = pl.fields.get("type") if pl.name == "N" else None
                if isinstance(t, int) and 0 < t < 16384:
                    errors.append((ev, pl.fields.get("type_name") or f"notify-{t}"))
        ok = established.get(sa_id) is not None
        if errors:
            names = sorted({n for _, n in errors})
            senders = sorted({addr_text(split(ev.addrs)[0]) for ev, _ in errors})
            others = sorted({addr_text(split(ev.addrs)[1]) for ev, _ in errors})
            recovered = ok and set(names) <= recovered_ok
            evs = [ev for ev, _ in errors]
            first, last = _span(*(ev.ts for ev in evs))
            exch = sorted({ev.msg.exchange for ev in evs})
            hit = {
                "detail": f"IKEv{sa.version} SA {sa_id}: {', '.join(senders)} could not comply and answered "
                          f"{', '.join(names)} ({', '.join(exch)}) to {', '.join(others)}"
                          + ("; the negotiation then succeeded with a retry." if recovered
                             else "; the IKE SA was established, but what this exchange asked for was refused."
                             if ok else "; no IKE SA was established."),
                "frames": [ev.frame for ev in evs], "first_seen": first, "last_seen": last,
                "capture": captures[evs[0].capture], "src": senders[0], "dst": others[0],
                "proto": proto, "ike_sa": sa_id,
                "evidence": {"notifies": names, "refused_by": senders, "established": ok, "recovered": recovered},
            }
            severity = p.get("severity_recovered", "info") if recovered else None
            if severity is not None:
                hit["severity"] = severity
            yield hit
        for x in group_exchanges(sa):
            if x.responses or not x.requests:
                continue
            if sa.version == 1 and x.exchange_type not in V1_ANSWERED:
                continue  # IKEv1 Informational (notify, delete) is one-way (RFC 2408 4.8)
            requests = x.requests
            last_req = requests[0].ts if len(requests) == 1 else max(e.ts for e in requests)
            retrans = len(requests) - 1
            if retrans < 1 and (end is None or end - last_req < grace):
                continue  # a single request at the very end of the capture: its answer may just be missing
            req = requests[0]
            src, dst = split(req.addrs)
            src, dst = addr_text(src), addr_text(dst)
            hit = {
                "detail": f"IKEv{sa.version} {x.name} request from {src} to {dst} (IKE SA {sa_id}, message ID "
                          f"{x.mid}) was never answered"
                          + (f", after {retrans} retransmission{'s' if retrans != 1 else ''}" if retrans else "")
                          + f": {dst} did not respond.",
                "frames": [e.frame for e in requests], "first_seen": x.ts, "last_seen": last_req,
                "capture": captures[req.capture], "src": src, "dst": dst,
                "proto": proto, "ike_sa": sa_id,
                "evidence": {"exchange": x.name, "mid": x.mid, "retransmissions": retrans, "unanswered": True},
            }
            if sa.version == 2 and x.exchange_type == 37:  # an INFORMATIONAL (e.g. a liveness check)
                severity = p.get("severity_informational", "low")
                if severity is not None:
                    hit["severity"] = severity
            yield hit


# ---------------------------------------------------------------------------- anti-replay
def _seq_hits(ctx, kind, field_name):
    for r in ctx.analysis.sas:
        n = getattr(r, field_name)
        if n < ctx.params.get("min_count", 1):
            continue
        events = [e for e in r.seq_events if e.get("kind") == kind]
        frames = []
        for e in events:
            frames.append(e["frame"])
            if e.get("original_frame") is not None:
                frames.append(e["original_frame"])
        yield r, n, events, frames


@check
def esp_replay(ctx):
    out = []
    for r, n, events, frames in _seq_hits(ctx, "replay", "replays"):
        eg = events[0] if events else None
        example = (f" e.g. sequence number {eg['seq']} at frame {eg['frame']} repeats frame "
                   f"{eg.get('original_frame')}" if eg else "")
        out.append({
            "detail": f"{r.protocol.upper()} SA {r.spi} ({r.src} -> {r.dst}): {n} packet{'s' if n != 1 else ''} "
                      f"repeated a sequence number already seen{example}. A receiver with anti-replay "
                      f"drops them; without it they are accepted twice.",
            "frames": frames or [r.first_frame], "frame_count": n, "first_seen": r.first_seen,
            "last_seen": r.last_seen, "capture": r.capture, "src": r.src, "dst": r.dst, "proto": r.protocol,
            "spi": r.spi, "ike_sa": r.ike_sa, "evidence": {"replays": n, "replay_rate": r.replay_rate},
        })
    return out


@check
def esp_sequence_gap(ctx):
    out = []
    for r, n, events, frames in _seq_hits(ctx, "gap", "gaps"):
        out.append({
            "detail": f"{r.protocol.upper()} SA {r.spi} ({r.src} -> {r.dst}): {n} gap{'s' if n != 1 else ''} in "
                      f"the sequence numbers, {r.missing} number{'s' if r.missing != 1 else ''} never seen "
                      f"(loss rate {r.loss_rate:.2%}): packets lost, dropped, or not captured.",
            "frames": frames or [r.first_frame], "frame_count": n, "first_seen": r.first_seen,
            "last_seen": r.last_seen, "capture": r.capture, "src": r.src, "dst": r.dst, "proto": r.protocol,
            "spi": r.spi, "ike_sa": r.ike_sa, "evidence": {"gaps": n, "missing": r.missing,
                                                         "loss_rate": r.loss_rate},
        })
    return out

