"""Anti-replay and sequence-number analysis (ipsecpcap.sequence).

Unit tests feed the tracker's hot path (``Tracker.esp`` / ``Tracker.ah``)
directly, one packet per frame.  Whole-capture tests check the synthetic
capture ``fixtures/synthetic/esp-replay-gap.pcap`` against the record its
script wrote and against tshark, and every fixture capture against a naive
reference computed from tshark's sequence numbers (a set of every number
seen, no window, no bound on memory).
"""
from __future__ import annotations

import hashlib
import json
import random
from bisect import bisect_right
from collections import Counter
from pathlib import Path

import pytest

from ipsecpcap import sequence
from ipsecpcap.analysis import analyze
from ipsecpcap.sequence import EVENTS_MAX, HEAD, OPEN_HOLES_MAX, sequence_rows
from ipsecpcap.tables import sa_table
from ipsecpcap.tracker import Tracker

try:
    from reference import FIXTURES, Capture, all_captures
    from reference.tshark import SKIP_REASON, tshark_available
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import FIXTURES, Capture, all_captures
    from tests.reference.tshark import SKIP_REASON, tshark_available

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
COUNTS = ("replays", "gaps", "missing", "reordered", "too_old_32", "too_old_64", "seq_resets", "esn_wraps")


def feed(tr: Tracker, seqs, first_frame: int = 1, proto: str = "esp", spi: int = 0x1234) -> None:
    for frame, seq in enumerate(seqs, first_frame):
        if proto == "esp":
            tr.esp(frame, float(frame), A + B, spi, seq, 100, False, 0)
        else:
            tr.ah(frame, float(frame), A + B, spi, seq, 100, 6)


def sa_of(tr: Tracker):
    (row,) = sa_table(tr)
    return row


def one_pass(seqs, **kw):
    tr = Tracker("t.pcap")
    feed(tr, seqs, **kw)
    return sa_of(tr)


def counts(r) -> dict:
    return {k: getattr(r, k) for k in COUNTS}


def zero(**kw) -> dict:
    return {**dict.fromkeys(COUNTS, 0), **kw}


def result(r) -> dict:
    """Everything the sequence analysis says about an SA direction."""
    return {**counts(r), "loss_rate": r.loss_rate, "replay_rate": r.replay_rate, "reorder_rate": r.reorder_rate,
            "seq_events": r.seq_events}


def ev(kind, frame, **kw) -> dict:
    return {"kind": kind, "capture": "t.pcap", "frame": frame, **kw}


# ---------------------------------------------------------------------- in order
def test_in_order_is_clean():
    r = one_pass(range(1, 1001))
    assert counts(r) == zero()
    assert (r.loss_rate, r.replay_rate, r.reorder_rate, r.seq_exact, r.seq_events) == (0.0, 0.0, 0.0, True, [])


def test_in_order_stays_on_the_hot_path(monkeypatch):
    """Only the head (kept for merges) goes through the slow path."""
    calls = []
    slow = sequence.SeqState.packet

    def counted(self, *args):
        calls.append(args[0])
        return slow(self, *args)

    monkeypatch.setattr(sequence.SeqState, "packet", counted)
    tr = Tracker("t.pcap")
    feed(tr, range(1, 10001))
    assert calls == list(range(1, HEAD + 1))
    feed(tr, [10003, 10004, 10005], first_frame=10001)  # a gap: one slow call, then the hot path again
    assert calls[HEAD:] == [10003]


# ---------------------------------------------------------------------- replays
def test_replay_inside_the_window_names_the_original():
    r = one_pass(list(range(1, 51)) + [12] + list(range(51, 61)))
    assert counts(r) == zero(replays=1)
    assert r.seq_events == [ev("replay", 51, seq=12, behind=38, original_capture="t.pcap", original_frame=12)]
    assert r.replay_rate == round(1 / 61, 6)


def test_replay_of_the_newest_number():
    r = one_pass([1, 2, 3, 3, 4])
    assert r.seq_events == [ev("replay", 4, seq=3, behind=0, original_capture="t.pcap", original_frame=3)]


def test_replay_outside_the_window():
    """Still a replay (the number was seen); its original is no longer known."""
    r = one_pass(list(range(1000, 1200)) + [1010] + list(range(1200, 1210)))
    assert counts(r) == zero(replays=1)
    assert r.seq_events == [ev("replay", 201, seq=1010, behind=189, original_capture=None, original_frame=None)]


def test_every_copy_names_the_first():
    r = one_pass([1, 2, 3, 2, 4, 2])
    assert [(e["frame"], e["original_frame"]) for e in r.seq_events] == [(4, 2), (6, 2)]


# ---------------------------------------------------------------------- gaps
def test_gap_of_one():
    r = one_pass(list(range(1, 11)) + list(range(12, 21)))
    assert counts(r) == zero(gaps=1, missing=1)
    assert r.seq_events == [ev("gap", 11, after_seq=10, seq=12, missing=1)]
    assert r.loss_rate == round(1 / 20, 6)


def test_gap_of_a_thousand():
    r = one_pass(list(range(1, 11)) + list(range(1011, 1021)))
    assert counts(r) == zero(gaps=1, missing=1000)
    assert r.seq_events == [ev("gap", 11, after_seq=10, seq=1011, missing=1000)]
    assert r.loss_rate == round(1000 / 1020, 6)


def test_a_late_packet_splits_its_hole():
    r = one_pass([1, 2, 6, 7, 4, 8])
    assert counts(r) == zero(gaps=2, missing=2, reordered=1)
    assert r.seq_events == [ev("gap", 3, after_seq=2, seq=4, missing=1), ev("gap", 3, after_seq=4, seq=6, missing=1),
                            ev("reorder", 5, seq=4, behind=3)]


def test_a_first_packet_that_came_early():
    """Numbers below the first one seen: late arrivals, and the hole between is a gap."""
    r = one_pass([105, 106, 101, 107])
    assert counts(r) == zero(gaps=1, missing=3, reordered=1)
    assert r.seq_events == [ev("gap", 3, after_seq=101, seq=105, missing=3), ev("reorder", 3, seq=101, behind=5)]


# ---------------------------------------------------------------------- reordering
def _late(by: int) -> list[int]:
    """1000..1010, then 1012 .. 1011+by, then 1011 (``by`` behind), then on."""
    return list(range(1000, 1011)) + list(range(1012, 1012 + by)) + [1011] + list(range(1012 + by, 1022 + by))


def test_reorder_by_3():
    r = one_pass(_late(3))
    assert counts(r) == zero(reordered=1)
    assert r.seq_events == [ev("reorder", 15, seq=1011, behind=3)]
    assert (r.loss_rate, r.reorder_rate) == (0.0, round(1 / 25, 6))  # 25 packets


def test_reorder_by_40_is_too_old_for_32_fine_for_64():
    r = one_pass(_late(40))
    assert counts(r) == zero(reordered=1, too_old_32=1)
    assert r.seq_events == [ev("reorder", 52, seq=1011, behind=40)]


def test_reorder_by_100_is_too_old_for_both():
    r = one_pass(_late(100))
    assert counts(r) == zero(too_old_32=1, too_old_64=1)
    assert r.seq_events == [ev("too_old", 112, seq=1011, behind=100)]
    assert r.missing == 0  # it arrived: no hole


# ---------------------------------------------------------------------- resets and wraps
def test_reset_without_a_new_spi():
    r = one_pass(list(range(1, 5001)) + list(range(1, 11)))
    assert counts(r) == zero(seq_resets=1)
    assert r.seq_events == [ev("reset", 5001, seq=1, from_seq=5000)]
    assert r.loss_rate == 0.0


def test_reset_keeps_the_earlier_runs_holes():
    r = one_pass(list(range(1, 101)) + list(range(105, 201)) + list(range(1, 51)))
    assert counts(r) == zero(gaps=1, missing=4, seq_resets=1)
    assert r.loss_rate == round(4 / (200 + 50), 6)


def test_a_lone_old_packet_is_no_reset():
    """A small number far behind that the next packet does not continue: a replay."""
    r = one_pass(list(range(1, 5001)) + [1, 5001, 5002])
    assert counts(r) == zero(replays=1)
    assert r.seq_events == [ev("replay", 5001, seq=1, behind=4999, original_capture=None, original_frame=None)]
    r = one_pass(list(range(1, 5001)) + [1])  # the capture ends on it
    assert counts(r) == zero(replays=1)


def test_esn_wrap():
    top = 0xFFFFFFFF
    r = one_pass(list(range(top - 15, top + 1)) + list(range(0, 20)))
    assert counts(r) == zero(esn_wraps=1)
    assert r.seq_events == [ev("esn_wrap", 17, seq=0, from_seq=top)]


def test_esn_wrap_with_a_gap_and_a_late_packet_across_it():
    top = 0xFFFFFFFF
    r = one_pass(list(range(top - 15, top - 1)) + [top, 1, 2, top - 1, 3])
    assert counts(r) == zero(gaps=1, missing=1, reordered=1, esn_wraps=1)
    assert r.seq_events == [ev("esn_wrap", 16, seq=1, from_seq=top), ev("gap", 16, after_seq=top, seq=1, missing=1),
                            ev("reorder", 18, seq=top - 1, behind=4)]


def test_ah_is_analysed_the_same():
    r = one_pass(list(range(1, 51)) + [12] + list(range(53, 60)), proto="ah")
    assert (r.protocol, counts(r)) == ("ah", zero(replays=1, gaps=1, missing=2))


# ---------------------------------------------------------------------- bounded memory
def test_events_are_capped_counts_are_not():
    seqs = list(range(1, 10001, 2))  # every other number: 4999 holes of one
    r = one_pass(seqs)
    assert counts(r) == zero(gaps=4999, missing=4999)
    assert len(r.seq_events) == EVENTS_MAX
    assert [e["frame"] for e in r.seq_events] == list(range(2, EVENTS_MAX + 2))  # the first ones
    assert r.seq_exact is False  # more than OPEN_HOLES_MAX open holes: the oldest were closed
    assert 4999 > OPEN_HOLES_MAX


def test_a_late_packet_into_a_closed_hole_is_counted_late():
    seqs = list(range(1, 2 * OPEN_HOLES_MAX + 100, 2)) + [3]  # 3's hole was closed long ago
    r = one_pass(seqs)
    assert (r.replays, r.too_old_64, r.seq_exact) == (0, 1, False)


# ---------------------------------------------------------------------- merging slices
SCENARIO = (list(range(1, 31)) + [33, 34, 31, 35, 36, 32]  # reorders at the start
            + list(range(37, 120)) + [50]  # a replay outside the window
            + list(range(120, 160)) + [150] + list(range(160, 200))  # a replay inside it
            + list(range(201, 240)) + [200] + list(range(240, 260))  # a reorder by 40
            + list(range(261, 380)) + [260] + list(range(380, 400))  # a reorder by 119
            + list(range(1400, 1450)))  # a gap of 1000


def _merged(parts: list[list[int]], names=None) -> Tracker:
    names = names or ["t.pcap"] * len(parts)
    trackers, frame = [], 1
    for name, part in zip(names, parts):
        t = Tracker(name)
        feed(t, part, first_frame=frame)
        frame += len(part)
        trackers.append(t)
    merged = trackers[0]
    for t in trackers[1:]:
        merged = merged.merge(t)
    return merged


def test_scenario_has_every_kind():
    r = one_pass(SCENARIO)
    assert counts(r) == zero(replays=2, gaps=1, missing=1000, reordered=3, too_old_32=2, too_old_64=1)


@pytest.mark.parametrize("cut", range(1, len(SCENARIO)))
def test_merge_of_two_slices_equals_one_pass(cut):
    whole = one_pass(SCENARIO)
    merged = sa_of(_merged([SCENARIO[:cut], SCENARIO[cut:]]))
    assert merged.seq_exact
    assert result(merged) == result(whole)


def test_merge_of_three_slices_either_way():
    whole = result(one_pass(SCENARIO))
    rng = random.Random(4303)
    for _ in range(200):
        i, j = sorted(rng.sample(range(1, len(SCENARIO)), 2))
        parts = [SCENARIO[:i], SCENARIO[i:j], SCENARIO[j:]]
        left = _merged(parts)
        a, b, c = (Tracker("t.pcap") for _ in range(3))
        feed(a, parts[0])
        feed(b, parts[1], first_frame=i + 1)
        feed(c, parts[2], first_frame=j + 1)
        right = a.merge(b.merge(c))
        assert result(sa_of(left)) == whole, (i, j)
        assert result(sa_of(right)) == whole, (i, j)


def test_merge_with_a_reset_in_the_later_slice():
    seqs = list(range(1, 300)) + list(range(305, 400)) + list(range(1, 100))
    whole = result(one_pass(seqs))
    for cut in (1, 5, 150, 297, 300, 310, 390, 395, 399, 420):
        merged = sa_of(_merged([seqs[:cut], seqs[cut:]]))
        assert result(merged) == whole, cut


def test_merge_finds_a_replay_of_the_earlier_capture():
    one = list(range(1, 101))
    two = [95] + list(range(101, 200)) + [50] + list(range(200, 210))
    r = sa_of(_merged([one, two], names=["one.pcap", "two.pcap"]))
    assert counts(r) == zero(replays=2)
    assert r.seq_events == [
        {"kind": "replay", "capture": "two.pcap", "frame": 101, "seq": 95, "behind": 5,
         "original_capture": "one.pcap", "original_frame": 95},
        {"kind": "replay", "capture": "two.pcap", "frame": 201, "seq": 50, "behind": 149,
         "original_capture": None, "original_frame": None}]


def test_merge_finds_the_gap_between_captures():
    r = sa_of(_merged([list(range(1, 101)), list(range(104, 201))], names=["one.pcap", "two.pcap"]))
    assert counts(r) == zero(gaps=1, missing=3)
    assert r.seq_events == [{"kind": "gap", "capture": "two.pcap", "frame": 101, "after_seq": 100, "seq": 104,
                             "missing": 3}]


def test_merge_leaves_the_later_slice_alone():
    a, b = Tracker("t.pcap"), Tracker("t.pcap")
    feed(a, range(1, 50))
    feed(b, [45] + list(range(50, 120)), first_frame=50)
    before = result(sa_of(b))
    a.merge(b)
    assert result(sa_of(b)) == before


def test_a_later_slice_that_starts_deep_inside_the_earlier_one_is_flagged():
    """Its first HEAD packets all lie below the earlier slice's highest: the
    merge cannot re-check what follows, and says so."""
    r = sa_of(_merged([list(range(1000, 1200)), list(range(1050, 1120))]))
    assert r.seq_exact is False
    assert r.replays == 70  # still counted from the numbers seen


# ---------------------------------------------------------------------- the naive reference
def reference(listing: list[tuple[int, int]]) -> tuple[Counter, list[tuple]]:
    """Counts and events of one SA direction from (frame, seq) in frame order,
    with a set of every number seen (no window, no ESN, no resets)."""
    c: Counter = Counter()
    events = []
    seen: dict[int, int] = {}
    high = None
    for frame, seq in listing:
        if high is None or seq > high:
            high = seq
        elif seq in seen:
            behind = high - seq
            c["replays"] += 1
            events.append(("replay", frame, seq, behind, seen[seq] if behind < 64 else None))
            continue
        else:
            behind = high - seq
            if behind < 64:
                c["reordered"] += 1
                c["too_old_32"] += behind >= 32
                events.append(("reorder", frame, seq, behind))
            else:
                c["too_old_32"] += 1
                c["too_old_64"] += 1
                events.append(("too_old", frame, seq, behind))
        seen[seq] = frame
    # holes, each revealed by the later of the first packets above and below it
    nums = sorted(seen)
    tops, bottoms = [], []
    for _, seq in listing:
        tops.append(max(tops[-1], seq) if tops else seq)
        bottoms.append(-min(-bottoms[-1], seq) if bottoms else -seq)
    for lo, hi in zip(nums, nums[1:]):
        if hi > lo + 1:
            a, b = lo + 1, hi - 1
            i = max(bisect_right(tops, b), bisect_right(bottoms, -a))
            c["gaps"] += 1
            c["missing"] += b - a + 1
            events.append(("gap", listing[i][0], lo, hi, b - a + 1))
    order = {"gap": 2, "replay": 3, "reorder": 4, "too_old": 5}
    events.sort(key=lambda e: (e[1], order[e[0]]))
    return c, events


def ours_as_reference(r) -> tuple[Counter, list[tuple]]:
    c = Counter({k: v for k, v in counts(r).items() if v and k not in ("seq_resets", "esn_wraps")})
    out = []
    for e in r.seq_events:
        if e["kind"] == "gap":
            out.append(("gap", e["frame"], e["after_seq"], e["seq"], e["missing"]))
        elif e["kind"] == "replay":
            out.append(("replay", e["frame"], e["seq"], e["behind"], e["original_frame"]))
        else:
            out.append((e["kind"], e["frame"], e["seq"], e["behind"]))
    return c, out


def test_the_reference_agrees_with_the_unit_cases():
    for seqs in (SCENARIO, _late(40), _late(100), [105, 106, 101, 107], [1, 2, 6, 7, 4, 8], [1, 2, 3, 2, 4, 2]):
        c, events = reference(list(enumerate(seqs, 1)))
        assert ours_as_reference(one_pass(seqs)) == (c, events[:EVENTS_MAX]), seqs


# ---------------------------------------------------------------------- the synthetic capture
SYNTHETIC = FIXTURES / "synthetic" / "esp-replay-gap.pcap"
RECORD = json.loads(SYNTHETIC.with_suffix(".json").read_text(encoding="utf-8"))


def test_record_belongs_to_the_capture():
    assert hashlib.sha256(SYNTHETIC.read_bytes()).hexdigest() == RECORD["output_sha256"]
    source = FIXTURES.parent / RECORD["source"]
    assert hashlib.sha256(source.read_bytes()).hexdigest() == RECORD["source_sha256"]


def test_synthetic_capture_is_reported_exactly():
    """The replayed packet, the gap and the reorder, with their frames and
    sequence numbers, as the script's record says it made them; nothing else."""
    a = analyze([SYNTHETIC])
    gap, moved, replay = RECORD["gap"], RECORD["reorder"], RECORD["replay"]
    name = SYNTHETIC.name
    expected = [
        {"capture": name, "frame": moved["frame"], "protocol": "esp", "spi": moved["spi"], "src": moved["src"],
         "dst": moved["dst"], "kind": "reorder", "seq": moved["seq"], "after_seq": None, "from_seq": None,
         "missing": None, "behind": moved["after_seq"] - moved["seq"], "original_capture": None,
         "original_frame": None},
        {"capture": name, "frame": gap["next_frame"], "protocol": "esp", "spi": gap["spi"], "src": gap["src"],
         "dst": gap["dst"], "kind": "gap", "seq": gap["next_seq"], "after_seq": gap["after_seq"], "from_seq": None,
         "missing": len(gap["removed_seqs"]), "behind": None, "original_capture": None, "original_frame": None},
        {"capture": name, "frame": replay["frame"], "protocol": "esp", "spi": replay["spi"], "src": replay["src"],
         "dst": replay["dst"], "kind": "replay", "seq": replay["seq"], "after_seq": None, "from_seq": None,
         "missing": None, "behind": replay["highest_before"] - replay["seq"], "original_capture": name,
         "original_frame": replay["original_frame"]},
    ]
    assert [r.to_dict() for r in sequence_rows(a.sas, a.tracker.captures)] == expected
    by_spi = {r.spi: r for r in a.sas}
    assert counts(by_spi[gap["spi"]]) == zero(replays=1, gaps=1, missing=3)
    assert counts(by_spi[moved["spi"]]) == zero(reordered=1)
    assert by_spi[gap["spi"]].loss_rate == round(3 / 37, 6)  # 1..37 expected, 20-22 missing
    assert all(counts(r) == zero() for s, r in by_spi.items() if s not in (gap["spi"], moved["spi"]))


def test_synthetic_capture_in_the_sequence_command(tmp_path):
    from click.testing import CliRunner

    from ipsecpcap.cli import main

    out = tmp_path / "seq.json"
    res = CliRunner().invoke(main, ["sequence", str(SYNTHETIC), "--format", "json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert [(r["kind"], r["frame"], r["seq"]) for r in rows] == [
        ("reorder", RECORD["reorder"]["frame"], 10), ("gap", RECORD["gap"]["next_frame"], 23),
        ("replay", RECORD["replay"]["frame"], 12)]


# ---------------------------------------------------------------------- every capture against tshark
CAPTURES = all_captures() + [Capture("synthetic/esp-replay-gap.pcap", SYNTHETIC)]


def tshark_listing(frames: dict) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """(protocol, SPI) -> [(frame, seq)] in frame order, from tshark's fields
    (ICMP-quoted headers left out, as the fast path leaves them out)."""
    out: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for n in sorted(frames):
        f = frames[n]
        for proto, spis, seqs in (("esp", f.outer("esp_spi"), f.outer("esp_seq")),
                                  ("ah", f.outer("ah_spi"), f.outer("ah_seq"))):
            for spi, seq in zip(spis, seqs):
                out.setdefault((proto, spi), []).append((n, seq))
    return out


@pytest.mark.skipif(not tshark_available(), reason=SKIP_REASON)
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.name)
def test_every_capture_agrees_with_the_reference(capture, tshark_frames):
    """Per SA direction, our counts and events equal the naive reference run on
    tshark's sequence numbers.  SPIs that several of our SA directions share
    (the reference has no addresses) are left out; no fixture has a counter
    reset or an ESN wrap (the reference knows neither)."""
    a = analyze([capture.path])
    listing = tshark_listing(tshark_frames(capture.path))
    rows: dict[tuple[str, int], list] = {}
    for r in a.sas:
        rows.setdefault((r.protocol, int(r.spi, 16)), []).append(r)
    assert set(rows) == set(listing), capture.name  # the same ESP and AH SPIs
    for key, (r,) in ((k, v) for k, v in rows.items() if len(v) == 1):
        assert (r.seq_resets, r.esn_wraps, r.seq_exact) == (0, 0, True), (capture.name, r.spi)
        assert r.packets == len(listing[key]), (capture.name, r.spi)
        c, events = reference(listing[key])
        assert ours_as_reference(r) == (c, events[:EVENTS_MAX]), (capture.name, r.spi)


STRONGSWAN = [c for c in all_captures() if c.name.startswith("strongswan/")]


@pytest.mark.skipif(not tshark_available(), reason=SKIP_REASON)
@pytest.mark.parametrize("capture", STRONGSWAN, ids=lambda c: c.name)
def test_strongswan_captures_are_clean(capture, tshark_frames):
    """Recorded without loss: tshark shows every SPI's numbers as 1, 2, 3, ...
    in frame order, and we report nothing."""
    listing = tshark_listing(tshark_frames(capture.path))
    # a negotiation failure (no CHILD_SA in charon's log) has no ESP at all
    assert listing or not json.loads((capture.path.parent / "expected.json").read_text())["child_sas"]
    for key, pairs in listing.items():
        assert [seq for _, seq in pairs] == list(range(1, len(pairs) + 1)), key
    for r in analyze([capture.path]).sas:
        assert counts(r) == zero() and r.seq_events == [] and r.seq_exact, (capture.name, r.spi)
