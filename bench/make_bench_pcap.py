#!/usr/bin/env python3
"""Write a realistic mixed IPsec capture (classic pcap, Ethernet, IPv4) for benchmarks.

Standalone: standard library only (struct, random).  Deterministic for a given --seed.

Traffic mix (by packet count, approximate):
  ~70 %  ESP (IP proto 50) over ~2,000 SAs: random SPIs, per-SA increasing sequence
         numbers, ESP body (IV + ciphertext + pad + ICV) 60..1400 bytes, bimodal
         (small ACK-like packets and near-MTU packets, some mid-size).
  ~5 %   NAT-T: UDP 4500 carrying ESP (non-zero SPI), plus a few NAT keep-alives
         (1 byte 0xff) and IKE-over-4500 (4-byte non-ESP marker).
  ~2 %   AH (IP proto 51, HMAC-SHA1-96 ICV); a third of them AH+ESP (next header 50),
         the rest AH over TCP/UDP.
  ~1 %   ISAKMP on UDP 500: IKEv1 Main Mode / Quick Mode / Informational and IKEv2
         IKE_SA_INIT / IKE_AUTH / CREATE_CHILD_SA / INFORMATIONAL, with well-formed
         payload chains (SA with proposal/transforms, KE, Nonce, VID, NAT-D/Notify,
         Encrypted).
  ~22 %  plaintext TCP/UDP between ~5,000 host pairs (TLS-like 443, SSH 22, 8443,
         high ports, DNS 53, NTP 123, syslog 514); a share of them goes to the
         "protected servers" that also sit behind the IPsec gateways.
Timestamps strictly increasing (exponential gaps, ~50 kpps mean), microsecond pcap.
IPv4 header checksums are correct; UDP checksum 0, TCP checksum 0 (as with offload).

Origin: a copy of the team's shared generator, shared/perf/make_bench_pcap.py (same
output for the same arguments), kept here so that bench/run.py and the tests have it
in the repository.

Usage: make_bench_pcap.py --count 1000000 --out bench_1m.pcap [--seed 1]
       make_bench_pcap.py --count 1000000 --out bench_1m.pcap --truth truth.json
       make_bench_pcap.py --count 500000 --out enc.pcap --encrypt [--keys enc.esp_sa]
The --truth file holds the expected per-class packet counts, for checking parsers.

--encrypt (added here; needs the ``cryptography`` package): the ESP SAs, raw and in
UDP 4500, carry real ciphertext in tunnel mode -- an inner IPv4/UDP packet, RFC 4303
padding, next header 4 -- half of them AES-GCM-128 with a 16-byte ICV (RFC 4106: key
and 4-byte salt, 8-byte IV, AAD = SPI | sequence), the other half AES-CBC-128 with
HMAC-SHA1-96 (RFC 3602, RFC 2404) (--cipher gcm / cbc: all of them one kind).  The keys are written as a Wireshark ``esp_sa``
table (--keys, default OUT.esp_sa), which ``ipsecpcap --keys`` and tshark both read.
The ESP inside AH+ESP is encrypted too (the AH ICV stays random: no AH keys).
Deterministic for a seed.
"""
import argparse
import itertools
import json
import random
import struct
import sys

PCAP_GLOBAL = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
REC = struct.Struct("<IIII")
ETH_HDR_IP = struct.Struct("!6s6sH")
IPH = struct.Struct("!BBHHHBBH4s4s")
UDPH = struct.Struct("!HHHH")
TCPH = struct.Struct("!HHIIBBHHH")
ESPH = struct.Struct("!II")
AHH = struct.Struct("!BBHII")  # next hdr, payload len, reserved, spi, seq
ISAKMP = struct.Struct("!8s8sBBBBII")
GEN = struct.Struct("!BBH")  # generic payload header

_unpack10 = struct.Struct("!10H").unpack


def ip_checksum(hdr):
    s = sum(_unpack10(hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


class Rand:
    """Random bytes sliced from a pre-generated pool (fast)."""

    def __init__(self, rng, size=1 << 22):
        self.pool = rng.randbytes(size + 2048)
        self.size = size
        self.rng = rng

    def bytes(self, n):
        o = self.rng.randrange(self.size)
        return self.pool[o:o + n]


def ip4(a, b, c, d):
    return bytes((a, b, c, d))


class EspSealer:
    """Real ESP encryption for --encrypt: AES-GCM-128 (ICV 16) or AES-CBC-128 + HMAC-SHA1-96."""

    GCM, CBC = "AES-GCM with 16 octet ICV [RFC4106]", "AES-CBC [RFC3602]"

    def __init__(self, rng, gcm):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.gcm = gcm
        self.key = rng.randbytes(20 if gcm else 16)  # GCM: 16-byte key + 4-byte salt (RFC 4106 8.1)
        self.auth = b"" if gcm else rng.randbytes(20)
        if gcm:
            self.aead = AESGCM(self.key[:16])

    def esp_sa_line(self, src, dst, spi):
        """One row of Wireshark's esp_sa table."""
        def q(b):
            return ".".join(str(x) for x in b)
        enc = self.GCM if self.gcm else self.CBC
        auth = '"NULL",""' if self.gcm else f'"HMAC-SHA-1-96 [RFC2404]","0x{self.auth.hex()}"'
        return f'"IPv4","{q(src)}","{q(dst)}","0x{spi:08x}","{enc}","0x{self.key.hex()}",{auth}'

    def seal(self, spi, seq, inner, iv):
        """ESP (SPI to ICV) carrying ``inner`` (an IPv4 packet: next header 4) in tunnel mode."""
        block = 4 if self.gcm else 16
        pad = (-(len(inner) + 2)) % block  # RFC 4303 2.4: default padding 1, 2, 3, ...
        pt = inner + bytes(range(1, pad + 1)) + bytes((pad, 4))
        head = ESPH.pack(spi, seq)
        if self.gcm:
            iv = iv[:8]
            return head + iv + self.aead.encrypt(self.key[16:] + iv, pt, head)  # ciphertext | 16-byte tag
        import hashlib
        import hmac
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        iv = iv[:16]
        enc = Cipher(algorithms.AES(self.key), modes.CBC(iv)).encryptor()
        body = head + iv + enc.update(pt) + enc.finalize()
        return body + hmac.new(self.auth, body, hashlib.sha1).digest()[:12]


def inner_packet(rnd, src, dst, n, ident):
    """An inner IPv4/UDP packet of about ``n`` bytes for tunnel mode (checksums 0)."""
    n = max(n, 28)
    payload = rnd.bytes(n - 28)
    udp = UDPH.pack(40000 + (ident & 1023), 443, 8 + len(payload), 0)
    return IPH.pack(0x45, 0, n, ident & 0xFFFF, 0x4000, 63, 17, 0, src, dst) + udp + payload


# ---------------------------------------------------------------- size models
def esp_body_len(rng):
    """ESP bytes after SPI+seq: IV(16) + ct (16-aligned) + ICV(16), total 60..1400."""
    r = rng.random()
    if r < 0.42:        # small: TCP ACKs, keep-alives, VoIP-ish
        ct = rng.randint(2, 5) * 16
    elif r < 0.57:      # small-mid
        ct = rng.randint(6, 36) * 16
    elif r < 0.67:      # mid
        ct = rng.randint(37, 75) * 16
    else:               # near MTU (tunnel-mode full segments)
        ct = rng.randint(78, 85) * 16
    n = 16 + ct + 16
    return max(60, min(1400, n))


def plain_payload_len(rng):
    r = rng.random()
    if r < 0.40:
        return 0
    if r < 0.60:
        return rng.randint(1, 200)
    if r < 0.70:
        return rng.randint(200, 1000)
    return rng.randint(1200, 1448)


# ---------------------------------------------------------------- IKE builders
NATT_VID = bytes.fromhex("4a131c81070358455c5728f20e95452f")
DPD_VID = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")


def gen_payload(next_p, body):
    return GEN.pack(next_p, 0, 4 + len(body)) + body


def chain(payloads):
    """payloads: list of (type, body) -> (first type, bytes) with next-payload chain."""
    out = []
    for i, (t, body) in enumerate(payloads):
        nxt = payloads[i + 1][0] if i + 1 < len(payloads) else 0
        out.append(gen_payload(nxt, body))
    return (payloads[0][0] if payloads else 0), b"".join(out)


def v1_sa_body():
    attrs = b"".join(struct.pack("!HH", 0x8000 | t, v) for t, v in (
        (1, 7), (14, 256), (2, 2), (3, 1), (4, 14), (11, 1), (12, 28800)))
    # transform payload: next 0, reserved, len, transform#, transform id KEY_IKE, reserved2
    tbody = struct.pack("!BBH", 1, 1, 0) + attrs
    trans = GEN.pack(0, 0, 4 + len(tbody)) + tbody
    # proposal payload: next 0, proposal #1, protocol ISAKMP(1), spi size 0, 1 transform
    pbody = struct.pack("!BBBB", 1, 1, 0, 1) + trans
    prop = GEN.pack(0, 0, 4 + len(pbody)) + pbody
    return struct.pack("!II", 1, 1) + prop  # DOI IPsec, situation identity-only


def v2_sa_body():
    def tr(last, ttype, tid, attr=b""):
        body = struct.pack("!BBH", ttype, 0, tid) + attr
        return struct.pack("!BBH", 0 if last else 3, 0, 4 + len(body)) + body
    keylen = struct.pack("!HH", 0x800E, 256)
    trs = (tr(False, 1, 12, keylen) + tr(False, 2, 5) + tr(False, 3, 12) + tr(True, 4, 14))
    pbody = struct.pack("!BBBB", 1, 1, 0, 4) + trs
    return struct.pack("!BBH", 0, 0, 4 + len(pbody)) + pbody


class IkeSA:
    __slots__ = ("ispi", "rspi", "v2", "step", "ini", "res", "natt", "msgid")

    def __init__(self, rng, ini, res, v2, natt):
        self.ispi = rng.randbytes(8)
        self.rspi = rng.randbytes(8)
        self.v2 = v2
        self.step = 0
        self.ini = ini
        self.res = res
        self.natt = natt
        self.msgid = 0


def ike_message(sa, rnd, rng):
    """Next ISAKMP message of this IKE SA -> (src, dst, isakmp bytes)."""
    st = sa.step
    sa.step += 1
    if sa.v2:
        # IKE_SA_INIT req/resp, IKE_AUTH req/resp, then CREATE_CHILD_SA / INFORMATIONAL
        cyc = st if st < 4 else 4 + (st % 4)
        resp = cyc % 2 == 1
        src, dst = (sa.res, sa.ini) if resp else (sa.ini, sa.res)
        flags = 0x20 if resp else 0x08
        rspi = b"\0" * 8 if cyc == 0 else sa.rspi
        if cyc < 2:
            exch, mid = 34, 0
            first, body = chain([
                (33, v2_sa_body()),
                (34, struct.pack("!HH", 14, 0) + rnd.bytes(256)),
                (40, rnd.bytes(32)),
                (41, struct.pack("!BBH", 0, 0, 16388) + rnd.bytes(20)),
                (41, struct.pack("!BBH", 0, 0, 16389) + rnd.bytes(20)),
            ])
        else:
            exch = 35 if cyc < 4 else (36 if cyc < 6 else 37)
            if not resp:
                sa.msgid += 1
            mid = sa.msgid
            inner_first = 35 if exch == 35 else (33 if exch == 36 else 42)
            enc_len = 16 + 16 * rng.randint(4, 40) + 16
            enc = rnd.bytes(enc_len)
            first = 46
            body = struct.pack("!BBH", inner_first, 0, 4 + len(enc)) + enc
        hdr = ISAKMP.pack(sa.ispi, rspi, first, 0x20, exch, flags, mid, 28 + len(body))
        return src, dst, hdr + body
    # IKEv1: Main Mode msgs 1..6, then Quick Mode x3, Informational
    cyc = st if st < 6 else 6 + ((st - 6) % 4)
    if cyc < 6:
        resp = cyc % 2 == 1
    else:
        resp = cyc in (7,)
    src, dst = (sa.res, sa.ini) if resp else (sa.ini, sa.res)
    rspi = b"\0" * 8 if cyc == 0 else sa.rspi
    if cyc < 2:
        exch, flags, mid = 2, 0, 0
        first, body = chain([(1, v1_sa_body()), (13, NATT_VID), (13, DPD_VID)])
    elif cyc < 4:
        exch, flags, mid = 2, 0, 0
        first, body = chain([
            (4, rnd.bytes(256)), (10, rnd.bytes(32)),
            (20, rnd.bytes(20)), (20, rnd.bytes(20))])
    else:
        exch = 2 if cyc < 6 else (32 if cyc < 9 else 5)
        flags = 0x01  # encrypted
        mid = 0 if cyc < 6 else rng.getrandbits(32)
        first = 5 if cyc < 6 else 8  # ID (MM5/6) or HASH (QM/Info)
        body = rnd.bytes(16 * rng.randint(3, 20))
    hdr = ISAKMP.pack(sa.ispi, rspi, first, 0x10, exch, flags, mid, 28 + len(body))
    return src, dst, hdr + body


# ---------------------------------------------------------------- main generator
def generate(count, out, seed=1, truth_path=None, encrypt=False, keys_path=None, cipher="both"):
    rng = random.Random(seed)
    rnd = Rand(rng)
    sealers = {}  # SPI -> EspSealer (--encrypt)
    key_lines = []
    macs = [bytes((0x02, 0, 0, rng.randrange(256), rng.randrange(256), i)) for i in range(16)]

    # IPsec gateways (public-ish) and protected servers behind them
    gateways = [ip4(198, 51, 100 + (i // 250), 1 + i % 250) for i in range(400)]
    protected = [ip4(10, 50, i // 250, 1 + i % 250) for i in range(300)]
    clients = [ip4(10, 20 + i // 60000, (i // 250) % 240, 1 + i % 250) for i in range(3000)]
    servers = [ip4(203, 0, 113 + (i // 250) % 8, 1 + i % 250) for i in range(1200)]

    # ESP SAs: ~2,000, in pairs (inbound/outbound) between gateway pairs
    esp_sas = []  # [src, dst, spi, seq]
    spis = set()

    def new_spi():
        while True:
            s = rng.randrange(0x100, 0xFFFFFFFF)
            if s not in spis:
                spis.add(s)
                return s
    for _ in range(1000):
        a, b = rng.sample(gateways, 2)
        esp_sas.append([a, b, new_spi(), rng.randrange(1, 50000)])
        esp_sas.append([b, a, new_spi(), rng.randrange(1, 50000)])
    # Zipf-ish activity: a few SAs carry most packets
    esp_w = [1.0 / (i + 1) ** 0.8 for i in range(len(esp_sas))]
    rng.shuffle(esp_w)
    esp_cw = list(itertools.accumulate(esp_w))

    natt_sas = []  # [src, dst, spi, seq, sport]
    for _ in range(100):
        a, b = rng.choice(clients), rng.choice(gateways)
        sp = rng.choice((4500, rng.randrange(1024, 65535)))
        natt_sas.append([a, b, new_spi(), 1, sp])
        natt_sas.append([b, a, new_spi(), 1, sp])

    ah_sas = []  # [src, dst, spi, seq, inner_esp_sa or None]
    for i in range(60):
        a, b = rng.sample(gateways, 2)
        inner = [a, b, new_spi(), 1] if i % 3 == 0 else None
        ah_sas.append([a, b, new_spi(), 1, inner])

    if encrypt:
        inner_hosts = [ip4(10, 60 + i // 250, i % 250, 1) for i in range(500)]
        for i, sa in enumerate(esp_sas + natt_sas + [s[4] for s in ah_sas if s[4] is not None]):
            gcm = i % 2 == 0 if cipher == "both" else cipher == "gcm"
            sealers[sa[2]] = sl = EspSealer(rng, gcm=gcm)
            key_lines.append(sl.esp_sa_line(sa[0], sa[1], sa[2]))

    def esp_payload(sa, n):
        """SPI .. end of an ESP packet of SA ``sa`` with about n bytes after the header."""
        sl = sealers.get(sa[2])
        if sl is None:
            return ESPH.pack(sa[2], sa[3]) + rnd.bytes(n)
        ih = inner_hosts[sa[2] % len(inner_hosts)]
        inner = inner_packet(rnd, ih, inner_hosts[(sa[2] >> 8) % len(inner_hosts)], n - 40, sa[3])
        return sl.seal(sa[2], sa[3], inner, rnd.bytes(16))

    ike_sas = []
    for i in range(400):
        natt = i % 5 == 0
        ini = rng.choice(clients) if natt else rng.choice(gateways)
        ike_sas.append(IkeSA(rng, ini, rng.choice(gateways), v2=(i % 2 == 0), natt=natt))

    # plaintext flows: ~5,000 host pairs
    flows = []  # [src, dst, proto, sport, dport, seq_a, seq_b]
    tcp_ports = [443] * 60 + [22] * 12 + [8443] * 10 + [3389] * 5 + [0] * 13
    for i in range(5000):
        to_prot = rng.random() < 0.08
        dst = rng.choice(protected) if to_prot else rng.choice(servers)
        src = rng.choice(clients)
        if rng.random() < 0.75:
            dp = rng.choice(tcp_ports) or rng.randrange(9000, 9999)
            flows.append([src, dst, 6, rng.randrange(32768, 61000), dp,
                          rng.getrandbits(32), rng.getrandbits(32)])
        else:
            dp = rng.choice((53, 53, 53, 123, 514, 5060, rng.randrange(10000, 20000)))
            flows.append([src, dst, 17, rng.randrange(32768, 61000), dp, 0, 0])
    flow_w = [1.0 / (i + 1) ** 0.6 for i in range(len(flows))]
    flow_cw = list(itertools.accumulate(flow_w))

    dns_q = [b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"".join(
        bytes((len(p),)) + p for p in name.split(b".")) + b"\x00\x00\x01\x00\x01"
        for name in (b"www.example.com", b"vpn.corp.example", b"mail.example.org",
                     b"ntp.pool.example", b"api.service.example.net")]

    truth = {"esp": 0, "natt_esp": 0, "natt_keepalive": 0, "natt_ike": 0, "ah": 0,
             "ah_esp": 0, "ike": 0, "ikev1": 0, "ikev2": 0, "tcp": 0, "udp": 0,
             "plain_to_protected": 0, "packets": 0, "bytes": 0}
    protected_set = set(protected)

    ts = 1_700_000_000.0
    ip_id = 0
    ip_pack = IPH.pack
    rec_pack = REC.pack
    eth_tab = [ETH_HDR_IP.pack(macs[i >> 4], macs[i & 15], 0x0800) for i in range(256)]
    natt_ike = [s for s in ike_sas if s.natt]

    with open(out, "wb", buffering=1 << 22) as f:
        f.write(PCAP_GLOBAL)
        nbytes = len(PCAP_GLOBAL)
        for n in range(count):
            r = rng.random()
            j = n & 0xFFFF
            if j == 0:  # refill the weighted SA / flow picks, 64 Ki packets at a time
                esp_pick = rng.choices(range(len(esp_sas)), cum_weights=esp_cw, k=1 << 16)
                flow_pick = rng.choices(range(len(flows)), cum_weights=flow_cw, k=1 << 16)
            if r < 0.70:  # ESP
                sa = esp_sas[esp_pick[j]]
                src, dst, proto = sa[0], sa[1], 50
                l4 = esp_payload(sa, esp_body_len(rng))
                sa[3] += 1
                truth["esp"] += 1
            elif r < 0.75:  # NAT-T
                q = rng.random()
                sa = natt_sas[rng.randrange(len(natt_sas))]
                src, dst, proto = sa[0], sa[1], 17
                if q < 0.93:
                    body = esp_payload(sa, esp_body_len(rng))
                    sa[3] += 1
                    truth["natt_esp"] += 1
                elif q < 0.97:
                    body = b"\xff"
                    truth["natt_keepalive"] += 1
                else:
                    ike = rng.choice(natt_ike)
                    src, dst, msg = ike_message(ike, rnd, rng)
                    body = b"\0\0\0\0" + msg
                    truth["natt_ike"] += 1
                if q >= 0.97:
                    sp = dp = 4500
                elif src == sa[0]:
                    sp, dp = sa[4], 4500
                else:
                    sp, dp = 4500, sa[4]
                l4 = UDPH.pack(sp, dp, 8 + len(body), 0) + body
            elif r < 0.77:  # AH
                sa = ah_sas[rng.randrange(len(ah_sas))]
                src, dst, proto = sa[0], sa[1], 51
                inner = sa[4]
                if inner is not None:
                    nh = 50
                    payload = esp_payload(inner, esp_body_len(rng))
                    inner[3] += 1
                    truth["ah_esp"] += 1
                elif rng.random() < 0.5:
                    nh = 6
                    pl = rnd.bytes(plain_payload_len(rng))
                    payload = TCPH.pack(rng.randrange(1024, 65535), 179, rng.getrandbits(32),
                                        rng.getrandbits(32), 0x50, 0x18, 16384, 0, 0) + pl
                else:
                    nh = 17
                    pl = rnd.bytes(rng.randint(20, 300))
                    payload = UDPH.pack(rng.randrange(1024, 65535), 161, 8 + len(pl), 0) + pl
                l4 = AHH.pack(nh, 4, 0, sa[2], sa[3]) + rnd.bytes(12) + payload
                sa[3] += 1
                truth["ah"] += 1
            elif r < 0.78:  # ISAKMP / UDP 500
                ike = ike_sas[rng.randrange(len(ike_sas))]
                src, dst, msg = ike_message(ike, rnd, rng)
                proto = 17
                l4 = UDPH.pack(500, 500, 8 + len(msg), 0) + msg
                truth["ike"] += 1
                truth["ikev2" if ike.v2 else "ikev1"] += 1
            else:  # plaintext
                fl = flows[flow_pick[j]]
                back = rng.random() < 0.45
                src, dst = (fl[1], fl[0]) if back else (fl[0], fl[1])
                proto = fl[2]
                if proto == 6:
                    sp, dp = (fl[4], fl[3]) if back else (fl[3], fl[4])
                    plen = plain_payload_len(rng)
                    if dp == 443 or sp == 443:
                        pl = (b"\x17\x03\x03" + struct.pack("!H", max(plen, 24) - 5)
                              + rnd.bytes(max(plen, 24) - 5)) if plen else b""
                    else:
                        pl = rnd.bytes(plen)
                    q = rng.random()
                    flags = 0x02 if q < 0.01 else (0x11 if q < 0.02 else (0x18 if pl else 0x10))
                    si, ai = (6, 5) if back else (5, 6)
                    l4 = TCPH.pack(sp, dp, fl[si] & 0xFFFFFFFF, fl[ai] & 0xFFFFFFFF,
                                   0x50, flags, 64240, 0, 0) + pl
                    fl[si] += len(pl) or (1 if flags & 0x03 else 0)
                    truth["tcp"] += 1
                else:
                    sp, dp = (fl[4], fl[3]) if back else (fl[3], fl[4])
                    port = fl[4]
                    if port == 53:
                        pl = (b"\xab\xcd" + rng.choice(dns_q)) if not back else (
                            b"\xab\xcd\x81\x80" + rng.choice(dns_q)[2:] + rnd.bytes(16))
                    elif port == 123:
                        pl = b"\x23" + rnd.bytes(47)
                    elif port == 514:
                        pl = b"<134>Nov  1 12:00:00 host app[123]: event id=%d" % n
                    else:
                        pl = rnd.bytes(rng.randint(20, 1200))
                    l4 = UDPH.pack(sp, dp, 8 + len(pl), 0) + pl
                    truth["udp"] += 1
                if dst in protected_set:
                    truth["plain_to_protected"] += 1

            ip_id = (ip_id + 1) & 0xFFFF
            tot = 20 + len(l4)
            h = ip_pack(0x45, 0, tot, ip_id, 0x4000, 64, proto, 0, src, dst)
            c = ip_checksum(h)
            h = h[:10] + struct.pack("!H", c) + h[12:]
            eth = eth_tab[((dst[3] & 15) << 4) | (src[3] & 15)]
            frame_len = 14 + tot
            ts += rng.expovariate(50_000.0) + 1e-6
            sec = int(ts)
            f.write(rec_pack(sec, int((ts - sec) * 1e6), frame_len, frame_len))
            f.write(eth)
            f.write(h)
            f.write(l4)
            nbytes += 16 + frame_len
        truth["packets"] = count
        truth["bytes"] = nbytes
    if truth_path:
        with open(truth_path, "w") as tf:
            json.dump(truth, tf, indent=1, sort_keys=True)
    if encrypt:
        with open(keys_path or out + ".esp_sa", "w") as kf:
            kf.write("# Wireshark esp_sa table written by make_bench_pcap.py --encrypt\n")
            kf.write("\n".join(key_lines) + "\n")
    return truth


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--truth", help="write expected per-class counts (JSON) here")
    ap.add_argument("--encrypt", action="store_true",
                    help="real AES-GCM-128 / AES-CBC-128+HMAC-SHA1-96 ESP, keys in an esp_sa table")
    ap.add_argument("--keys", help="where --encrypt writes the esp_sa table (default: OUT.esp_sa)")
    ap.add_argument("--cipher", choices=("both", "gcm", "cbc"), default="both",
                    help="with --encrypt: half and half (default), or every SA AES-GCM / AES-CBC+HMAC-SHA1")
    a = ap.parse_args()
    t = generate(a.count, a.out, a.seed, a.truth, a.encrypt, a.keys, a.cipher)
    print(json.dumps(t, sort_keys=True), file=sys.stderr)


if __name__ == "__main__":
    main()
