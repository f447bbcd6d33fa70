"""Command ``psk-hashes``: the offline-crackable parameters of IKEv1 Aggressive Mode PSK.

Standard output carries nothing but the parameters, so ``> hashes.txt`` or a
pipe into the cracker works; everything else goes to standard error:

* an Aggressive Mode PSK exchange whose parameters cannot be had (message 1
  or 2 not captured, encrypted, cut short) is a warning line;
* an exchange the chosen tool cannot take (a hash other than MD5/SHA1, a
  line longer than the tool reads) is left out of its output, with a warning
  naming the exchange and the reason (``--format json`` lists it);
* when nothing was written, one line says so and the exit code is still 0
  (a capture without Aggressive Mode PSK is not an error).  A capture that
  cannot be read exits 3, as every command does.
"""
from __future__ import annotations

import click

from .cli import _check_stdin, captures_arg, library_errors, main
from .output import dumps, output_stream

PSK_FORMATS = ("psk-crack", "hashcat", "john", "json")


def _warn(msg: str) -> None:
    click.echo(f"ipsecpcap: warning: {msg}", err=True)


@main.command("psk-hashes")
@captures_arg
@click.option("--format", "fmt", type=click.Choice(PSK_FORMATS), default="psk-crack", show_default=True,
              help="psk-crack and hashcat (-m 5300 MD5 / -m 5400 SHA1): g_xr:g_xi:cky_r:cky_i:sai_b:idir_b:"
                   "ni_b:nr_b:hash_r in hex, one line per exchange; john: $ike$*0*... (John the Ripper "
                   "jumbo's ike format); json: every exchange found, with frames, endpoints, identities, "
                   "hash and hashcat mode.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write to FILE (whole or not at all) instead of standard output.")
@library_errors
def psk_hashes_cmd(captures, fmt, output):
    """The parameters of every IKEv1 Aggressive Mode exchange authenticated
    with a pre-shared key (HASH_R and what it covers, RFC 2409 5.4), in the
    format of psk-crack, hashcat or John the Ripper: an offline dictionary
    attack on the key needs nothing else.

    \b
    ipsecpcap psk-hashes capture.pcap > hashes.txt && psk-crack -d words.txt hashes.txt
    ipsecpcap psk-hashes --format hashcat capture.pcap > h.txt && hashcat -m 5400 h.txt words.txt

    Nothing but the parameters goes to standard output.  Exchanges whose
    parameters cannot be had, or that the tool cannot take (hashes other
    than MD5 and SHA1), are said on standard error.  When there is nothing
    to write, a notice says so and the exit code is 0.
    """
    from .pskhashes import psk_hashes, tool_caveat, tool_problem

    _check_stdin(captures)
    from .analysis import analyze  # (when the command runs: --help needs none of it)

    analysis = analyze(captures)
    found = psk_hashes(analysis)
    for w in analysis.tracker.warnings:
        _warn(w)
    for p in found.problems:
        _warn(p.text())
    if fmt == "json":
        written = found.params
    else:
        tool = "hashcat" if fmt == "hashcat" else "john" if fmt == "john" else "psk-crack"
        written = []
        for p in found.params:
            where = (f"{p.captures[1]} frames {p.frames[0]},{p.frames[1]}: Aggressive Mode PSK "
                     f"{p.initiator} -> {p.responder} (cookies {p.ispi}/{p.rspi})")
            why = tool_problem(p, tool)
            if why is not None:
                _warn(f"{where} left out: {why} (--format json has its parameters)")
                continue
            written.append(p)
            caveat = tool_caveat(p, tool)
            if caveat is not None:
                _warn(f"{where}: {caveat}")
    with output_stream(output) as out:
        if fmt == "json":
            out.write("[")
            out.write(",".join("\n " + dumps(p.to_dict()) for p in written))
            out.write("\n]\n" if written else "]\n")
        else:
            for p in written:
                out.write((p.john() if fmt == "john" else p.line()) + "\n")
    if not written:
        why = []
        if found.params:
            why.append(f"{len(found.params)} left out, see above")
        if found.other_auth:
            why.append("Aggressive Mode with other authentication: "
                       + ", ".join(f"{n} {m}" for m, n in sorted(found.other_auth.items())))
        click.echo("ipsecpcap: no IKEv1 Aggressive Mode pre-shared key parameters written"
                   + (f" ({'; '.join(why)})" if why else ""), err=True)
