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
  recording.json, tshark-io-phs.txt, esp_sa, ikev2_decryption_table /
  ikev1_decryption_table (Wireshark UATs, only where something was keyed), and
  for the scenarios that ask for them plaintext.json, policy.yaml, nft-sun.conf.
  Negotiation failures (expect="failed") and a peer without charon
  (sun_charon=False) are scenarios too; see README.md for the options.

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
import xml.etree.ElementTree as ET
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


# ---- scenarios for the rule pack (issue 5): each one is the evidence that a
# rule fires (or stays quiet) on real strongSwan traffic.

SUN_SERVER_POLICY = """\
# Intended policy for this capture (read by the rule pack, issue 5): everything
# to sun's server, on its veth address or its protected address, must be
# ESP-encrypted; only IKE (UDP 500) and NAT-T (UDP 4500) may go in clear.
protected:
  - name: sun-server
    hosts: [192.0.2.2, 10.2.0.1]
    require: encrypt
    exempt: [udp/500, udp/4500]
    pfs: session
"""

# nft ruleset loaded in sun for ikev2-plaintext-beside-tunnel: a SYN to 8443
# is dropped silently (no RST, no ICMP), everything else is accepted.
SUN_NFT_DROP_8443 = """\
table inet ipsecpcap {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 8443 drop
  }
}
"""

# plaintext probes from moon's veth address to sun's (192.0.2.1 -> 192.0.2.2),
# beside the tunnel: (name, protocol, source port, destination port, what the
# server side does).  Fixed source ports so tests can find each 5-tuple.
PLAINTEXT_PROBES = [
    ("http-get", "tcp", 40080, 8080, "python http.server listening on 0.0.0.0:8080 answers GET /hello.txt"),
    ("tcp-closed-port", "tcp", 40081, 8081, "nothing listens on 8081: the kernel answers the SYN with RST"),
    ("udp-closed-port", "udp", 40091, 9001, "nothing listens on UDP 9001: ICMP port unreachable comes back"),
    ("udp-echo", "udp", 40090, 9000, "a UDP echo server on 192.0.2.2:9000 answers 'echo:' + the request"),
    ("tcp-dropped-syn", "tcp", 40443, 8443, "sun's nft ruleset drops TCP to 8443: the SYN stays unanswered"),
]

SCENARIO_NOTES.update({
    "ikev2-plaintext-beside-tunnel":
        "The tunnel (10.1.0.1 <-> 10.2.0.1) works and carries ping, HTTP and UDP as in the other scenarios; "
        "beside it, moon's veth address talks to sun's veth address in clear (`plaintext.json`: what the "
        "recorder sent, with source ports 40080-40443 and timestamps, what came back to the client, and what "
        "tshark shows of each probe in the capture). `policy.yaml` is the intended policy these probes break: "
        "sun's server (192.0.2.2 and 10.2.0.1) must only be reached through ESP, UDP 500/4500 exempt. sun's "
        "`nft` ruleset (`nft-sun.conf`) drops TCP to port 8443.",
    "ikev2-weak-crypto":
        "3DES-CBC, HMAC-MD5-96 and PRF-HMAC-MD5 with MODP-1024 (group 2) for IKE and 3DES-CBC with HMAC-MD5-96 "
        "for ESP all work with the Debian plugins (the `openssl` plugin provides them; it loads OpenSSL's "
        "`legacy` provider) and libipsec. A trial IKEv2 run with DES-CBC/HMAC-MD5-96/PRF-HMAC-MD5/MODP-768 and "
        "ESP DES-CBC/HMAC-MD5-96 also worked, but Wireshark 4.0 has no DES for IKEv2, so DES and MODP-768 are "
        "recorded with IKEv1 instead (ikev1-des-modp768), where tshark can decrypt them.",
    "ikev1-weak-crypto":
        "IKEv1 Main Mode with 3DES-CBC/HMAC-SHA1/MODP-1024 and Quick Mode 3DES-CBC/HMAC-SHA1-96 without PFS.",
    "ikev2-esp-null":
        "ESP with NULL encryption (RFC 2410) and HMAC-SHA2-256-128: the inner packets are readable in the "
        "capture without keys, only the ICV protects them. libipsec builds the NULL crypter through the "
        "`openssl` plugin (EVP_enc_null).",
    "ikev2-no-proposal":
        "moon offers only AES-CBC-128/SHA2-256/MODP-2048, sun only AES-CBC-256/SHA2-384/ECP-384: sun answers "
        "IKE_SA_INIT with N(NO_PROPOSAL_CHOSEN) in clear and moon gives up (keyingtries 1). Nothing is "
        "encrypted, so there are no key tables.",
    "ikev2-child-no-proposal":
        "IKE proposals match (the IKE_SA is established), ESP proposals do not (moon AES-CBC-128/SHA2-256, sun "
        "AES-GCM-16-256): the IKE_AUTH response carries N(NO_PROPOSAL_CHOSEN) and no SA/TS, moon logs "
        "'failed to establish CHILD_SA, keeping IKE_SA'; the IKE_SA is then deleted with swanctl --terminate "
        "(INFORMATIONAL with D). No ESP.",
    "ikev2-auth-failed":
        "moon and sun hold different PSKs: sun cannot verify moon's AUTH payload and answers IKE_AUTH with "
        "N(AUTHENTICATION_FAILED) (encrypted; the IKE_SA keys were derived in IKE_SA_INIT, so the table "
        "decrypts it). No ESP.",
    "ikev2-ts-unacceptable":
        "sun's child config accepts only 10.9.0.0/24 as the remote subnet while moon proposes TSi 10.1.0.1/32: "
        "sun answers IKE_AUTH with N(TS_UNACCEPTABLE) and no SA/TS, the IKE_SA stays up on both sides "
        "('failed to establish CHILD_SA, keeping IKE_SA') until swanctl --terminate deletes it. No ESP.",
    "ikev2-invalid-ke":
        "moon proposes ECP-256 and MODP-2048 and sends its KE for ECP-256; sun only accepts MODP-2048 and "
        "answers with N(INVALID_KE_PAYLOAD) carrying group 14; moon retries IKE_SA_INIT with a MODP-2048 KE "
        "(the same initiator SPI; the INVALID_KE_PAYLOAD response has responder SPI 0, RFC 7296 1.2) and the negotiation completes normally, with traffic.",
    "ikev1-no-proposal":
        "IKEv1 Main Mode with disjoint proposals (moon AES-CBC-128/SHA2-256/MODP-2048, sun "
        "AES-CBC-256/SHA2-512/MODP-4096): sun answers the first Main Mode message with an unencrypted "
        "Informational exchange carrying N(NO-PROPOSAL-CHOSEN). That message carries sun's responder cookie, "
        "which charon never logs in a checkin line (it destroys the IKE_SA first), hence the extraction note.",
    "ikev2-unanswered":
        "No charon runs on sun: moon sends IKE_SA_INIT and retransmits it 3 times (retransmit_timeout 1 s, "
        "base 1.4), then gives up ('giving up after 3 retransmits'). sun's kernel answers every request with "
        "ICMP port unreachable (nothing listens on UDP 500); charon ignores ICMP. No keys, no tables.",
    "ikev1-des-modp768":
        "The weakest suite the Debian plugins still do: single DES (56-bit key, 8-byte blocks), MD5 and the "
        "768-bit MODP group 1, for IKE and ESP; tshark decrypts both.",
    "ikev1-main-quick-nopfs":
        "As ikev1-main-quick but the ESP proposal has no DH group: each Quick Mode rekey derives its keys from "
        "SKEYID_d and fresh nonces only (no KE payloads in Quick Mode, `pfs: false`).",
})

scenario(
    "ikev2-plaintext-beside-tunnel",
    summary="IKEv2 tunnel (AES-CBC-128/SHA2-256/MODP-2048, ESP AES-CBC-128/SHA2-256) carrying HTTP, UDP and "
            "ping between 10.1.0.1 and 10.2.0.1, and beside it plaintext from 192.0.2.1 to 192.0.2.2: an HTTP "
            "GET answered on 8080, a SYN refused with RST on 8081, UDP to closed 9001 (ICMP port unreachable), "
            "UDP echoed on 9000, a SYN to 8443 dropped by sun's firewall.",
    version=2, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256",
    moon={}, sun={}, duration=20, server_any=True, sun_nft=SUN_NFT_DROP_8443, plaintext_probes=PLAINTEXT_PROBES,
    policy=SUN_SERVER_POLICY,
)
scenario(
    "ikev2-weak-crypto",
    summary="IKEv2 with a weak suite: IKE 3DES-CBC/HMAC-MD5-96/PRF-HMAC-MD5/MODP-1024, ESP 3DES-CBC/HMAC-MD5-96; "
            "one child rekey (no PFS).",
    version=2, ike_proposals="3des-md5-modp1024", esp_proposals="3des-md5",
    moon={"child_rekey_time": "12s", "child_rand_time": "0s", "child_life_time": "30s"}, sun=LONG, duration=20,
)
scenario(
    "ikev1-weak-crypto",
    summary="IKEv1 Main Mode with 3DES-CBC/HMAC-SHA1/MODP-1024, Quick Mode 3DES-CBC/HMAC-SHA1-96 (no PFS).",
    version=1, ike_proposals="3des-sha1-modp1024", esp_proposals="3des-sha1",
    moon={}, sun={}, duration=16,
)
scenario(
    "ikev1-des-modp768",
    summary="IKEv1 Main Mode with DES-CBC/HMAC-MD5/MODP-768 (group 1), Quick Mode DES-CBC/HMAC-MD5-96 (no PFS).",
    version=1, ike_proposals="des-md5-modp768", esp_proposals="des-md5",
    moon={}, sun={}, duration=16,
)
scenario(
    "ikev2-esp-null",
    summary="IKEv2 (AES-CBC-128/SHA2-256/MODP-2048) with ESP NULL encryption and HMAC-SHA2-256-128 integrity "
            "(`null-sha256`): authenticated but readable inner traffic.",
    version=2, ike_proposals="aes128-sha256-modp2048", esp_proposals="null-sha256",
    moon={}, sun={}, duration=16,
)
scenario(
    "ikev2-no-proposal",
    summary="IKEv2 negotiation failure: disjoint IKE proposals, IKE_SA_INIT answered with NO_PROPOSAL_CHOSEN.",
    version=2, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256",
    moon={}, sun={"ike_proposals": "aes256-sha384-ecp384"}, expect="failed",
    outcome={"moon": [r"received NO_PROPOSAL_CHOSEN notify error"],
             "sun": [r"received proposals unacceptable"]},
)
scenario(
    "ikev2-child-no-proposal",
    summary="IKEv2: IKE_SA established, CHILD_SA refused in IKE_AUTH (NO_PROPOSAL_CHOSEN for the ESP "
            "proposals); the IKE_SA is kept and then deleted.",
    version=2, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256",
    moon={}, sun={"esp_proposals": "aes256gcm16"}, expect="failed",
    outcome={"moon": [r"received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built",
                      r"failed to establish CHILD_SA, keeping IKE_SA"],
             "sun": [r"no acceptable proposal found"]},
)
scenario(
    "ikev2-auth-failed",
    summary="IKEv2: wrong PSK on sun, IKE_AUTH answered with AUTHENTICATION_FAILED.",
    version=2, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256",
    moon={}, sun={"psk": "a-different-psk-on-sun-also-not-a-secret"}, expect="failed",
    outcome={"moon": [r"received AUTHENTICATION_FAILED notify error"],
             "sun": [r"verification of AUTH payload with pre-shared key failed|tried \d+ shared key"]},
)
scenario(
    "ikev2-ts-unacceptable",
    summary="IKEv2: sun accepts no traffic selectors moon proposes, IKE_AUTH answered with TS_UNACCEPTABLE; "
            "the IKE_SA is kept and then deleted.",
    version=2, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256",
    moon={}, sun={"remote_ts": "10.9.0.0/24"}, expect="failed",
    outcome={"moon": [r"received TS_UNACCEPTABLE notify, no CHILD_SA built",
                      r"failed to establish CHILD_SA, keeping IKE_SA"],
             "sun": [r"traffic selectors .* unacceptable|no matching CHILD_SA config found"]},
)
scenario(
    "ikev2-invalid-ke",
    summary="IKEv2: moon's first KE (ECP-256) is not sun's choice, sun answers INVALID_KE_PAYLOAD (group 14) "
            "and the retry with MODP-2048 succeeds; normal traffic afterwards.",
    version=2, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256",
    moon={"ike_proposals": "aes128-sha256-ecp256-modp2048"}, sun={}, duration=14,
    outcome={"moon": [r"peer didn't accept DH group ECP_256, it requested MODP_2048"],
             "sun": [r"DH group ECP_256 unacceptable, requesting MODP_2048"]},
)
scenario(
    "ikev1-no-proposal",
    summary="IKEv1 Main Mode negotiation failure: disjoint proposals, answered with an Informational "
            "NO-PROPOSAL-CHOSEN.",
    version=1, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256",
    moon={}, sun={"ike_proposals": "aes256-sha512-modp4096"}, expect="failed",
    outcome={"moon": [r"received NO_PROPOSAL_CHOSEN error notify"],
             "sun": [r"no proposal found"]},
)
scenario(
    "ikev2-unanswered",
    summary="IKEv2 IKE_SA_INIT to a peer where nothing listens on UDP 500 (no charon on sun): 3 retransmits, "
            "then moon gives up; sun's kernel answers with ICMP port unreachable.",
    version=2, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256",
    moon={}, sun={}, expect="failed", sun_charon=False,
    charon_extra={"retransmit_timeout": "1", "retransmit_base": "1.4"},
    outcome={"moon": [r"giving up after 3 retransmits", r"establishing IKE_SA failed, peer not responding"]},
)
scenario(
    "ikev1-main-quick-nopfs",
    summary="IKEv1 Main Mode (PSK, AES-CBC-128/SHA2-256/MODP-2048), Quick Mode without PFS "
            "(ESP AES-CBC-128/SHA2-256, no DH group); child rekey every 15 s gives several Quick Modes, old SAs "
            "expire (life_time 22 s) with Informational deletes; then swanctl --terminate.",
    version=1, ike_proposals="aes128-sha256-modp2048", esp_proposals="aes128-sha256",
    moon={"child_rekey_time": "15s", "child_rand_time": "0s", "child_life_time": "22s"},
    sun=LONG, duration=50,
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
            f"    proposals = {o.get('ike_proposals', sc['ike_proposals'])}",
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
    child = [f"        local_ts = {o.get('local_ts', h['subnet'])}",
             f"        remote_ts = {o.get('remote_ts', p['subnet'])}",
             "        mode = tunnel",
             f"        esp_proposals = {o.get('esp_proposals', sc['esp_proposals'])}",
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
            f"secrets {{\n  ike-psk {{\n    secret = \"{o.get('psk', PSK)}\"\n  }}\n}}\n")


TRAFFIC_SERVER = r'''
import socket, sys, threading, http.server, os
# argv: UDP echo addresses (comma-separated), web root, HTTP bind address (default: the first UDP one)
udp_addrs = sys.argv[1].split(",")
http_addr = sys.argv[3] if len(sys.argv) > 3 else udp_addrs[0]
def udp_echo(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 9000))
    while True:
        data, peer = s.recvfrom(4096)
        s.sendto(b"echo:" + data, peer)
for a in udp_addrs:
    threading.Thread(target=udp_echo, args=(a,), daemon=True).start()
os.chdir(sys.argv[2])
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((http_addr, 8080), H).serve_forever()
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


PROBE_CLIENT = r'''
import json, socket, sys, time, http.client
# argv: source address, destination address, JSON list of [name, proto, sport, dport, server side]
src, dst, probes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

def bound(kind, sport):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, sport))
    return s

def http_get(sport, dport):
    c = http.client.HTTPConnection(dst, dport, timeout=3, source_address=(src, sport))
    c.request("GET", "/hello.txt")
    r = c.getresponse()
    body = r.read()
    c.close()
    return {"sent": "GET /hello.txt HTTP/1.1", "result": "answered", "http_status": r.status,
            "response_body_bytes": len(body)}

def tcp_connect(sport, dport, timeout):
    s = bound(socket.SOCK_STREAM, sport)
    s.settimeout(timeout)
    try:
        s.connect((dst, dport))
    except ConnectionRefusedError:
        return {"sent": "TCP SYN (connect())", "result": "refused",
                "detail": "connect() failed with ECONNREFUSED: the server answered with RST"}
    except socket.timeout:
        return {"sent": "TCP SYN (connect())", "result": "unanswered",
                "detail": f"connect() timed out after {timeout} s: no SYN-ACK, no RST, no ICMP"}
    finally:
        s.close()
    return {"sent": "TCP SYN (connect())", "result": "connected"}

def udp_request(sport, dport, payload):
    s = bound(socket.SOCK_DGRAM, sport)
    s.connect((dst, dport))  # connected: an ICMP port unreachable comes back as ECONNREFUSED
    s.settimeout(2)
    s.send(payload)
    out = {"sent": payload.decode(), "sent_bytes": len(payload)}
    try:
        data = s.recv(4096)
        out.update(result="answered", reply=data.decode(errors="replace"), reply_bytes=len(data))
    except ConnectionRefusedError:
        out.update(result="refused", detail="recv() failed with ECONNREFUSED: ICMP port unreachable came back")
    except socket.timeout:
        out.update(result="unanswered", detail="no reply within 2 s")
    finally:
        s.close()
    return out

results = []
for name, proto, sport, dport, server in probes:
    rec = {"name": name, "proto": proto, "src": src, "sport": sport, "dst": dst, "dport": dport,
           "server_side": server, "ts_start": time.time()}
    try:
        if name == "http-get":
            rec.update(http_get(sport, dport))
        elif proto == "tcp":
            rec.update(tcp_connect(sport, dport, 2.5))
        else:
            rec.update(udp_request(sport, dport, f"ipsecpcap plaintext probe {name}".encode()))
    except Exception as e:
        rec.update(result="error", detail=f"{type(e).__name__}: {e}")
    rec["ts_end"] = time.time()
    results.append(rec)
    time.sleep(0.5)
print(json.dumps(results, indent=1))
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
    """Record one scenario.  ``expect = "failed"`` scenarios must not get a
    CHILD_SA up (swanctl --initiate fails); they run no traffic and stop a few
    seconds after the initiator gave up.  ``sun_charon = False`` leaves sun
    without a daemon (nothing listens on UDP 500)."""
    name = sc["name"]
    log(f"=== {name}: {sc['summary']}")
    expect = sc.get("expect", "established")
    hosts = [h for h in HOSTS if h != "sun" or sc.get("sun_charon", True)]
    wd = work_root / name
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    procs: list[Proc] = []
    charons: dict[str, Proc] = {}
    probes = None
    initiated = None
    try:
        build_netns(sc.get("veth_mtu"))
        if sc.get("sun_nft"):
            (wd / "nft-sun.conf").write_text(sc["sun_nft"])
            nsrun("sun", ["nft", "-f", str(wd / "nft-sun.conf")])
            (wd / "nft-sun.ruleset").write_text(nsrun("sun", ["nft", "list", "ruleset"]))
        for host in HOSTS:
            hd = wd / host
            hd.mkdir()
            (hd / "strongswan.conf").write_text(strongswan_conf(host, hd, sc.get("charon_extra")))
            (hd / "swanctl.conf").write_text(swanctl_conf(sc, host))
            if host not in hosts:
                continue
            for sub in ("x509", "x509ca", "private", "rsa", "ecdsa", "pkcs8", "pkcs12", "pubkey",
                        "x509ocsp", "x509aa", "x509ac", "x509crl", "bliss"):
                (hd / sub).mkdir()
            env = dict(os.environ, STRONGSWAN_CONF=str(hd / "strongswan.conf"))
            charons[host] = Proc(host, ["sh", "-c", f"mount -t tmpfs tmpfs /run && exec {CHARON}"], env=env,
                                 out=hd / "charon.stdout")
        for host in hosts:
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
        if "sun" in hosts:
            udp_addrs = HOSTS["sun"]["lo"] + ("," + HOSTS["sun"]["addr"] if sc.get("server_any") else "")
            procs.append(Proc("sun", ["python3", "-c", TRAFFIC_SERVER, udp_addrs, str(wd / "www"),
                                      "0.0.0.0" if sc.get("server_any") else HOSTS["sun"]["lo"]]))
        pcap = wd / "capture.pcap"
        tcpdump = Proc("moon", ["tcpdump", "-i", "vmoon", "-s", "0", "-U", "-n", "-w", str(pcap)],
                       out=wd / "tcpdump.out")
        time.sleep(1.5)
        t0 = time.time()
        outp = swanctl("moon", wd / "moon", "--initiate", "--ike", "t", "--child", "net", "--timeout", "30")
        (wd / "initiate.out").write_text(outp)
        initiated = "initiate completed successfully" in outp
        if expect == "established" and not initiated:
            raise RuntimeError(f"initiate failed: {outp[-2000:]}")
        if expect == "failed" and initiated:
            raise RuntimeError(f"initiate succeeded, but this scenario must fail: {outp[-2000:]}")
        if expect == "established":
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
            if sc.get("plaintext_probes"):
                time.sleep(3)
                outp = nsrun("moon", ["python3", "-c", PROBE_CLIENT, HOSTS["moon"]["addr"], HOSTS["sun"]["addr"],
                                      json.dumps(sc["plaintext_probes"])], timeout=60)
                probes = json.loads(outp)
                for pr in probes:
                    log(f"  probe {pr['name']}: {pr['result']} {pr.get('detail', '')}")
            while time.time() - t0 < dur:
                time.sleep(1)
        else:
            time.sleep(sc.get("linger", 2))
        outp = swanctl("moon", wd / "moon", "--terminate", "--ike", "t", "--timeout", "20")
        (wd / "terminate.out").write_text(outp)
        time.sleep(2)
        dur = round(time.time() - t0, 1) if expect != "established" else sc["duration"]
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
        if host not in hosts:
            continue
        raw = (wd / host / "charon.log").read_text(errors="replace")
        (dest / f"charon-{host}.log").write_text(trim_log(raw))
        shutil.copy(wd / host / "swanctl.conf", dest / f"swanctl-{host}.conf")
        conf = (wd / host / "strongswan.conf").read_text().replace(str(wd / host), f"/tmp/ipsecpcap-strongswan/{name}/{host}")
        (dest / f"strongswan-{host}.conf").write_text(conf)
    if (wd / "nft-sun.conf").exists():
        shutil.copy(wd / "nft-sun.conf", dest / "nft-sun.conf")
    meta = {"scenario": name, "summary": sc["summary"], "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "duration_s": dur, "expect": expect, "initiate_succeeded": initiated,
            "charon_on": hosts, "traffic": traffic_summary(wd)}
    if probes is not None:
        meta["plaintext_probes"] = probes
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
                                "udpencap.nat_keepalive", "isakmp.frag.number", "icmp.type", "icmp.code"],
                         prefs=prefs, env=env)
    st = {"frames": len(rows), "ike_messages": Counter(), "ike_udp_ports": Counter(), "esp_per_spi": Counter(),
          "ip_fragments": 0, "nat_keepalives": 0, "ikev2_fragments": 0, "icmp": Counter()}
    dec = {"esp_total": 0, "esp_decrypted": 0, "esp_icv_good": 0, "esp_icv_bad": 0, "esp_decrypted_per_spi": Counter(),
           "ike_encrypted": 0, "ike_decrypted": 0}
    for r in rows:
        (num, protos, ipsrc, ipdst, sport, dport, mf, fragoff, ver, xchg, flags, ispi, rspi, nextp,
         encdata, decrypted, typepayload, spi, seq, icvg, icvb, nonesp, keepalive, fragnum, ityp, icode) = \
            (r + [""] * 26)[:26]
        if ":icmp" in protos and not spi:
            # an ICMP error quotes the packet it is about: its IKE header is not an IKE message
            quoted = ":".join(protos.split(":icmp:", 1)[1].split(":")[1:3]) if ":icmp:" in protos else ""
            st["icmp"][f"type {ityp.split(',')[0]} code {icode.split(',')[0]}" + (f" quoting {quoted}" if quoted else "")] += 1
            continue
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


def notify_stats(pcap: Path, profile: Path | None) -> dict:
    """Notify payloads tshark dissects, per IKE message (with a profile holding
    the derived tables, also inside decrypted messages): ``counts`` by message
    kind and notify name as tshark names them, and ``errors``, the frames with an
    error notify (types below 16384, RFC 7296 3.10.1 / RFC 2408 3.14.1)."""
    env = None
    cmd = ["tshark", "-n", "-r", str(pcap), "-Y", "isakmp", "-T", "pdml"]
    if profile:
        env = dict(os.environ, XDG_CONFIG_HOME=str(profile), HOME=str(profile))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if r.returncode:
        raise RuntimeError(r.stderr.decode(errors="replace"))
    counts, errors = Counter(), []
    for pkt in ET.fromstring(r.stdout).iter("packet"):
        if any(pr.get("name") == "icmp" for pr in pkt.iter("proto")):
            continue  # an ICMP error quoting an IKE packet
        frame = ver = xchg = flags = None
        names = []
        for f in pkt.iter("field"):
            n = f.get("name")
            if n == "num" and frame is None:
                frame = int(f.get("show"))
            elif n == "isakmp.version" and ver is None:
                ver = f.get("show")
            elif n == "isakmp.exchangetype" and xchg is None:
                xchg = f.get("show")
            elif n == "isakmp.flags" and flags is None:
                flags = f.get("show")
            elif n == "isakmp.notify.msgtype":
                shown = f.get("showname", "").split(": ", 1)[-1]
                names.append((int(f.get("show")), shown))
        if ver is None:
            continue
        major = int(ver, 16) >> 4 if ver.startswith("0x") else int(float(ver))
        if major == 2:
            label = f"IKEv2 {IKEV2_X.get(xchg, xchg)} " + ("response" if int(flags, 16) & 0x20 else "request")
        else:
            label = f"IKEv1 {IKEV1_X.get(xchg, xchg)}"
        for num, shown in names:
            counts[f"{label}: {shown}"] += 1
        errs = [shown for num, shown in names if num < 16384]
        if errs:
            errors.append({"frame": frame, "message": label, "notifies": errs})
    return {"counts": dict(sorted(counts.items())), "errors": errors}


TCP_FLAGS = [(0x02, "SYN"), (0x08, "PSH"), (0x01, "FIN"), (0x04, "RST"), (0x10, "ACK")]


def plaintext_view(pcap: Path, probes: list[dict]) -> dict:
    """What tshark shows of each plaintext probe (recording.json's
    ``plaintext_probes``, the client's own account): every frame of its
    5-tuple, either way, and ICMP errors quoting it; the answer the capture
    shows and whether it agrees with what the client got back.  Frames between
    the two veth addresses that are neither IKE / NAT-T / ESP nor a probe's are
    counted in ``other_clear_frames``."""
    a, b = HOSTS["moon"]["addr"], HOSTS["sun"]["addr"]
    rows = tshark_fields(pcap, ["frame.number", "frame.time_epoch", "ip.src", "ip.dst", "frame.protocols",
                                "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.len", "udp.srcport", "udp.dstport",
                                "udp.length", "icmp.type", "icmp.code", "http.response.code"],
                         f"ip.addr=={a} && ip.addr=={b}")
    by_probe = {p["name"]: [] for p in probes}
    other = 0
    for r in rows:
        (num, ts, src, dst, protos, tsp, tdp, tfl, tlen, usp, udp_, ulen, ityp, icode, hcode) = (r + [""] * 15)[:15]
        first = lambda v: v.split(",")[0]
        src, dst = first(src), first(dst)
        if ":esp" in protos or ":udpencap" in protos or (":isakmp" in protos and ":icmp:" not in protos):
            continue
        icmp = ":icmp" in protos
        proto = "tcp" if tsp else "udp" if usp else None
        sport, dport = (first(tsp), first(tdp)) if proto == "tcp" else (first(usp), first(udp_))
        hit = None
        for p in probes:
            if proto == p["proto"] and {sport, dport} == {str(p["sport"]), str(p["dport"])}:
                hit = p
        if hit is None:
            other += 1
            continue
        fwd = src == hit["src"]
        f = {"frame": int(num), "ts": float(ts), "dir": "client->server" if fwd else "server->client"}
        if icmp:
            f["what"] = f"ICMP type {first(ityp)} code {first(icode)}"
            f["icmp"] = [int(first(ityp)), int(first(icode))]
        elif proto == "tcp":
            fl = int(first(tfl), 16)
            f["what"] = "TCP " + "-".join(n for bit, n in TCP_FLAGS if fl & bit) + \
                (f" {first(tlen)} bytes" if first(tlen) not in ("", "0") else "")
            f["tcp_flags"] = fl
            f["payload_bytes"] = int(first(tlen) or 0)
            if hcode:
                f["http_status"] = int(first(hcode))
        else:
            f["what"] = f"UDP {int(first(ulen)) - 8} bytes"
            f["payload_bytes"] = int(first(ulen)) - 8
        by_probe[hit["name"]].append(f)
    out = []
    for p in probes:
        fr = by_probe[p["name"]]
        rev = [f for f in fr if f["dir"] == "server->client"]
        if any("icmp" in f for f in rev):
            answer, agrees = "ICMP " + rev[0]["what"][5:], p["result"] == "refused"
        elif any(f.get("tcp_flags", 0) & 0x04 for f in rev):
            answer, agrees = "RST", p["result"] == "refused"
        elif any(f.get("tcp_flags", 0) & 0x12 == 0x12 for f in rev):
            answer = "SYN-ACK, " + f"{sum(f['payload_bytes'] for f in rev)} bytes back"
            codes = [f["http_status"] for f in rev if "http_status" in f]
            if codes:
                answer += f", HTTP {codes[0]}"
            agrees = p["result"] in ("answered", "connected") and (not codes or codes[0] == p.get("http_status"))
        elif rev:
            answer, agrees = f"UDP reply, {sum(f['payload_bytes'] for f in rev)} bytes", p["result"] == "answered"
        else:
            answer, agrees = "nothing", p["result"] == "unanswered"
        out.append(dict(p, capture={
            "frames": fr, "frames_client_to_server": len(fr) - len(rev), "frames_server_to_client": len(rev),
            "first_ts": fr[0]["ts"] if fr else None, "last_ts": fr[-1]["ts"] if fr else None,
            "answer": answer, "agrees_with_client": agrees}))
    return {"description": "Plaintext probes sent beside the tunnel by tools/strongswan/make_captures.py: the fields "
                           "outside 'capture' are the client's own account (recording.json), 'capture' is what "
                           "tshark shows of the probe's 5-tuple (both ways, and ICMP errors quoting it).",
            "probes": out, "other_clear_frames": other}


def analyse(dest: Path, sc: dict | None = None):
    name = dest.name
    sc = sc or SCENARIOS.get(name, {"name": name, "summary": ""})
    logs = {h: ((dest / f"charon-{h}.log").read_text().splitlines() if (dest / f"charon-{h}.log").exists() else [])
            for h in HOSTS}  # ikev2-unanswered: no charon (and no log) on sun
    facts = {h: charonlog.parse_charon_log(logs[h], h) for h in HOSTS}
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
    with tempfile.TemporaryDirectory() as prof:
        (Path(prof) / "wireshark").mkdir()
        for fn, lines in tables.items():
            (Path(prof) / "wireshark" / fn).write_text("\n".join(lines) + "\n")
        notifies_keyed = notify_stats(pcap, Path(prof))
    notifies_clear = notify_stats(pcap, None)
    outcome = []
    for host, patterns in (sc.get("outcome") or {}).items():
        for pat in patterns:
            hit = next((ln for ln in logs[host] if re.search(pat, ln)), None)
            outcome.append({"host": host, "pattern": pat, "line": hit})
            if hit is None:
                checks.append(f"outcome line not found in charon-{host}.log: {pat!r}")
    rec = json.loads((dest / "recording.json").read_text()) if (dest / "recording.json").exists() else {}
    if sc.get("policy"):
        (dest / "policy.yaml").write_text(sc["policy"])
    plaintext = None
    if rec.get("plaintext_probes"):
        plaintext = plaintext_view(pcap, rec["plaintext_probes"])
        for pr in plaintext["probes"]:
            if not pr["capture"]["agrees_with_client"]:
                checks.append(f"plaintext probe {pr['name']}: the capture shows {pr['capture']['answer']!r}, "
                              f"the client saw {pr['result']!r}")
        if plaintext["other_clear_frames"]:
            checks.append(f"clear frames between the veth addresses that no probe explains: "
                          f"{plaintext['other_clear_frames']}")
        (dest / "plaintext.json").write_text(json.dumps(plaintext, indent=1) + "\n")
    child_rekeys = sum(1 for c in merged["child_sas"] if c["rekey_of"])
    ike_rekeys = sum(1 for e in merged["ike_sas"] if e["rekey_of"])
    exp = OrderedDict(
        scenario=name,
        summary=sc.get("summary", ""),
        notes=sc.get("notes", ""),
        generator="tools/strongswan/make_captures.py (keys extracted by tools/strongswan/charonlog.py)",
        strongswan=versions().get("strongswan"),
        hosts={h: {"address": v["addr"], "protected_subnet": v["subnet"], "id": v["id"], "veth": v["veth"],
                   "charon": bool(logs[h])}
               for h, v in HOSTS.items()},
        expect=sc.get("expect", "established"),
        capture={"file": "capture.pcap", "interface": "vmoon (moon side of the veth)", "linktype": "EN10MB",
                 **plain},
        decryption_with_derived_tables=decrypted,
        counts={"ike_sas": len(merged["ike_sas"]), "ike_sa_rekeys": ike_rekeys,
                "child_sas": len(merged["child_sas"]), "child_sa_rekeys": child_rekeys,
                "esp_spis_in_capture": len(cap_spis), "child_sa_spis_without_packets": unused},
        collisions=collisions,
        ike_sas=merged["ike_sas"],
        child_sas=merged["child_sas"],
        ike_notifies={"clear": notifies_clear, "with_derived_tables": notifies_keyed},
        outcome=outcome,
        exchanges_logged={h: [f"{x['ts']} {x['dir']} {x['exchange']} {x['kind']} {x['mid']} [ {x['payloads']} ]"
                              for x in f["exchanges"]] for h, f in facts.items()},
        checks=checks,
    )
    if plaintext is not None:
        exp["plaintext_probes"] = "plaintext.json"
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
        vers = sorted({f"v{s['version']}" for s in e["ike_sas"]}) or [f"v{SCENARIOS[name]['version']}"]
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
        for k, n in (cap.get("icmp") or {}).items():
            extra.append(f"{n} ICMP {k}")
        if extra:
            lines.append("Also: " + ", ".join(extra) + ".")
        if e.get("expect") == "failed":
            lines.append("Outcome: the negotiation fails as intended (swanctl --initiate failed).")
        lines.append("")
        errors = (e.get("ike_notifies") or {}).get("with_derived_tables", {}).get("errors")
        if errors:
            lines.append("Error notifies (tshark, with the derived tables): " + "; ".join(
                f"frame {x['frame']} {x['message']}: {', '.join(x['notifies'])}" for x in errors) + ".")
            lines.append("")
        if e.get("outcome"):
            lines.append("Outcome lines in the charon logs:")
            lines.append("")
            for o in e["outcome"]:
                lines.append(f"* {o['host']}: `{o['line'].split('> ', 1)[-1] if o['line'] else 'NOT FOUND: ' + o['pattern']}`")
            lines.append("")
        if (d / "plaintext.json").exists():
            pt = json.loads((d / "plaintext.json").read_text())
            lines.append("Plaintext probes beside the tunnel (`plaintext.json`):")
            lines.append("")
            lines.append("| probe | sent | the client got | the capture shows (tshark) | frames c->s / s->c |")
            lines.append("|---|---|---|---|---|")
            for pr in pt["probes"]:
                c = pr["capture"]
                got = pr["result"] + (f" (HTTP {pr['http_status']}, {pr['response_body_bytes']} bytes)"
                                      if pr.get("http_status") else "")
                lines.append(f"| {pr['name']} | {pr['proto']} {pr['src']}:{pr['sport']} -> {pr['dst']}:{pr['dport']} | "
                             f"{got} | {c['answer']} | {c['frames_client_to_server']} / {c['frames_server_to_client']} |")
            lines.append("")
        if not e["ike_sas"]:
            lines.append("No IKE_SA got keys: nothing in this capture is encrypted, so there are no key tables.")
            lines.append("")
        else:
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
        if e["ike_sas"] and not e["child_sas"]:
            lines.append("No CHILD_SA was established, so there is no ESP.")
            lines.append("")
        elif e["child_sas"]:
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
