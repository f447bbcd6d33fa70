#!/usr/bin/env python3
"""Side-by-side throughput of ipsecpcap against the references.

Generates the benchmark capture with the shared generator
(``shared/perf/make_bench_pcap.py``) unless it exists, then runs each
contender as its own process, one after another, in the same session, and
prints wall time, packets/s, the ratio to ipsecpcap and peak RSS:

* ``header-walk``: a pure-Python loop that only walks the pcap record headers
  (the floor for any Python reader);
* ``dpkt``: dpkt parsing every packet down to the transport layer;
* ``ipsecpcap``: ``ipsecpcap analyze`` (all tables built), start-up included;
* ``ipsecpcap-stdin``: the same, reading the capture from a pipe;
* ``tshark`` (with ``--tshark``): ``tshark -T fields`` extracting frame number,
  addresses, IP protocol, ESP SPI and sequence, ISAKMP SPIs.

Machines here are shared and noisy: compare the ratios of one run, not
absolute times across runs.  ``--repeat N`` keeps the best of N.

    python3 bench/run.py --count 1000000 [--tshark] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_GEN = os.path.join(ROOT, "..", "shared", "perf", "make_bench_pcap.py")

HEADER_WALK = r"""
import struct, sys
unpack = struct.Struct("<IIII").unpack_from
n = 0
with open(sys.argv[1], "rb") as f:
    f.read(24)
    buf = b""
    while True:
        chunk = f.read(4 << 20)
        if not chunk:
            break
        buf = buf[off:] + chunk if buf else chunk
        off = 0
        end = len(buf)
        while off + 16 <= end:
            ts, us, incl, orig = unpack(buf, off)
            if off + 16 + incl > end:
                break
            off += 16 + incl
            n += 1
        buf = buf[off:]
        off = 0
print(n)
"""

DPKT_LOOP = r"""
import sys, dpkt
n = 0
with open(sys.argv[1], "rb") as f:
    for ts, data in dpkt.pcap.Reader(f):
        eth = dpkt.ethernet.Ethernet(data)
        ip = eth.data
        if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
            l4 = ip.data
            if isinstance(l4, (dpkt.udp.UDP, dpkt.tcp.TCP)):
                l4.sport
        n += 1
print(n)
"""


def run(cmd, stdin_path=None) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS in kB of the process tree's largest child)."""
    t0 = time.perf_counter()
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        if stdin_path:
            stdin.close()
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {err.strip()[:300]}")
    return wall, ru.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--capture", help="use this capture instead of generating one")
    ap.add_argument("--generator", default=DEFAULT_GEN)
    ap.add_argument("--outdir", default=os.path.join(HERE, "out"))
    ap.add_argument("--tshark", action="store_true", help="also time tshark -T fields (slow)")
    ap.add_argument("--no-dpkt", action="store_true")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    path = args.capture
    if path is None:
        os.makedirs(args.outdir, exist_ok=True)
        path = os.path.join(args.outdir, f"bench_{args.count}.pcap")
        if not os.path.exists(path):
            print(f"generating {path} ...", file=sys.stderr)
            subprocess.run([sys.executable, args.generator, "--count", str(args.count), "--out", path], check=True)
    size = os.path.getsize(path)
    # warm the page cache so every contender reads from memory
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass

    py = sys.executable
    ipsecpcap = [py, "-m", "ipsecpcap.cli"]
    contenders = [("header-walk", [py, "-c", HEADER_WALK, path], None)]
    if not args.no_dpkt:
        contenders.append(("dpkt", [py, "-c", DPKT_LOOP, path], None))
    contenders += [("ipsecpcap", ipsecpcap + ["analyze", path], None),
                   ("ipsecpcap-stdin", ipsecpcap + ["analyze", "-"], path)]
    if args.tshark:
        if not shutil.which("tshark"):
            raise SystemExit("tshark is not installed")
        contenders.append(("tshark", ["tshark", "-r", path, "-n", "-T", "fields", "-e", "frame.number",
                                      "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "esp.spi",
                                      "-e", "esp.sequence", "-e", "isakmp.ispi", "-e", "isakmp.rspi"], None))
    results = {}
    for name, cmd, stdin_path in contenders:
        best = None
        for _ in range(args.repeat):
            r = run(cmd, stdin_path)
            best = r if best is None or r[0] < best[0] else best
        results[name] = best
        print(f"  {name}: {best[0]:.2f} s", file=sys.stderr)

    ref = results["ipsecpcap"][0]
    print(f"capture: {os.path.basename(path)}, {args.count:,} packets, {size / 1e6:.0f} MB; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"{'contender':<16} {'seconds':>8} {'packets/s':>12} {'x ipsecpcap':>12} {'peak RSS MB':>12}")
    for name, (wall, rss) in results.items():
        print(f"{name:<16} {wall:>8.2f} {args.count / wall:>12,.0f} {wall / ref:>12.2f} {rss / 1024:>12.0f}")


if __name__ == "__main__":
    main()
