"""Shared fixtures for the whole-capture tests.

``tshark_frames`` gives tshark's per-frame view of a capture (see
``ipsecpcap/tsharkview.py``), computed once per capture and cached in
``.pytest_cache`` across sessions; tests that use it skip, with the reason
shown, when tshark is not installed.  The same cache serves the deep engine
(``analyze(..., engine="tshark")``) and ``crosscheck`` run inside the test
process: the session installs it as ``ipsecpcap.tsharkview.cache``.
"""
from __future__ import annotations

import pytest

from ipsecpcap import tsharkview

try:  # tests/ is on sys.path (rootdir-relative conftest), or the checkout root is
    from reference import tshark as tshark_ref
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import tshark as tshark_ref

# what test_against_tshark counts per field, for the terminal summary
TSHARK_STATS = pytest.StashKey[dict]()
# fixtures whose tests run tshark over their ``capture`` parameter (prefetched in parallel)
TSHARK_FIXTURES = ("tshark_frames", "tshark_cache", "tshark_keyed")


@pytest.fixture(scope="session")
def tshark_cache(request) -> tshark_ref.TsharkCache:
    if not tshark_ref.tshark_available():
        pytest.skip(tshark_ref.SKIP_REASON)
    cache = _session_cache(request)
    # one tshark process per capture, all the selected ones up front and in
    # parallel; later lookups hit the memory (or disk) cache
    jobs = []
    for item in request.session.items:
        cap = getattr(getattr(item, "callspec", None), "params", {}).get("capture")
        names = getattr(item, "fixturenames", ())
        if cap is None or not any(n in names for n in TSHARK_FIXTURES):
            continue
        jobs.append((cap.path, None, False))
        if "tshark_keyed" in names and getattr(cap, "keys", ()):
            jobs.append((cap.path, _profile_for(cap.keys), True))
    cache.prefetch(dict.fromkeys(jobs))
    return cache


def _session_cache(request) -> tshark_ref.TsharkCache:
    cache = getattr(request.config, "_ipsecpcap_tshark_cache", None)
    if cache is None:
        cache = tshark_ref.TsharkCache(request.config.cache.mkdir("ipsecpcap-tshark"))
        request.config._ipsecpcap_tshark_cache = cache
    return cache


_profiles: dict[tuple, tsharkview.Profile] = {}


def _profile_for(keys) -> tsharkview.Profile:
    """The (not entered) private profile the deep engine and crosscheck build for these key files."""
    from ipsecpcap.keys import load_keys

    k = tuple(str(p) for p in keys)
    if k not in _profiles:
        _profiles[k] = tsharkview.Profile(tsharkview.uat_tables(load_keys(list(keys))).uat)
    return _profiles[k]


@pytest.fixture(scope="session", autouse=True)
def _tshark_output_cache(request):
    """tshark runs inside the test process (deep engine, crosscheck) are cached too."""
    if not tshark_ref.tshark_available():
        yield
        return
    old = tsharkview.cache
    tsharkview.cache = _session_cache(request)
    yield
    tsharkview.cache = old


@pytest.fixture(scope="session")
def tshark_frames(tshark_cache):
    """``tshark_frames(path) -> {frame number: TsharkFrame}``."""
    return tshark_cache.by_frame


@pytest.fixture(scope="session")
def tshark_keyed(tshark_cache):
    """Marks a test that runs tshark with the capture's keys (prefetched in parallel)."""
    return tshark_cache


@pytest.fixture(scope="session")
def tshark_stats(request) -> dict:
    """Per-field agreement counts, printed in the terminal summary."""
    return request.config.stash[TSHARK_STATS]


def pytest_configure(config):
    config.stash[TSHARK_STATS] = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = dict(config.stash.get(TSHARK_STATS, {}))
    if not stats:
        return
    tr = terminalreporter
    tr.section("tshark cross-check")
    frames = stats.pop("_frames", 0)
    captures = stats.pop("_captures", 0)
    tr.write_line(f"{frames} frames in {captures} captures compared with {tshark_ref.tshark_version()}")
    tr.write_line(f"{'field':<16} {'compared':>9} {'agree':>9} {'explained':>9} {'differ':>7}")
    for name in sorted(stats):
        s = stats[name]
        tr.write_line(f"{name:<16} {s['compared']:>9} {s['agree']:>9} {s['explained']:>9} {s['differ']:>7}")
