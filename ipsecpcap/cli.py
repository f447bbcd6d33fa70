"""Command line: thin click commands over the library.

Exit codes (also in the README):

====  =====================================================================
0     success
1     findings: a finding at or above --fail-on (that command exits 2 for every usage or input error);
      crosscheck: an unexplained disagreement between the engines
2     usage error (bad option or argument), or a policy or rule file with a mistake
3     input error: a capture is missing, unreadable or not a capture file
4     key file error: a key file is missing or has a mistake (file:line: what)
69    tshark is needed (--engine tshark, crosscheck) and not installed (apt-get install tshark)
70    internal error (a bug; run with --debug for the traceback)
130   interrupted
====  =====================================================================
"""
from __future__ import annotations

import atexit
import functools
import gc
import os
import sys
from typing import TYPE_CHECKING

# Before numpy is imported (by .analysis): numpy's OpenBLAS starts a pool of worker threads
# that spin for work, 25-50 ms of CPU at every start on a 2-core machine, for linear algebra
# the command line never does.  One thread, unless the environment says otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

from . import __version__  # noqa: E402
from .errors import EXIT_INTERNAL, IpsecpcapError  # noqa: E402
from .output import (FORMATS, _ts_text, dumps, output_stream, render_rows, severity_text, table_width,  # noqa: E402
                     text_table, use_color)
from .records import ChildSaRow, ExchangeRow, FlowRow, IkeSaRow, SaRow  # noqa: E402

if TYPE_CHECKING:
    from .analysis import Analysis

# The analysis (numpy, the decoder, the tables) is imported when a command runs, not when
# the command line is parsed: --help, --version and usage errors need none of it.
ENGINES = ("fast", "tshark")  # ipsecpcap.analysis.ENGINES (test_cli_startup.py checks they agree)

# At exit, after the atexit handlers, the interpreter runs the garbage collector once
# more over every object still alive (after an analysis of 1M packets ~0.15 s, to free
# nothing that matters as the process ends); frozen objects are left out of that pass.
atexit.register(gc.freeze)

SUMMARY_ROWS = 20  # rows of each table shown in the summary; the table commands show all
SUMMARY_FINDINGS = 50  # findings listed in the summary, most severe first; the findings command shows all
TABLES = {"exchanges": ExchangeRow, "ike": IkeSaRow, "sas": SaRow, "child-sas": ChildSaRow, "flows": FlowRow}


def _fail(msg: str, code: int) -> None:
    click.echo(f"ipsecpcap: error: {msg}", err=True)
    sys.exit(code)


def library_errors(fn):
    """Map library errors to one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug")
        collecting = gc.isenabled()  # run_analysis pauses the garbage collector: restored below
        try:
            return fn(*args, **kwargs)
        except IpsecpcapError as e:
            _fail(str(e), e.exit_code)
        except BrokenPipeError:
            # the reader of our output went away (e.g. `| head`): not an error
            with _quiet():
                sys.stdout.close()
            sys.exit(0)
        except KeyboardInterrupt:
            click.echo("ipsecpcap: interrupted", err=True)
            sys.exit(130)
        except click.ClickException:
            raise  # a usage error raised inside the command: click prints it, exit 2
        except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback for users
            if debug:
                import traceback  # (only here: 3 ms of every start otherwise)

                traceback.print_exc()
            first = str(e).splitlines()[0] if str(e) else ""
            _fail(f"internal error: {type(e).__name__}: {first} (a bug; rerun with --debug and report it)",
                  EXIT_INTERNAL)
        finally:
            if collecting:
                gc.enable()

    return wrapper


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True


def output_options(fn):
    """The shared --format / -o options."""
    fn = click.option("-o", "--output", "output", type=click.Path(dir_okay=False, allow_dash=True),
                      default=None, help="Write to FILE instead of standard output.")(fn)
    fn = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                      help="Output format.")(fn)
    return fn


captures_arg = click.argument("captures", nargs=-1, required=True, type=click.Path(allow_dash=True))
keys_option = click.option(
    "--keys", "keys", multiple=True, type=click.Path(exists=False),
    help="Key file or directory (Wireshark esp_sa / ikev1 / ikev2 tables, ip xfrm state, tcpdump -E "
         "secrets, ipsecpcap YAML/JSON). Repeatable.")


def analysis_options(fn):
    """The options every analysing command shares: keys, policy, rules, engine, jobs, quiet.
    The command receives them as keyword arguments and passes them to :func:`run_analysis`."""
    fn = click.option("-q", "--quiet", is_flag=True, help="No progress bar on standard error.")(fn)
    fn = click.option("--jobs", "jobs", type=click.IntRange(min=1), default=1, show_default=True,
                      help="2: the fast engine reads (and, with keys, decrypts) and tracks in two processes "
                           "side by side (the same result; about 1.2-1.3x on large captures). More gives nothing "
                           "more; --engine tshark runs in one process.")(fn)
    fn = click.option("--engine", "engine", type=click.Choice(ENGINES), default="fast", show_default=True,
                      help="fast: our own decoder; tshark: the same analysis over tshark's dissection "
                           "(slower; needs tshark).")(fn)
    fn = click.option("--rules", "rules", multiple=True, type=click.Path(file_okay=False),
                      help="Directory of extra rule files (YAML), besides the built-in pack. Repeatable.")(fn)
    fn = click.option("--policy", "policy", type=click.Path(dir_okay=False), default=None,
                      help="Policy file (YAML): protected hosts, what they require, their exemptions.")(fn)
    return keys_option(fn)


def run_analysis(captures, keys=(), policy=None, rules=(), engine="fast", jobs=1, quiet=False) -> Analysis:
    """Analyse as the command line asked (after checking standard input)."""
    from .analysis import analyze

    _check_stdin(captures)
    progress = progress_for(captures, quiet)
    try:
        result = analyze(captures, keys=keys or None, policy=policy, rules=rules, engine=engine, jobs=jobs,
                         progress=progress)
    finally:
        if progress is not None:
            progress.close()  # erase the bar before anything else is printed
    # The capture is read.  What follows builds the tables from objects that all live until
    # the command ends: the cyclic garbage collector would walk them again and again and
    # free nothing (a fifth of the time of the tables).  library_errors turns it back on.
    gc.disable()
    return result


def progress_for(captures, quiet: bool):
    """The progress callback for the command line: a bar on standard error when
    it is a terminal and not --quiet (:mod:`ipsecpcap.progress`), else None."""
    from .progress import progress_bar

    return progress_bar(captures, quiet=quiet)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ipsecpcap")
@click.option("--debug", is_flag=True, hidden=True, help="Show tracebacks of internal errors.")
def main(debug):
    """Forensic analysis of IPsec (IKEv1, IKEv2, ESP, AH, NAT-T) in packet captures.

    CAPTURE is a pcap or pcapng file, optionally gzip-compressed, or - for
    standard input (e.g. `tcpdump -w - | ipsecpcap sas -`).
    """


def _table_command(name: str, help_text: str):
    @main.command(name, help=help_text)
    @captures_arg
    @analysis_options
    @output_options
    @library_errors
    def cmd(captures, fmt, output, **opts):
        result = run_analysis(captures, **opts)
        rows = result.table(name)
        with output_stream(output) as out:
            render_rows(rows, TABLES[name].field_names(), fmt, out)
        _warn(result)

    return cmd


_table_command("exchanges", "One row per IKE message (IKEv1 and IKEv2, UDP 500 and 4500).")
_table_command("ike", "One row per IKE SA (SPI pair), with what the cleartext shows of its proposal.")
_table_command("sas", "One row per ESP or AH SA direction (SPI, endpoints, packets, sequence numbers).")
_table_command("child-sas", "One row per child SA (both directions): IKE SA, creating exchange, rekey lineage, "
                            "PFS, collisions, deletion and lifetimes.")
_table_command("flows", "One row per non-IPsec 5-tuple (IKE excluded), both directions, TCP state.")


@main.command("sequence")
@captures_arg
@analysis_options
@output_options
@library_errors
def sequence_cmd(captures, fmt, output, **opts):
    """One row per anti-replay event of an ESP or AH SA direction: replays, gaps,
    reordering, counter resets, ESN wraps (the first 100 of each SA direction)."""
    from .sequence import SequenceEventRow, sequence_rows

    result = run_analysis(captures, **opts)
    rows = sequence_rows(result.sas, result.tracker.captures)
    with output_stream(output) as out:
        render_rows(rows, SequenceEventRow.field_names(), fmt, out)
    _warn(result)


@main.command("timeline")
@captures_arg
@analysis_options
@output_options
@library_errors
def timeline_cmd(captures, fmt, output, **opts):
    """The SA timeline: one bar per IKE SA and per child SA direction, and the
    establish, rekey, delete and collision events."""
    from .lifecycle import ROW_FIELDS

    result = run_analysis(captures, **opts)
    tl = result.timeline()
    with output_stream(output) as out:
        if fmt == "json":
            out.write(dumps(tl.to_dict(), indent=1) + "\n")
        elif fmt == "table":
            rows = [{k: (_ts_text(v) if k in ("start", "end") and v is not None else v) for k, v in r.items()}
                    for r in tl.rows()]
            render_rows(rows, ROW_FIELDS, fmt, out)
        else:
            render_rows(tl.rows(), ROW_FIELDS, fmt, out)
    _warn(result)


@main.command("analyze")
@captures_arg
@analysis_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Format of the summary on standard output.")
@click.option("-o", "--output-dir", "output_dir", type=click.Path(file_okay=False), default=None,
              help="Also write every table (Parquet and JSON Lines), findings.json, summary.json and "
                   "report.pdf into DIR (made if missing).")
@library_errors
def analyze_cmd(captures, fmt, output_dir, **opts):
    """Summary and findings: frame accounting, IKE SAs, SAs, flows, time span, what the
    rules found.  With -o DIR, every table, findings.json, summary.json and the PDF report."""
    from .export import check_output_dir, summary_document, write_output_dir

    if output_dir is not None:
        check_output_dir(output_dir)  # before a long analysis, not after
    result = run_analysis(captures, **opts)
    out = sys.stdout
    if fmt in ("json", "jsonl"):
        out.write(dumps(summary_document(result), indent=2 if fmt == "json" else None) + "\n")
    elif fmt == "csv":
        render_rows([{"key": k, "value": v} for k, v in _flat(summary_document(result))], ["key", "value"], "csv",
                    out)
    else:
        out.write(summary_text(result, color=use_color(out), width=table_width(out)))
    out.flush()
    if output_dir is not None:
        written = write_output_dir(result, output_dir, paths=list(captures))
        if not opts.get("quiet"):
            click.echo(f"ipsecpcap: wrote {len(written)} files to {output_dir}", err=True)
    _warn(result)


KEY_FIELDS = ["key", "source", "kind", "spi", "enc", "integ", "verified_on"]


@main.command("keys")
@captures_arg
@click.option("--keys", "keys", multiple=True, required=True, type=click.Path(),
              help="Key file or directory. Repeatable.")
@output_options
@library_errors
def keys_cmd(captures, keys, fmt, output):
    """Which key verified on which SA, and which keys matched nothing (keys by fingerprint only)."""
    from .analysis import analyze

    _check_stdin(captures)
    result = analyze(captures, keys=keys)
    with output_stream(output) as out:
        render_rows(result.key_report(), KEY_FIELDS, fmt, out)
    for p in result.keys.problems:
        click.echo(f"ipsecpcap: warning: {p}", err=True)
    _warn(result)


@main.command("decrypt")
@captures_arg
@click.option("--keys", "keys", multiple=True, required=True, type=click.Path(),
              help="Key file or directory. Repeatable.")
@click.option("-w", "--write", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Write the decrypted capture here (pcap; pcapng for a .pcapng name or mixed link types).")
@click.option("--only-decrypted", is_flag=True, help="Write only the packets that were decrypted.")
@library_errors
def decrypt_cmd(captures, keys, out_path, only_decrypted):
    """Replace every ESP packet that verifies and decrypts with the packet it carried."""
    from .decryptpcap import decrypt_captures
    from .keys import load_keys  # (not through the analysis: its tables are not needed here)
    from .sacrypto import SaCrypto

    store = load_keys(list(keys))
    stats = decrypt_captures(list(captures), SaCrypto(store), out_path, only_decrypted=only_decrypted)
    for p in store.problems:
        click.echo(f"ipsecpcap: warning: {p}", err=True)
    click.echo(f"{stats.frames} frames read, {stats.decrypted} ESP packets decrypted, "
               f"{stats.failed} did not verify, {stats.written} written to {out_path}", err=True)


def _flat(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v if not isinstance(v, list) else ";".join(map(str, v))


def summary_text(result: Analysis, color: bool = False, width: int | None = None) -> str:
    """The terminal summary; tables fitted to ``width`` (None: no limit), severities
    coloured when ``color``."""
    width = width or 10**6
    s = result.summary()
    acc = result.accounting
    lines = [f"captures: {', '.join(s['captures'])}"]
    if s["first_seen"] is not None:
        lines.append(f"time span: {_ts_text(s['first_seen'])} .. {_ts_text(s['last_seen'])} UTC "
                     f"({s['duration']:.3f} s)")
    lines.append(f"frames: {acc.frames} = {acc.analysed} analysed + {acc.skipped} skipped + "
                 f"{acc.malformed} malformed")
    for cat, n in acc.by_category.items():
        lines.append(f"  {cat:<52} {n:>10}")
    if acc.reassembly.get("reassembled") or acc.reassembly.get("incomplete"):
        lines.append(f"  IP reassembly: {acc.reassembly['reassembled']} datagrams reassembled, "
                     f"{acc.reassembly['incomplete']} incomplete")
    if acc.nat_keepalives:
        lines.append(f"  NAT-T keep-alives: {acc.nat_keepalives}")
    lines.append(f"IKE: {s['ike_messages']} messages in {s['ike_sas']} IKE SAs")
    if result.ike:
        rows = [[str(r.version), r.ispi, r.rspi, r.initiator or "", r.responder or "", r.mode or "",
                 str(r.messages), r.enc or "", r.integ or "", str(r.dh_group or ""), r.auth_method or ""]
                for r in result.ike[:SUMMARY_ROWS]]
        lines.append(_indent(text_table(rows, ["v", "ispi", "rspi", "initiator", "responder", "mode", "msgs",
                                               "enc", "integ", "dh", "auth"], width=width - 2)))
        if len(result.ike) > SUMMARY_ROWS:
            lines.append(f"  ... {len(result.ike) - SUMMARY_ROWS} more (ipsecpcap ike)")
    lines.append(f"SAs: {s['esp_sas']} ESP ({s['esp_packets']} packets), {s['ah_sas']} AH "
                 f"({s['ah_packets']} packets)")
    if result.sas:
        rows = [[r.protocol, r.spi, r.src, r.dst, "yes" if r.udp_encap else "", str(r.packets),
                 str(r.seq_first), str(r.seq_last)] for r in result.sas[:SUMMARY_ROWS]]
        lines.append(_indent(text_table(rows, ["proto", "spi", "src", "dst", "udp", "packets", "seq_first",
                                               "seq_last"], width=width - 2)))
        if len(result.sas) > SUMMARY_ROWS:
            lines.append(f"  ... {len(result.sas) - SUMMARY_ROWS} more (ipsecpcap sas)")
    if result.keys is not None:
        report = result.key_report()
        used = [k for k in report if k["verified_on"]]
        lines.append(f"keys: {len(report)} loaded, {len(used)} verified on at least one SA")
        for k in report:
            where = ", ".join(k["verified_on"]) if k["verified_on"] else "matched nothing"
            lines.append(f"  {k['key']}  {k['kind']:<5} {k['source'] or ''}: {where}")
        skipped = [p for p in result.keys.problems if "skipped, not a key file" in p]
        for p in result.keys.problems:
            if p not in skipped:
                lines.append(f"  not used: {p}")
        if skipped:
            lines.append(f"  {len(skipped)} files in the key directories are not key files (ipsecpcap keys lists them)")
        if result.sas:
            failed = sum(r.integrity_failures for r in result.sas)
            done = sum(r.decrypted for r in result.sas)
            lines.append(f"  ESP/AH: {done} packets verified, {failed} integrity failures")
    lines.append(f"flows: {s['flows']} non-IPsec 5-tuples")
    lines.extend(findings_lines(result.findings, color, width))
    for w in s["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines) + "\n"


def findings_lines(findings, color: bool = False, width: int = 10**6) -> list[str]:
    """The summary's findings: counts per severity, then one line per finding,
    most severe first (each cut to ``width``)."""
    from .export import severity_counts
    from .records import SEVERITIES

    if not findings:
        return ["findings: none"]
    counts = severity_counts(findings)
    lines = ["findings: " + ", ".join(severity_text(sev, color, f"{n} {sev}") for sev, n in counts.items() if n)]
    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    ordered = sorted(findings, key=lambda f: -rank.get(f.severity, 0))  # stable: the engine's order within
    for f in ordered[:SUMMARY_FINDINGS]:
        where = " > ".join(x for x in (f.src, f.dst) if x)
        if f.port is not None and f.proto:
            where += f" {f.proto}/{f.port}"
            if isinstance(f.evidence, dict) and f.evidence.get("outcome"):
                where += f" {f.evidence['outcome']}"
        elif f.spi:
            where += f" spi {f.spi if len(f.spi) <= 24 else f.spi[:21] + '...'}"
        frames = ", ".join(map(str, f.frames[:3])) + (f" (+{f.frame_count - 3})" if f.frame_count > 3 else "")
        tail = "; ".join(x for x in (where, f"frames {frames}" if frames else "") if x)
        text = f"{f.rule}: {f.title}" + (f" ({tail})" if tail else "")
        text = text if len(text) <= width - 12 else text[: max(width - 13, 10)] + "…"
        lines.append(f"  {severity_text(f.severity, color, f'{f.severity.upper():<8}')}  {text}")
    if len(ordered) > SUMMARY_FINDINGS:
        lines.append(f"  ... {len(ordered) - SUMMARY_FINDINGS} more (ipsecpcap findings)")
    return lines


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _check_stdin(captures) -> None:
    if captures.count("-") > 1:
        raise click.UsageError("standard input (-) can be given only once")
    if "-" in captures and sys.stdin.isatty():
        raise click.UsageError("reading a capture from standard input, but it is a terminal; "
                               "pipe a capture in (e.g. tcpdump -w - | ipsecpcap sas -)")


def _warn(result: Analysis) -> None:
    for w in result.tracker.warnings:
        click.echo(f"ipsecpcap: warning: {w}", err=True)
    if result.keys is not None:
        # keys that could not be used are said, never dropped silently (files in a
        # key directory that are not key files are only counted)
        problems = result.keys.problems + (result.crypto.problems if result.crypto is not None else [])
        skipped = [p for p in problems if "skipped, not a key file" in p]
        for p in problems:
            if p not in skipped:
                click.echo(f"ipsecpcap: warning: key not used: {p}", err=True)


# commands kept in modules of their own register themselves on ``main`` when imported
from . import cli_deep, cli_findings, cli_psk, cli_report  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    # run as `python -m ipsecpcap.cli`: this module is __main__, and the commands of the other
    # modules registered themselves on the importable ipsecpcap.cli.main, so run that one
    from ipsecpcap.cli import main as _main

    _main(prog_name="ipsecpcap")
