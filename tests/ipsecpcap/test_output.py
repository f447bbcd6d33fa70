"""Terminal tables (ipsecpcap.output): fitting the width, severity colours, NO_COLOR."""
import io
import os
import stat

import click
import pytest
from click.testing import CliRunner

from ipsecpcap.cli import findings_lines, main
from ipsecpcap.output import output_stream, render_rows, text_table, use_color
from ipsecpcap.records import FindingRow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAP = os.path.join(ROOT, "fixtures", "strongswan", "ikev2-cbc-rekey", "capture.pcap")
HEADER = ["severity", "rule", "title", "src"]
ROWS = [["high", "weak_crypto", "Weak cryptographic algorithms negotiated between the two gateways", "192.0.2.1"],
        ["info", "x", "short", "192.0.2.2"]]


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_wide_columns_are_narrowed_with_an_ellipsis_to_fit():
    out = text_table(ROWS, HEADER, width=60)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert "…" in lines[1] and lines[1].startswith("high") and lines[1].rstrip().endswith("192.0.2.1")
    assert all(h in lines[0] for h in HEADER)  # every column kept
    assert ROWS[0][2] in text_table(ROWS, HEADER, width=1000, max_cell=100)  # room: no cut
    assert ROWS[0][2][:47] + "…  " in text_table(ROWS, HEADER, width=1000)  # max_cell still applies


def test_columns_that_cannot_fit_are_dropped_and_named():
    out = text_table(ROWS, HEADER, width=24)
    assert max(len(line) for line in out.splitlines()[:-1]) <= 24
    assert out.splitlines()[-1].startswith("(2 more columns not shown: title, src")


def test_severities_are_coloured_only_when_asked():
    plain = text_table(ROWS, HEADER, width=200)
    assert "\x1b[" not in plain
    coloured = text_table(ROWS, HEADER, width=200, color=True)
    assert click.style("high    ", fg="red") in coloured  # styled after padding: the columns stay aligned
    assert click.unstyle(coloured) == plain


def test_use_color_follows_the_terminal_and_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color(Tty()) and not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())


def test_render_rows_table_fits_a_terminal_stream(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "50")
    rows = [dict(zip(HEADER, r)) for r in ROWS]
    out = Tty()
    render_rows(rows, HEADER, "table", out)
    text = click.unstyle(out.getvalue())
    assert max(len(line) for line in text.splitlines()) <= 50 and "\x1b[" in out.getvalue()
    f = io.StringIO()  # not a terminal (a file, a pipe): no width limit (only max_cell), no colour
    render_rows(rows, HEADER, "table", f)
    assert ROWS[0][2][:47] + "…" in f.getvalue() and "\x1b[" not in f.getvalue()


def _finding(rule, severity, frames):
    return FindingRow(rule=rule, severity=severity, title=f"title of {rule}", detail="d", remediation="r",
                      frames=frames, frame_count=len(frames), first_seen=None, last_seen=None, capture="c.pcap",
                      src="10.0.0.1", dst="10.0.0.2", proto="tcp", port=80, spi=None, ike_sa=None, policy=None,
                      evidence={})


def test_summary_findings_most_severe_first_with_counts():
    lines = findings_lines([_finding("a", "low", [1]), _finding("b", "critical", [2, 3, 4, 5, 6]),
                            _finding("c", "low", [7])])
    assert lines[0] == "findings: 1 critical, 2 low"
    assert lines[1].split() [:2] == ["CRITICAL", "b:"] and "frames 2, 3, 4 (+2)" in lines[1]
    assert [line.split()[1] for line in lines[2:]] == ["a:", "c:"]
    assert findings_lines([]) == ["findings: none"]
    coloured = findings_lines([_finding("b", "critical", [2])], color=True)
    assert "\x1b[" in coloured[0] and click.unstyle(coloured[0]) == "findings: 1 critical"


def test_analyze_summary_ends_with_the_findings():
    r = CliRunner().invoke(main, ["analyze", CAP, "--policy", os.path.join(ROOT, "fixtures", "policies",
                                                                          "strongswan-sun.yaml")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    tail = r.stdout.split("flows: ")[1].splitlines()[1:]
    assert tail[0].startswith("findings: ") and "\x1b[" not in r.stdout


def test_output_stream_writes_into_a_fifo_not_over_it(tmp_path):
    # -w /dev/null, a named pipe: written to as it is, never replaced by a file
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so that opening it to write does not block
    try:
        with output_stream(str(fifo), binary=True) as f:
            f.write(b"pcap bytes")
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        assert os.read(r, 100) == b"pcap bytes"
    finally:
        os.close(r)
    assert [p.name for p in tmp_path.iterdir()] == ["out.fifo"]  # no temporary file left


def test_exchange_swaps_two_files(tmp_path):
    from ipsecpcap.output import _exchange

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"new")
    b.write_bytes(b"old")
    if not _exchange(str(a), str(b)):  # pragma: no cover - not Linux, or a file system without it
        pytest.skip("renameat2 RENAME_EXCHANGE not available here")
    assert (a.read_bytes(), b.read_bytes()) == (b"old", b"new")
    assert not _exchange(str(tmp_path / "missing"), str(b))  # both must exist: nothing changed
    assert b.read_bytes() == b"new"


@pytest.mark.parametrize("exchange", [True, False])
def test_output_stream_replaces_an_existing_file_whole(tmp_path, monkeypatch, exchange):
    # over an existing file the names are exchanged (see output._exchange) or, where that cannot
    # be done, the file is renamed over it: either way the new content, an ordinary mode, no
    # temporary file left; and a write that fails leaves the old file as it was
    import ipsecpcap.output as output

    if not exchange:
        monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    out = tmp_path / "out.pcap"
    out.write_bytes(b"old capture")
    os.chmod(out, 0o600)
    with output_stream(str(out), binary=True) as f:
        f.write(b"new capture")
    assert out.read_bytes() == b"new capture"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["out.pcap"]
    with pytest.raises(RuntimeError):
        with output_stream(str(out), binary=True) as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert out.read_bytes() == b"new capture"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pcap"]


def test_dumps_is_json_dumps_with_the_default():
    """dumps keeps one encoder for rows (json.dumps made one per call): the same text."""
    import json

    from ipsecpcap.output import _json_default, dumps

    rows = [{"a": b"\x01\xff", "b": (1, 2), "c": {3}, "d": None, "e": 1.5e16, "f": "é\n", "g": [True, {"h": 0.1}]},
            [float("nan"), float("inf")], "x", 7]
    for row in rows:
        assert dumps(row) == json.dumps(row, default=_json_default)
        assert dumps(row, indent=2) == json.dumps(row, default=_json_default, indent=2)
