"""Decryption end to end: keys from files, ESP/AH state, IKE, the tables,
and the decrypted capture, against the keys' own origin (the daemon's log)
and against tshark.
"""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ipsecpcap.analysis import analyze
from ipsecpcap.keys import load_keys

ROOT = Path(__file__).resolve().parents[2]
SS = ROOT / "fixtures" / "strongswan"
PUB = ROOT / "fixtures" / "public"
SCENARIOS = sorted(p.name for p in SS.iterdir() if (p / "capture.pcap").exists())


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request):
    d = SS / request.param
    return d, analyze([d / "capture.pcap"], keys=[d])


def test_every_esp_packet_verifies_and_decrypts(scenario):
    d, a = scenario
    # a negotiation failure (no CHILD_SA in charon's log) has no ESP
    assert bool(a.sas) == bool(json.loads((d / "expected.json").read_text())["child_sas"])
    for r in a.sas:
        assert (r.decrypted, r.integrity_failures) == (r.packets, 0), (d.name, r.spi)
        assert r.key is not None and r.enc is not None


def test_keys_are_the_ones_the_daemon_logged(scenario):
    d, a = scenario
    logged = {}
    for child in json.loads((d / "expected.json").read_text())["child_sas"]:
        for sa in child["sas"]:
            logged[int(sa["spi"], 16)] = sa["enc_key"]
    by_fp = {k.fingerprint: k for k in a.keys.esp}
    for r in a.sas:
        assert by_fp[r.key].enc_key.hex() == logged[int(r.spi, 16)]


def test_every_encrypted_ike_message_decrypts(scenario):
    d, a = scenario
    enc = [e for e in a.exchanges if e.encrypted]
    tables = [d / t for t in ("ikev1_decryption_table", "ikev2_decryption_table")]
    assert enc or not any(t.exists() for t in tables)  # a failure in IKE_SA_INIT / Main Mode 1 encrypts nothing
    assert all(e.decrypted for e in enc), [(e.frame, e.decryption) for e in enc if not e.decrypted]
    for e in enc:
        # the inner payloads join the outer SK / encrypted one; only an empty
        # INFORMATIONAL answer (the acknowledgement of a Delete or a liveness check) has none
        if e.decryption == "ok" and not (e.exchange == "INFORMATIONAL" and e.response):
            assert len(e.payloads) > 1, e
    # the identities charon logged sending (a failed negotiation may stop before either; the
    # recordings older than the failure scenarios have no exchanges_logged and sent both)
    logged = [x for h in json.loads((d / "expected.json").read_text()).get("exchanges_logged", {}).values() for x in h]
    sent_id = {kind: not logged or any(f"generating {x} {kind} " in line and " ID" in line.split("[", 1)[1]
                                       for line in logged for x in ("IKE_AUTH", "ID_PROT", "AGGRESSIVE"))
               for kind in ("request", "response")}
    for row in a.ike:
        if row.mode is None:
            continue  # an IKE SA made by a rekey carries no identities
        assert row.initiator_id == ("moon@strongswan.test" if sent_id["request"] else None)
        assert row.responder_id == ("sun@strongswan.test" if sent_id["response"] else None)
        assert row.auth_method == "psk" or not (sent_id["request"] or row.version == 1)


def test_inner_traffic_is_what_was_sent(scenario):
    d, a = scenario
    sent = json.loads((d / "recording.json").read_text())["traffic"]  # {} for a negotiation failure
    tcp = [f for f in a.flows if f.proto == "tcp" and f.dport == 8080 and f.protected_by is not None]
    udp = [f for f in a.flows if f.proto == "udp" and f.dport == 9000 and f.protected_by is not None]
    assert len(tcp) == sent.get("http_requests", 0) and all(f.state == "accepted" for f in tcp)
    assert len(udp) == sent.get("udp_probes", 0) and sum(f.packets_rev for f in udp) == sent.get("udp_echoed", 0)
    assert all(f.protected_by is not None and f.src == "10.1.0.1" and f.dst == "10.2.0.1" for f in tcp + udp)
    pings = sum(v["sent"] for k, v in sent.items() if k.endswith("ping") and isinstance(v, dict))
    echo = [f for f in a.flows if f.proto == "icmp" and f.sport == 8]
    if pings:
        assert sum(f.packets_fwd for f in echo) == pings
    # nothing of the tunnel's inner traffic leaks into the clear: what went in clear is what the
    # recorder sent beside the tunnel on purpose (plaintext.json) and the ICMP errors tshark counted
    probes = json.loads((d / "plaintext.json").read_text())["probes"] if (d / "plaintext.json").exists() else []
    clear = [f for f in a.flows if f.protected_by is None]
    assert {(f.proto, f.src, f.sport, f.dst, f.dport) for f in clear if f.proto != "icmp"} == \
        {(p["proto"], p["src"], p["sport"], p["dst"], p["dport"]) for p in probes}
    icmp = json.loads((d / "expected.json").read_text())["capture"].get("icmp", {})
    assert sum(f.packets for f in clear if f.proto == "icmp") == sum(icmp.values())
    # each probe's flow: the answer its client got (plaintext.json), its packets as tshark counted them
    state = {"answered": "accepted", "refused": "rejected", "unanswered": "unanswered"}
    flows = {(f.proto, f.src, f.sport, f.dst, f.dport): f for f in clear}
    for p in probes:
        f = flows[(p["proto"], p["src"], p["sport"], p["dst"], p["dport"])]
        assert (f.state, f.packets_fwd) == (state[p["result"]], p["capture"]["frames_client_to_server"]), p["name"]


def test_wrong_key_fails_every_packet_and_decrypts_nothing(tmp_path):
    d = SS / "ikev2-gcm"
    lines = []
    for line in (d / "esp_sa").read_text().splitlines():
        if line.startswith('"IPv4"'):
            cols = line.split(",")
            key = cols[5].strip('"')
            cols[5] = '"0x' + ("%0*x" % (len(key) - 2, int(key, 16) ^ 1)) + '"'  # one bit flipped
            line = ",".join(cols)
        lines.append(line)
    (tmp_path / "esp_sa").write_text("\n".join(lines) + "\n")
    a = analyze([d / "capture.pcap"], keys=[tmp_path / "esp_sa"])
    for r in a.sas:
        assert (r.decrypted, r.integrity_failures) == (0, r.packets)
    assert not [f for f in a.flows if f.protected_by]


def test_keys_with_wrong_or_wild_spis_are_found_by_trial(tmp_path):
    d = SS / "ikev2-cbc-rekey"
    rows = list(csv.reader((d / "esp_sa").read_text().splitlines()[1:]))
    out = []
    for i, r in enumerate(rows):
        r[3] = "*" if i % 2 else "0x%08x" % (0x1000 + i)  # wildcard or wrong SPI
        r[1] = r[2] = "*"
        out.append(",".join(f'"{c}"' for c in r))
    bogus = '"IPv4","*","*","0x0badf00d","AES-CBC [RFC3602]","0x' + "00" * 16 + '","HMAC-SHA-256-128 [RFC4868]","0x' + "11" * 32 + '"'
    (tmp_path / "esp_sa").write_text("\n".join(out + [bogus]) + "\n")
    a = analyze([d / "capture.pcap"], keys=[tmp_path / "esp_sa"])
    assert all(r.decrypted == r.packets for r in a.sas)
    report = a.key_report()
    assert [k["verified_on"] for k in report if k["spi"] == "0x0badf00d"] == [[]]
    assert sum(1 for k in report if k["verified_on"]) == len(a.sas)


# ---------------------------------------------------------------- public captures with published keys
ESP_CAPTURES = {
    "packetgen-plugin-ipsec/esp4-cbc.pcapng": "packetgen-plugin-ipsec/keys.derived.esp_sa",
    "packetgen-plugin-ipsec/esp-tfc.pcapng": "packetgen-plugin-ipsec/keys.derived.esp_sa",
    "packetgen-plugin-ipsec/esp-transport-esn.pcapng": "packetgen-plugin-ipsec/keys.derived.esp_sa",
    "packetgen-plugin-ipsec/esp4-ctr-hmac.pcapng": "packetgen-plugin-ipsec/keys-ctr.derived.esp_sa",
    "packetgen-plugin-ipsec/esp4-gcm.pcapng": "packetgen-plugin-ipsec/keys-gcm.derived.esp_sa",
    "tcpdump/02-sunrise-sunset-esp.pcap": "tcpdump/esp1-secrets.derived.txt",
    "tcpdump/espudp1.pcap": "tcpdump/esp1-secrets.derived.txt",  # README: the key that really decrypts it
    "tcpdump/08-sunrise-sunset-aes.pcap": "tcpdump/esp-secrets.txt",
    "tcpdump/08-sunrise-sunset-esp2.pcap": "tcpdump/esp-secrets.txt",
    "wireshark/esp-bug-12671.pcapng.gz": "wireshark/esp_sa.tmpl",
}


@pytest.mark.parametrize("capture", sorted(ESP_CAPTURES))
def test_public_esp_captures_decrypt(capture):
    a = analyze([PUB / capture], keys=[PUB / ESP_CAPTURES[capture]])
    esp = [r for r in a.sas if r.protocol == "esp"]
    published = {k.spi for k in a.keys.esp}
    # packetgen's captures also hold the peer's answer, whose key was not published
    keyed = [r for r in esp if int(r.spi, 16) in published or None in published]
    assert keyed
    for r in keyed:
        assert (r.decrypted, r.integrity_failures) == (r.packets, 0), (capture, r)


def test_esp_in_esp_inner_sa_decrypts_too():
    a = analyze([PUB / "tcpdump/08-sunrise-sunset-esp2.pcap"], keys=[PUB / "tcpdump/esp-secrets.txt"])
    assert sum(r.decrypted for r in a.sas) > sum(r.packets for r in a.sas if r.key is None)


def test_esn_capture_verifies_only_with_esn():
    a = analyze([PUB / "packetgen-plugin-ipsec/esp-transport-esn.pcapng"],
                keys=[PUB / "packetgen-plugin-ipsec/keys.derived.esp_sa"])
    (r,) = [r for r in a.sas if r.spi == "0xc84340a5"]  # the SA whose key was published
    assert (r.packets, r.decrypted, r.integrity_failures) == (1, 1, 0)
    st = next(st for (_p, spi, _a), st in a.crypto.states.items() if spi == 0xC84340A5)
    assert st.esn is True  # inferred: the 8-column table says nothing about ESN


IKE_CAPTURES = sorted(p.name for p in (PUB / "wireshark").iterdir()
                      if p.name.startswith(("ikev1", "ikev2")) and ".pcap" in p.name)


@pytest.mark.parametrize("capture", IKE_CAPTURES)
def test_wireshark_ike_captures_decrypt(capture):
    w = PUB / "wireshark"
    a = analyze([w / capture], keys=[w / "ikev1_decryption_table.tmpl", w / "ikev2_decryption_table.tmpl"])
    enc = [e for e in a.exchanges if e.encrypted]
    assert enc and all(e.decryption == "ok" for e in enc), [(e.frame, e.decryption) for e in enc]


def test_wireshark_expected_esp_value():
    """Wireshark's own decryption suite: esp-bug-12671 must show data.data 08090a0b... once decrypted."""
    row = next(r for r in csv.DictReader((PUB / "wireshark" / "EXPECTED.derived.tsv").read_text().splitlines()[1:],
                                          delimiter="\t") if r["capture"].startswith("esp-bug"))
    from ipsecpcap.decryptpcap import decrypt_captures  # noqa: F401  (the writer is tested below)
    from ipsecpcap.sacrypto import SaCrypto

    crypto = SaCrypto(load_keys([PUB / "wireshark" / "esp_sa.tmpl"]))
    payloads = []
    import ipsecpcap.decode as dec
    from ipsecpcap.reader import open_capture
    from ipsecpcap.tracker import Tracker

    d = dec.KeyedDecoder(Tracker(), crypto)
    with open_capture(PUB / "wireshark" / row["capture"]) as r:
        for b in r:
            for i, off in enumerate(b.offsets):
                d.frame(b.linktypes if isinstance(b.linktypes, int) else b.linktypes[i], b.data, off,
                        off + b.caplens[i], b.ts[i], b.frames[i])
                if d.opened and d.opened[4].status == "ok":
                    payloads.append(d.opened[4].payload)
    assert any(bytes.fromhex(row["expected_substring"]) in p for p in payloads)


# ---------------------------------------------------------------- the decrypted capture
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (CI installs it; apt-get install tshark)")
def test_decrypted_capture_opens_in_tshark_with_the_inner_traffic(tmp_path):
    d = SS / "ikev2-gcm"
    out = tmp_path / "plain.pcap"
    p = subprocess.run([sys.executable, "-m", "ipsecpcap.cli", "decrypt", str(d / "capture.pcap"),
                        "--keys", str(d / "esp_sa"), "-w", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    a = analyze([d / "capture.pcap"], keys=[d / "esp_sa"])
    esp_packets = sum(r.packets for r in a.sas)
    assert f"{esp_packets} ESP packets decrypted" in p.stderr
    t = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.protocols"],
                       capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(t) == a.accounting.frames  # every frame kept, in place
    assert not [x for x in t if ":esp" in x]  # no ESP left
    assert sum(":http" in x for x in t) == 2 * len([f for f in a.flows if f.dport == 8080])  # request + response
    assert sum(x.endswith("icmp") or ":icmp" in x for x in t) >= 2 * 22
    # --only-decrypted keeps just the inner packets
    subprocess.run([sys.executable, "-m", "ipsecpcap.cli", "decrypt", str(d / "capture.pcap"), "--keys",
                    str(d / "esp_sa"), "-w", str(out), "--only-decrypted"], check=True, capture_output=True)
    t = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.protocols"],
                       capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(t) == esp_packets


def test_decrypt_command_does_without_the_analysis(tmp_path):
    # the key table is loaded straight from ipsecpcap.keys: the analysis and its tables are not
    # imported (about 0.02 s of every decrypt); what is written is what decrypt_captures writes
    from ipsecpcap.decryptpcap import decrypt_captures
    from ipsecpcap.sacrypto import SaCrypto

    d = SS / "ikev2-gcm"
    out, ref = tmp_path / "cli.pcap", tmp_path / "ref.pcap"
    code = ("import sys\nfrom ipsecpcap.cli import main\n"
            f"try: main(['decrypt', {str(d / 'capture.pcap')!r}, '--keys', {str(d / 'esp_sa')!r}, '-w', "
            f"{str(out)!r}], prog_name='ipsecpcap')\n"
            "except SystemExit as e: assert not e.code, e.code\n"
            "print(sorted(m for m in ('ipsecpcap.analysis', 'ipsecpcap.tables') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
    stats = decrypt_captures([str(d / "capture.pcap")], SaCrypto(load_keys([d / "esp_sa"])), str(ref))
    assert stats.decrypted > 0 and out.read_bytes() == ref.read_bytes()


def test_transport_mode_rebuild_keeps_the_outer_header():
    from ipsecpcap.decryptpcap import rebuild
    import struct
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + 40, 1, 0, 64, 50, 0, b"\x0a\0\0\1", b"\x0a\0\0\2")
    frame = b"\x00" * 12 + b"\x08\x00" + ip + b"\x00" * 48
    tcp = bytes(20) + b"hello"
    new = rebuild(1, frame, 14, 34, False, 6, tcp)
    assert new[14 + 9] == 6 and struct.unpack("!H", new[16:18])[0] == 20 + len(tcp) and new[34:] == tcp
    # the checksum of the rebuilt header is valid
    hdr = new[14:34]
    s = sum(struct.unpack("!10H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    assert s == 0xFFFF


@pytest.mark.parametrize("scenario_name, keyfile", [
    ("ikev2-natt", "xfrm-state.txt"), ("ikev2-gcm", "xfrm-state.txt"), ("ikev2-chacha", "xfrm-state.txt"),
    ("ikev2-aes256-sha512-modp", "xfrm-state-s.txt"), ("ikev1-aggressive-psk", "xfrm-state-s.txt"),
])
def test_ip_xfrm_state_dumps_decrypt_the_strongswan_captures(scenario_name, keyfile):
    """The CHILD_SAs of these scenarios written in fixtures/keys/ as a Linux
    gateway's `ip [-s] xfrm state` prints them verify every one of their packets."""
    a = analyze([SS / scenario_name / "capture.pcap"], keys=[ROOT / "fixtures" / "keys" / keyfile])
    keyed = [r for r in a.sas if r.key is not None]
    assert len(keyed) >= 2 and len(keyed) % 2 == 0  # both directions of each CHILD_SA written
    for r in keyed:
        assert (r.decrypted, r.integrity_failures) == (r.packets, 0)


def _ah_v4_frame(key: bytes, spi: int, seq: int, ttl: int, payload: bytes, icv_ok: bool = True) -> bytes:
    """Ethernet + IPv4 + AH (HMAC-SHA1-96) + payload; the ICV computed as RFC 4302
    3.3.3.1.1 says: TOS, flags/fragment offset, TTL and checksum zeroed, ICV zeroed."""
    import hashlib
    import hmac
    import struct
    ah_len = 12 + 12
    total = 20 + ah_len + len(payload)
    def ip(tos, frag, ttl_, csum):
        return struct.pack("!BBHHHBBH4s4s", 0x45, tos, total, 7, frag, ttl_, 51, csum,
                           bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    ah = struct.pack("!BBHII", 6, ah_len // 4 - 2, 0, spi, seq)
    icv = hmac.new(key, ip(0, 0, 0, 0) + ah + bytes(12) + payload, hashlib.sha1).digest()[:12]
    if not icv_ok:
        icv = bytes([icv[0] ^ 1]) + icv[1:]
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip(0x10, 0x4000, ttl, 0) + ah + icv + payload


def test_ah_icv_verification_through_the_analysis(tmp_path):
    import struct
    key = bytes(range(20))
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x02, 1024, 0, 0)  # a SYN
    frames = [_ah_v4_frame(key, 0x100, s, 64 - s, tcp) for s in (1, 2, 3)]  # TTL changes: mutable
    frames.append(_ah_v4_frame(key, 0x100, 4, 60, tcp, icv_ok=False))
    pcap = tmp_path / "ah.pcap"
    with open(pcap, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(fr), len(fr)) + fr)
    keys = tmp_path / "keys.yaml"
    keys.write_text('ipsecpcap-keys: 1\nesp:\n  - protocol: ah\n    spi: "0x100"\n    integ: hmac-sha1-96\n'
                    f'    integ_key: "0x{key.hex()}"\n')
    a = analyze([pcap], keys=[keys])
    (r,) = a.sas
    assert (r.protocol, r.packets, r.decrypted, r.integrity_failures, r.integ) == ("ah", 4, 3, 1, "hmac-sha1-96")
    (flow,) = a.flows
    assert flow.protected_by == "0x00000100"
