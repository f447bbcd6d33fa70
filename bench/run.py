#!/usr/bin/env python3
"""Side-by-side benchmark of ipsecpcap against the references of the performance issue.

Generates the captures with ``bench/make_bench_pcap.py`` (a copy of the team's
shared generator, extended with ``--encrypt``) unless they exist, then runs
each contender as its own process, one after another (``--repeat``: in
rounds), each right after reading its capture into the page cache, in one
session, and prints one table: wall seconds, packets/s, the ratio to
``ipsecpcap analyze``, and peak RSS (the largest process of the contender),
followed by the issue's targets, each with the ratio measured here.

Contenders on the analysis capture (``--count``, default 1M packets):

* ``header-walk``: a pure-Python loop that only walks the pcap record headers;
* ``dpkt``: dpkt parsing every packet down to the transport layer;
* ``ipsecpcap``: ``ipsecpcap analyze`` (every table and the rules that need no
  keys), start-up included;
* ``ipsecpcap-jobs2``: the same with ``--jobs 2`` (a two-process pipeline);
* ``ipsecpcap-stdin``: ``cat FILE | ipsecpcap analyze -``;
* ``ipsecpcap-pcapng``: ``ipsecpcap analyze`` of the same packets as pcapng (one
  interface, Enhanced Packet Blocks, microseconds: what dumpcap and Wireshark
  write), converted here (not a target of the issue: shown beside the pcap);
* ``ipsecpcap-packet``: the frame-by-frame decoder (``IPSECPCAP_FASTPATH=packet``);
* ``cpu-loop`` / ``cpu-loop-x2``: a CPU-bound Python loop, alone and twice at once
  (with ``--big``: how much a second core gives on this machine);
* ``dec:analyze-keys`` / ``dec:analyze-keys-j2`` (with ``--decrypt``): ``ipsecpcap
  analyze --keys`` of the encrypted capture, in one process and with ``--jobs 2``;
* ``tshark`` (``--tshark``): ``tshark -T fields`` extracting frame number,
  addresses, IP protocol, ESP SPI and sequence, ISAKMP SPIs.

With ``--big N`` (e.g. 5000000, 3 GB: check the disk) the same ipsecpcap runs
(one and two jobs) and the header walk on that capture, for memory and --jobs,
and ``big:ipsecpcap-x2``: two single-process analyses of it at once (packets/s
counts both), the most that two processes give for this work on this machine,
which is the ceiling for ``--jobs 2``.

Decryption (``--decrypt N``, default 500000 packets, 0 to skip): a capture
written with ``--encrypt`` (AES-GCM-128 and AES-CBC-128/HMAC-SHA1-96 ESP, keys
in a Wireshark esp_sa table), ``ipsecpcap decrypt`` of it, of an all-AES-GCM
one (packets/s for AES-GCM), and with ``--tshark`` tshark decrypting it with
the same table, printing the inner addresses and UDP port (tshark cannot write
decrypted ESP; slow: it looks the SA up in the table for every packet).

Machines here are shared and noisy: read the ratios of one run, not absolute
times across runs.  ``--repeat N`` runs N rounds, every contender once in each (so
a drift of the machine's speed touches all alike), and keeps each one's best time;
the speed targets also show the ratio round by round.

    python3 bench/run.py --count 1000000 --tshark [--big 5000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GENERATOR = os.path.join(HERE, "make_bench_pcap.py")

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

# A CPU-bound loop that touches little memory: run alone and as two processes at once, it
# measures how much of a second core the machine gives (a 2-vCPU VM whose vCPUs share a
# physical core gives much less than 2x), the ceiling for --jobs 2.
SPIN = "s = 0\nfor i in range(30_000_000):\n    s += i\n"

TSHARK_FIELDS = ["-T", "fields", "-e", "frame.number", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto",
                 "-e", "esp.spi", "-e", "esp.sequence", "-e", "isakmp.ispi", "-e", "isakmp.rspi"]


def run(cmd, stdin_path=None, env=None, shell=False) -> tuple[float, int]:
    """Run a command; (wall seconds, peak RSS in kB of its largest process)."""
    t0 = time.perf_counter()
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                             shell=shell)
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        if stdin_path:
            stdin.close()
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd if shell else cmd[0]} failed: {err.strip()[:300]}")
    return wall, ru.ru_maxrss


def generate(path: str, count: int, *extra: str) -> str:
    if not os.path.exists(path):
        print(f"generating {path} ({count:,} packets) ...", file=sys.stderr)
        subprocess.run([sys.executable, GENERATOR, "--count", str(count), "--out", path, *extra], check=True,
                       stderr=subprocess.DEVNULL)
    return path


def to_pcapng(src: str, dst: str) -> str:
    """``src`` (a little-endian microsecond pcap, as the generator writes) as pcapng:
    a section header, one interface of the pcap's link type, one Enhanced Packet Block
    per record (draft-ietf-opsawg-pcapng sections 4.1-4.3)."""
    import struct

    if os.path.exists(dst):
        return dst
    print(f"converting {src} to pcapng ...", file=sys.stderr)

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) & 3)
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    rec = struct.Struct("<IIII")
    with open(src, "rb") as f, open(dst, "wb") as out:
        head = f.read(24)
        magic, _, _, _, _, snaplen, linktype = struct.unpack("<IHHiIII", head)
        if magic != 0xA1B2C3D4:
            raise SystemExit(f"{src}: not a little-endian microsecond pcap")
        out.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        out.write(block(1, struct.pack("<HHI", linktype & 0xFFFF, 0, snaplen)))
        while h := f.read(16):
            sec, usec, caplen, origlen = rec.unpack(h)
            t = sec * 1_000_000 + usec
            out.write(block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, caplen, origlen) + f.read(caplen)))
    return dst


def warm(path: str) -> None:
    """Read a file into the page cache, so that the contender after reads it from memory.
    Right before each run: this VM's kdamond pages out page cache left idle for about a
    minute (found by helper B with fincore: the 1M capture was 498 of 601 MB resident)."""
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


CONF_DIRS: list[str] = []  # tshark configuration directories made, removed at the end


def tshark_env(esp_sa: str | None) -> dict:
    """tshark with an empty private configuration (and the given esp_sa table)."""
    conf = tempfile.mkdtemp(prefix="ipsecpcap-bench-ws-")
    CONF_DIRS.append(conf)
    if esp_sa:
        shutil.copy(esp_sa, os.path.join(conf, "esp_sa"))
    return dict(os.environ, WIRESHARK_CONFIG_DIR=conf, XDG_CONFIG_HOME=conf, HOME=conf)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="packets of the analysis capture")
    ap.add_argument("--capture", help="use this capture instead of generating one (--count must match it)")
    ap.add_argument("--big", type=int, default=0, help="also a capture of this many packets (memory, --jobs)")
    ap.add_argument("--decrypt", type=int, default=500_000, help="packets of the encrypted captures (0: none)")
    ap.add_argument("--outdir", default=os.path.join(tempfile.gettempdir(), "ipsecpcap-bench"))
    ap.add_argument("--tshark", action="store_true", help="also time tshark (slow)")
    ap.add_argument("--no-dpkt", action="store_true")
    ap.add_argument("--no-tshark-decrypt", action="store_true",
                    help="with --tshark, skip tshark's decryption (about 11 minutes for 500k packets)")
    ap.add_argument("--keep", action="store_true", help="keep the generated captures")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    if args.tshark and not shutil.which("tshark"):
        raise SystemExit("tshark is not installed")
    os.makedirs(args.outdir, exist_ok=True)
    made = []

    def capture(name, count, *extra):
        path = os.path.join(args.outdir, name)
        if not os.path.exists(path):
            made.append(path)
            if "--encrypt" in extra:
                made.append(path + ".esp_sa")
        return generate(path, count, *extra)

    py = sys.executable
    # byte-compile the package as `pip install` does for a regular install (an editable
    # install under PYTHONDONTWRITEBYTECODE=1 would compile it again at every start)
    import ipsecpcap.dissectors
    import ipsecpcap.rules
    dirs = {os.path.dirname(m.__file__) for m in (ipsecpcap, ipsecpcap.dissectors, ipsecpcap.rules)}
    subprocess.run([py, "-m", "compileall", "-q", *sorted(dirs)], check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    ipsecpcap = [py, "-m", "ipsecpcap"]  # as the `ipsecpcap` command runs
    packet_env = dict(os.environ, IPSECPCAP_FASTPATH="packet")
    plan = []  # (label, packets, command, stdin, env, shell, every round, the capture it reads)

    def bench(label, packets, cmd, stdin_path=None, env=None, shell=False, every_round=True, reads=None):
        plan.append((label, packets, cmd, stdin_path, env, shell, every_round, reads))

    try:
        path = args.capture or capture(f"bench_{args.count}.pcap", args.count)
        n = args.count
        bench("header-walk", n, [py, "-c", HEADER_WALK, path], reads=path)
        if not args.no_dpkt:
            bench("dpkt", n, [py, "-c", DPKT_LOOP, path], reads=path)
        bench("ipsecpcap", n, ipsecpcap + ["analyze", "-q", path], reads=path)
        bench("ipsecpcap-jobs2", n, ipsecpcap + ["analyze", "-q", "--jobs", "2", path], reads=path)
        bench("ipsecpcap-stdin", n, f"cat {path} | {py} -m ipsecpcap analyze -q -", shell=True, reads=path)
        ng = os.path.join(args.outdir, f"bench_{args.count}.pcapng")
        if not os.path.exists(ng):
            made.append(ng)
        to_pcapng(path, ng)
        bench("ipsecpcap-pcapng", n, ipsecpcap + ["analyze", "-q", ng], reads=ng)
        bench("ipsecpcap-packet", n, ipsecpcap + ["analyze", "-q", path], env=packet_env, reads=path)
        if args.tshark:
            bench("tshark", n, ["tshark", "-r", path, "-n"] + TSHARK_FIELDS, env=tshark_env(None), reads=path)
        if args.big:
            big = capture(f"bench_{args.big}.pcap", args.big)
            bench("big:header-walk", args.big, [py, "-c", HEADER_WALK, big], reads=big)
            bench("big:ipsecpcap", args.big, ipsecpcap + ["analyze", "-q", big], reads=big)
            bench("big:ipsecpcap-jobs2", args.big, ipsecpcap + ["analyze", "-q", "--jobs", "2", big], reads=big)
            one = " ".join(ipsecpcap + ["analyze", "-q", big]) + " > /dev/null"
            bench("big:ipsecpcap-x2", 2 * args.big, f"{one} & {one}; wait", shell=True, reads=big)
            spin = f"{py} -c '{SPIN}'"
            bench("cpu-loop", 0, spin, shell=True)
            bench("cpu-loop-x2", 0, f"{spin} & {spin}; wait", shell=True)
        if args.decrypt:
            enc = capture(f"enc_{args.decrypt}.pcap", args.decrypt, "--encrypt")
            gcm = capture(f"gcm_{args.decrypt}.pcap", args.decrypt, "--encrypt", "--cipher", "gcm")
            out = os.path.join(args.outdir, "decrypted.pcap")
            made.append(out)
            bench("dec:ipsecpcap", args.decrypt, ipsecpcap + ["decrypt", enc, "--keys", enc + ".esp_sa", "-w", out],
                  reads=enc)
            bench("dec:ipsecpcap-gcm", args.decrypt,
                  ipsecpcap + ["decrypt", gcm, "--keys", gcm + ".esp_sa", "-w", out], reads=gcm)
            # the analysis with the keys (not a target of the issue): every ESP packet opened
            # and what it carried tracked, in one process and with --jobs 2
            bench("dec:analyze-keys", args.decrypt, ipsecpcap + ["analyze", "-q", enc, "--keys", enc + ".esp_sa"],
                  reads=enc)
            bench("dec:analyze-keys-j2", args.decrypt,
                  ipsecpcap + ["analyze", "-q", "--jobs", "2", enc, "--keys", enc + ".esp_sa"], reads=enc)
            if args.tshark and not args.no_tshark_decrypt:
                # tshark cannot write the decrypted packets: it dissects them, printing inner
                # fields (about 11 minutes: in the first round only)
                bench("dec:tshark", args.decrypt,
                      ["tshark", "-r", enc, "-n", "-o", "esp.enable_encryption_decode:TRUE", "-T", "fields",
                       "-e", "frame.number", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport"],
                      env=tshark_env(enc + ".esp_sa"), every_round=False, reads=enc)
        # Round after round, every contender once in each: the machine's speed drifts over
        # minutes, and a drift then touches every contender alike, not the last ones only.
        runs: dict[str, list] = {}
        for r in range(args.repeat):
            for label, packets, cmd, stdin_path, env, shell, every_round, reads in plan:
                if r and not every_round:
                    continue
                if reads:
                    warm(reads)
                wall, rss = run(cmd, stdin_path, env, shell)
                runs.setdefault(label, []).append((wall, rss))
                print(f"  round {r + 1}: {label}: {wall:.2f} s, {rss / 1024:.0f} MB", file=sys.stderr)
    finally:
        for conf in CONF_DIRS:
            shutil.rmtree(conf, ignore_errors=True)
        if not args.keep:
            for p in made:
                if os.path.exists(p):
                    os.remove(p)
    rows = [(label, packets, min(runs[label])[0], max(rss for _, rss in runs[label]))
            for label, packets, *_ in plan]
    report(rows, runs, args)


def report(rows, runs, args) -> None:
    """The table (best time of each contender, its largest peak RSS) and the targets; a
    speed ratio is also given round by round (each round ran both side by side)."""
    t = {label: (packets, wall, rss) for label, packets, wall, rss in rows}

    def rounds(a, b):
        """a / b in each round (both ran in it), as text."""
        r = [x[0] / y[0] for x, y in zip(runs[a], runs[b])]
        return "(per round " + ", ".join(f"{x:.1f}x" for x in r) + ")" if len(r) > 1 else ""
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; analysis capture {args.count:,} packets"
          + (f", big {args.big:,}" if args.big else "") + (f", encrypted {args.decrypt:,}" if args.decrypt else ""))
    print(f"{'contender':<20} {'seconds':>8} {'packets/s':>12} {'x ipsecpcap':>12} {'peak RSS MB':>12}")
    for label, packets, wall, rss in rows:
        ref = t.get("big:ipsecpcap" if label.startswith("big:") else
                    "dec:ipsecpcap" if label.startswith("dec:") else "ipsecpcap")
        if not packets:  # the CPU loops: times only
            print(f"{label:<20} {wall:>8.2f} {'':>12} {'':>12} {rss / 1024:>12.0f}")
            continue
        ratio = f"{wall / ref[1]:12.2f}" if ref else f"{'':12}"
        print(f"{label:<20} {wall:>8.2f} {packets / wall:>12,.0f} {ratio} {rss / 1024:>12.0f}")
    print("targets (issue 8), as measured in this run:")

    def target(text, ok):
        print(f"  [{'met' if ok else 'NOT met'}] {text}")

    ip = t["ipsecpcap"][1]
    if "tshark" in t:
        target(f"analyze >= 12x faster than tshark -T fields: {t['tshark'][1] / ip:.1f}x "
               f"{rounds('tshark', 'ipsecpcap')}", t["tshark"][1] / ip >= 12)
    if "dpkt" in t:
        target(f"analyze >= 8x faster than the dpkt loop: {t['dpkt'][1] / ip:.1f}x {rounds('dpkt', 'ipsecpcap')}",
               t["dpkt"][1] / ip >= 8)
    target(f"analyze <= 3x the header walk: {ip / t['header-walk'][1]:.1f}x", ip / t["header-walk"][1] <= 3)
    target(f"stdin within 15% of the file: {t['ipsecpcap-stdin'][1] / ip:.2f}x", t["ipsecpcap-stdin"][1] / ip <= 1.15)
    print(f"  (not a target: the same packets as pcapng take {t['ipsecpcap-pcapng'][1] / ip:.2f}x the pcap "
          f"{rounds('ipsecpcap-pcapng', 'ipsecpcap')})")
    if "big:ipsecpcap" in t:
        big_rss = t["big:ipsecpcap"][2] / 1024
        target(f"{args.big:,} packets in < 200 MB peak RSS: {big_rss:.0f} MB", big_rss < 200)
        target(f"1M capture RSS no more than 10% below the big one: {t['ipsecpcap'][2] / 1024:.0f} MB",
               t["ipsecpcap"][2] >= 0.9 * t["big:ipsecpcap"][2])
        s = t["big:ipsecpcap"][1] / t["big:ipsecpcap-jobs2"][1]
        cap = 2 * t["cpu-loop"][1] / t["cpu-loop-x2"][1]
        two = 2 * t["big:ipsecpcap"][1] / t["big:ipsecpcap-x2"][1]
        target(f"--jobs 2 >= 1.7x one process on the big capture: {s:.2f}x (this machine runs two analyses at "
               f"once at {two:.2f}x one, two CPU loops at {cap:.2f}x one)", s >= 1.7)
    if "dec:ipsecpcap" in t:
        if "dec:tshark" in t:
            r = t["dec:tshark"][1] / t["dec:ipsecpcap"][1]
            target(f"decrypt >= 5x faster than tshark: {r:.1f}x", r >= 5)
        g = t["dec:ipsecpcap-gcm"]
        target(f"decrypt AES-GCM >= 150k packets/s per core: {g[0] / g[1]:,.0f} (all frames, start-up included)",
               g[0] / g[1] >= 150_000)
        k1, k2 = t["dec:analyze-keys"][1], t["dec:analyze-keys-j2"][1]
        print(f"  (not a target: analyze with the keys {k1:.2f} s, with --jobs 2 {k2:.2f} s: {k1 / k2:.2f}x "
              f"{rounds('dec:analyze-keys', 'dec:analyze-keys-j2')})")


if __name__ == "__main__":
    main()
