"""The progress bar (ipsecpcap.progress): what it shows, when it draws, that it is erased."""
import io
import os

from click.testing import CliRunner

from ipsecpcap.analysis import analyze
from ipsecpcap.cli import main, progress_for
from ipsecpcap.progress import ProgressBar, enabled, progress_bar

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAP = os.path.join(ROOT, "fixtures", "strongswan", "ikev2-cbc-rekey", "capture.pcap")
CAP2 = os.path.join(ROOT, "fixtures", "public", "zeek-spicy-ipsec", "ipsec.cap")


class Tty(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Reader:
    def __init__(self, name, bytes_read=0, frames=0):
        self.name, self.bytes_read, self.frames = name, bytes_read, frames


def test_bar_shows_bytes_of_the_total_frames_and_rate():
    clock, out = Clock(), Tty()
    size = os.path.getsize(CAP)
    bar = ProgressBar([CAP], out, clock=clock, width=200)
    r = Reader("capture.pcap")
    clock.t += 2
    r.bytes_read, r.frames = size // 2, 1000
    bar(r)
    assert out.getvalue().startswith("\r")
    assert "capture.pcap" in bar.line and " 50%" in bar.line and "1,000 frames" in bar.line
    assert "500 packets/s" in bar.line and "left" in bar.line
    assert "#" * 12 + "." * 12 in bar.line


def test_bar_draws_at_most_every_interval_and_close_erases_it():
    clock, out = Clock(), Tty()
    bar = ProgressBar([CAP], out, clock=clock, width=200, interval=0.5)
    r = Reader("capture.pcap", 10, 1)
    bar(r)
    drawn = out.getvalue()
    clock.t += 0.1
    r.frames = 2
    bar(r)
    assert out.getvalue() == drawn  # too soon: not drawn again
    clock.t += 0.5
    bar(r)
    assert out.getvalue() != drawn and "2 frames" in bar.line
    bar.close()
    assert out.getvalue().endswith("\r\033[K")
    bar.close()
    assert out.getvalue().endswith("\r\033[K") and out.getvalue().count("\033[K") == 1


def test_unknown_total_shows_what_was_read():
    clock, out = Clock(), Tty()
    bar = ProgressBar(["-"], out, clock=clock, width=200)
    assert bar.total is None
    clock.t += 1
    bar(Reader("<stdin>", 5_000_000, 42))
    assert "5.0 MB read" in bar.line and "42 frames" in bar.line and "%" not in bar.line


def test_several_captures_add_up_and_the_line_fits_the_width():
    clock, out = Clock(), Tty()
    bar = ProgressBar([CAP, CAP2], out, clock=clock, width=60, interval=0)
    a, b = Reader(CAP, os.path.getsize(CAP), 434), Reader(CAP2, 100, 3)
    bar(a)
    clock.t += 1
    bar(b)
    assert bar.frames == 437 and bar.bytes_read == os.path.getsize(CAP) + 100
    assert "2/2" in bar.line and len(bar.line) <= 59


def test_a_reader_without_byte_counts_does_not_stop_the_analysis():
    bar = ProgressBar([CAP], Tty(), clock=Clock(), width=100)
    bar(object())  # the tshark engine, or a rewritten reader, may hand over something else
    bar(Reader("x", bytes_read=None, frames=None))


def test_real_analysis_reports_every_byte_and_frame():
    out = Tty()
    bar = ProgressBar([CAP], out, width=200, interval=0)
    a = analyze([CAP], block_bytes=16384, progress=bar)
    assert bar.bytes_read == os.path.getsize(CAP)  # the reader consumed the whole file
    assert bar.frames == a.accounting.frames == 434
    assert out.getvalue().count("\r") >= 5  # one draw per block
    bar.close()


def test_only_on_a_terminal_and_not_quiet(monkeypatch):
    monkeypatch.delenv("TERM", raising=False)
    assert enabled(Tty()) and not enabled(io.StringIO()) and not enabled(Tty(), quiet=True)
    monkeypatch.setenv("TERM", "dumb")
    assert not enabled(Tty())
    monkeypatch.setenv("TERM", "xterm")
    assert isinstance(progress_bar([CAP], stream=Tty()), ProgressBar)
    assert progress_bar([CAP], quiet=True, stream=Tty()) is None
    assert progress_for([CAP], quiet=False) is None or os.isatty(2)  # pytest's stderr is no terminal


def test_no_progress_output_when_stderr_is_not_a_terminal():
    r = CliRunner().invoke(main, ["sas", CAP], catch_exceptions=False)
    assert r.exit_code == 0 and "\r" not in r.stderr and "packets/s" not in r.stderr
