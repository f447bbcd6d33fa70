"""The PDF findings report, for an incident responder to hand on.

    >>> from ipsecpcap.report import write_report
    >>> write_report(analysis, "findings.pdf", paths=["capture.pcap"])

Sections, in order: a title page (each capture's name, size, SHA-256, time
span and frame count; the tool version; the policy and key files used, keys
by fingerprint only), the executive summary (findings by severity, key
figures, the protected hosts and whether their policy held), one section
per finding (evidence, what it means, how to fix it), the SA timeline chart
(one bar per SA, grouped by peer pair, rekeys and deletions marked), the IKE
SAs and IKE exchanges tables, the ESP/AH SAs, and an appendix with the frame
accounting.

A view only: everything comes from the record-level analysis
(:class:`ipsecpcap.analysis.Analysis`) and the rule pack's own text; the
report decides nothing.

Safety and size:

* Every piece of text that can come from a packet (IKE identities, vendor
  IDs, payload names, finding details, evidence) goes through :func:`text`:
  characters the built-in PDF fonts cannot show become ``\\xNN`` /
  ``\\uNNNN``, and ``& < >`` are escaped, so no packet can change the
  document's markup.  Only the built-in fonts (Helvetica, Courier) are used.
* Long tables are platypus tables that break across pages with their header
  row repeated.  Big analyses are summarised: the timeline shows at most
  ``MAX_TIMELINE_BARS`` bars (the busiest peer pairs first) and each table at
  most its ``MAX_*`` rows, each saying how many were left out and which
  export file has them all.  At most ``MAX_FINDING_SECTIONS`` findings get a
  section of their own (the most severe, at most ``PER_RULE_SECTIONS`` of one
  rule while other rules have findings waiting); the others are one line each
  in a table, and the executive summary counts the findings per rule.
* The file is written whole or not at all (temporary file, then rename).
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, Line, Polygon, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import (CondPageBreak, KeepTogether, LongTable, PageBreak, Paragraph, SimpleDocTemplate,
                                Spacer, TableStyle)

from . import __version__
from .records import SCHEMA_VERSION, SEVERITIES

MAX_FINDING_SECTIONS = 30  # findings with a section of their own; the others are listed in a table
PER_RULE_SECTIONS = 5  # sections per rule before another rule's findings get theirs
MAX_FINDING_ROWS = 150  # rows of that table
MAX_FINDING_FRAMES = 40  # evidence frame numbers printed per finding
MAX_TIMELINE_BARS = 120  # bars of the SA timeline chart (in pages of TIMELINE_PAGE_BARS)
TIMELINE_PAGE_BARS = 60
MAX_IKE_ROWS = 100
MAX_EXCHANGE_ROWS = 200
MAX_SA_ROWS = 200
MAX_KEY_ROWS = 200
MAX_CELL_CHARS = 600  # text in one table cell (a row must fit on a page); the exports have it whole
MAX_TITLE_CHARS = 300
MAX_TEXT_CHARS = 3000  # a finding's detail and remediation

PAGE = A4
MARGIN = 18 * mm
WIDTH = PAGE[0] - 2 * MARGIN  # usable width

SEVERITY_COLOURS = {
    "critical": colors.HexColor("#7b1010"),
    "high": colors.HexColor("#c62828"),
    "medium": colors.HexColor("#e65100"),
    "low": colors.HexColor("#1565c0"),
    "info": colors.HexColor("#546e7a"),
}
PROTOCOL_COLOURS = {
    "ikev1": colors.HexColor("#37474f"),
    "ikev2": colors.HexColor("#37474f"),
    "esp": colors.HexColor("#2e7d32"),
    "ah": colors.HexColor("#ef6c00"),
}
HEADER_BG = colors.HexColor("#e8eaf0")
GRID = colors.HexColor("#b0b4c0")


# ------------------------------------------------------------------ text
def _printable(ch: str) -> bool:
    o = ord(ch)
    if o < 0x20 or 0x7F <= o < 0xA0:
        return False
    try:
        ch.encode("cp1252")  # the built-in fonts' WinAnsi encoding
    except UnicodeEncodeError:
        return False
    return True


def text(value) -> str:
    """Any value as Paragraph-safe text: unprintable characters escaped as
    ``\\xNN``/``\\uNNNN``, then ``& < >`` as entities.  The only way text that
    may come from a packet enters the document."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    if not all(_printable(c) for c in s):
        s = "".join(c if _printable(c) else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
                    for c in s)
    return escape(s)


def cut(value, limit: int = MAX_CELL_CHARS) -> str:
    """Text of at most ``limit`` characters, saying how much was left out."""
    s = "" if value is None else value if isinstance(value, str) else str(value)
    if len(s) <= limit:
        return s
    return f"{s[:limit]} ... ({len(s) - limit:,} more characters, in the exports)"


def plain(value) -> str:
    """Text for graphics strings and the PDF outline (no markup there): printable only."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    return "".join(c if _printable(c) else "?" for c in s)


def ts_text(v, date: bool = True) -> str:
    if v is None:
        return ""
    fmt = "%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f"
    return datetime.fromtimestamp(v, timezone.utc).strftime(fmt)[:-3]


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    if n < 1024:
        return f"{n:,} bytes"
    v, unit = float(n), "bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        v /= 1024
        if v < 1024:
            break
    return f"{v:,.1f} {unit} ({n:,} bytes)"


def _duration(s: float | None) -> str:
    if s is None:
        return ""
    if s < 120:
        return f"{s:.3f} s"
    m, sec = divmod(s, 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{sec:06.3f}" if h else f"{m}:{sec:06.3f}"


# ---------------------------------------------------------------- styles
def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName="Helvetica", fontSize=9, leading=11.5, spaceAfter=4)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=10),
        "note": ParagraphStyle("note", parent=base, fontSize=8, leading=10, textColor=colors.HexColor("#555555")),
        "title": ParagraphStyle("title", parent=base, fontName="Helvetica-Bold", fontSize=22, leading=28,
                                spaceAfter=6),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=11, leading=14, spaceAfter=14,
                                   textColor=colors.HexColor("#444444")),
        "h1": ParagraphStyle("h1", parent=base, fontName="Helvetica-Bold", fontSize=15, leading=19, spaceBefore=6,
                             spaceAfter=8),
        "h2": ParagraphStyle("h2", parent=base, fontName="Helvetica-Bold", fontSize=11.5, leading=14,
                             spaceBefore=10, spaceAfter=5),
        "h3": ParagraphStyle("h3", parent=base, fontName="Helvetica-Bold", fontSize=9.5, leading=12,
                             spaceBefore=5, spaceAfter=2),
        "cell": ParagraphStyle("cell", parent=base, fontSize=7, leading=8.5, spaceAfter=0),
        "cellb": ParagraphStyle("cellb", parent=base, fontName="Helvetica-Bold", fontSize=7, leading=8.5,
                                spaceAfter=0),
        # code-like cells (SPIs, hashes, identities): may break anywhere
        "mono": ParagraphStyle("mono", parent=base, fontName="Courier", fontSize=6.8, leading=8.5, spaceAfter=0,
                               wordWrap="CJK"),
        "wrap": ParagraphStyle("wrap", parent=base, fontSize=7, leading=8.5, spaceAfter=0, wordWrap="CJK"),
        "badge": ParagraphStyle("badge", parent=base, fontName="Helvetica-Bold", fontSize=7.5, leading=9,
                                textColor=colors.white, alignment=TA_CENTER, spaceAfter=0),
    }


class Heading(Paragraph):
    """A section heading that becomes an entry of the PDF outline."""

    def __init__(self, title: str, style, level: int, key: str):
        super().__init__(text(title), style)
        self.outline = (plain(title), level, key)


class _NumberedCanvas(rl_canvas.Canvas):
    """Pages know how many there are ("page 3 of 12")."""

    footer_left = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self):
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        n = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self._footer(n)
            super().showPage()
        super().save()

    def _footer(self, n: int) -> None:
        self.saveState()
        self.setFont("Helvetica", 7)
        self.setFillColor(colors.HexColor("#666666"))
        self.drawString(MARGIN, 10 * mm, plain(self.footer_left))
        self.drawRightString(PAGE[0] - MARGIN, 10 * mm, f"page {self._pageNumber} of {n}")
        self.setStrokeColor(GRID)
        self.setLineWidth(0.4)
        self.line(MARGIN, 13 * mm, PAGE[0] - MARGIN, 13 * mm)
        self.restoreState()


# ----------------------------------------------------------------- tables
def table(rows: list[list], widths: list[float], header: list[str] | None = None, zebra: bool = True,
          extra_style: list | None = None) -> LongTable:
    """A table that breaks across pages with its header repeated; cells are
    flowables or (escaped) text."""
    st = _STYLES
    data = []
    if header is not None:
        data.append([Paragraph(text(h), st["cellb"]) for h in header])
    for r in rows:
        data.append([c if not isinstance(c, str) else Paragraph(c, st["cell"]) for c in r])
    style = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.3, GRID),
        ("LEFTPADDING", (0, 0), (-1, -1), 2.5),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2.5),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
    if header is not None:
        style.append(("BACKGROUND", (0, 0), (-1, 0), HEADER_BG))
    if zebra:
        first = 1 if header is not None else 0
        for i in range(first + 1, len(data), 2):
            style.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#f6f7fa")))
    style.extend(extra_style or [])
    t = LongTable(data, colWidths=widths, repeatRows=1 if header is not None else 0, hAlign="LEFT")
    t.setStyle(TableStyle(style))
    return t


def kv_table(pairs: list[tuple[str, object]], key_width: float = 38 * mm, mono: set | None = None) -> LongTable:
    """Label / value rows; values are escaped (``mono``: labels shown in Courier)."""
    st = _STYLES
    rows = []
    for k, v in pairs:
        style = st["mono"] if mono and k in mono else st["wrap"]
        rows.append([Paragraph(text(cut(k, 80)), st["cellb"]), v if not isinstance(v, (str, type(None), int, float))
                     else Paragraph(text(cut(v)), style)])
    return table(rows, [key_width, WIDTH - key_width], zebra=False,
                 extra_style=[("BACKGROUND", (0, 0), (0, -1), HEADER_BG)])


def badge(severity: str) -> LongTable:
    t = LongTable([[Paragraph(text(severity.upper()), _STYLES["badge"])]], colWidths=[16 * mm])
    t.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), SEVERITY_COLOURS.get(severity, colors.grey)),
                           ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                           ("LEFTPADDING", (0, 0), (-1, -1), 1), ("RIGHTPADDING", (0, 0), (-1, -1), 1)]))
    return t


def _c(v) -> str:
    """A cell's escaped text."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return text(cut(", ".join(str(x) for x in v)))
    if isinstance(v, dict):
        return text(cut(", ".join(f"{k}={x}" for k, x in v.items())))
    return text(cut(v))


def _mono(v) -> Paragraph:
    return Paragraph(_c(v), _STYLES["mono"])


def _left_out(n_shown: int, n_all: int, what: str, export: str) -> list:
    if n_all <= n_shown:
        return []
    return [Paragraph(text(f"... {n_all - n_shown:,} more {what} not shown ({n_shown:,} of {n_all:,}); "
                           f"all of them are in the exports ({export})."), _STYLES["note"])]


_STYLES = _styles()


# ------------------------------------------------------------------ report
class Report:
    """Builds the story (the list of flowables) of one report."""

    def __init__(self, analysis, captures: list[dict] | None = None, rules=None, generated: float | None = None):
        self.a = analysis
        self.captures = captures
        self.st = _STYLES
        self.generated = generated
        self.findings = list(analysis.findings)
        self.rules = rules if rules is not None else self._rules()
        self.summary = analysis.summary()

    def _rules(self) -> dict:
        try:
            from .rules.engine import load_rules

            return {r.id: r for r in load_rules(getattr(self.a, "rule_dirs", ()))}
        except Exception:  # noqa: BLE001 - the findings exist already; the rule text is a nicety
            return {}

    def p(self, s: str, style: str = "body") -> Paragraph:
        """A paragraph of our own text (already escaped or markup we wrote)."""
        return Paragraph(s, self.st[style])

    def story(self) -> list:
        out = []
        out += self.title_page()
        out += self.executive_summary()
        out += self.finding_sections()
        out += self.timeline_section()
        out += self.ike_section()
        out += self.sa_section()
        out += self.appendix()
        return out

    # ---- title page
    def title_page(self) -> list:
        st, s = self.st, self.summary
        names = s["captures"]
        out = [Spacer(1, 20 * mm), Heading("IPsec findings report", st["title"], 0, "title"),
               self.p(text(", ".join(names) if len(names) <= 4 else f"{', '.join(names[:4])} and "
                           f"{len(names) - 4} more captures"), "subtitle")]
        gen = datetime.fromtimestamp(self.generated, timezone.utc) if self.generated else datetime.now(timezone.utc)
        out.append(kv_table([
            ("Tool", f"ipsecpcap {__version__} (record schema {SCHEMA_VERSION})"),
            ("Generated", gen.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("Time span", (f"{ts_text(s['first_seen'])} .. {ts_text(s['last_seen'])} UTC "
                           f"({_duration(s['duration'])})") if s["first_seen"] is not None else "no timestamps"),
            ("Frames", f"{s['frames']:,} in {len(names)} capture{'s' if len(names) != 1 else ''}"),
        ]))
        out.append(Heading("Captures", st["h2"], 1, "captures"))
        caps = self.captures
        if caps is None:
            caps = [{"name": n, "path": None, "size": None, "sha256": None, "frames": None, "first_seen": None,
                     "last_seen": None, "note": "capture file not available to the report: not hashed"}
                    for n in names]
        for i, c in enumerate(caps, 1):
            span = (f"{ts_text(c['first_seen'])} .. {ts_text(c['last_seen'])} UTC "
                    f"({_duration(c['last_seen'] - c['first_seen'])})") if c.get("first_seen") is not None else (
                "unknown")
            pairs = [(f"Capture {i}", c["name"]), ("Size", _size(c.get("size"))),
                     ("SHA-256", c.get("sha256") or "not computed"), ("Time span", span),
                     ("Frames", f"{c['frames']:,}" if c.get("frames") is not None else "unknown")]
            if c.get("note"):
                pairs.append(("Note", c["note"]))
            out += [KeepTogether(kv_table(pairs, mono={"SHA-256"})), Spacer(1, 3)]
        out.append(Heading("Policy, keys and rules", st["h2"], 1, "inputs"))
        pol = self.a.policy
        if pol is None:
            out.append(self.p("Policy: none given (<font name='Courier'>--policy</font>); the rules that "
                              "check protected hosts did not run."))
        else:
            source = getattr(pol, "source", None) or "(given as an object)"
            n = len(getattr(pol, "protected", ()) or ())
            out.append(self.p(f"Policy file: <font name='Courier'>{text(source)}</font>, {n} protected host "
                              f"entr{'y' if n == 1 else 'ies'}."))
        keys = self.a.key_report() if getattr(self.a, "keys", None) is not None else []
        if not keys:
            out.append(self.p("Keys: none given (<font name='Courier'>--keys</font>); ESP and encrypted IKE were "
                              "analysed from what the cleartext shows."))
        else:
            used = sum(1 for k in keys if k["verified_on"])
            out.append(self.p(f"Keys: {len(keys)} loaded, {used} verified on at least one SA. Keys are named by "
                              f"fingerprint only; no key material is in this report."))
            rows = [[_mono(k["key"]), _c(k["kind"]), _mono(k["source"]), _mono(k["spi"]),
                     _c(f"{len(k['verified_on'])} SA(s): " + ", ".join(k["verified_on"][:3])
                        + (" ..." if len(k["verified_on"]) > 3 else "") if k["verified_on"] else "matched nothing")]
                    for k in keys[:MAX_KEY_ROWS]]
            out.append(table(rows, [24 * mm, 12 * mm, 52 * mm, 30 * mm, WIDTH - 118 * mm],
                             ["fingerprint", "kind", "key file", "SPI", "verified on"]))
            out += _left_out(min(len(keys), MAX_KEY_ROWS), len(keys), "keys", "summary.json")
        n_rules = len(self.rules)
        extra = list(getattr(self.a, "rule_dirs", []) or [])
        out.append(self.p(f"Rules: {n_rules} in the pack" + (f", with extra rule directories "
                                                             f"{text(', '.join(map(str, extra)))}" if extra else "")
                          + "."))
        out.append(PageBreak())
        return out

    # ---- executive summary
    def executive_summary(self) -> list:
        st, s, fs = self.st, self.summary, self.findings
        out = [Heading("Executive summary", st["h1"], 0, "summary")]
        counts = {sev: 0 for sev in reversed(SEVERITIES)}
        for f in fs:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        if fs:
            worst = next(sev for sev, n in counts.items() if n)
            out.append(self.p(f"<b>{len(fs)} finding{'s' if len(fs) != 1 else ''}</b>; the most severe is "
                              f"<b>{text(worst)}</b>."))
        else:
            out.append(self.p("<b>No findings.</b> None of the rules in the pack fired on these captures"
                              + ("" if self.a.policy is not None else
                                 " (without a policy, the rules about protected hosts did not run)") + "."))
        out.append(Heading("Findings by severity", st["h2"], 1, "by-severity"))
        out.append(severity_chart(counts))
        out.append(Heading("What was seen", st["h2"], 1, "figures"))
        acc = self.a.accounting
        figures = [
            ("Frames", f"{acc.frames:,} = {acc.analysed:,} analysed + {acc.skipped:,} skipped + "
                       f"{acc.malformed:,} malformed (appendix A)"),
            ("IKE", f"{s['ike_messages']:,} messages in {s['ike_sas']:,} IKE SAs"),
            ("ESP / AH", f"{s['esp_sas']:,} ESP SA directions ({s['esp_packets']:,} packets), {s['ah_sas']:,} AH "
                         f"({s['ah_packets']:,} packets); {len(self.a.child_sas):,} child SAs"),
            ("Other traffic", f"{s['flows']:,} non-IPsec flows (5-tuples)"),
        ]
        out.append(kv_table(figures))
        out += self.protected_hosts()
        if fs:
            out.append(Heading("Findings by rule", st["h2"], 1, "by-rule"))
            by_rule: dict[tuple, list] = {}
            for f in fs:
                by_rule.setdefault((f.rule, f.severity), []).append(f)
            rows = []
            for (rule, sev), group in by_rule.items():
                where = sorted({self._where(f) for f in group})
                rows.append([badge(sev), _mono(rule), _c(group[0].title), _c(f"{len(group):,}"),
                             _c("; ".join(where[:3]) + (f"; ... {len(where) - 3:,} more" if len(where) > 3 else ""))])
            out.append(table(rows, [18 * mm, 34 * mm, 55 * mm, 13 * mm, WIDTH - 120 * mm],
                             ["severity", "rule", "title", "count", "where"]))
        out.append(PageBreak())
        return out

    @staticmethod
    def _where(f) -> str:
        ends = " > ".join(x for x in (f.src, f.dst) if x)
        port = f"{f.proto or ''}/{f.port}" if f.port is not None else (f.proto or "")
        return " ".join(x for x in (ends, port, f"SPI {f.spi}" if f.spi else "") if x)

    def protected_hosts(self) -> list:
        st = self.st
        out = [Heading("Protected hosts", st["h2"], 1, "protected")]
        pol = self.a.policy
        entries = list(getattr(pol, "protected", None) or []) if pol is not None else []
        if pol is None:
            out.append(self.p("No policy was given, so no host was checked against what it requires "
                              "(<font name='Courier'>ipsecpcap report --policy FILE</font>)."))
            return out
        if not entries:
            out.append(self.p("The policy names no protected hosts."))
            return out
        rank = {sev: i for i, sev in enumerate(SEVERITIES)}
        rows = []
        for e in entries:
            name = getattr(e, "name", "")
            hits = [f for f in self.findings if f.policy == name]
            if hits:
                worst = max(hits, key=lambda f: rank.get(f.severity, 0)).severity
                held = Paragraph(f"<b>no</b>: {len(hits)} finding{'s' if len(hits) != 1 else ''}, worst "
                                 f"{text(worst)}", ParagraphStyle("held", parent=st["cell"],
                                                                  textColor=SEVERITY_COLOURS.get(worst)))
            else:
                held = Paragraph("<b>yes</b>: no finding", st["cell"])
            hosts = ", ".join(str(h.network_address) if getattr(h, "num_addresses", 0) == 1 else str(h)
                              for h in getattr(e, "hosts", ()) or ())
            req = [f"require {getattr(e, 'require', '')}", f"PFS {getattr(e, 'pfs', '')}"]
            ex = [str(x) for x in (getattr(e, "exempt", ()) or ())]
            allow = [str(x) for x in (getattr(e, "allow_ports", ()) or ())]
            if ex:
                req.append("exempt " + ", ".join(ex))
            if allow:
                req.append("plaintext allowed " + ", ".join(allow))
            rows.append([_c(name), _mono(hosts), _c("; ".join(req)), held])
        out.append(table(rows, [34 * mm, 40 * mm, 56 * mm, WIDTH - 130 * mm],
                         ["protected host", "addresses", "requires", "policy held"]))
        return out

    # ---- findings
    def finding_sections(self) -> list:
        st, fs = self.st, self.findings
        out = [Heading("Findings", st["h1"], 0, "findings")]
        if not fs:
            out.append(self.p("No findings. The analysis of these captures raised none of the rule pack's "
                              f"{len(self.rules)} rules; the tables that follow show what was seen."))
            out.append(PageBreak())
            return out
        chosen = section_findings(fs)
        if len(chosen) < len(fs):
            out.append(self.p(text(f"{len(chosen)} of {len(fs):,} findings have a section of their own (the most "
                                   f"severe, at most {PER_RULE_SECTIONS} per rule); the other "
                                   f"{len(fs) - len(chosen):,} follow, one line each."), "small"))
        for i, f in enumerate(fs, 1):
            if i - 1 in chosen:
                out += self.finding(i, f)
        rest = [(i, f) for i, f in enumerate(fs, 1) if i - 1 not in chosen]
        if rest:
            out.append(Heading("Further findings", st["h2"], 1, "more-findings"))
            shown = rest[:MAX_FINDING_ROWS]
            rows = [[str(i), badge(f.severity), _mono(f.rule), _c(f.title), _c(self._where(f)),
                     _c(", ".join(map(str, f.frames[:4])) + (" ..." if f.frame_count > 4 else ""))]
                    for i, f in shown]
            out.append(table(rows, [10 * mm, 18 * mm, 32 * mm, 46 * mm, 44 * mm, WIDTH - 150 * mm],
                             ["#", "severity", "rule", "title", "where", "frames"]))
            out += _left_out(len(shown), len(rest), "findings", "findings.json, findings.parquet")
        out.append(PageBreak())
        return out

    def finding(self, i: int, f) -> list:
        st = self.st
        rule = self.rules.get(f.rule)
        head = table([[badge(f.severity), Paragraph(f"{i}. {text(cut(f.title, MAX_TITLE_CHARS))}", st["h2"])]],
                     [18 * mm, WIDTH - 18 * mm], zebra=False,
                     extra_style=[("GRID", (0, 0), (-1, -1), 0, colors.white), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")])
        frames = ", ".join(map(str, f.frames[:MAX_FINDING_FRAMES]))
        if f.frame_count > min(len(f.frames), MAX_FINDING_FRAMES):
            frames += f" ... ({f.frame_count:,} frames in all)"
        ev = [("Rule", f"{f.rule}" + (f" (rev {rule.rev})" if rule is not None else "")),
              ("Severity", f.severity),
              ("Frames", frames or "none"),
              ("Capture", f.capture),
              ("First seen", f"{ts_text(f.first_seen)} UTC" if f.first_seen is not None else None),
              ("Last seen", f"{ts_text(f.last_seen)} UTC" if f.last_seen is not None else None),
              ("Endpoints", " > ".join(x for x in (f.src, f.dst) if x) or None),
              ("Protocol / port", " / ".join(str(x) for x in (f.proto, f.port) if x is not None) or None),
              ("SPI", f.spi), ("IKE SA", f.ike_sa), ("Policy entry", f.policy)]
        for k, v in (f.evidence or {}).items():
            ev.append((str(k), v if isinstance(v, str) else _json(v)))
        ev = [(k, v) for k, v in ev if v not in (None, "")]
        out = [CondPageBreak(60 * mm), _OutlineOnly(f"{i}. {cut(f.title, 120)}", 1, f"finding-{i}"), head]
        out.append(Paragraph("<b>What was seen.</b> " + text(cut(f.detail, MAX_TEXT_CHARS)), st["body"]))
        out.append(kv_table(ev, key_width=30 * mm, mono={"SPI", "IKE SA", "Frames"}))
        out.append(Spacer(1, 3))
        if rule is not None and rule.description:
            out.append(Paragraph("<b>What it means.</b> " + text(rule.description), st["body"]))
        fix = f.remediation or (rule.remediation if rule else "")
        out.append(Paragraph("<b>How to fix it.</b> " + text(cut(fix, MAX_TEXT_CHARS)), st["body"]))
        if rule is not None and rule.references:
            out.append(Paragraph("<b>References.</b> " + text("; ".join(rule.references)), st["small"]))
        out.append(Spacer(1, 6))
        return out

    # ---- timeline
    def timeline_section(self) -> list:
        st = self.st
        out = [Heading("SA timeline", st["h1"], 0, "timeline")]
        tl = self.a.timeline()
        if not tl.bars:
            out.append(self.p("No IKE, ESP or AH SA was seen."))
            out.append(PageBreak())
            return out
        charts, note = timeline_charts(tl.bars, tl.events)
        out.append(self.p(text(note), "small"))
        for d in charts:
            out += [d, Spacer(1, 4)]
        out.append(PageBreak())
        return out

    # ---- IKE
    def ike_section(self) -> list:
        st = self.st
        out = [Heading("IKE", st["h1"], 0, "ike"), Heading("IKE SAs", st["h2"], 1, "ike-sas")]
        ike = self.a.ike
        if not ike:
            out.append(self.p("No IKE SA was seen."))
        else:
            shown = ike[:MAX_IKE_ROWS]
            rows = []
            for r in shown:
                algs = " / ".join(x for x in (r.enc, r.integ, r.prf, f"DH {r.dh_group}" if r.dh_group else None) if x)
                life = []
                if r.established is not None:
                    life.append(f"established {ts_text(r.established)} by {r.established_by}")
                if r.rekey_of:
                    life.append(f"rekey of {r.rekey_of}" + (" (inferred)" if r.rekey_inferred else ""))
                if r.deleted is not None:
                    life.append(f"deleted {ts_text(r.deleted)}" + (" (inferred)" if r.delete_inferred else ""))
                ids = "; ".join(x for x in (f"I: {r.initiator_id}" if r.initiator_id else None,
                                            f"R: {r.responder_id}" if r.responder_id else None) if x)
                rows.append([_c(f"v{r.version}"), _mono(f"{r.ispi}/{r.rspi}"),
                             _c(f"{r.initiator or '?'} > {r.responder or '?'}"), _c(r.mode),
                             _c(algs + (f"; auth {r.auth_method}" if r.auth_method else "")),
                             _mono(ids), _c(", ".join(r.vendor_ids)),
                             _c(f"{r.messages} msgs; " + "; ".join(life))])
            out.append(table(rows, [7 * mm, 24 * mm, 24 * mm, 14 * mm, 27 * mm, 26 * mm, 23 * mm, WIDTH - 145 * mm],
                             ["v", "SPIs (i/r)", "initiator > responder", "mode", "algorithms", "identities",
                              "vendor IDs", "lifecycle"]))
            out += _left_out(len(shown), len(ike), "IKE SAs", "ike.parquet, ike.jsonl")
        out.append(Heading("IKE exchanges", st["h2"], 1, "exchanges"))
        ex = self.a.exchanges
        if not ex:
            out.append(self.p("No IKE message was seen."))
        else:
            shown = ex[:MAX_EXCHANGE_ROWS]
            rows = []
            for r in shown:
                flags = "".join(("I" if r.initiator else "", "R" if r.response else "", " E" if r.encrypted else ""))
                rows.append([_c(r.frame), _c(ts_text(r.ts, date=False)),
                             _c(f"{r.src}:{r.sport} > {r.dst}:{r.dport}"), _c(f"v{r.version}"), _c(r.exchange),
                             _mono(f"{r.ispi[:8]}../{r.rspi[:8]}.."), _c(r.mid), _c(flags.strip()),
                             Paragraph(_c(r.payloads), self.st["wrap"]), _c(r.decryption or "")])
            out.append(table(rows, [9 * mm, 17 * mm, 33 * mm, 6 * mm, 27 * mm, 20 * mm, 7 * mm, 9 * mm,
                                    WIDTH - 146 * mm, 18 * mm],
                             ["frame", "time (UTC)", "src > dst", "v", "exchange", "SPIs", "mid", "flags",
                              "payloads", "decryption"]))
            out += _left_out(len(shown), len(ex), "IKE messages", "exchanges.parquet, exchanges.jsonl")
        out.append(PageBreak())
        return out

    # ---- ESP / AH
    def sa_section(self) -> list:
        st = self.st
        out = [Heading("ESP and AH SAs", st["h1"], 0, "sas")]
        sas = self.a.sas
        if not sas:
            out.append(self.p("No ESP or AH packet was seen."))
            return out + [PageBreak()]
        order = sorted(sas, key=lambda r: (-r.packets, r.first_seen))
        shown = order[:MAX_SA_ROWS]
        if len(shown) < len(sas):
            out.append(self.p(text(f"The {len(shown):,} busiest of {len(sas):,} SA directions, by packets."), "small"))
        rows = []
        for r in shown:
            life = " ".join(x for x in (r.created_by and f"by {r.created_by}",
                                        r.rekey_of and f"rekey of {r.rekey_of}",
                                        r.deleted is not None and "deleted") if x)
            seq = "" if not (r.replays or r.gaps or r.seq_resets) else (
                f"{r.replays} replays, {r.gaps} gaps, {r.seq_resets} resets")
            rows.append([_c(r.protocol), _mono(r.spi), _c(f"{r.src} > {r.dst}" + (" (UDP)" if r.udp_encap else "")),
                         _c(f"{r.packets:,}"), _c(f"{ts_text(r.first_seen, False)} .. {ts_text(r.last_seen, False)}"),
                         _c(" / ".join(x for x in (r.enc, r.integ) if x)),
                         _c(f"{r.decrypted:,} ok, {r.integrity_failures:,} failed" if r.key else ""),
                         _c("; ".join(x for x in (life, seq) if x))])
        out.append(table(rows, [9 * mm, 18 * mm, 36 * mm, 14 * mm, 31 * mm, 24 * mm, 18 * mm, WIDTH - 150 * mm],
                         ["proto", "SPI", "src > dst", "packets", "first .. last (UTC)", "algorithms",
                          "verified", "lifecycle, sequence"]))
        out += _left_out(len(shown), len(sas), "SA directions", "sas.parquet, sas.jsonl")
        out.append(PageBreak())
        return out

    # ---- appendix
    def appendix(self) -> list:
        st = self.st
        acc = self.a.accounting
        out = [Heading("Appendix A: frame accounting", st["h1"], 0, "accounting"),
               self.p(text(f"Every frame of the captures is counted exactly once: {acc.frames:,} frames = "
                           f"{acc.analysed:,} analysed + {acc.skipped:,} skipped + {acc.malformed:,} malformed."))]
        rows = [[_c(cat.split(":", 1)[0]), _mono(cat), _c(f"{n:,}"), _c(f"{100 * n / acc.frames:.2f} %"
                                                                        if acc.frames else "")]
                for cat, n in acc.by_category.items()]
        rows.append([Paragraph("<b>total</b>", st["cell"]), _c(""), Paragraph(f"<b>{acc.frames:,}</b>", st["cell"]),
                     _c("100 %" if acc.frames else "")])
        out.append(table(rows, [22 * mm, 100 * mm, 24 * mm, WIDTH - 146 * mm],
                         ["status", "category", "frames", "share"]))
        extra = []
        if acc.reassembly.get("reassembled") or acc.reassembly.get("incomplete"):
            extra.append(("IP reassembly", f"{acc.reassembly.get('reassembled', 0):,} datagrams reassembled, "
                                           f"{acc.reassembly.get('incomplete', 0):,} incomplete"))
        if acc.nat_keepalives:
            extra.append(("NAT-T keep-alives", f"{acc.nat_keepalives:,}"))
        if extra:
            out += [Spacer(1, 6), kv_table(extra)]
        warnings = list(self.summary.get("warnings") or [])
        problems = list(self.summary.get("key_problems") or [])
        if warnings or problems:
            out.append(Heading("Warnings", st["h2"], 1, "warnings"))
            for w in warnings[:200]:
                out.append(Paragraph(text(w), st["small"]))
            for w in problems[:200]:
                out.append(Paragraph(text(f"key not used: {w}"), st["small"]))
        return out


class _OutlineOnly(Spacer):
    """A zero-height flowable that adds an outline entry where it stands."""

    def __init__(self, title: str, level: int, key: str):
        super().__init__(0, 0)
        self.outline = (plain(title), level, key)


class _OutlineDoc(SimpleDocTemplate):
    """Headings (anything with an ``outline``) become PDF bookmarks."""

    def afterFlowable(self, flowable):
        outline = getattr(flowable, "outline", None)
        if outline is not None:
            title, level, key = outline
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(title, key, level=level, closed=level > 0)


def section_findings(findings: list, limit: int = MAX_FINDING_SECTIONS, per_rule: int = PER_RULE_SECTIONS
                     ) -> set[int]:
    """Indexes of the findings that get a section: in the given order (most
    severe first), at most ``per_rule`` of each rule, then more of the same
    rules while room is left; at most ``limit`` in all."""
    chosen: set[int] = set()
    per: dict[str, int] = {}
    for i, f in enumerate(findings):
        if len(chosen) >= limit:
            break
        if per.get(f.rule, 0) < per_rule:
            chosen.add(i)
            per[f.rule] = per.get(f.rule, 0) + 1
    for i in range(len(findings)):
        if len(chosen) >= limit:
            break
        chosen.add(i)
    return chosen


def _json(v) -> str:
    import json

    return json.dumps(v, default=str, ensure_ascii=False)


# ---------------------------------------------------------------- charts
def severity_chart(counts: dict[str, int]) -> Drawing:
    """Horizontal bars, one per severity, most severe on top."""
    row, label_w, h = 13, 60, 13 * len(counts) + 4
    d = Drawing(WIDTH, h)
    top = max(counts.values()) if counts else 0
    span = WIDTH - label_w - 60
    for i, (sev, n) in enumerate(counts.items()):
        y = h - (i + 1) * row
        d.add(String(0, y + 3, sev, fontName="Helvetica-Bold", fontSize=8, fillColor=SEVERITY_COLOURS[sev]))
        w = span * n / top if top else 0
        if n:
            d.add(Rect(label_w, y + 1, max(w, 1.5), row - 4, fillColor=SEVERITY_COLOURS[sev], strokeColor=None))
        d.add(String(label_w + w + 4, y + 3, f"{n:,}", fontName="Helvetica", fontSize=8))
    return d


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = span / ticks
    steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900,
             1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800]
    return next((s for s in steps if s >= raw), raw)


def _pair(b) -> tuple:
    return tuple(sorted((b.src or "?", b.dst or "?")))


def select_bars(bars: list, limit: int = MAX_TIMELINE_BARS) -> tuple[list[tuple[tuple, list]], int, int]:
    """Group the bars by peer pair, busiest pair (packets) first, and keep at
    most ``limit`` bars: whole pairs while they fit, then the busiest bars of
    the next pair.  Returns ``([(pair, bars)], pairs in all, bars left out)``."""
    groups: dict[tuple, list] = {}
    for b in bars:
        groups.setdefault(_pair(b), []).append(b)
    order = sorted(groups.items(), key=lambda kv: (-sum(b.packets for b in kv[1]), kv[0]))
    out, left = [], limit
    for pair, bs in order:
        if left <= 0:
            break
        if len(bs) > left:
            bs = sorted(bs, key=lambda b: -b.packets)[:left]
        bs = sorted(bs, key=lambda b: (b.protocol not in ("ikev1", "ikev2"), b.start, b.sa or ""))
        out.append((pair, bs))
        left -= len(bs)
    shown = sum(len(bs) for _, bs in out)
    return out, len(groups), len(bars) - shown


def timeline_charts(bars: list, events: list) -> tuple[list[Drawing], str]:
    """The timeline drawings (one per page of bars) and a line saying what they show."""
    groups, n_pairs, left_out = select_bars(bars)
    shown = [b for _, bs in groups for b in bs]
    t0 = min(b.start for b in shown)
    t1 = max(b.end for b in shown)
    span = max(t1 - t0, 1e-3)
    # event marks per bar: rekeys at their time, deletions at the bar's end
    rekeys: dict[str, list[float]] = {}
    for e in events:
        if e.kind in ("ike_rekey", "child_rekey"):
            rekeys.setdefault(e.sa, []).append(e.ts)
    rows: list[tuple] = []  # ("pair", text) or ("bar", bar)
    for pair, bs in groups:
        rows.append(("pair", f"{pair[0]}  <->  {pair[1]}  ({len(bs)} SA{'s' if len(bs) != 1 else ''})"))
        rows += [("bar", b) for b in bs]
    pages, cur = [], []
    for r in rows:
        if len(cur) >= TIMELINE_PAGE_BARS or (r[0] == "pair" and len(cur) >= TIMELINE_PAGE_BARS - 2):
            pages.append(cur)
            cur = []
        cur.append(r)
    if cur:
        pages.append(cur)
    drawings = [_timeline_drawing(p, t0, span, rekeys) for p in pages]
    day = datetime.fromtimestamp(t0, timezone.utc).strftime("%Y-%m-%d")
    note = (f"One bar per SA (IKE SAs dark, ESP green, AH orange) from its establishment or first packet to its "
            f"deletion or last packet, grouped by peer pair; a triangle marks a rekey that made the SA, a red bar "
            f"end a deletion, a red outline the redundant SA of a rekey collision. Time axis UTC, from "
            f"{day} {ts_text(t0, False)}. Showing {len(shown):,} of {len(bars):,} SAs in {len(groups):,} of "
            f"{n_pairs:,} peer pairs")
    note += (f"; {left_out:,} SAs left out (the busiest pairs are shown; every bar is in timeline.parquet and "
             f"timeline.jsonl)." if left_out else ".")
    return drawings, note


def _timeline_drawing(rows: list, t0: float, span: float, rekeys: dict) -> Drawing:
    row_h, label_w, axis_h, legend_h = 9.5, 150.0, 22.0, 12.0
    plot_w = WIDTH - label_w - 6
    h = axis_h + legend_h + row_h * len(rows) + 4
    d = Drawing(WIDTH, h)
    x0 = label_w

    def x(t: float) -> float:
        return x0 + plot_w * (t - t0) / span

    top = h - legend_h
    # legend
    lx = 0.0
    for name, colour in (("IKE SA", PROTOCOL_COLOURS["ikev2"]), ("ESP", PROTOCOL_COLOURS["esp"]),
                         ("AH", PROTOCOL_COLOURS["ah"])):
        d.add(Rect(lx, h - 9, 10, 6, fillColor=colour, strokeColor=None))
        d.add(String(lx + 13, h - 9, name, fontName="Helvetica", fontSize=7))
        lx += 18 + stringWidth(name, "Helvetica", 7)
    d.add(Polygon([lx, h - 9, lx + 7, h - 9, lx + 3.5, h - 3], fillColor=colors.black, strokeColor=None))
    d.add(String(lx + 10, h - 9, "rekey", fontName="Helvetica", fontSize=7))
    lx += 40
    d.add(Rect(lx, h - 10, 2.5, 8, fillColor=colors.red, strokeColor=None))
    d.add(String(lx + 6, h - 9, "deleted", fontName="Helvetica", fontSize=7))
    lx += 44
    d.add(Rect(lx, h - 9, 10, 6, fillColor=colors.white, strokeColor=colors.red, strokeWidth=1))
    d.add(String(lx + 13, h - 9, "collision", fontName="Helvetica", fontSize=7))
    # grid and axis
    step = _nice_step(span)
    import math

    first_tick = math.ceil(t0 / step) * step
    bottom = axis_h
    t = first_tick
    while t <= t0 + span + 1e-9:
        xx = x(t)
        d.add(Line(xx, bottom, xx, top, strokeColor=colors.HexColor("#dddddd"), strokeWidth=0.3))
        label = datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S" if step >= 1 else "%H:%M:%S.%f")
        label = label if step >= 1 else label[:-3]
        d.add(String(xx, bottom - 9, label, fontName="Helvetica", fontSize=6, textAnchor="middle"))
        t += step
    d.add(Line(x0, bottom, x0 + plot_w, bottom, strokeColor=colors.black, strokeWidth=0.5))
    d.add(String(x0 + plot_w, 2, "time (UTC)", fontName="Helvetica", fontSize=6, textAnchor="end"))
    # rows
    for i, (kind, item) in enumerate(rows):
        y = top - (i + 1) * row_h
        if kind == "pair":
            d.add(Rect(0, y, WIDTH, row_h - 0.5, fillColor=HEADER_BG, strokeColor=None))
            d.add(String(2, y + 2.5, plain(item), fontName="Helvetica-Bold", fontSize=7))
            continue
        b = item
        ike = b.protocol in ("ikev1", "ikev2")
        label = f"{b.protocol} {b.sa or '?'}" if not ike else f"{b.protocol} {(b.sa or '?')[:16]}.."
        if not ike:
            label += f"  {b.src or '?'} >"
        label = plain(label)
        while stringWidth(label, "Courier", 6) > label_w - 6 and len(label) > 4:
            label = label[:-2] + "…"
        d.add(String(4, y + 2.5, label, fontName="Courier", fontSize=6))
        xa, xb = x(b.start), x(b.end)
        colour = PROTOCOL_COLOURS.get(b.protocol, colors.grey)
        d.add(Rect(xa, y + 1.5, max(xb - xa, 1.2), row_h - 4, fillColor=colour,
                   strokeColor=colors.red if b.collision else None, strokeWidth=1 if b.collision else 0))
        if b.deleted:
            d.add(Rect(max(xb - 1.2, xa), y + 0.5, 2.4, row_h - 2, fillColor=colors.red, strokeColor=None))
        key = b.child_sa if not ike else b.sa
        for ts in rekeys.get(key, ()):
            xt = x(ts)
            d.add(Polygon([xt - 3, y - 0.5, xt + 3, y - 0.5, xt, y + 4], fillColor=colors.black, strokeColor=None))
    return d


# ----------------------------------------------------------------- writing
def build_pdf(analysis, out, *, captures: list[dict] | None = None, rules=None, generated: float | None = None
              ) -> int:
    """Write the report to the binary file object or path ``out``; returns the page count."""
    rep = Report(analysis, captures=captures, rules=rules, generated=generated)
    story = rep.story()
    names = rep.summary["captures"]
    title = "IPsec findings report: " + ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
    doc = _OutlineDoc(out, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                      bottomMargin=MARGIN + 4 * mm, title=plain(title), author=f"ipsecpcap {__version__}",
                      subject="IPsec forensic findings", creator=f"ipsecpcap {__version__}")

    class Canvas(_NumberedCanvas):
        footer_left = f"ipsecpcap {__version__} - {title}"[:110]

    doc.build(story, canvasmaker=Canvas)
    return doc.page


def write_report(analysis, path, *, paths=None, captures: list[dict] | None = None, rules=None) -> int:
    """Write the PDF report of an analysis (record-level, or the DataFrame view)
    to ``path``, whole or not at all (``-``: standard output); returns the page
    count.  ``paths`` are the captures as given, for their size and SHA-256 on
    the title page (or pass ``captures``, the facts of
    :func:`ipsecpcap.export.capture_facts`)."""
    import io
    import sys

    from .export import atomic_path, capture_facts

    analysis = getattr(analysis, "records", analysis)
    if captures is None and paths is not None:
        captures = capture_facts(paths, analysis)
    if os.fspath(path) == "-":
        buf = io.BytesIO()
        pages = build_pdf(analysis, buf, captures=captures, rules=rules)
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
        return pages
    with atomic_path(path) as tmp:
        pages = build_pdf(analysis, tmp, captures=captures, rules=rules)
    return pages
