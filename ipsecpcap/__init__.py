"""ipsecpcap: forensic analysis of IPsec (IKEv1, IKEv2, ESP, AH, NAT-T) in packet captures."""

__version__ = "0.1.0"
