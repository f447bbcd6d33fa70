"""Shared fixtures for the whole-capture tests.

``tshark_frames`` gives tshark's per-frame view of a capture (see
``tests/reference/tshark.py``), computed once per capture and cached in
``.pytest_cache`` across sessions; tests that use it skip, with the reason
shown, when tshark is not installed.
"""
from __future__ import annotations

import pytest

try:  # tests/ is on sys.path (rootdir-relative conftest), or the checkout root is
    from reference import tshark as tshark_ref
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import tshark as tshark_ref

# what test_against_tshark counts per field, for the terminal summary
TSHARK_STATS = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def tshark_cache(request) -> tshark_ref.TsharkCache:
    if not tshark_ref.tshark_available():
        pytest.skip(tshark_ref.SKIP_REASON)
    cache = tshark_ref.TsharkCache(request.config.cache.mkdir("ipsecpcap-tshark"))
    # one tshark process per capture, all the selected ones up front and in
    # parallel; later lookups hit the memory (or disk) cache
    paths = []
    for item in request.session.items:
        cap = getattr(getattr(item, "callspec", None), "params", {}).get("capture")
        if cap is not None and "tshark_frames" in getattr(item, "fixturenames", ()):
            paths.append(cap.path)
    cache.prefetch(dict.fromkeys(paths))
    return cache


@pytest.fixture(scope="session")
def tshark_frames(tshark_cache):
    """``tshark_frames(path) -> {frame number: TsharkFrame}``."""
    return tshark_cache.by_frame


@pytest.fixture(scope="session")
def tshark_stats(request) -> dict:
    """Per-field agreement counts, printed in the terminal summary."""
    return request.config.stash[TSHARK_STATS]


def pytest_configure(config):
    config.stash[TSHARK_STATS] = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = config.stash.get(TSHARK_STATS, {})
    if not stats:
        return
    tr = terminalreporter
    tr.section("tshark cross-check")
    frames = stats.pop("_frames", 0)
    captures = stats.pop("_captures", 0)
    tr.write_line(f"{frames} frames in {captures} captures compared with {tshark_ref.tshark_version()}")
    tr.write_line(f"{'field':<14} {'compared':>9} {'agree':>9} {'justified':>9} {'differ':>7}")
    for name in sorted(stats):
        s = stats[name]
        tr.write_line(f"{name:<14} {s['compared']:>9} {s['agree']:>9} {s['justified']:>9} {s['differ']:>7}")
