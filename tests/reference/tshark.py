"""Wireshark's view of a capture, frame by frame: the reference for the fast path.

The tshark runner, its per-frame records and their documented normalisations
(ICMP quotes, udpencap naming, payload lists, fragments) live in the package
now, :mod:`ipsecpcap.tsharkview`, because the deep engine and the
``crosscheck`` command use them too.  This module keeps the names the tests
import: the cache (in memory per (capture, tshark, profile); on disk in
``.pytest_cache`` when the conftest gives a directory), the skip reason, and
an environment for tests that run tshark themselves with an empty private
configuration directory (a developer's own preferences, decryption tables or
disabled protocols never leak in).
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ipsecpcap import tsharkview
from ipsecpcap.tsharkview import (TsharkError, TsharkFrame, top_level_payloads,  # noqa: F401 - re-exported
                                  tshark_available)

SKIP_REASON = "tshark not installed (CI installs it; apt-get install tshark)"


def _path() -> str:
    try:
        return tsharkview.find_tshark()
    except tsharkview.TsharkUnavailable:
        return "/usr/bin/tshark"


TSHARK = _path()


def tshark_version() -> str:
    return tsharkview.tshark_version()


_conf_dir: str | None = None


def _env() -> dict:
    """The environment of a tshark run with an empty private configuration."""
    global _conf_dir
    if _conf_dir is None:
        _conf_dir = tempfile.mkdtemp(prefix="ipsecpcap-tshark-conf-")
        atexit.register(shutil.rmtree, _conf_dir, True)  # removed when the test session ends
    env = dict(os.environ)
    env["WIRESHARK_CONFIG_DIR"] = _conf_dir
    env["XDG_CONFIG_HOME"] = _conf_dir
    env["HOME"] = _conf_dir
    env["LC_ALL"] = "C"
    return env


class TsharkCache(tsharkview.TsharkCache):
    """The package's cache, plus the lookups the tests use."""

    def frames(self, path) -> list[TsharkFrame]:
        return self.run(path).frames

    def by_frame(self, path, profile=None, keyed: bool = False) -> dict[int, TsharkFrame]:
        return {f.frame: f for f in self.run(path, profile, keyed).frames}

    def prefetch(self, jobs: Iterable, workers: int | None = None) -> None:
        """Run tshark over several captures in parallel (one process each).
        ``jobs``: paths, or (path, profile, keyed) triples."""
        todo = []
        for j in jobs:
            path, profile, keyed = (j, None, False) if not isinstance(j, tuple) else j
            if Path(path).exists():
                todo.append((path, profile, keyed))
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as ex:
            for _ in ex.map(self._prefetch_one, todo):
                pass

    def _prefetch_one(self, job) -> None:
        path, profile, keyed = job
        try:
            if profile is not None:
                with tsharkview.Profile(profile.uat) as prof:
                    self.run(path, prof, keyed)
            else:
                self.run(path, None, keyed)
        except TsharkError:
            pass  # reported again, with context, when the test asks for it
