#!/usr/bin/env python3
"""Record IPsec packet captures with known keys between two strongSwan peers.

Run as root on Debian 12 with strongSwan 5.9.8 (see README.md next to this file):

    python3 tools/strongswan/make_captures.py record            # all scenarios
    python3 tools/strongswan/make_captures.py record ikev2-gcm  # some of them
    python3 tools/strongswan/make_captures.py analyse           # re-derive expected.json etc. from fixtures
    python3 tools/strongswan/make_captures.py readme            # regenerate fixtures/strongswan/README.md

Topology (built fresh for every scenario, removed afterwards)::

    netns "moon"                                   netns "sun"
    lo 10.1.0.1/32 (protected subnet)               lo 10.2.0.1/32
    vmoon 192.0.2.1/24  <------- veth ------->      vsun 192.0.2.2/24
    charon (kernel-libipsec, TUN ipsec0)            charon (kernel-libipsec, TUN ipsec0)

The kernel here has no XFRM, so each charon uses the userspace data path
(kernel-libipsec), which always encapsulates ESP in UDP 4500 (charon fakes
NAT detection so that IKE also floats to 4500).  tcpdump captures on vmoon.
Each charon runs in its own network and mount namespace (a private tmpfs on
/run because the pid file path /var/run/charon.pid is compiled in) with its
own strongswan.conf (STRONGSWAN_CONF), vici socket and swanctl.conf.

Per scenario it writes into fixtures/strongswan/<scenario>/:
  capture.pcap, charon-moon.log, charon-sun.log (trimmed), swanctl-moon.conf,
  swanctl-sun.conf, strongswan-moon.conf, strongswan-sun.conf, expected.json,
  esp_sa, ikev2_decryption_table / ikev1_decryption_table (Wireshark UATs).

Key extraction from the logs: charonlog.py (documented log-line formats).
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import charonlog  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "fixtures" / "strongswan"
CHARON = "/usr/lib/ipsec/charon"
PSK = "ipsecpcap-test-psk-not-a-secret"

HOSTS = OrderedDict(
    moon={"veth": "vmoon", "addr": "192.0.2.1", "subnet": "10.1.0.1/32", "lo": "10.1.0.1", "id": "moon@strongswan.test"},
    sun={"veth": "vsun", "addr": "192.0.2.2", "subnet": "10.2.0.1/32", "lo": "10.2.0.1", "id": "sun@strongswan.test"},
)
PEER = {"moon": "sun", "sun": "moon"}

PLUGINS = ("random nonce openssl aes sha1 sha2 hmac gcm chapoly gmp curve25519 kdf pem pkcs1 x509 "
           "pubkey kernel-libipsec kernel-netlink socket-default vici updown")

# --------------------------------------------------------------------------
# scenarios.  conn/child keys are swanctl.conf settings; "sun" overrides apply
# to the responder.  Durations in seconds (traffic runs the whole time).

LONG = {"ike_rekey_time": "4h", "child_rekey_time": "1h"}

SCENARIOS = OrderedDict()


SCENARIO_NOTES = {
    "ikev2-cbc-rekey":
        "The IKE_SA rekey (CREATE_CHILD_SA with SA/Nonce/KE, no TS) moves the CHILD_SA to the new IKE_SA; "
        "the last child rekey runs under the new IKE_SA (its `ike_sa` in expected.json), so decrypting it "
        "needs the second IKE_SA's keys.",
    "ikev2-nopfs-rekey":
        "The rekeyed CHILD_SAs have `pfs: false` and no `dh_secret`: their keys come from SK_d and the new "
        "nonces only.",
    "ikev2-chacha":
        "Wireshark/tshark 4.0 has no ChaCha20-Poly1305 for ESP (added in 4.2 as 'ChaCha20 with Poly1305 "
        "[RFC7634]') nor for IKEv2, so `esp_sa` and `ikev2_decryption_table` only hold comment lines with the "
        "keys; expected.json has them all (ESP key = 32-byte key + 4-byte salt).",
    "ikev2-natt":
        "kernel-libipsec already forces UDP encapsulation (charon fakes NAT-D in every scenario), so "
        "`encap = yes` changes nothing visible here; what this capture adds is fragmentation: IKE_SA_INIT "
        "(MODP-4096, ~720 bytes) and the 1028-byte pings (ESP-in-UDP ~1100 bytes) are IP-fragmented by the "
        "576-byte veth MTU, and the IKE_AUTH request and response are each split into 3 RFC 7383 SKF "
        "fragments (tshark reassembles and decrypts them).",
    "ikev1-main-quick":
        "IKEv1 keeps the old CHILD_SA after a Quick Mode rekey until its hard lifetime (22 s) expires; the "
        "expiry sends an ISAKMP Informational DELETE. Wireshark's ikev1_decryption_table needs only the "
        "initiator cookie and the encryption key (`encryption key Ka`); tshark derives the IVs itself.",
    "ikev1-aggressive-psk":
        "Aggressive Mode PSK needs `aggressive = yes` on both peers and "
        "`charon.i_dont_care_about_security_and_use_aggressive_mode_psk = yes`; the third Aggressive Mode "
        "message (HASH_I, NAT-D) is encrypted. In this recording moon's first Quick Mode request reached sun "
        "before sun had processed the third Aggressive Mode message ('ignoring QUICK_MODE request while phase 1 "
        "is incomplete' in charon-sun.log), so it was retransmitted after 4 s: 4 Quick Mode packets, two of "
        "them identical. (The ping summary is missing from recording.json because the ping was stopped "
        "before its deadline; the inner ICMP is in the capture.)",
    "ikev2-rekey-collision":
        "Timer-driven collisions depend on timing and differ from run to run: the responder installs the "
        "first CHILD_SA a few ms before the initiator, so with fast DH (MODP-2048) sun's request can arrive "
        "before moon's timer fires and no collision happens (seen in a trial run). With MODP-4096 both peers "
        "are usually still generating their KE when the other's request arrives. This recording has one "
        "CHILD_REKEY collision (at 15 s; the lines are listed below); its IKE_SA rekey at 40 s did not "
        "collide (sun's request came first), while a trial run also showed an IKE_REKEY collision "
        "('IKE_SA rekey collision won, waiting for delete for redundant IKE_SA', 'peer did not notice "
        "IKE_SA rekey collision, abort active rekeying'). The redundant CHILD_SA has no ESP packets (listed "
        "in `counts.child_sa_spis_without_packets`); `rekey_of` of both the winning and the redundant SA "
        "points to the SA they replaced. A redundant IKE_SA would get `collision` set in expected.json.",
}


def scenario(name, **kw):
    SCENARIOS[name] = dict(name=name, notes=SCENARIO_NOTES.get(name, ""), **kw)


scenario(
    "ikev2-cbc-rekey",
    summary="IKEv2, AES-CBC-128/HMAC-SHA2-256 for IKE and ESP, PFS (MODP-2048) on CHILD_SA rekeying; "
            "child rekey every 20 s (3 rekeys), one IKE_SA rekey (~45 s), then swanctl --terminate.",
    version=2, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256-modp2048",
    moon={"ike_rekey_time": "45s", "ike_rand_time": "0s", "child_rekey_time": "20s", "child_rand_time": "0s",
          "child_life_time": "40s"},
    sun=LONG, duration=68,
)
scenario(
    "ikev2-nopfs-rekey",
    summary="IKEv2, IKE AES-CBC-128/SHA2-256/ECP-256, ESP AES-CBC-128/HMAC-SHA2-256 without a DH group "
            "(no PFS: rekeyed CHILD_SA keys come from SK_d and fresh nonces only); child rekey every 15 s.",
    version=2, ike_proposals="aes128-sha256-ecp256", esp_proposals="aes128-sha256",
    moon={"child_rekey_time": "15s", "child_rand_time": "0s", "child_life_time": "30s"},
    sun=LONG, duration=38,
)
scenario(
    "ikev2-gcm",
    summary="IKEv2 with AES-GCM-256 (16-octet ICV) for IKE (PRF-HMAC-SHA2-256, ECP-256) and AES-GCM-128 "
            "(16-octet ICV) for ESP, one child rekey (PFS ECP-256).",
    version=2, ike_proposals="aes256gcm16-prfsha256-ecp256", esp_proposals="aes128gcm16-ecp256",
    moon={"child_rekey_time": "12s", "child_rand_time": "0s", "child_life_time": "30s"},
    sun=LONG, duration=22,
)
scenario(
    "ikev2-chacha",
    summary="IKEv2 with ChaCha20-Poly1305 for IKE (PRF-HMAC-SHA2-256, Curve25519) and ESP "
            "(Wireshark 4.0 cannot decrypt either).",
    version=2, ike_proposals="chacha20poly1305-prfsha256-x25519", esp_proposals="chacha20poly1305",
    moon={}, sun={}, duration=14,
)
scenario(
    "ikev2-natt",
    summary="IKEv2 with encap = yes (faked NAT-D, IKE floats to UDP 4500 with non-ESP marker), "
            "IKE fragmentation (RFC 7383, charon.fragment_size = 180 -> IKE_AUTH request and response in SKF fragments), veth MTU 576 "
            "so IKE_SA_INIT (MODP-4096) and large ESP-in-UDP packets are IP-fragmented.",
    version=2, ike_proposals="aes128-sha256-modp4096", esp_proposals="aes128-sha256",
    moon={"encap": "yes", "fragmentation": "yes"}, sun={"encap": "yes", "fragmentation": "yes"},
    charon_extra={"fragment_size": "180"}, veth_mtu=576, big_ping=1000, duration=14,
)
scenario(
    "ikev1-main-quick",
    summary="IKEv1 Main Mode (PSK, AES-CBC-128/SHA2-256/MODP-2048), Quick Mode with PFS (MODP-2048); "
            "child rekey every 15 s gives several Quick Modes under one Main Mode; old SAs expire "
            "(life_time 22 s) with INFORMATIONAL deletes; then swanctl --terminate.",
    version=1, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256-modp2048",
    moon={"child_rekey_time": "15s", "child_rand_time": "0s", "child_life_time": "22s"},
    sun=LONG, duration=50,
)
scenario(
    "ikev1-aggressive-psk",
    summary="IKEv1 Aggressive Mode PSK (AES-CBC-192/SHA1/MODP-1536), Quick Mode AES-CBC-256/HMAC-SHA1-96 "
            "without PFS.",
    version=1, aggressive=True, ike_proposals="aes192-sha1-modp1536", esp_proposals="aes256-sha1",
    moon={}, sun={}, duration=14,
)
scenario(
    "ikev2-rekey-collision",
    summary="IKEv2, both peers rekey the CHILD_SA every 15 s and the IKE_SA after 40 s with rand_time = 0, "
            "provoking simultaneous CREATE_CHILD_SA exchanges (RFC 7296 2.8.1 rekey collisions); MODP-4096 "
            "(slow key generation) widens the window in which both requests are in flight.",
    version=2, ike_proposals="aes128-sha256-modp4096", esp_proposals="aes128-sha256-modp4096",
    moon={"ike_rekey_time": "40s", "ike_rand_time": "0s", "child_rekey_time": "15s", "child_rand_time": "0s",
          "child_life_time": "30s"},
    sun={"ike_rekey_time": "40s", "ike_rand_time": "0s", "child_rekey_time": "15s", "child_rand_time": "0s",
         "child_life_time": "30s"},
    duration=50,
)
scenario(
    "ikev2-aes256-sha512-modp",
    summary="IKEv2 with AES-CBC-256/HMAC-SHA2-512-256/PRF-SHA2-512/MODP-3072 for IKE and ESP "
            "(PFS MODP-3072 on the child rekey at 12 s).",
    version=2, ike_proposals="aes256-sha512-modp3072", esp_proposals="aes256-sha512-modp3072",
    moon={"child_rekey_time": "12s", "child_rand_time": "0s", "child_life_time": "30s"},
    sun=LONG, duration=20,
)


# --------------------------------------------------------------------------
# helpers

def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout}")
    return r.stdout


def nsrun(ns, cmd, **kw):
    return run(["ip", "netns", "exec", ns] + cmd, **kw)


def build_netns(mtu=None):
    for ns in HOSTS:
        run(["ip", "netns", "del", ns], check=False)
    run(["ip", "link", "del", "vmoon"], check=False)
    for ns, h in HOSTS.items():
        run(["ip", "netns", "add", ns])
        nsrun(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
        nsrun(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "addr", "add", h["subnet"], "dev", "lo"])
    run(["ip", "link", "add", "vmoon", "type", "veth", "peer", "name", "vsun"])
    for ns, h in HOSTS.items():
        run(["ip", "link", "set", h["veth"], "netns", ns])
        run(["ip", "-n", ns, "addr", "add", h["addr"] + "/24", "dev", h["veth"]])
        if mtu:
            run(["ip", "-n", ns, "link", "set", h["veth"], "mtu", str(mtu)])
        run(["ip", "-n", ns, "link", "set", h["veth"], "up"])


def remove_netns():
    for ns in HOSTS:
        run(["ip", "netns", "del", ns], check=False)


def strongswan_conf(host, wd, extra):
    lines = ["charon {",
             f"  load = {PLUGINS}",
             "  # needed to accept / initiate IKEv1 Aggressive Mode with PSK",
             "  i_dont_care_about_security_and_use_aggressive_mode_psk = yes",
             "  retransmit_tries = 3"]
    for k, v in (extra or {}).items():
        lines.append(f"  {k} = {v}")
    lines += [
        "  plugins {",
        f"    vici {{\n      socket = unix://{wd}/charon.vici\n    }}",
        "  }",
        "  syslog {\n    daemon {\n      default = -1\n    }\n  }",
        "  filelog {",
        "    main {",
        f"      path = {wd}/charon.log",
        "      time_format = %Y-%m-%dT%H:%M:%S",
        "      time_add_ms = yes",
        "      ike_name = yes",
        "      append = no",
        "      flush_line = yes",
        "      default = 1",
        "      ike = 4",
        "      chd = 4",
        "      mgr = 2",
        "      knl = 2",
        "      cfg = 2",
        "      net = 2",
        "    }",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def swanctl_conf(sc, host):
    h, p = HOSTS[host], HOSTS[PEER[host]]
    o = dict(sc.get(host) or {})
    conn = [f"    version = {sc['version']}",
            f"    local_addrs = {h['addr']}",
            f"    remote_addrs = {p['addr']}",
            f"    proposals = {sc['ike_proposals']}",
            f"    rekey_time = {o.get('ike_rekey_time', '4h')}",
            "    reauth_time = 0",
            "    mobike = no"]
    if "ike_rand_time" in o:
        conn.append(f"    rand_time = {o['ike_rand_time']}")
    if sc.get("aggressive"):
        conn.append("    aggressive = yes")
    for k in ("encap", "fragmentation"):
        if k in o:
            conn.append(f"    {k} = {o[k]}")
    child = [f"        local_ts = {h['subnet']}",
             f"        remote_ts = {p['subnet']}",
             "        mode = tunnel",
             f"        esp_proposals = {sc['esp_proposals']}",
             f"        rekey_time = {o.get('child_rekey_time', '1h')}"]
    if "child_rand_time" in o:
        child.append(f"        rand_time = {o['child_rand_time']}")
    if "child_life_time" in o:
        child.append(f"        life_time = {o['child_life_time']}")
    return ("# swanctl.conf of %s for scenario %s\n" % (host, sc["name"]) +
            "connections {\n  t {\n" + "\n".join(conn) + "\n" +
            f"    local {{\n      auth = psk\n      id = {h['id']}\n    }}\n" +
            "    remote {\n      auth = psk\n      id = %any\n    }\n" +
            "    children {\n      net {\n" + "\n".join(child) + "\n      }\n    }\n  }\n}\n" +
            f"secrets {{\n  ike-psk {{\n    secret = \"{PSK}\"\n  }}\n}}\n")


TRAFFIC_SERVER = r'''
import socket, sys, threading, http.server, os
addr = sys.argv[1]
def udp_echo():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 9000))
    while True:
        data, peer = s.recvfrom(4096)
        s.sendto(b"echo:" + data, peer)
threading.Thread(target=udp_echo, daemon=True).start()
os.chdir(sys.argv[2])
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((addr, 8080), H).serve_forever()
'''

TRAFFIC_CLIENT = r'''
import socket, sys, time, http.client
src, dst, dur = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.time() + dur
n = 0
while time.time() < end:
    n += 1
    try:
        c = http.client.HTTPConnection(dst, 8080, timeout=2, source_address=(src, 0))
        c.request("GET", "/hello.txt")
        r = c.getresponse(); r.read(); c.close()
        print("http", n, r.status, flush=True)
    except Exception as e:
        print("http", n, "error", e, flush=True)
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((src, 0)); u.settimeout(1)
        u.sendto(b"udp probe %d" % n, (dst, 9000))
        print("udp", n, u.recvfrom(4096)[0], flush=True)
        u.close()
    except Exception as e:
        print("udp", n, "error", e, flush=True)
    time.sleep(3)
'''


class Proc:
    """A process started in a namespace; stopped by its own pid only."""

    def __init__(self, ns, cmd, env=None, out=None):
        self.out = open(out, "w") if out else subprocess.DEVNULL
        self.p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, env=env, stdout=self.out,
                                  stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.out is not subprocess.DEVNULL:
            self.out.close()


def swanctl(host, wd, *args, timeout=60):
    return run(["swanctl", *args, "--uri", f"unix://{wd}/charon.vici"], check=False, timeout=timeout)


def record(sc, out_root: Path, work_root: Path):
    name = sc["name"]
    log(f"=== {name}: {sc['summary']}")
    wd = work_root / name
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    procs: list[Proc] = []
    charons: dict[str, Proc] = {}
    try:
        build_netns(sc.get("veth_mtu"))
        for host in HOSTS:
            hd = wd / host
            hd.mkdir()
            (hd / "strongswan.conf").write_text(strongswan_conf(host, hd, sc.get("charon_extra")))
            (hd / "swanctl.conf").write_text(swanctl_conf(sc, host))
            for sub in ("x509", "x509ca", "private", "rsa", "ecdsa", "pkcs8", "pkcs12", "pubkey",
                        "x509ocsp", "x509aa", "x509ac", "x509crl", "bliss"):
                (hd / sub).mkdir()
            env = dict(os.environ, STRONGSWAN_CONF=str(hd / "strongswan.conf"))
            charons[host] = Proc(host, ["sh", "-c", f"mount -t tmpfs tmpfs /run && exec {CHARON}"], env=env,
                                 out=hd / "charon.stdout")
        for host in HOSTS:
            sock = wd / host / "charon.vici"
            for _ in range(100):
                if sock.exists():
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"charon on {host} did not create {sock}")
            outp = swanctl(host, wd / host, "--load-all", "--noprompt", "--file", str(wd / host / "swanctl.conf"))
            if "successfully loaded 1 connections" not in outp:
                raise RuntimeError(f"loading config on {host}: {outp}")
        (wd / "www").mkdir()
        (wd / "www" / "hello.txt").write_text("hello through the tunnel\n" * 8)
        procs.append(Proc("sun", ["python3", "-c", TRAFFIC_SERVER, HOSTS["sun"]["lo"], str(wd / "www")]))
        pcap = wd / "capture.pcap"
        tcpdump = Proc("moon", ["tcpdump", "-i", "vmoon", "-s", "0", "-U", "-n", "-w", str(pcap)],
                       out=wd / "tcpdump.out")
        time.sleep(1.5)
        t0 = time.time()
        outp = swanctl("moon", wd / "moon", "--initiate", "--ike", "t", "--child", "net", "--timeout", "30")
        (wd / "initiate.out").write_text(outp)
        if "initiate completed successfully" not in outp:
            raise RuntimeError(f"initiate failed: {outp[-2000:]}")
        dur = sc["duration"]
        procs.append(Proc("moon", ["ping", "-n", "-q", "-i", "1", "-I", HOSTS["moon"]["lo"], "-w", str(dur),
                                   HOSTS["sun"]["lo"]], out=wd / "ping.out"))
        if sc.get("big_ping"):
            procs.append(Proc("moon", ["ping", "-n", "-q", "-i", "2", "-s", str(sc["big_ping"]), "-I",
                                       HOSTS["moon"]["lo"], "-w", str(dur), HOSTS["sun"]["lo"]],
                              out=wd / "bigping.out"))
        time.sleep(0.5)
        procs.append(Proc("moon", ["python3", "-c", TRAFFIC_CLIENT, HOSTS["moon"]["lo"], HOSTS["sun"]["lo"],
                                   str(dur - 2)], out=wd / "traffic.out"))
        while time.time() - t0 < dur:
            time.sleep(1)
        outp = swanctl("moon", wd / "moon", "--terminate", "--ike", "t", "--timeout", "20")
        (wd / "terminate.out").write_text(outp)
        time.sleep(2)
        tcpdump.stop(signal.SIGINT)
    finally:
        for p in procs:
            p.stop(signal.SIGINT)  # ping prints its summary on SIGINT
        for p in charons.values():
            p.stop()
        remove_netns()
    # copy results
    dest = out_root / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy(wd / "capture.pcap", dest / "capture.pcap")
    for host in HOSTS:
        raw = (wd / host / "charon.log").read_text(errors="replace")
        (dest / f"charon-{host}.log").write_text(trim_log(raw))
        shutil.copy(wd / host / "swanctl.conf", dest / f"swanctl-{host}.conf")
        conf = (wd / host / "strongswan.conf").read_text().replace(str(wd / host), f"/tmp/ipsecpcap-strongswan/{name}/{host}")
        (dest / f"strongswan-{host}.conf").write_text(conf)
    meta = {"scenario": name, "summary": sc["summary"], "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "duration_s": sc["duration"], "traffic": traffic_summary(wd)}
    (dest / "recording.json").write_text(json.dumps(meta, indent=1) + "\n")
    analyse(dest, sc)


def traffic_summary(wd: Path) -> dict:
    out = {}
    for f in ("ping.out", "bigping.out"):
        p = wd / f
        if p.exists():
            m = re.search(r"(\d+) packets transmitted, (\d+) received", p.read_text())
            if m:
                out[f[:-4]] = {"sent": int(m.group(1)), "received": int(m.group(2))}
    p = wd / "traffic.out"
    if p.exists():
        t = p.read_text().splitlines()
        out["http_requests"] = sum(1 for x in t if x.startswith("http"))
        out["http_ok"] = sum(1 for x in t if x.startswith("http") and x.endswith(" 200"))
        out["udp_probes"] = sum(1 for x in t if x.startswith("udp"))
        out["udp_echoed"] = sum(1 for x in t if x.startswith("udp") and "error" not in x)
    return out


# --------------------------------------------------------------------------
# log trimming

NOISE = [
    re.compile(r"^\S+ \d+\[NET\] (sending|received) packet: from \S+ to \S+$"),  # per-packet, no IKE_SA context
    re.compile(r"^\S+ \d+\[NET\] waiting for data on sockets$"),
    re.compile(r"^\S+ \d+\[CFG\]  +\S"),  # vici config dump on load-conn
    re.compile(r"^\S+ \d+\[JOB\] "),
    re.compile(r"^\S+ \d+\[KNL\]  +\S"),  # interface listing at startup
]
MGR_KEEP = re.compile(r"\[MGR\] (<[^>]*> )?checkin IKEv\d SA .* with SPIs ")


def trim_log(text: str) -> str:
    """Drop per-packet and configuration-dump noise and the IKE_SA manager lines
    except ``checkin ... with SPIs`` (needed to bind IKE keys to SPIs); keep
    every key dump, SPI, state and exchange line."""
    out = []
    for line in text.splitlines():
        if "[MGR]" in line:
            if MGR_KEEP.search(line):
                out.append(line)
            continue
        if any(r.search(line) for r in NOISE):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# analysis: logs -> expected.json, Wireshark tables, tshark verification

def tshark_fields(pcap, fields, display_filter=None, prefs=(), env=None):
    cmd = ["tshark", "-n", "-r", str(pcap)]
    for p in prefs:
        cmd += ["-o", p]
    if display_filter:
        cmd += ["-Y", display_filter]
    cmd += ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return [line.split("\t") for line in r.stdout.splitlines()]


IKEV2_X = {"34": "IKE_SA_INIT", "35": "IKE_AUTH", "36": "CREATE_CHILD_SA", "37": "INFORMATIONAL"}
IKEV1_X = {"2": "Main Mode", "4": "Aggressive Mode", "5": "Informational", "32": "Quick Mode", "6": "Transaction"}


def capture_stats(pcap: Path, profile: Path | None) -> dict:
    env = None
    prefs = []
    if profile:
        env = dict(os.environ, XDG_CONFIG_HOME=str(profile), HOME=str(profile))
        prefs = ["esp.enable_encryption_decode:TRUE", "esp.enable_authentication_check:TRUE"]
    rows = tshark_fields(pcap, ["frame.number", "frame.protocols", "ip.src", "ip.dst", "udp.srcport", "udp.dstport",
                                "ip.flags.mf", "ip.frag_offset", "isakmp.version", "isakmp.exchangetype",
                                "isakmp.flags", "isakmp.ispi", "isakmp.rspi", "isakmp.nextpayload",
                                "isakmp.enc.data", "isakmp.enc.decrypted", "isakmp.typepayload", "esp.spi",
                                "esp.sequence", "esp.icv_good", "esp.icv_bad", "udpencap.non_esp_marker",
                                "udpencap.nat_keepalive", "isakmp.frag.number"], prefs=prefs, env=env)
    st = {"frames": len(rows), "ike_messages": Counter(), "ike_udp_ports": Counter(), "esp_per_spi": Counter(),
          "ip_fragments": 0, "nat_keepalives": 0, "ikev2_fragments": 0}
    dec = {"esp_total": 0, "esp_decrypted": 0, "esp_icv_good": 0, "esp_icv_bad": 0, "esp_decrypted_per_spi": Counter(),
           "ike_encrypted": 0, "ike_decrypted": 0}
    for r in rows:
        (num, protos, ipsrc, ipdst, sport, dport, mf, fragoff, ver, xchg, flags, ispi, rspi, nextp,
         encdata, decrypted, typepayload, spi, seq, icvg, icvb, nonesp, keepalive, fragnum) = (r + [""] * 24)[:24]
        if mf.split(",")[0] in ("1", "True") or fragoff.split(",")[0] not in ("", "0"):
            st["ip_fragments"] += 1
        if "udpencap" in protos and "isakmp" not in protos and "esp" not in protos:
            st["nat_keepalives"] += 1
        if "isakmp" in protos and ver:
            v = ver.split(",")[0]
            x = xchg.split(",")[0]
            major = int(v, 16) >> 4 if v.startswith("0x") else int(float(v))
            if major == 2:
                fl = int(flags.split(",")[0], 16)
                kind = "response" if fl & 0x20 else "request"
                label = f"IKEv2 {IKEV2_X.get(x, x)} {kind}"
                if nextp.split(",")[0] == "53":
                    st["ikev2_fragments"] += 1
                    label += " (SKF fragment)"
            else:
                label = f"IKEv1 {IKEV1_X.get(x, x)}"
            st["ike_messages"][label] += 1
            st["ike_udp_ports"][f"{sport.split(',')[0]}->{dport.split(',')[0]}"] += 1
            if major == 2 and encdata:
                dec["ike_encrypted"] += 1
                if decrypted:
                    dec["ike_decrypted"] += 1
            elif major == 1 and int(flags.split(",")[0], 16) & 0x01:
                dec["ike_encrypted"] += 1
                if typepayload:  # IKEv1: inner payloads only visible when decrypted
                    dec["ike_decrypted"] += 1
        if spi:
            s = spi.split(",")[0]
            st["esp_per_spi"][s] += 1
            dec["esp_total"] += 1
            if ":esp:ip" in protos:
                dec["esp_decrypted"] += 1
                dec["esp_decrypted_per_spi"][s] += 1
            if icvg.split(",")[0] in ("1", "True"):
                dec["esp_icv_good"] += 1
            if icvb.split(",")[0] in ("1", "True"):
                dec["esp_icv_bad"] += 1
    out = {k: (dict(sorted(v.items())) if isinstance(v, Counter) else v) for k, v in st.items()}
    if profile:
        out = {k: (dict(sorted(v.items())) if isinstance(v, Counter) else v) for k, v in dec.items()}
    return out


def protocol_hierarchy(pcap: Path) -> str:
    r = subprocess.run(["tshark", "-n", "-r", str(pcap), "-q", "-z", "io,phs"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return r.stdout


def analyse(dest: Path, sc: dict | None = None):
    name = dest.name
    sc = sc or SCENARIOS.get(name, {"name": name, "summary": ""})
    facts = {h: charonlog.parse_charon_log((dest / f"charon-{h}.log").read_text().splitlines(), h) for h in HOSTS}
    merged = charonlog.merge_hosts(facts)
    tables = charonlog.wireshark_tables(merged)
    for fn in ("esp_sa", "ikev2_decryption_table", "ikev1_decryption_table"):
        p = dest / fn
        if tables[fn]:
            p.write_text("# Derived from charon-moon.log / charon-sun.log by tools/strongswan/charonlog.py\n" +
                         "\n".join(tables[fn]) + "\n")
        elif p.exists():
            p.unlink()
    pcap = dest / "capture.pcap"
    plain = capture_stats(pcap, None)
    with tempfile.TemporaryDirectory() as prof:
        (Path(prof) / "wireshark").mkdir()
        for fn, lines in tables.items():
            (Path(prof) / "wireshark" / fn).write_text("\n".join(lines) + "\n")
        decrypted = capture_stats(pcap, Path(prof))
    log_spis = set()
    for c in merged["child_sas"]:
        for sa in c["sas"]:
            log_spis.add(sa["spi"])
    cap_spis = set(plain["esp_per_spi"])
    checks = list(merged["checks"])
    if cap_spis - log_spis:
        checks.append(f"ESP SPIs in capture but not in logs: {sorted(cap_spis - log_spis)}")
    unused = sorted(log_spis - cap_spis)
    ike_spis_log = {(e["spi_i"], e["spi_r"]) for e in merged["ike_sas"]}
    cap_ike = set()
    for r in tshark_fields(pcap, ["isakmp.ispi", "isakmp.rspi"], "isakmp"):
        i, rr = (r + [""])[:2]
        i, rr = i.split(",")[0], rr.split(",")[0]
        if rr and int(rr, 16):
            cap_ike.add((i, rr))
    if cap_ike - ike_spis_log:
        checks.append(f"IKE SPI pairs in capture but not in logs: {sorted(cap_ike - ike_spis_log)}")
    collisions = {h: [c["ts"] + " " + c["msg"] for c in f["collisions"]] for h, f in facts.items()}
    child_rekeys = sum(1 for c in merged["child_sas"] if c["rekey_of"])
    ike_rekeys = sum(1 for e in merged["ike_sas"] if e["rekey_of"])
    exp = OrderedDict(
        scenario=name,
        summary=sc.get("summary", ""),
        notes=sc.get("notes", ""),
        generator="tools/strongswan/make_captures.py (keys extracted by tools/strongswan/charonlog.py)",
        strongswan=versions().get("strongswan"),
        hosts={h: {"address": v["addr"], "protected_subnet": v["subnet"], "id": v["id"], "veth": v["veth"]}
               for h, v in HOSTS.items()},
        capture={"file": "capture.pcap", "interface": "vmoon (moon side of the veth)", "linktype": "EN10MB",
                 **plain},
        decryption_with_derived_tables=decrypted,
        counts={"ike_sas": len(merged["ike_sas"]), "ike_sa_rekeys": ike_rekeys,
                "child_sas": len(merged["child_sas"]), "child_sa_rekeys": child_rekeys,
                "esp_spis_in_capture": len(cap_spis), "child_sa_spis_without_packets": unused},
        collisions=collisions,
        ike_sas=merged["ike_sas"],
        child_sas=merged["child_sas"],
        checks=checks,
    )
    (dest / "expected.json").write_text(json.dumps(exp, indent=1) + "\n")
    (dest / "tshark-io-phs.txt").write_text(protocol_hierarchy(pcap))
    log(f"{name}: IKE_SAs {len(merged['ike_sas'])} (rekeys {ike_rekeys}), CHILD_SAs {len(merged['child_sas'])} "
        f"(rekeys {child_rekeys}); ESP {decrypted['esp_decrypted']}/{decrypted['esp_total']} decrypted, "
        f"ICV good {decrypted['esp_icv_good']}; IKE {decrypted['ike_decrypted']}/{decrypted['ike_encrypted']} decrypted")
    for c in checks:
        log(f"  check: {c}")
    return exp


_VERSIONS = {}


def versions() -> dict:
    if not _VERSIONS:
        def pkg(p):
            r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", p], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
            return r.stdout.strip() or None
        _VERSIONS.update(strongswan=pkg("strongswan-charon"), tcpdump=pkg("tcpdump"), tshark=pkg("tshark"),
                         kernel=os.uname().release, iproute2=pkg("iproute2"))
    return _VERSIONS


# --------------------------------------------------------------------------
# README

README_HEAD = """# strongSwan captures with known keys

Real IKE/ESP traffic between two strongSwan 5.9.8 peers, recorded on this
project's own machine with `tools/strongswan/make_captures.py` (our own
recording; MIT licence like the rest of the project).  The PSK and all keys are
throwaway test material from network namespaces that existed only for the
recording; committing them is intended.

## How they were made

    apt-get install -y strongswan-swanctl charon-systemd libcharon-extra-plugins \\
        libstrongswan-extra-plugins tcpdump iproute2 iputils-ping tshark
    python3 tools/strongswan/make_captures.py record     # as root, ~7 minutes

Versions: strongSwan {strongswan} (Debian), kernel {kernel}, tcpdump {tcpdump},
tshark {tshark} (used for the checks below), iproute2 {iproute2}.

Topology: two network namespaces joined by a veth pair, `moon` 192.0.2.1
(protected subnet 10.1.0.1/32 on `lo`) and `sun` 192.0.2.2 (10.2.0.1/32).
moon initiates.  The kernel has no XFRM, so each charon uses the
`kernel-libipsec` userspace data path (TUN device `ipsec0`).  Consequences
visible in every capture:

* ESP is **always UDP-encapsulated on port 4500** (libipsec cannot do plain
  ESP); charon fakes the NAT-D hashes, so after IKE_SA_INIT / the first Main
  or Aggressive Mode exchange IKE moves to UDP 4500 with the non-ESP marker
  (NAT-T keepalives would only be sent after 20 s without traffic, so there are none).
* Tunnel mode between the two /32 subnets; inner packets are ICMP echo
  (1/s), HTTP (python http.server on 10.2.0.1:8080, one GET every ~3 s) and a
  UDP request/echo on port 9000.

tcpdump runs in `moon` on `vmoon` (`-s 0`, both directions), linktype Ethernet.

Every scenario directory holds:

| file | content |
|---|---|
| `capture.pcap` | the capture |
| `charon-moon.log`, `charon-sun.log` | charon logs (`ike=4 chd=4 mgr=2 knl=2 cfg=2 net=2`), trimmed of per-packet NET lines, MGR checkout lines and config dumps; every key dump, SPI and state line is kept |
| `swanctl-*.conf`, `strongswan-*.conf` | the configuration of each peer |
| `expected.json` | derived from the logs: every IKE_SA (SPIs, version, initiator/responder, proposal, keys: SK_d/ai/ar/ei/er/pi/pr or SKEYID*/Ka, state-change times per host, which SA it rekeyed) and every CHILD_SA (both SPIs with src/dst, algorithms, key lengths, keys per direction, PFS/DH group, which CHILD_SA it rekeyed, per-host states, collisions), plus tshark statistics of the capture |
| `esp_sa`, `ikev2_decryption_table`, `ikev1_decryption_table` | Wireshark 4.0 UAT files derived from the logs (copy to `~/.config/wireshark/`) |
| `tshark-io-phs.txt` | `tshark -q -z io,phs` of the capture (no keys) |
| `recording.json` | when, how long, how much inner traffic got through |

Key extraction: `tools/strongswan/charonlog.py` (`parse_charon_log`,
`merge_hosts`, `wireshark_tables`); its docstring lists the log-line formats.
The `save-keys` plugin (which writes the Wireshark tables itself) is **not**
built in Debian's strongSwan 5.9.8 packages, so the tables here are derived
from the debug log only; they are verified by decrypting with tshark instead.

To decrypt a capture with tshark 4.0, either use the tables as a profile

    mkdir -p /tmp/ws/wireshark && cp esp_sa ikev*_decryption_table /tmp/ws/wireshark/
    XDG_CONFIG_HOME=/tmp/ws tshark -r capture.pcap -o esp.enable_encryption_decode:TRUE \\
        -o esp.enable_authentication_check:TRUE

or pass each `esp_sa` line as `-o 'uat:esp_sa:<line>'` (one `-o` per SA).

"Decrypted" below: tshark 4.0.17 with the derived tables,
`esp.enable_encryption_decode:TRUE` and `esp.enable_authentication_check:TRUE`
(ESP counts packets whose inner IP was dissected; ICV good = authentication
verified; IKE counts encrypted messages that tshark decrypted).

## Scenarios
"""


def readme(out_root: Path):
    v = versions()
    parts = [README_HEAD.format(**{k: v.get(k) or "?" for k in ("strongswan", "kernel", "tcpdump", "tshark", "iproute2")})]
    summary_rows = ["| scenario | IKE | IKE_SAs (rekeys) | CHILD_SAs (rekeys) | ESP pkts | ESP decrypted (ICV ok) | IKE decrypted |",
                    "|---|---|---|---|---|---|---|"]
    details = []
    for name in SCENARIOS:
        d = out_root / name
        if not (d / "expected.json").exists():
            continue
        e = json.loads((d / "expected.json").read_text())
        cap, dec, cnt = e["capture"], e["decryption_with_derived_tables"], e["counts"]
        vers = sorted({f"v{s['version']}" for s in e["ike_sas"]})
        summary_rows.append(
            f"| `{name}` | {'/'.join(vers)} | {cnt['ike_sas']} ({cnt['ike_sa_rekeys']}) | {cnt['child_sas']} "
            f"({cnt['child_sa_rekeys']}) | {dec['esp_total']} | {dec['esp_decrypted']} ({dec['esp_icv_good']}) | "
            f"{dec['ike_decrypted']}/{dec['ike_encrypted']} |")
        lines = [f"### `{name}`", "", e["summary"], ""]
        rec = json.loads((d / "recording.json").read_text()) if (d / "recording.json").exists() else {}
        lines.append(f"{cap['frames']} frames, {rec.get('duration_s', '?')} s. IKE messages by exchange "
                     f"(per tshark): " + ", ".join(f"{k}: {n}" for k, n in cap["ike_messages"].items()) + ".")
        lines.append("IKE UDP ports: " + ", ".join(f"{k}: {n}" for k, n in cap["ike_udp_ports"].items()) + ".")
        extra = []
        if cap["ip_fragments"]:
            extra.append(f"{cap['ip_fragments']} IP fragments")
        if cap["ikev2_fragments"]:
            extra.append(f"{cap['ikev2_fragments']} IKEv2 SKF fragments")
        if cap["nat_keepalives"]:
            extra.append(f"{cap['nat_keepalives']} NAT-T keepalives")
        if extra:
            lines.append("Also: " + ", ".join(extra) + ".")
        lines.append("")
        lines.append("| IKE_SA (SPIi / SPIr) | version | proposal | initiator | rekey of | note |")
        lines.append("|---|---|---|---|---|---|")
        for s in e["ike_sas"]:
            mode = f"v{s['version']}" + (f" {s['mode']} Mode" if s.get("mode") else "")
            rk = s["rekey_of"].replace("_", " / ") if s["rekey_of"] else "-"
            note = "redundant (rekey collision)" if s.get("collision") else ""
            if not s["keys"]:
                note = (note + "; " if note else "") + "no keys logged"
            lines.append(f"| {s['spi_i']} / {s['spi_r']} | {mode} | {s['proposal']} | {s['initiator']} | {rk} | {note} |")
        lines.append("")
        lines.append("| CHILD_SA (SPI i->r / r->i) | algorithms | PFS | rekey of | ESP pkts i->r / r->i |")
        lines.append("|---|---|---|---|---|")
        for c in e["child_sas"]:
            s0, s1 = c["sas"][0]["spi"], c["sas"][1]["spi"]
            alg = c["encryption"]["algorithm"] + (f"-{c['encryption']['key_bits']}" if c["encryption"]["key_bits"] else "")
            if c["integrity"]:
                alg += " / " + c["integrity"]["algorithm"]
            pfs = c["dh_group"] if c["pfs"] else "no"
            rk = c["rekey_of"].replace("_", " / 0x") if c["rekey_of"] else "-"
            if c["rekey_of"]:
                rk = "0x" + rk
            if c.get("redundant_after_collision"):
                rk += " (redundant, collision lost)"
            lines.append(f"| {s0} / {s1} | {alg} | {pfs} | {rk} | {cap['esp_per_spi'].get(s0, 0)} / "
                         f"{cap['esp_per_spi'].get(s1, 0)} |")
        lines.append("")
        if any(e["collisions"].values()):
            lines.append("Collision lines in the charon logs:")
            lines.append("")
            for h, msgs in e["collisions"].items():
                for m in msgs:
                    lines.append(f"* {h}: `{m}`")
            lines.append("")
        if e.get("notes"):
            lines += [e["notes"], ""]
        if e["checks"]:
            lines.append("Extraction notes: " + "; ".join(e["checks"]))
            lines.append("")
        details.append("\n".join(lines))
    notes_file = out_root / "NOTES.md"
    parts.append("\n".join(summary_rows) + "\n")
    if notes_file.exists():
        parts.append(notes_file.read_text())
    parts.append("\n\n".join(details))
    (out_root / "README.md").write_text("\n".join(parts).rstrip() + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["record", "analyse", "readme", "list"])
    ap.add_argument("scenarios", nargs="*")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--workdir", default="/tmp/ipsecpcap-strongswan")
    a = ap.parse_args()
    out_root = Path(a.out)
    names = a.scenarios or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            ap.error(f"unknown scenario {n}; known: {', '.join(SCENARIOS)}")
    if a.command == "list":
        for n, s in SCENARIOS.items():
            print(f"{n}: {s['summary']}")
        return
    if a.command == "record":
        if os.geteuid() != 0:
            sys.exit("record needs root (network namespaces, tcpdump)")
        failed = []
        for n in names:
            try:
                record(SCENARIOS[n], out_root, Path(a.workdir))
            except Exception as ex:  # keep going with the other scenarios
                log(f"{n} FAILED: {ex}")
                failed.append(n)
        readme(out_root)
        if failed:
            sys.exit(f"failed: {failed}")
    elif a.command == "analyse":
        for n in names:
            if (out_root / n / "capture.pcap").exists():
                analyse(out_root / n)
        readme(out_root)
    elif a.command == "readme":
        readme(out_root)


if __name__ == "__main__":
    main()
