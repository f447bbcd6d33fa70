"""Every capture in fixtures/public/MANIFEST.tsv through the CLI and the library.

* ``ipsecpcap analyze CAPTURE`` exits 0 (or with a documented code and one
  ``ipsecpcap: error:`` line) and never prints a traceback;
* the accounting adds up: analysed + skipped + malformed == frames == the
  manifest's frame count;
* the frames carrying ESP / AH / ISAKMP (``FrameInfo.protocols``) are as many
  as the manifest says tshark 4.0.17 counted (``frame.protocols``), except for
  the differences listed, with their reason, in ``MANIFEST_DIFFERENCES``;
* bad inputs (missing file, directory, empty, text, truncated pcap, gzip of
  garbage) end with a documented exit code and one line, never a traceback.

The CLI runs in child processes: the captures are split over one process per
CPU, each of which calls the click entry point once per capture (a fresh
interpreter per capture would cost ~0.4 s of imports each).  A few captures
and every bad input also go through ``python -m ipsecpcap.cli`` on their own,
and through the ``ipsecpcap`` console script when it is installed.
"""
from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ipsecpcap.analysis import analyze
from ipsecpcap.errors import EXIT_INPUT, EXIT_OK
from ipsecpcap.frames import iter_frames

try:
    from reference import ROOT, all_captures, manifest_captures
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import ROOT, all_captures, manifest_captures

MANIFEST_CAPTURES = manifest_captures()
CLI_CAPTURES = all_captures()  # the manifest's, plus our own strongSwan recordings
COLUMNS = {"esp": "esp_frames", "ah": "ah_frames", "isakmp": "isakmp_frames"}
ERROR_PREFIX = "ipsecpcap: error: "
WARNING_PREFIX = "ipsecpcap: warning: "

# capture -> manifest column -> (what our frame view counts, why it differs)
MANIFEST_DIFFERENCES: dict[str, dict[str, tuple[int, str]]] = {
    "public/suricata-verify/ipv6-dos-with-ext-headers-5/denial6-5.pcap": {
        # 15 ICMPv6 Parameter Problems quote one of the flood's IPv6+AH echo requests;
        # tshark dissects the quote, so "ah" is in their frame.protocols.
        # The frames themselves are ICMPv6 (FrameInfo.quoted has the "ah").
        "ah_frames": (35690, "15 frames carry AH only inside an ICMPv6 error's quote"),
    },
    "public/zeek/ipv6_zero_len_ah.pcap": {
        "ah_frames": (1, "frame 6 carries AH only inside an ICMPv6 Parameter Problem's quote"),
    },
}


def _env() -> dict:
    # the children import ipsecpcap the way this process did (installed, or
    # the checkout as the working directory); output in UTC (STYLE.md)
    return dict(os.environ, TZ="UTC", PYTHONIOENCODING="utf-8")


# --------------------------------------------------------------------- CLI
# Runs inside each child process: argv = result file, captures...
DRIVER = r"""
import io, json, sys, traceback
from ipsecpcap.cli import main

result_file, captures = sys.argv[1], sys.argv[2:]
results = {}
real = sys.stdout, sys.stderr
for cap in captures:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    sys.stdout, sys.stderr = out, err
    try:
        main(["analyze", cap], prog_name="ipsecpcap")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # what would reach the user as a traceback
        traceback.print_exc()
        code = "uncaught exception"
    finally:
        sys.stdout, sys.stderr = real
    out.flush()
    err.flush()
    results[cap] = {"code": code, "stdout_bytes": len(out.buffer.getvalue()),
                    "stderr": err.buffer.getvalue().decode("utf-8", "replace")}
with open(result_file, "w", encoding="utf-8") as f:
    json.dump(results, f)
"""


def _run_driver(args) -> dict:
    result_file, paths = args
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(result_file), *map(str, paths)],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, (
        f"CLI driver process failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(Path(result_file).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory) -> dict[str, dict]:
    """``ipsecpcap analyze`` over every capture, in parallel child processes."""
    workers = max(2, os.cpu_count() or 2)
    # big captures first, so no process ends up with all of them
    caps = sorted(CLI_CAPTURES, key=lambda c: -c.path.stat().st_size)
    chunks = [[c.path for c in caps[i::workers]] for i in range(workers)]
    d = tmp_path_factory.mktemp("cli")
    jobs = [(d / f"result-{i}.json", chunk) for i, chunk in enumerate(chunks) if chunk]
    results: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for part in ex.map(_run_driver, jobs):
            results.update(part)
    return results


def _check_cli_outcome(name: str, code, stderr: str) -> None:
    assert "Traceback" not in stderr, f"{name}: traceback on stderr:\n{stderr}"
    lines = stderr.splitlines()
    if code == EXIT_OK:
        odd = [line for line in lines if not line.startswith(WARNING_PREFIX)]
        assert not odd, f"{name}: exit 0 but stderr has lines that are not warnings: {odd}"
    else:
        assert code == EXIT_INPUT, f"{name}: exit {code!r} (documented: 0, or 3 for an input error); stderr:\n{stderr}"
        assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), (
            f"{name}: exit {code} must come with exactly one '{ERROR_PREFIX.strip()}' line; got {lines}")


@pytest.mark.parametrize("capture", CLI_CAPTURES, ids=lambda c: c.name)
def test_cli_analyze(capture, cli_results):
    r = cli_results[str(capture.path)]
    _check_cli_outcome(capture.name, r["code"], r["stderr"])
    # every capture here is a readable capture: the documented outcome is success
    assert r["code"] == EXIT_OK, f"{capture.name}: exit {r['code']}: {r['stderr']}"
    assert r["stdout_bytes"] > 0, f"{capture.name}: no summary on stdout"


def _one_per_source() -> list:
    seen: dict[str, object] = {}
    for c in CLI_CAPTURES:
        seen.setdefault(c.name.split("/")[1], c)
    return list(seen.values())


@pytest.mark.parametrize("capture", _one_per_source(), ids=lambda c: c.name)
def test_cli_analyze_own_process(capture):
    """The real entry point (``python -m ipsecpcap.cli``), one process per capture."""
    proc = subprocess.run([sys.executable, "-m", "ipsecpcap.cli", "analyze", str(capture.path)],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120, check=False)
    _check_cli_outcome(capture.name, proc.returncode, proc.stderr)
    assert proc.returncode == EXIT_OK
    if capture.frames is not None:
        assert f"frames: {capture.frames} = " in proc.stdout, proc.stdout


@pytest.mark.skipif(shutil.which("ipsecpcap") is None, reason="the ipsecpcap console script is not installed")
def test_console_script():
    cap = MANIFEST_CAPTURES[0]
    proc = subprocess.run(["ipsecpcap", "analyze", str(cap.path)], capture_output=True, text=True,
                          env=dict(os.environ, TZ="UTC"), cwd=ROOT, timeout=120, check=False)
    _check_cli_outcome(cap.name, proc.returncode, proc.stderr)
    assert proc.returncode == EXIT_OK


# ----------------------------------------------------------------- bad input
def _bad_inputs(d: Path) -> dict[str, tuple[Path, int, str]]:
    """name -> (path, documented exit code, prefix of the one stderr line)."""
    real = ROOT / "fixtures/public/tcpdump/isakmp4500.pcap"
    (d / "a-directory").mkdir()
    (d / "empty.pcap").write_bytes(b"")
    (d / "text.pcap").write_text("this is a text file, not a packet capture\n")
    (d / "truncated.pcap").write_bytes(real.read_bytes()[:100])  # header, frame 1, part of frame 2
    rnd = random.Random(1)  # deterministic garbage
    garbage = bytes(rnd.randrange(256) for _ in range(4096))
    (d / "garbage.pcap.gz").write_bytes(gzip.compress(garbage, mtime=0))
    (d / "corrupt.pcap.gz").write_bytes(b"\x1f\x8b\x08\x00" + garbage[:300])
    return {
        "missing file": (d / "does-not-exist.pcap", EXIT_INPUT, ERROR_PREFIX),
        "directory": (d / "a-directory", EXIT_INPUT, ERROR_PREFIX),
        "empty file": (d / "empty.pcap", EXIT_INPUT, ERROR_PREFIX),
        "text file": (d / "text.pcap", EXIT_INPUT, ERROR_PREFIX),
        # the first record is whole, the second is cut: analysed as far as it
        # goes (a malformed:truncated:record) with one warning
        "truncated pcap": (d / "truncated.pcap", EXIT_OK, WARNING_PREFIX),
        "gzip of garbage": (d / "garbage.pcap.gz", EXIT_INPUT, ERROR_PREFIX),
        "corrupt gzip": (d / "corrupt.pcap.gz", EXIT_INPUT, ERROR_PREFIX),
    }


BAD_INPUTS = ["missing file", "directory", "empty file", "text file", "truncated pcap", "gzip of garbage",
              "corrupt gzip"]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, tuple[Path, int, str]]:
    return _bad_inputs(tmp_path_factory.mktemp("bad-input"))


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_cli_bad_input(case, bad_inputs):
    path, code, prefix = bad_inputs[case]
    proc = subprocess.run([sys.executable, "-m", "ipsecpcap.cli", "analyze", str(path)],
                          capture_output=True, text=True, env=_env(), cwd=path.parent, timeout=60, check=False)
    assert "Traceback" not in proc.stderr, f"{case}: traceback:\n{proc.stderr}"
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, f"{case}: exit {proc.returncode}, documented {code}; stderr: {lines}"
    assert len(lines) == 1 and lines[0].startswith(prefix), (
        f"{case}: expected exactly one line starting {prefix.strip()!r} on stderr, got {lines}")
    assert path.name in lines[0], f"{case}: the message should name the file: {lines[0]}"


def test_truncated_pcap_accounting(bad_inputs):
    path = bad_inputs["truncated pcap"][0]
    acc = analyze([path]).accounting
    assert acc.frames == 2 and acc.analysed + acc.skipped + acc.malformed == acc.frames
    assert acc.by_category.get("malformed:truncated:record") == 1


# ----------------------------------------------------------------- in-process
@pytest.mark.parametrize("capture", MANIFEST_CAPTURES, ids=lambda c: c.name)
def test_accounting_matches_manifest(capture):
    acc = analyze([capture.path]).accounting
    assert acc.analysed + acc.skipped + acc.malformed == acc.frames, (
        f"{capture.name}: {acc.analysed} analysed + {acc.skipped} skipped + {acc.malformed} malformed "
        f"!= {acc.frames} frames")
    assert acc.frames == capture.frames, f"{capture.name}: {acc.frames} frames, manifest {capture.frames}"
    assert sum(acc.by_category.values()) == acc.frames


@pytest.mark.parametrize("capture", MANIFEST_CAPTURES, ids=lambda c: c.name)
def test_protocol_counts_match_manifest(capture):
    counts = dict.fromkeys(COLUMNS, 0)
    frames = 0
    for f in iter_frames(capture.path):
        frames += 1
        for proto in COLUMNS:
            counts[proto] += proto in f.protocols
    assert frames == capture.frames, f"{capture.name}: iter_frames gave {frames} frames, manifest {capture.frames}"
    allowed = MANIFEST_DIFFERENCES.get(capture.name, {})
    problems = []
    for proto, column in COLUMNS.items():
        manifest = getattr(capture, column)
        expected, why = allowed.get(column, (manifest, None))
        if counts[proto] != expected:
            note = f" (listed difference: expected {expected}, {why})" if why else ""
            problems.append(f"{capture.name} {column}: ours {counts[proto]}, manifest {manifest}{note}")
        elif why and expected == manifest:
            problems.append(f"{capture.name} {column}: listed in MANIFEST_DIFFERENCES but equal to the manifest")
    assert not problems, "\n".join(problems)


def test_manifest_differences_name_real_rows():
    names = {c.name for c in MANIFEST_CAPTURES}
    assert set(MANIFEST_DIFFERENCES) <= names
    for cols in MANIFEST_DIFFERENCES.values():
        assert set(cols) <= set(COLUMNS.values())
