"""Command ``findings``: run the rule pack and exit by the most severe finding.

Exit codes of this command (for CI pipelines, like grep's and diff's):
0 no finding at or above ``--fail-on``, 1 at least one, 2 usage or input
error of any kind (bad option, capture, key file, policy or rule file).
An internal error (a bug) is still 70.
"""
from __future__ import annotations

import click

from .cli import analysis_options, captures_arg, library_errors, main, output_options, run_analysis
from .errors import EXIT_FINDINGS, EXIT_USAGE, IpsecpcapError
from .output import output_stream, render_rows
from .records import SEVERITIES, FindingRow

TABLE_FIELDS = ["severity", "rule", "first_seen", "src", "dst", "proto", "port", "spi", "frames", "detail"]
FAIL_ON = SEVERITIES + ("never",)


def _table_rows(findings: list[FindingRow]) -> list[dict]:
    rows = []
    for f in findings:
        frames = ",".join(map(str, f.frames[:5])) + (f",... ({f.frame_count})" if f.frame_count > 5 else "")
        rows.append({"severity": f.severity, "rule": f.rule,
                     "first_seen": f.first_seen,  # render_rows writes it as a UTC time
                     "src": f.src, "dst": f.dst, "proto": f.proto, "port": f.port, "spi": f.spi,
                     "frames": frames, "detail": f.detail})
    return rows


def at_or_above(findings, level: str) -> list[FindingRow]:
    if level == "never":
        return []
    floor = SEVERITIES.index(level)
    return [f for f in findings if SEVERITIES.index(f.severity) >= floor]


@main.command("findings")
@captures_arg
@analysis_options
@output_options
@click.option("--fail-on", "fail_on", type=click.Choice(FAIL_ON), default="high", show_default=True,
              help="Exit 1 when a finding at or above this severity exists (never: always exit 0).")
@library_errors
def findings_cmd(captures, fmt, output, fail_on, **opts):
    """Where the policy did not hold: run the rule pack (built-in rules, plus --rules DIR).

    Without --policy, the rules that need one (plaintext_to_protected,
    signed_not_encrypted, no_master_key_pfs) do not run; the others do.
    Exit 0: no finding at or above --fail-on; 1: at least one; 2: usage or input error.
    """
    try:
        result = run_analysis(captures, **opts)
        findings = result.findings
    except IpsecpcapError as e:
        if e.exit_code != EXIT_FINDINGS and e.exit_code < 70:
            e.exit_code = EXIT_USAGE  # this command's contract: 2 for every usage or input error
        raise
    with output_stream(output) as out:
        if fmt == "table":
            render_rows(_table_rows(findings), TABLE_FIELDS, fmt, out)
        else:
            render_rows(findings, FindingRow.field_names(), fmt, out)
    counts = {s: sum(1 for f in findings if f.severity == s) for s in reversed(SEVERITIES)}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"
    click.echo(f"ipsecpcap: {len(findings)} findings ({text})", err=True)
    if result.policy is None:
        from .rules.engine import load_rules

        need = sorted(r.id for r in load_rules(opts.get("rules") or ()) if "policy" in r.requires)
        if need:
            click.echo(f"ipsecpcap: no --policy: not run: {', '.join(need)}", err=True)
    from .cli import _warn

    _warn(result)
    if at_or_above(findings, fail_on):
        raise SystemExit(EXIT_FINDINGS)
