#!/usr/bin/env python3
"""Throughput of the two engines side by side: ``--engine fast`` and ``--engine tshark``.

Runs ``ipsecpcap sas --format json -o /dev/null`` with each engine as its own
process, one after another in the same session, on:

* a strongSwan recording (``fixtures/strongswan/ikev2-cbc-rekey``), without
  and with its keys (every ESP packet and IKE message decrypted);
* the shared benchmark capture (``shared/perf/make_bench_pcap.py``; generated
  with ``--count`` packets unless ``--capture`` names one);

and prints wall time (start-up included), packets/s, the deep engine's cost
relative to the fast one, and the peak RSS of the largest process of the run
(for the deep engine, ipsecpcap or the tshark it runs, whichever is larger).
Machines here are shared and noisy: compare the ratios of one run.
``--repeat N`` keeps the best of N.

    python3 bench/engines.py [--count 100000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_GEN = os.path.join(ROOT, "..", "shared", "perf", "make_bench_pcap.py")
REKEY = os.path.join(ROOT, "fixtures", "strongswan", "ikev2-cbc-rekey")

RUNNER = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
dt = time.perf_counter() - t
if p.returncode:
    sys.stderr.write(p.stderr)
    sys.exit(p.returncode)
# children: the ipsecpcap process and, below it, tshark (ru_maxrss of the largest)
print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def frames(path: str) -> int:
    from ipsecpcap.reader import open_capture

    with open_capture(path) as r:
        for _ in r:
            pass
        return r.frames


def run(capture: str, engine: str, keys: list[str], repeat: int) -> tuple[float, float]:
    cmd = [sys.executable, "-c", "from ipsecpcap.cli import main; main()", "sas", "--quiet", "--engine", engine,
           "--format", "json", "-o", os.devnull, capture]
    for k in keys:
        cmd += ["--keys", k]
    best = None
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", RUNNER, *cmd], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"{engine} failed on {capture}: {out.stderr.strip()}")
        dt, rss = out.stdout.split()
        if best is None or float(dt) < best[0]:
            best = (float(dt), int(rss) / 1024)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000, help="packets of the generated benchmark capture")
    ap.add_argument("--capture", help="use this capture instead of generating one")
    ap.add_argument("--generator", default=DEFAULT_GEN)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    bench = args.capture
    if bench is None:
        bench = os.path.join("/tmp", f"bench_{args.count // 1000}k.pcap")
        if not os.path.exists(bench):
            subprocess.run([sys.executable, args.generator, "--count", str(args.count), "--out", bench], check=True,
                           stdout=subprocess.DEVNULL)
    from ipsecpcap.tsharkview import short_version

    cases = [
        ("ikev2-cbc-rekey", os.path.join(REKEY, "capture.pcap"), []),
        ("ikev2-cbc-rekey +keys", os.path.join(REKEY, "capture.pcap"),
         [os.path.join(REKEY, "esp_sa"), os.path.join(REKEY, "ikev2_decryption_table")]),
        (os.path.basename(bench), bench, []),
    ]
    print(f"python {sys.version.split()[0]}, {short_version()}, {os.cpu_count()} cores; "
          f"ipsecpcap sas --engine X --format json -o /dev/null")
    print(f"{'capture':<24} {'packets':>9} {'engine':<7} {'seconds':>8} {'packets/s':>10} {'x fast':>7} {'peak RSS MB':>12}")
    for label, path, keys in cases:
        n = frames(path)
        fast = None
        for engine in ("fast", "tshark"):
            dt, rss = run(path, engine, keys, args.repeat)
            fast = fast or dt
            print(f"{label:<24} {n:>9,} {engine:<7} {dt:>8.2f} {n / dt:>10,.0f} {dt / fast:>7.1f} {rss:>12.0f}")


if __name__ == "__main__":
    main()
