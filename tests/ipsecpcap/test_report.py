"""The PDF findings report (ipsecpcap.report), read back with poppler's pdftotext and
rendered page by page with pdftoppm (poppler-utils, installed by .ci/run)."""
import csv
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from ipsecpcap.analysis import analyze
from ipsecpcap.cli import main
from ipsecpcap.records import FindingRow
from ipsecpcap.report import (MAX_FINDING_ROWS, MAX_FINDING_SECTIONS, MAX_SA_ROWS, MAX_TIMELINE_BARS, build_pdf,
                              section_findings, text, write_report)

try:
    from reference import tshark as tshark_ref
except ImportError:  # pragma: no cover
    from tests.reference import tshark as tshark_ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SS = os.path.join(ROOT, "fixtures", "strongswan")
AGGR = os.path.join(SS, "ikev1-aggressive-psk")
REKEY = os.path.join(SS, "ikev2-cbc-rekey")
NOPFS = os.path.join(SS, "ikev2-nopfs-rekey")
POLICY = os.path.join(ROOT, "fixtures", "policies", "strongswan-sun.yaml")
BENCH = [os.path.join(ROOT, "..", "shared", "perf", "make_bench_pcap.py"), "/work/shared/perf/make_bench_pcap.py"]

pytestmark = pytest.mark.skipif(not (shutil.which("pdftotext") and shutil.which("pdftoppm")),
                                reason="poppler-utils (pdftotext, pdftoppm) not installed: bash .ci/run installs it")

SECTIONS = ["IPsec findings report", "Captures", "Policy, keys and rules", "Executive summary",
            "Findings by severity", "What was seen", "Protected hosts", "Findings", "SA timeline", "IKE SAs",
            "IKE exchanges", "ESP and AH SAs", "Appendix A: frame accounting"]


# ---------------------------------------------------------------- helpers
def pdf_text(path, *, layout=False, page=None) -> str:
    args = ["pdftotext", "-enc", "UTF-8"] + (["-layout"] if layout else [])
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    return subprocess.run(args + [str(path), "-"], capture_output=True, text=True, check=True).stdout


def flat(s: str) -> str:
    """Text with every run of white space removed (table cells wrap anywhere)."""
    return re.sub(r"\s+", "", s)


def page_count(path) -> int:
    return len(pdf_text(path).split("\f")) - 1


def read_pnm(path):
    """(width, height, channels, bytes) of a binary PGM (P5) or PPM (P6) written by pdftoppm."""
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval; '#' comments are not written by pdftoppm
        m = re.compile(rb"\s*(\S+)").match(data, pos)
        fields.append(m.group(1))
        pos = m.end()
    pos += 1  # the single white space after maxval
    w, h = int(fields[1]), int(fields[2])
    channels = {b"P5": 1, b"P6": 3}[fields[0]]
    assert int(fields[3]) == 255
    return w, h, channels, data[pos:pos + w * h * channels]


def render(path, tmp_path, *, gray=True, page=None, dpi=30) -> list:
    """Each page as (width, height, channels, pixels)."""
    out = tmp_path / f"page-{os.path.basename(path)}-{page or 'all'}-{'g' if gray else 'c'}"
    args = ["pdftoppm", "-r", str(dpi)] + (["-gray"] if gray else [])
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    subprocess.run(args + [str(path), str(out)], check=True)
    files = sorted((p for p in tmp_path.iterdir() if p.name.startswith(out.name + "-")),
                   key=lambda p: int(re.search(r"-(\d+)\.p[gp]m$", p.name).group(1)))
    return [read_pnm(p) for p in files]


DARK = bytes(range(160))  # gray levels that count as ink


def assert_pages_not_blank(path, tmp_path):
    """Every page has ink above its footer (the footer alone would make any page non-blank)."""
    pages = render(path, tmp_path)
    assert len(pages) == page_count(path)
    for i, (w, h, _, px) in enumerate(pages, 1):
        body = px[: w * int(h * 0.93)]  # the footer line sits 13 mm (4.4 %) above the bottom
        dark = len(body) - len(body.translate(None, DARK))
        assert dark > 40, f"page {i} of {path} is blank above its footer ({dark} dark pixels)"


def key_hex(*files) -> list[str]:
    """The key material in Wireshark key tables (esp_sa columns 6 and 8, ikev1 table column 2)."""
    out = []
    for f in files:
        for line in open(f):
            if line.startswith("#") or not line.strip():
                continue
            cols = [c.strip('"') for c in next(csv.reader([line.strip()]))]
            if len(cols) >= 8:  # esp_sa
                out += [cols[5][2:].lower(), cols[7][2:].lower()]
            else:  # ikev1_decryption_table: cookie, key
                out.append(cols[1].lower())
    return [k for k in out if len(k) >= 16]


@pytest.fixture(scope="module")
def aggressive():
    return analyze([os.path.join(AGGR, "capture.pcap")],
                   keys=[os.path.join(AGGR, "esp_sa"), os.path.join(AGGR, "ikev1_decryption_table")])


@pytest.fixture(scope="module")
def aggressive_pdf(aggressive, tmp_path_factory):
    path = tmp_path_factory.mktemp("aggr") / "findings.pdf"
    write_report(aggressive, path, paths=[os.path.join(AGGR, "capture.pcap")])
    return path


# ---------------------------------------------------------------- content
def test_every_section_and_figure_is_there(aggressive, aggressive_pdf, tmp_path):
    txt = pdf_text(aggressive_pdf)
    f = flat(txt)
    for s in SECTIONS:
        assert flat(s) in f, s
    cap = os.path.join(AGGR, "capture.pcap")
    with open(cap, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() in f
    assert f"{os.path.getsize(cap):,}bytes" in f and "ipsecpcap0.1.0" in f
    expected = json.load(open(os.path.join(AGGR, "expected.json")))
    assert flat(f"Frames {expected['capture']['frames']} in 1 capture") in f
    for host in expected["hosts"].values():  # identities, as the daemons were configured
        assert host["id"] in f and host["address"] in f
    # findings: each with its section, evidence frames, meaning and fix
    assert aggressive.findings
    for rule in {x.rule for x in aggressive.findings}:
        assert rule in f
    for x in aggressive.findings:
        assert flat(x.title) in f
    assert f.count("Whatwasseen.") == len(aggressive.findings) == f.count("Howtofixit.")
    assert "Whatitmeans." in f and "References." in f
    counts = {s: sum(1 for x in aggressive.findings if x.severity == s) for s in ("high", "medium")}
    layout = pdf_text(aggressive_pdf, layout=True)
    for sev, n in counts.items():
        assert re.search(rf"^\s*{sev}\s+{n}\s*$", layout, re.M), sev  # the severity chart's figures
    # keys by fingerprint, never the key itself
    for k in aggressive.key_report():
        assert k["key"] in f
    keys = key_hex(os.path.join(AGGR, "esp_sa"), os.path.join(AGGR, "ikev1_decryption_table"))
    assert len(keys) == 5
    low = f.lower()
    for k in keys:
        assert k[:16] not in low
    # the accounting appendix and the timeline's own summary line
    acc = aggressive.accounting
    assert flat(f"{acc.frames} frames = {acc.analysed} analysed + {acc.skipped} skipped + {acc.malformed} "
                f"malformed") in f
    for cat in acc.by_category:
        assert flat(cat) in f
    bars = aggressive.timeline().bars
    assert flat(f"Showing {len(bars)} of {len(bars)} SAs in 1 of 1 peer pairs.") in f
    assert_pages_not_blank(aggressive_pdf, tmp_path)


@pytest.mark.skipif(not tshark_ref.tshark_available(), reason=tshark_ref.SKIP_REASON)
def test_exchanges_table_lists_the_ike_frames_tshark_sees(aggressive_pdf):
    out = subprocess.run(["tshark", "-r", os.path.join(AGGR, "capture.pcap"), "-Y", "isakmp", "-T", "fields",
                          "-e", "frame.number", "-e", "isakmp.ispi"], capture_output=True, text=True, check=True,
                         env=tshark_ref._env()).stdout.split("\n")
    rows = [line.split("\t") for line in out if line]
    assert len(rows) == 9
    layout = pdf_text(aggressive_pdf, layout=True)
    table = layout.split("IKE exchanges")[1].split("ESP and AH SAs")[0]
    listed = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s+\d\d:\d\d:\d\d\.\d{3}\s", table, re.M)]
    assert listed == [int(n) for n, _ in rows]
    assert all(ispi[:8] in table for _, ispi in rows)


def test_timeline_chart_is_drawn(tmp_path):
    a = analyze([os.path.join(REKEY, "capture.pcap")])
    path = tmp_path / "r.pdf"
    write_report(a, path)
    pages = pdf_text(path).split("\f")
    n = next(i for i, p in enumerate(pages, 1) if p.lstrip().startswith("SA timeline"))
    ((w, h, ch, px),) = render(path, tmp_path, gray=False, page=n, dpi=40)

    rgb_px = np.frombuffer(px, dtype=np.uint8).reshape(-1, 3).astype(int)

    def count(rgb, tol=30):
        return int((np.abs(rgb_px - np.array(rgb)) <= tol).all(axis=1).sum())

    bars = a.timeline().bars
    assert sum(1 for b in bars if b.protocol == "esp") == 8 and sum(1 for b in bars if b.deleted) >= 8
    assert count((0x2E, 0x7D, 0x32)) > 200  # ESP bars
    assert count((0x37, 0x47, 0x4F)) > 100  # IKE SA bars
    assert count((0xFF, 0x00, 0x00), tol=40) > 20  # deletion marks
    assert flat("Showing 10 of 10 SAs") in flat(pages[n - 1])


# ----------------------------------------------------------- packet text
MARKUP = "<b>&<font size=40>xy"


def test_packet_text_cannot_change_the_markup_real_capture(tmp_path):
    """The initiator's identity of an IKEv1 Aggressive Mode capture, replaced in the
    packet by markup of the same length, comes out literally."""
    data = open(os.path.join(AGGR, "capture.pcap"), "rb").read()
    ident = b"moon@strongswan.test"
    assert len(MARKUP) == len(ident) and data.count(ident) == 1
    cap = tmp_path / "markup.pcap"
    cap.write_bytes(data.replace(ident, MARKUP.encode()))
    a = analyze([cap])
    assert a.ike[0].initiator_id == MARKUP  # the identity really comes from the packet
    path = tmp_path / "markup.pdf"
    write_report(a, path, paths=[cap])
    f = flat(pdf_text(path))
    assert f.count(flat(MARKUP)) >= 2  # the IKE SAs table and the Aggressive Mode finding's evidence
    assert "moon@strongswan.test" not in f
    assert_pages_not_blank(path, tmp_path)


class _Policy:
    source = "policy<&>.yml"

    def __init__(self, protected):
        self.protected = protected


@dataclasses.dataclass
class _Entry:
    name: str
    hosts: tuple
    require: str = "encrypt"
    pfs: str = "none"
    exempt: tuple = ()
    allow_ports: tuple = ()


def test_crafted_records_are_escaped(tmp_path):
    a = analyze([os.path.join(AGGR, "capture.pcap")])
    evil = "<b>bold</b> & <font color=red>x</font> <para> \x00\x07 \u2603"
    finding = FindingRow(
        rule="crafted", severity="critical", title=f"title {evil}", detail=f"detail {evil}",
        remediation=f"fix {evil}", frames=[3, 4], frame_count=2, first_seen=a.ike[0].first_seen,
        last_seen=a.ike[0].last_seen, capture="capture.pcap", src="192.0.2.1", dst="192.0.2.2", proto="ikev1",
        port=None, spi=None, ike_sa=f"{a.ike[0].ispi}/{a.ike[0].rspi}", policy=f"host {evil}",
        evidence={"identity": evil, "list": [evil]})
    a.findings = [finding]  # a cached property: the crafted finding replaces the rule pack's
    a.policy = _Policy([_Entry(f"host {evil}", ("10.0.0.0/8",))])
    ike = a._ike
    a._ike = dataclasses.replace(ike, ike=[dataclasses.replace(ike.ike[0], initiator_id=evil,
                                                               vendor_ids=[evil, "plain"])])
    path = tmp_path / "crafted.pdf"
    build_pdf(a, str(path))
    f = flat(pdf_text(path))
    shown = flat(r"<b>bold</b> & <font color=red>x</font> <para> \x00\x07 \u2603")
    assert f.count(shown) >= 7  # title (twice), detail, fix, evidence (twice), policy entry, IKE SA, vendor ID
    assert flat("policy<&>.yml") in f and flat("no: 1 finding, worst critical") in f
    assert text("<a href='x'>&amp;") == "&lt;a href='x'&gt;&amp;amp;"
    assert text("caf\u00e9 \u2603\x00") == "caf\u00e9 \\u2603\\x00"
    assert_pages_not_blank(path, tmp_path)


def test_oversized_text_is_cut_so_every_table_row_fits_a_page(tmp_path):
    """A table row cannot break across pages: a cell holding thousands of SPIs or a
    5,000-character identity is cut (and says so) instead of failing the report."""
    a = analyze([os.path.join(AGGR, "capture.pcap")])
    spis = [f"0x{i:08x}" for i in range(5000)]
    a.findings = [FindingRow(
        rule="r" * 300, severity="low", title="t " * 400, detail="word " * 5000, remediation="fix " * 3000,
        frames=list(range(1, 101)), frame_count=100000, first_seen=None, last_seen=None, capture="c" * 3000,
        src="s" * 3000, dst=None, proto=None, port=None, spi=",".join(spis), ike_sa=None, policy=None,
        evidence={"spis": spis, "blob": "x" * 20000})] * 3
    ike = a._ike
    a._ike = dataclasses.replace(ike, ike=[dataclasses.replace(ike.ike[0], vendor_ids=["v" * 3000] * 10,
                                                               initiator_id="i" * 5000)])
    path = tmp_path / "big.pdf"
    pages = build_pdf(a, str(path))
    assert pages == page_count(path) <= 20
    f = flat(pdf_text(path))
    assert "morecharacters,intheexports" in f and flat("(100,000 frames in all)") in f


# ------------------------------------------------------------- variants
def test_no_findings(tmp_path):
    a = analyze([os.path.join(REKEY, "capture.pcap")])
    assert a.findings == []
    path = tmp_path / "none.pdf"
    write_report(a, path, paths=[os.path.join(REKEY, "capture.pcap")])
    txt = pdf_text(path)
    f = flat(txt)
    for s in SECTIONS:
        assert flat(s) in f, s
    assert "Nofindings." in f and "Policy:nonegiven" in f and "Keys:nonegiven" in f
    assert_pages_not_blank(path, tmp_path)
    # the notebook view writes the same report
    import ipsecpcap

    pages = ipsecpcap.analyze(os.path.join(REKEY, "capture.pcap")).to_pdf(tmp_path / "nb.pdf")
    assert pages == page_count(path) == page_count(tmp_path / "nb.pdf")


def test_protected_hosts_and_whether_their_policy_held(tmp_path):
    """sun requires a KE of its own for every child SA; the nopfs recording rekeys without one
    (its swanctl.conf has no DH group in esp_proposals), the cbc-rekey recording with one."""
    assert "modp" not in open(os.path.join(NOPFS, "swanctl-sun.conf")).read().split("esp_proposals")[1].split("\n")[0]
    held = {}
    for name, d in (("nopfs", NOPFS), ("pfs", REKEY)):
        a = analyze([os.path.join(d, "capture.pcap")], policy=POLICY)
        path = tmp_path / f"{name}.pdf"
        write_report(a, path)
        layout = pdf_text(path, layout=True)
        row = next(line for line in layout.splitlines() if line.strip().startswith("sun-server"))
        held[name] = row
        assert flat("192.0.2.2, 10.2.0.1") in flat(layout) and "Policy file:" in layout
    assert re.search(r"no: \d+ findings?, worst medium", held["nopfs"])
    assert "yes: no finding" in held["pfs"]


def _bench_script():
    return next((p for p in BENCH if os.path.exists(p)), None)


@pytest.mark.skipif(_bench_script() is None, reason="the shared benchmark generator (shared/perf) is not beside "
                                                    "the checkout")
def test_thousands_of_sas_are_summarised(tmp_path):
    cap = tmp_path / "bench.pcap"
    subprocess.run([sys.executable, _bench_script(), "--count", "30000", "--out", str(cap)], check=True,
                   stdout=subprocess.DEVNULL)
    a = analyze([cap])
    bars, sas = a.timeline().bars, a.sas
    assert len(sas) > 1500 and len(bars) > 1500
    path = tmp_path / "bench.pdf"
    pages = write_report(a, path, paths=[cap])
    assert pages == page_count(path) <= 60
    f = flat(pdf_text(path))
    assert flat(f"Showing {MAX_TIMELINE_BARS} of {len(bars):,} SAs") in f
    assert flat(f"{len(sas) - MAX_SA_ROWS:,} more SA directions not shown ({MAX_SA_ROWS} of {len(sas):,})") in f
    if len(a.findings) > MAX_FINDING_SECTIONS:  # the rule pack's business; crafted below either way
        assert flat(f"{MAX_FINDING_SECTIONS} of {len(a.findings):,} findings have a section of their own") in f
    assert_pages_not_blank(path, tmp_path)


def _crafted(rule, severity, i):
    return FindingRow(rule=rule, severity=severity, title=f"{rule} title", detail=f"detail {i}", remediation="fix",
                      frames=[i], frame_count=1, first_seen=None, last_seen=None, capture="c.pcap",
                      src=f"10.0.{i // 250}.{i % 250}", dst="10.1.0.1", proto="tcp", port=80, spi=None, ike_sa=None,
                      policy=None, evidence={"n": i})


def test_thousands_of_findings_are_summarised(tmp_path):
    fs = ([_crafted("loud", "high", i) for i in range(2000)]
          + [_crafted("quiet", "medium", 5000 + i) for i in range(3)] + [_crafted("rare", "low", 9000)])
    chosen = section_findings(fs)
    # the most severe first, but every rule gets sections before one rule takes them all
    assert len(chosen) == MAX_FINDING_SECTIONS and {2000, 2001, 2002, 2003} <= chosen
    assert sorted(chosen - {2000, 2001, 2002, 2003}) == list(range(MAX_FINDING_SECTIONS - 4))
    a = analyze([os.path.join(AGGR, "capture.pcap")])
    a.findings = fs
    path = tmp_path / "many.pdf"
    assert build_pdf(a, str(path)) <= 40
    f = flat(pdf_text(path))
    assert flat(f"{MAX_FINDING_SECTIONS} of 2,004 findings have a section of their own") in f
    assert f.count("Whatwasseen.") == MAX_FINDING_SECTIONS
    left = 2004 - MAX_FINDING_SECTIONS - MAX_FINDING_ROWS
    assert flat(f"{left:,} more findings not shown ({MAX_FINDING_ROWS} of {2004 - MAX_FINDING_SECTIONS:,})") in f
    layout = pdf_text(path, layout=True)
    assert re.search(r"HIGH\s+loud\s+loud title\s+2,000\s", layout)  # findings by rule, with their count


# ------------------------------------------------------------------- CLI
def test_report_command(tmp_path):
    out = tmp_path / "findings.pdf"
    r = CliRunner().invoke(main, ["report", os.path.join(NOPFS, "capture.pcap"), "--policy", POLICY,
                                  "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert re.search(r"wrote .*findings\.pdf: \d+ pages; findings: \d+ medium", r.stderr)
    assert os.listdir(tmp_path) == ["findings.pdf"] and "Child SA made without perfect forward secrecy" in pdf_text(out)
    r = CliRunner().invoke(main, ["report", os.path.join(NOPFS, "capture.pcap"), "-o", "-"], catch_exceptions=False)
    assert r.exit_code == 0 and r.stdout_bytes.startswith(b"%PDF-") and r.stdout_bytes.rstrip().endswith(b"%%EOF")


def test_report_command_failures_leave_no_file(tmp_path):
    out = tmp_path / "x.pdf"
    r = CliRunner().invoke(main, ["report", str(tmp_path / "missing.pcap"), "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 3 and os.listdir(tmp_path) == []
    r = CliRunner().invoke(main, ["report", os.path.join(REKEY, "capture.pcap"), "-o",
                                  str(tmp_path / "no" / "such" / "dir.pdf")], catch_exceptions=False)
    assert r.exit_code == 2 and "cannot write" in r.stderr
    r = CliRunner().invoke(main, ["report", os.path.join(REKEY, "capture.pcap")], catch_exceptions=False)
    assert r.exit_code == 2 and "-o" in r.output
