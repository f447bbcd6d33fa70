"""Commands of the views: ``report`` (the PDF findings report)."""
from __future__ import annotations

import sys

import click

from .cli import _warn, analysis_options, captures_arg, library_errors, main, run_analysis


@main.command("report")
@captures_arg
@analysis_options
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the PDF here (whole or not at all; - for standard output).")
@library_errors
def report_cmd(captures, output, **opts):
    """The PDF findings report for an incident responder: captures with their SHA-256,
    executive summary, one section per finding with its evidence, the SA timeline,
    the IKE exchanges and an appendix with the frame accounting."""
    from .export import check_output_file, severity_counts
    from .report import write_report

    check_output_file(output)  # before a long analysis, not after
    if output == "-" and sys.stdout.isatty():
        raise click.UsageError("-o -: standard output is a terminal; redirect it to a file (> findings.pdf)")
    result = run_analysis(captures, **opts)
    pages = write_report(result, output, paths=list(captures))
    if output != "-" and not opts.get("quiet"):
        counts = ", ".join(f"{n} {sev}" for sev, n in severity_counts(result.findings).items() if n) or "none"
        click.echo(f"ipsecpcap: wrote {output}: {pages} pages; findings: {counts}", err=True)
    _warn(result)
