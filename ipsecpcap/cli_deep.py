"""Commands of the deep path: ``crosscheck`` (fast engine against tshark, frame by frame).

Exit codes of ``crosscheck``: 0 when every disagreement is explained (or
there is none), 1 when at least one is not, 69 when tshark is missing; the
other codes as for every command (cli.py).
"""
from __future__ import annotations

import click

from .cli import captures_arg, keys_option, library_errors, main, output_options
from .errors import EXIT_FINDINGS
from .output import output_stream, render_rows

TABLE_FIELDS = ["capture", "frame", "field", "fast", "tshark", "believed", "explanation"]


def _text(v) -> str:
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return "" if v is None else str(v)


@main.command("crosscheck")
@captures_arg
@keys_option
@output_options
@library_errors
def crosscheck_cmd(captures, keys, fmt, output):
    """Compare the fast engine with tshark's dissection, frame by frame.

    Per frame: ESP/AH/IKE/UDP-encapsulation classification, ESP and AH SPIs and
    sequence numbers, IKE SPIs, exchange type, message ID and payload list, IP
    reassembly, ICMP quotes; with --keys, also whether each ESP packet and each
    encrypted IKE message decrypted and verified.  Every disagreement is listed;
    a known one says which engine is believed and why.  Exit 0: none is
    unexplained; 1: at least one is; 69: tshark is not installed.
    """
    from .crosscheck import EXPLANATIONS, Disagreement, crosscheck

    if "-" in captures:
        raise click.UsageError("crosscheck reads each capture twice: give files, not standard input (-)")
    result = crosscheck(list(captures), keys=list(keys) or None)
    rows = sorted(result.disagreements, key=lambda d: (d.explained, d.capture, d.frame, d.field))
    with output_stream(output) as out:
        if fmt == "table":
            if rows:
                render_rows([{k: _text(getattr(d, k)) if k in ("fast", "tshark") else
                              (getattr(d, k) if d.explained or k != "believed" else "UNEXPLAINED")
                              for k in TABLE_FIELDS} for d in rows], TABLE_FIELDS, fmt, out)
                used = {d.explanation for d in rows if d.explanation}
                for e in EXPLANATIONS:
                    if e.id in used:
                        out.write(f"\n{e.id} (believed: {e.believed}): {e.reason}\n")
                for d in rows:
                    if not d.explained:
                        out.write(f"\nUNEXPLAINED {d.capture} frame {d.frame} {d.field}: {d.reason}\n")
            else:
                out.write("no disagreement\n")
        else:
            render_rows([d.to_dict() for d in rows], list(Disagreement.FIELDS), fmt, out)
    compared = sum(s["compared"] for s in result.stats.values())
    agree = sum(s["agree"] for s in result.stats.values())
    believed = {}
    for d in result.explained:
        believed[d.believed] = believed.get(d.believed, 0) + 1
    by = ", ".join(f"believed {k}: {n}" for k, n in sorted(believed.items()))
    click.echo(f"ipsecpcap: crosscheck of {result.frames} frames in {len(result.captures)} captures against "
               f"{result.tshark}: {compared} values compared, {agree} agree, {len(result.explained)} explained "
               f"disagreements{f' ({by})' if by else ''}, {len(result.unexplained)} unexplained", err=True)
    for p in result.key_problems:
        click.echo(f"ipsecpcap: warning: {p}", err=True)
    if result.unexplained:
        raise SystemExit(EXIT_FINDINGS)
