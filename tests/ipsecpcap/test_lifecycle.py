"""SA lifecycle against charon's own log.

The reference is ``fixtures/strongswan/<scenario>/expected.json``, extracted
from the two charon debug logs by ``tools/strongswan/charonlog.py`` (SPIs,
which CHILD_SA / IKE_SA rekeyed which, PFS group, per-host state times,
collision lines).  Every scenario is analysed twice: with its key directory
(what the decrypted IKE says) and without keys (what timing and sizes let
us infer).
"""
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ipsecpcap.analysis import analyze
from ipsecpcap.lifecycle import SizeModel

ROOT = Path(__file__).resolve().parents[2]
SS = ROOT / "fixtures" / "strongswan"
SCENARIOS = sorted(p.name for p in SS.iterdir() if (p / "capture.pcap").exists())
# charon's group names (expected.json) -> IANA numbers
GROUPS = {"MODP_1024": 2, "MODP_1536": 5, "MODP_2048": 14, "MODP_3072": 15, "MODP_4096": 16,
          "ECP_256": 19, "ECP_384": 20, "ECP_521": 21, "CURVE_25519": 31}
TOLERANCE = 0.05  # s between a logged state change and the frame that caused it


def _ts(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def _state(hosts, state):
    """Earliest time any host logged this state, or None."""
    times = [_ts(h["states"][state]) for h in hosts.values() if h["states"].get(state)]
    return min(times) if times else None


def _near(ours, logged):
    """Within TOLERANCE of the logged time, or both absent (an IKE SA that never got established)."""
    return ours is None and logged is None or None not in (ours, logged) and abs(ours - logged) < TOLERANCE


def _spis(pair):
    """'dbffa7bd_64464af6' (expected.json) -> {'0xdbffa7bd', '0x64464af6'}."""
    return frozenset(f"0x{s}" for s in pair.split("_"))


def _child_spis(row):
    return frozenset(s for s in (row.spi_i, row.spi_r) if s)


def _rekey_spis(row_id):
    return frozenset(s for s in row_id.split("/") if s != "?") if row_id else None


def _redundant(ec):
    return bool(ec.get("redundant_after_collision")) or any(
        "redundant" in line for h in ec["hosts"].values() for line in h["collision"])


class Run:
    def __init__(self, name, keyed):
        self.name = name
        self.dir = SS / name
        self.keyed = keyed
        self.expected = json.loads((self.dir / "expected.json").read_text())
        self.a = analyze([self.dir / "capture.pcap"], keys=[self.dir] if keyed else None)
        self.children = {_child_spis(c): c for c in self.a.child_sas}
        self.ike = {f"{r.ispi}/{r.rspi}": r for r in self.a.ike}
        self.ike_deleting = {ei["id"].replace("/", "_"): _state(ei["hosts"], "DELETING")
                             for ei in self.expected["ike_sas"]}


_RUNS = {}


def run(name, keyed) -> Run:
    if (name, keyed) not in _RUNS:
        _RUNS[(name, keyed)] = Run(name, keyed)
    return _RUNS[(name, keyed)]


@pytest.fixture(params=SCENARIOS)
def keyed(request):
    return run(request.param, True)


@pytest.fixture(params=SCENARIOS)
def keyless(request):
    return run(request.param, False)


# ---------------------------------------------------------------- with keys
def test_keyed_child_sas_are_the_logged_ones(keyed):
    logged = {frozenset(s["spi"] for s in ec["sas"]) for ec in keyed.expected["child_sas"]}
    assert set(keyed.children) == logged


def test_keyed_lineage_pfs_ike_sa_and_collisions(keyed):
    for ec in keyed.expected["child_sas"]:
        spis = frozenset(s["spi"] for s in ec["sas"])
        c = keyed.children[spis]
        where = (keyed.name, ec["id"])
        assert c.ike_sa == ec["ike_sa"].replace("_", "/"), where
        assert _rekey_spis(c.rekey_of) == (_spis(ec["rekey_of"]) if ec["rekey_of"] else None), where
        assert c.rekey_inferred is False, where
        assert c.collision == _redundant(ec), where
        # the direction the log calls initiator->responder
        i_to_r = next(s for s in ec["sas"] if s["direction"] == "initiator->responder")
        assert (c.spi_i, c.initiator) == (i_to_r["spi"], ec["initiator"]), where
        if c.created_by == "IKE_AUTH":
            # keyed from the IKE SA's own key exchange: charon says "no PFS", we say null
            assert ec["pfs"] is False and c.pfs is None and c.dh_group is None, where
        else:
            assert c.pfs is ec["pfs"], where
            assert c.dh_group == (GROUPS[ec["dh_group"]] if ec["dh_group"] else None), where
        assert c.pfs_inferred is False, where


def test_keyed_created_and_deleted_when_the_log_says(keyed):
    for ec in keyed.expected["child_sas"]:
        c = keyed.children[frozenset(s["spi"] for s in ec["sas"])]
        where = (keyed.name, ec["id"])
        assert abs(c.created - _state(ec["hosts"], "INSTALLED")) < TOLERANCE, where
        deleting = _state(ec["hosts"], "DELETING")
        if deleting is None:
            # charon logs no CHILD_SA state change when the IKE_SA takes it
            # down: the IKE_SA it ended under (it moves along IKE_SA rekeys)
            ike = ec["ike_sa"]
            while nxt := [e["id"].replace("/", "_") for e in keyed.expected["ike_sas"] if e["rekey_of"] == ike]:
                ike = nxt[0]
            deleting = keyed.ike_deleting[ike]
        assert c.deleted is not None and abs(c.deleted - deleting) < TOLERANCE, where
        assert c.delete_inferred is False, where


def test_keyed_ike_sas_rekeys_roles_and_deletions(keyed):
    exp = keyed.expected["ike_sas"]
    extra = set(keyed.ike) - {ei["id"] for ei in exp}
    if keyed.expected.get("expect") == "failed":
        # a failed attempt charon never checked in with both SPIs (IKE_SA_INIT / Main Mode 1 refused
        # or unanswered): never established, no child SA
        assert all(keyed.ike[i].established is None and keyed.ike[i].child_sas == 0 for i in extra), extra
        extra = set()
    assert not extra and set(keyed.ike) >= {ei["id"] for ei in exp}
    by_id = {ei["id"]: ei for ei in exp}
    for ei in exp:
        r = keyed.ike[ei["id"]]
        where = (keyed.name, ei["id"])
        assert r.initiator == ei["initiator"], where
        assert r.rekey_of == (ei["rekey_of"].replace("_", "/") if ei["rekey_of"] else None), where
        assert r.rekey_inferred is False, where
        if ei["rekey_of"]:
            old = by_id[ei["rekey_of"].replace("_", "/")]
            assert r.role_swapped is (ei["initiator"] != old["initiator"]), where
            assert r.established_by == "CREATE_CHILD_SA", where
        else:
            assert r.role_swapped is None, where
        assert r.collision is bool(ei.get("collision")), where
        assert _near(r.established, _state(ei["hosts"], "ESTABLISHED")), where
        assert _near(r.deleted, _state(ei["hosts"], "DELETING")), where
        assert r.delete_inferred is False, where
        made_here = sum(1 for ec in keyed.expected["child_sas"] if ec["ike_sa"] == ei["id"].replace("/", "_"))
        assert r.child_sas == made_here, where


def test_keyed_sa_rows_carry_the_lifecycle(keyed):
    """Each SA direction row names its IKE SA, its pair and its predecessor."""
    spi_child = {s["spi"]: ec for ec in keyed.expected["child_sas"] for s in ec["sas"]}
    for r in keyed.a.sas:
        ec = spi_child[r.spi]
        other = next(s["spi"] for s in ec["sas"] if s["spi"] != r.spi)
        assert r.peer_spi == other, r.spi
        assert r.ike_sa == ec["ike_sa"].replace("_", "/"), r.spi
        assert r.created_by in ("IKE_AUTH", "CREATE_CHILD_SA", "quick_mode"), r.spi
        if ec["rekey_of"]:
            me = next(s for s in ec["sas"] if s["spi"] == r.spi)
            old = next(o for o in keyed.expected["child_sas"]
                       if frozenset(s["spi"] for s in o["sas"]) == _spis(ec["rekey_of"]))
            same_dir = next(s["spi"] for s in old["sas"] if (s["src"], s["dst"]) == (me["src"], me["dst"]))
            assert r.rekey_of == same_dir, r.spi
        else:
            assert r.rekey_of is None, r.spi


def test_ikev1_quick_mode_lifetimes_proposed_and_observed():
    """swanctl-*.conf: life_time = 22s for the children of ikev1-main-quick;
    charon deletes each replaced SA when its life ends."""
    r = run("ikev1-main-quick", True)
    assert "life_time = 22s" in (r.dir / "swanctl-moon.conf").read_text()
    rows = sorted(r.a.child_sas, key=lambda c: c.created)
    assert [c.lifetime for c in rows] == [22, 22, 22, 22]
    for c in rows[:2]:  # expired, not cut short by the end of the recording
        assert abs(c.observed_lifetime - 22) < 0.1, c.id
        assert c.overlap == 0.0, c.id  # traffic moved to the new SA at once
    (ike,) = r.a.ike
    assert ike.quick_modes == 4 and ike.child_sas == 4
    assert ike.established_by == "main_mode" and ike.established_frames[:6] == [3, 4, 5, 6, 7, 8]


# ---------------------------------------------------------------- without keys
def test_keyless_finds_every_child_sa_that_carried_traffic(keyless):
    idle = set(keyless.expected["counts"]["child_sa_spis_without_packets"])
    logged = {frozenset(s["spi"] for s in ec["sas"]) for ec in keyless.expected["child_sas"]}
    seen = {k for k in keyless.children if k}
    assert seen == {s for s in logged if not s & idle}


def test_keyless_lineage_and_ike_sa(keyless):
    for ec in keyless.expected["child_sas"]:
        spis = frozenset(s["spi"] for s in ec["sas"])
        if spis & set(keyless.expected["counts"]["child_sa_spis_without_packets"]):
            continue
        c = keyless.children[spis]
        where = (keyless.name, ec["id"])
        assert c.ike_sa == ec["ike_sa"].replace("_", "/"), where
        assert _rekey_spis(c.rekey_of) == (_spis(ec["rekey_of"]) if ec["rekey_of"] else None), where
        assert c.rekey_inferred is bool(ec["rekey_of"]), where
        assert c.collision is False, where


def test_keyless_pfs_from_sizes(keyless):
    for ec in keyless.expected["child_sas"]:
        spis = frozenset(s["spi"] for s in ec["sas"])
        c = keyless.children.get(spis)
        if c is None:
            continue
        where = (keyless.name, ec["id"])
        if c.created_by == "IKE_AUTH":
            assert c.pfs is None and not c.pfs_inferred, where
            continue
        assert c.pfs is ec["pfs"] and c.pfs_inferred is True, where
        assert c.dh_group == (GROUPS[ec["dh_group"]] if ec["dh_group"] else None), where


def test_keyless_ike_sa_rekeys_and_deletions(keyless):
    for ei in keyless.expected["ike_sas"]:
        r = keyless.ike[ei["id"]]
        where = (keyless.name, ei["id"])
        assert r.rekey_of == (ei["rekey_of"].replace("_", "/") if ei["rekey_of"] else None), where
        assert r.rekey_inferred is bool(ei["rekey_of"]), where
        assert r.initiator == ei["initiator"], where  # the I flag tells who initiated the rekey
        assert _near(r.established, _state(ei["hosts"], "ESTABLISHED")), where
        assert r.delete_inferred is (r.deleted is not None), where  # nothing to delete if never established
        assert _near(r.deleted, _state(ei["hosts"], "DELETING")), where


def test_keyless_child_deletions(keyless):
    for ec in keyless.expected["child_sas"]:
        c = keyless.children.get(frozenset(s["spi"] for s in ec["sas"]))
        deleting = _state(ec["hosts"], "DELETING")
        if c is None or deleting is None:
            continue
        assert c.delete_inferred is True, ec["id"]
        assert abs(c.deleted - deleting) < TOLERANCE, (keyless.name, ec["id"])


def test_keyless_rekey_collision_is_shown():
    """RFC 7296 2.8.1: both peers rekeyed 0x0b0f358d/0x9e65e9be at once; the
    redundant SA never carried a packet, so without keys it appears as an
    answered CREATE_CHILD_SA that made an SA with unknown SPIs."""
    r = run("ikev2-rekey-collision", False)
    (phantom,) = [c for c in r.a.child_sas if c.collision]
    assert (phantom.spi_i, phantom.spi_r, phantom.packets) == (None, None, 0)
    assert _rekey_spis(phantom.rekey_of) == {"0x0b0f358d", "0x9e65e9be"} and phantom.rekey_inferred
    assert phantom.created_by == "CREATE_CHILD_SA" and phantom.pfs is True and phantom.dh_group == 16
    logged = [ec for ec in r.expected["child_sas"] if _redundant(ec)][0]
    assert abs(phantom.deleted - _state(logged["hosts"], "DELETING")) < TOLERANCE
    # the two crossing exchanges: one made the survivor, one the redundant SA
    survivor = r.children[frozenset({"0x07410241", "0xed402c87"})]
    assert sorted([phantom.created_frames, survivor.created_frames]) == [[101, 104], [102, 103]]


def test_keyed_rekey_collision_picks_the_lowest_nonce():
    r = run("ikev2-rekey-collision", True)
    assert [c.id for c in r.a.child_sas if c.collision] == ["0xaab58c93/0xccfa6823"]
    assert r.children[frozenset({"0xaab58c93", "0xccfa6823"})].packets == 0


# ---------------------------------------------------------------- public capture
def test_arkime_ikev2_rekeys_are_sane():
    """fixtures/public/arkime/IKEv2.pcap (no keys): two IKE SAs between the
    same peers, child SAs from IKE_AUTH and CREATE_CHILD_SA.  The initiator
    (2003:51:6012::2) allocates its SPIs in sequence (0x3d713155, 56, 58,
    59), which shows which directions belong together."""
    a = analyze([ROOT / "fixtures/public/arkime/IKEv2.pcap"])
    assert len(a.sas) == 8
    for r in a.sas:
        assert r.ike_sa is not None and r.peer_spi is not None and r.created_frame is not None, r.spi
    pairs = {frozenset((r.spi, r.peer_spi)) for r in a.sas}
    assert pairs == {frozenset(p) for p in (("0x3d713155", "0xf918698d"), ("0x3d713156", "0x83d48d4c"),
                                            ("0x3d713158", "0x92c780d4"), ("0x3d713159", "0xcf0014be"))}
    by_spi = {r.spi: r for r in a.sas}
    assert by_spi["0x3d713155"].created_by == "IKE_AUTH"
    assert by_spi["0x3d713155"].ike_sa == by_spi["0x3d713156"].ike_sa != by_spi["0x3d713158"].ike_sa
    assert by_spi["0x3d713158"].ike_sa == by_spi["0x3d713159"].ike_sa
    # the SAs of the first IKE SA ran side by side until it went; a later IKE
    # SA (its own IKE_SA_INIT) is a new one, not a rekey
    assert all(c.rekey_of is None for c in a.child_sas)
    assert all(r.rekey_of is None for r in a.ike)
    first, second = sorted(a.ike, key=lambda r: r.established)
    assert first.deleted is not None and first.delete_inferred and second.deleted is None
    # ECP-384 KE in every CREATE_CHILD_SA answer (384 bytes = the size model with PFS)
    made = [c for c in a.child_sas if c.created_by == "CREATE_CHILD_SA"]
    assert made and all(c.pfs and c.pfs_inferred and c.dh_group == 20 for c in made)


# ---------------------------------------------------------------- size model
@pytest.mark.parametrize("name,frame,kind", [
    ("ikev2-cbc-rekey", 134, "child_pfs"),   # MODP-2048 KE
    ("ikev2-cbc-rekey", 294, "ike_rekey"),   # SA(IKE) Nonce KE, no TS
    ("ikev2-nopfs-rekey", 100, "child"),
    ("ikev2-gcm", 84, "child_pfs"),          # ECP-256: 64-byte public value, AES-GCM, no padding
    ("ikev2-aes256-sha512-modp", 82, "child_pfs"),
    ("ikev2-rekey-collision", 280, "ike_rekey"),
    ("ikev1-main-quick", 10, "child_pfs"),
    ("ikev1-aggressive-psk", 8, "child"),
])
def test_size_model_predicts_the_answer_exactly(name, frame, kind):
    """The model's length for the kind the log records is the captured
    length to the byte (strongSwan's messages have the assumed shape)."""
    r = run(name, True)
    (ex,) = [e for e in r.a.exchanges if e.frame == frame]
    (ike,) = [i for i in r.a.ike if (i.ispi, i.rspi) == (ex.ispi, ex.rspi)]
    enc, integ, group = ike.enc, ike.integ, ike.dh_group
    from ipsecpcap.crypto.registry import ENC, INTEG
    base = next(n for n in ENC if enc == n or enc.startswith(n + "-"))
    algo = ENC[base]
    m = SizeModel(ex.version, block=algo.block, iv=algo.iv_len if ex.version == 2 else 0,
                  icv=(algo.icv_len if algo.aead else INTEG[integ].icv_len) if ex.version == 2 else 0,
                  aead=algo.aead, keylen_attr=True, group=group,
                  hash_len={"hmac-sha2-256": 32, "hmac-sha1": 20}.get(integ, 20))
    assert m.expect(kind) == ex.length
    kinds = ("child", "child_pfs", "ike_rekey") if ex.version == 2 else ("child", "child_pfs")
    assert m.classify(ex.length, kinds) == kind


# ---------------------------------------------------------------- timeline and CLI
def test_timeline_bars_and_events():
    r = run("ikev2-cbc-rekey", True)
    tl = r.a.timeline()
    ike_bars = [b for b in tl.bars if b.protocol == "ikev2"]
    esp_bars = [b for b in tl.bars if b.protocol == "esp"]
    assert len(ike_bars) == 2 and len(esp_bars) == 8
    for b in esp_bars:
        row = next(s for s in r.a.sas if s.spi == b.sa)
        assert (b.src, b.dst, b.ike_sa, b.packets) == (row.src, row.dst, row.ike_sa, row.packets)
        assert b.start <= row.first_seen and row.last_seen <= b.end
    kinds = [e.kind for e in tl.events]
    assert kinds.count("child_rekey") == 3 and kinds.count("ike_rekey") == 1
    assert kinds.count("child_deleted") == 4 and kinds.count("ike_deleted") == 2
    assert [e.ts for e in tl.events] == sorted(e.ts for e in tl.events)
    rekey = next(e for e in tl.events if e.kind == "ike_rekey")
    assert (rekey.frame, rekey.sa, rekey.related) == (294, "9d15ed581cf1dde9/2ef288bbd8b060e2",
                                                      "53e1bcd6f7353cce/78c1686e2782d481")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ipsecpcap.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)


def test_cli_timeline_and_child_sas():
    d = SS / "ikev2-rekey-collision"
    p = _cli("timeline", d / "capture.pcap", "--keys", d, "--format", "json")
    assert p.returncode == 0, p.stderr
    tl = json.loads(p.stdout)
    assert {"bars", "events"} == set(tl)
    assert any(e["kind"] == "rekey_collision" and e["sa"] == "0xaab58c93/0xccfa6823" for e in tl["events"])
    p = _cli("timeline", d / "capture.pcap", "--format", "csv")
    assert p.returncode == 0, p.stderr
    header, *lines = p.stdout.splitlines()
    assert header.startswith("type,kind,start,end,frame,")
    assert len(lines) == len(tl["bars"]) + len(tl["events"])
    p = _cli("child-sas", d / "capture.pcap", "--format", "jsonl")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(rows) == 5 and sum(r["collision"] for r in rows) == 1


# ---------------------------------------------------------------- records, no capture
def _isakmp(ispi, rspi, etype, mid, body=b"", encrypted=False):
    """An ISAKMP header (RFC 2408 3.1) and an opaque body: 28 bytes of
    cookies, next payload, version 1.0, exchange type, flags, message ID, length."""
    import struct
    np = 8 if encrypted else 0  # HASH first inside an encrypted body
    return ispi + rspi + struct.pack("!BBBBII", np, 0x10, etype, 1 if encrypted else 0, mid, 28 + len(body)) + body


def test_ikev1_phase1_rekey_with_role_swap_from_records():
    """IKEv1 has no rekey exchange: a second Main Mode between the same peers
    while the first ISAKMP SA lives replaces it.  Here the old responder
    starts it (a role swap), the old SA sends one more Informational (its
    delete) and is silent after; the Quick Mode under the new SA replaces
    the child SA of the old one (IKEv1 child SAs do not move)."""
    import socket

    from ipsecpcap.analysis import Analysis
    from ipsecpcap.dissectors.ike import parse_ike
    from ipsecpcap.tracker import IkeEvent, Tracker

    a, b = socket.inet_aton("198.51.100.1"), socket.inet_aton("198.51.100.2")
    tr = Tracker("synthetic")
    frame = 0

    def ike(ts, src, dst, data):
        nonlocal frame
        frame += 1
        tr.ike_events.append(IkeEvent(0, frame, ts, src + dst, 500, 500, False, 0, parse_ike(data), data))

    def main_mode(t, ini, res, icky, rcky):
        zero = bytes(8)
        ike(t, ini, res, _isakmp(icky, zero, 2, 0))
        ike(t + 0.01, res, ini, _isakmp(icky, rcky, 2, 0))
        ike(t + 0.02, ini, res, _isakmp(icky, rcky, 2, 0))
        ike(t + 0.03, res, ini, _isakmp(icky, rcky, 2, 0))
        ike(t + 0.04, ini, res, _isakmp(icky, rcky, 2, 0, bytes(64), True))
        ike(t + 0.05, res, ini, _isakmp(icky, rcky, 2, 0, bytes(64), True))

    def quick_mode(t, ini, res, icky, rcky, mid):
        ike(t, ini, res, _isakmp(icky, rcky, 32, mid, bytes(160), True))
        ike(t + 0.01, res, ini, _isakmp(icky, rcky, 32, mid, bytes(160), True))
        ike(t + 0.02, ini, res, _isakmp(icky, rcky, 32, mid, bytes(48), True))

    def esp(t0, t1, src, dst, spi):
        nonlocal frame
        for i, t in enumerate((t0, (t0 + t1) / 2, t1)):
            frame += 1
            tr.esp(frame, t, src + dst, spi, i + 1, 120, False, 0)

    old_i, old_r = b"\x01" * 8, b"\x02" * 8
    new_i, new_r = b"\x03" * 8, b"\x04" * 8
    main_mode(0.0, a, b, old_i, old_r)
    quick_mode(1.0, a, b, old_i, old_r, 0x1111)
    esp(1.1, 150.0, a, b, 0x1001)
    esp(1.1, 150.0, b, a, 0x2001)
    main_mode(100.0, b, a, new_i, new_r)
    ike(101.0, a, b, _isakmp(old_i, old_r, 5, 0x2222, bytes(48), True))
    quick_mode(150.0, b, a, new_i, new_r, 0x3333)
    esp(150.1, 300.0, a, b, 0x1002)
    esp(150.1, 300.0, b, a, 0x2002)
    tr.first_ts, tr.last_ts = 0.0, 300.0

    an = Analysis(tr)
    old, new = sorted(an.ike, key=lambda r: r.first_seen)
    assert (new.rekey_of, new.rekey_inferred, new.role_swapped) == (f"{old.ispi}/{old.rspi}", True, True)
    assert old.rekeyed_by == f"{new.ispi}/{new.rspi}"
    assert (new.established_by, new.established) == ("main_mode", 100.05)
    assert (old.deleted, old.delete_inferred) == (101.0, True)
    first, second = sorted(an.child_sas, key=lambda c: c.created)
    assert (first.spi_i, first.spi_r, first.created_by) == ("0x00001001", "0x00002001", "quick_mode")
    assert (second.initiator, second.spi_i, second.spi_r) == ("198.51.100.2", "0x00002002", "0x00001002")
    assert second.ike_sa == f"{new.ispi}/{new.rspi}" and second.rekey_inferred
    assert _rekey_spis(second.rekey_of) == {"0x00001001", "0x00002001"}
    assert first.rekeyed_by == second.id
