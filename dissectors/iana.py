"""IANA registries for ISAKMP/IKEv1 and IKEv2, as data.

Every dict is named after the registry it copies (IANA "Internet Key Exchange
(IKE) Attributes", "'Magic Numbers' for ISAKMP Protocol", "IPSEC Registry"
and "Internet Key Exchange Version 2 (IKEv2) Parameters"), plus a few
well-established private-use values that real captures carry (Cisco, Microsoft
AuthIP, XAUTH, draft NAT-T).  The dissectors name codes only through
:func:`name`, so an unknown code renders as ``unknown-<registry>-<n>`` and
never raises (Zeek's ``&default``).

Sources: RFC 2407, 2408, 2409, 3547, 3706, 3947, 4306, 4754, 5996, 7296, 7383,
8031, 9242, 9370, the IANA registries above, draft-ietf-ipsec-isakmp-mode-cfg,
draft-beaulieu-ike-xauth, MS-AIPS 2.2, and the vendor ID tables of strongSwan
(isakmp_vendor.c, ike_vendor.c) and Libreswan (vendor.c).
"""
from __future__ import annotations

from collections.abc import Mapping


def name(registry: Mapping[int, str], registry_slug: str, n: int) -> str:
    """The registry name of code ``n``, or ``unknown-<registry_slug>-<n>``."""
    try:
        return registry[n]
    except (KeyError, TypeError):
        return f"unknown-{registry_slug}-{n}"


# ====================================================================== IKEv1
# --------------------------------------------------------------- payload types
# RFC 2408 3.1 "Next Payload"; IANA isakmp-registry "Next Payload Types".
ISAKMP_PAYLOAD_TYPES: dict[int, str] = {
    0: "NONE",
    1: "SA",
    2: "P",
    3: "T",
    4: "KE",
    5: "ID",
    6: "CERT",
    7: "CR",
    8: "HASH",
    9: "SIG",
    10: "NONCE",
    11: "N",
    12: "D",
    13: "VID",
    # IANA: reserved; used by draft-ietf-ipsec-isakmp-mode-cfg (Mode Config,
    # XAUTH) for the Attribute payload.
    14: "ATTR",
    15: "SAK",  # RFC 3547 (GDOI); drafts 04-08 of NAT-T used 15 for NAT-D
    16: "SAT",  # RFC 3547; NAT-T drafts 05-08 used 16 for NAT-OA
    17: "KD",  # RFC 3547
    18: "SEQ",  # RFC 3547
    19: "POP",  # RFC 3547
    20: "NAT-D",  # RFC 3947
    21: "NAT-OA",  # RFC 3947
    22: "GAP",  # RFC 6407
    # Private use (128-255), values seen in the wild:
    129: "AUTHIP-GSS",  # MS-AIPS 2.2.3.1
    130: "NAT-D",  # draft-ietf-ipsec-nat-t-ike-01..03 (same payload as 20)
    131: "NAT-OA",  # draft-ietf-ipsec-nat-t-ike-01..03 (same payload as 21)
    132: "CISCO-FRAG",  # Cisco IKEv1 fragmentation
    133: "AUTHIP-CRYPTO",  # MS-AIPS 2.2.3.2
    134: "AUTHIP-GSS-ID",  # MS-AIPS 2.2.3.3
    135: "AUTHIP-AUTH",  # MS-AIPS 2.2.3.4
    136: "AUTHIP-KD",  # MS-AIPS 2.2.3.7 key dictation
    137: "AUTHIP-KD-WEIGHT",  # MS-AIPS 2.2.3.8
}

# draft-ietf-ipsec-nat-t-ike-04..08 numbered NAT-D 15 and NAT-OA 16 before
# RFC 3547 (GDOI) took those codes for SAK and SAT; isakmp.py uses these names
# in Main and Aggressive Mode, where SAK/SAT cannot occur.
ISAKMP_DRAFT_NAT_T_PAYLOAD_TYPES: dict[int, str] = {15: "NAT-D", 16: "NAT-OA"}

# -------------------------------------------------------------- exchange types
# RFC 2408 3.1 / RFC 2409 "Exchange Type"; lower-case identifiers.
ISAKMP_EXCHANGE_TYPES: dict[int, str] = {
    0: "none",
    1: "base",
    2: "main_mode",  # Identity Protection
    3: "auth_only",
    4: "aggressive",
    5: "informational",
    6: "transaction",  # Config Mode (draft-ietf-ipsec-isakmp-mode-cfg)
    32: "quick_mode",  # RFC 2409 5.5
    33: "new_group_mode",  # RFC 2409 5.6
    # Private use: Microsoft AuthIP (MS-AIPS 2.2.1)
    243: "authip_main_mode",
    244: "authip_quick_mode",
    245: "authip_extended_mode",
    246: "authip_notify",
}

# ------------------------------------------------------------------ DOI, proto
# RFC 2408 3.4; RFC 2407 2; RFC 3547.
ISAKMP_DOMAIN_OF_INTERPRETATION: dict[int, str] = {0: "ISAKMP", 1: "IPSEC", 2: "GDOI"}

# RFC 2407 4.2 "Situation" bit mask
IPSEC_SITUATION_BITS: dict[int, str] = {
    0x01: "SIT_IDENTITY_ONLY",
    0x02: "SIT_SECRECY",
    0x04: "SIT_INTEGRITY",
}

# RFC 2407 4.4.1 "IPSEC Security Protocol Identifier"
IPSEC_SECURITY_PROTOCOL_IDENTIFIERS: dict[int, str] = {
    0: "RESERVED",
    1: "PROTO_ISAKMP",
    2: "PROTO_IPSEC_AH",
    3: "PROTO_IPSEC_ESP",
    4: "PROTO_IPCOMP",
    5: "PROTO_GIGABEAM_RADIO",  # RFC 4705
}

# ---------------------------------------------------------------- transform IDs
# RFC 2407 4.4.2 "IPSEC ISAKMP Transform Identifiers"
ISAKMP_TRANSFORM_IDENTIFIERS: dict[int, str] = {0: "RESERVED", 1: "KEY_IKE"}

# RFC 2407 4.4.3 "IPSEC AH Transform Identifiers" (+ IANA ipsec-registry)
IPSEC_AH_TRANSFORM_IDENTIFIERS: dict[int, str] = {
    2: "AH_MD5",
    3: "AH_SHA",
    4: "AH_DES",
    5: "AH_SHA2-256",
    6: "AH_SHA2-384",
    7: "AH_SHA2-512",
    8: "AH_RIPEMD",
    9: "AH_AES-XCBC-MAC",
    10: "AH_RSA",
    11: "AH_AES-128-GMAC",
    12: "AH_AES-192-GMAC",
    13: "AH_AES-256-GMAC",
}

# RFC 2407 4.4.4 "IPSEC ESP Transform Identifiers" (+ IANA ipsec-registry)
IPSEC_ESP_TRANSFORM_IDENTIFIERS: dict[int, str] = {
    1: "ESP_DES_IV64",
    2: "ESP_DES",
    3: "ESP_3DES",
    4: "ESP_RC5",
    5: "ESP_IDEA",
    6: "ESP_CAST",
    7: "ESP_BLOWFISH",
    8: "ESP_3IDEA",
    9: "ESP_DES_IV32",
    10: "ESP_RC4",
    11: "ESP_NULL",
    12: "ESP_AES-CBC",  # RFC 3602
    13: "ESP_AES-CTR",  # RFC 3686
    14: "ESP_AES-CCM_8",  # RFC 4309
    15: "ESP_AES-CCM_12",
    16: "ESP_AES-CCM_16",
    18: "ESP_AES-GCM_8",  # RFC 4106
    19: "ESP_AES-GCM_12",
    20: "ESP_AES-GCM_16",
    21: "ESP_SEED_CBC",  # RFC 4196
    22: "ESP_CAMELLIA",  # RFC 4312
    23: "ESP_NULL_AUTH_AES-GMAC",  # RFC 4543
}

# RFC 2407 4.4.5 "IPSEC IPCOMP Transform Identifiers"
IPSEC_IPCOMP_TRANSFORM_IDENTIFIERS: dict[int, str] = {
    1: "IPCOMP_OUI",
    2: "IPCOMP_DEFLATE",
    3: "IPCOMP_LZS",
    4: "IPCOMP_LZJH",  # RFC 3051
}

# Transform ID registry by proposal protocol (RFC 2407 4.4.2-4.4.5).
IKEV1_TRANSFORM_IDS_BY_PROTOCOL: dict[int, tuple[dict[int, str], str]] = {
    1: (ISAKMP_TRANSFORM_IDENTIFIERS, "isakmp-transform-id"),
    2: (IPSEC_AH_TRANSFORM_IDENTIFIERS, "ipsec-ah-transform-id"),
    3: (IPSEC_ESP_TRANSFORM_IDENTIFIERS, "ipsec-esp-transform-id"),
    4: (IPSEC_IPCOMP_TRANSFORM_IDENTIFIERS, "ipsec-ipcomp-transform-id"),
}

# ------------------------------------------------- phase-1 (IKE) SA attributes
# RFC 2409 appendix A "Attribute Classes"; IANA "IKE Attributes".
IKE_ATTRIBUTE_CLASSES: dict[int, str] = {
    1: "Encryption Algorithm",
    2: "Hash Algorithm",
    3: "Authentication Method",
    4: "Group Description",
    5: "Group Type",
    6: "Group Prime/Irreducible Polynomial",
    7: "Group Generator One",
    8: "Group Generator Two",
    9: "Group Curve A",
    10: "Group Curve B",
    11: "Life Type",
    12: "Life Duration",
    13: "PRF",
    14: "Key Length",
    15: "Field Size",
    16: "Group Order",
}

IKE_ENCRYPTION_ALGORITHMS: dict[int, str] = {
    1: "DES-CBC",
    2: "IDEA-CBC",
    3: "Blowfish-CBC",
    4: "RC5-R16-B64-CBC",
    5: "3DES-CBC",
    6: "CAST-CBC",
    7: "AES-CBC",  # RFC 3602
    8: "CAMELLIA-CBC",  # RFC 4312
    # private use used by racoon / strongSwan / Libreswan
    65001: "Mars-CBC",
    65002: "RC6-CBC",
    65003: "ID_3DES-CBC",
    65004: "Serpent-CBC",
    65005: "Twofish-CBC",
}

IKE_HASH_ALGORITHMS: dict[int, str] = {
    1: "MD5",
    2: "SHA",
    3: "Tiger",
    4: "SHA2-256",  # RFC 4868
    5: "SHA2-384",
    6: "SHA2-512",
}

IKE_AUTHENTICATION_METHODS: dict[int, str] = {
    1: "PSK",
    2: "DSS-SIG",
    3: "RSA-SIG",
    4: "RSA-ENC",
    5: "RSA-Revised-ENC",
    6: "ElGamal-ENC",  # reserved, was "Encryption with El-Gamal"
    7: "ElGamal-Revised-ENC",  # reserved
    8: "ECDSA-SIG",  # reserved, was "ECDSA signatures"
    9: "ECDSA-SHA256-P256",  # RFC 4754
    10: "ECDSA-SHA384-P384",
    11: "ECDSA-SHA512-P521",
    # draft-ietf-ipsec-isakmp-hybrid-auth (private use)
    64221: "HybridInitRSA",
    64222: "HybridRespRSA",
    64223: "HybridInitDSS",
    64224: "HybridRespDSS",
    # draft-beaulieu-ike-xauth-02 (private use)
    65001: "XAUTHInitPreShared",
    65002: "XAUTHRespPreShared",
    65003: "XAUTHInitDSS",
    65004: "XAUTHRespDSS",
    65005: "XAUTHInitRSA",
    65006: "XAUTHRespRSA",
    65007: "XAUTHInitRSAEncryption",
    65008: "XAUTHRespRSAEncryption",
    65009: "XAUTHInitRSARevisedEncryption",
    65010: "XAUTHRespRSARevisedEncryption",
}

# "Group Description" (IKEv1, RFC 2409 6 + RFC 3526, 5114, 5903, 6954, 8031);
# same numbering as IKEv2 "Transform Type 4" except the IKEv1-only EC2N groups.
IKE_GROUP_DESCRIPTIONS: dict[int, str] = {
    1: "MODP-768",
    2: "MODP-1024",
    3: "EC2N-155",
    4: "EC2N-185",
    5: "MODP-1536",
    6: "EC2N-163A",
    7: "EC2N-163B",
    8: "EC2N-283A",
    9: "EC2N-283B",
    10: "EC2N-409A",
    11: "EC2N-409B",
    12: "EC2N-571A",
    13: "EC2N-571B",
    14: "MODP-2048",
    15: "MODP-3072",
    16: "MODP-4096",
    17: "MODP-6144",
    18: "MODP-8192",
    19: "ECP-256",
    20: "ECP-384",
    21: "ECP-521",
    22: "MODP-1024-S160",
    23: "MODP-2048-S224",
    24: "MODP-2048-S256",
    25: "ECP-192",
    26: "ECP-224",
    27: "brainpoolP224r1",
    28: "brainpoolP256r1",
    29: "brainpoolP384r1",
    30: "brainpoolP512r1",
    31: "Curve25519",
    32: "Curve448",
}

IKE_GROUP_TYPES: dict[int, str] = {1: "MODP", 2: "ECP", 3: "EC2N"}

IKE_LIFE_TYPES: dict[int, str] = {1: "seconds", 2: "kilobytes"}

# Attribute class -> (value registry, slug) for the enumerated classes.
IKE_ATTRIBUTE_VALUES: dict[int, tuple[dict[int, str], str]] = {
    1: (IKE_ENCRYPTION_ALGORITHMS, "ike-encryption-algorithm"),
    2: (IKE_HASH_ALGORITHMS, "ike-hash-algorithm"),
    3: (IKE_AUTHENTICATION_METHODS, "ike-authentication-method"),
    4: (IKE_GROUP_DESCRIPTIONS, "ike-group-description"),
    5: (IKE_GROUP_TYPES, "ike-group-type"),
    11: (IKE_LIFE_TYPES, "ike-life-type"),
    13: ({}, "ike-prf"),  # no PRF has ever been registered
}

# --------------------------------------------------- IPsec DOI SA attributes
# RFC 2407 4.5 "Security Association Attributes"; IANA ipsec-registry.
IPSEC_SECURITY_ASSOCIATION_ATTRIBUTES: dict[int, str] = {
    1: "SA Life Type",
    2: "SA Life Duration",
    3: "Group Description",
    4: "Encapsulation Mode",
    5: "Authentication Algorithm",
    6: "Key Length",
    7: "Key Rounds",
    8: "Compress Dictionary Size",
    9: "Compress Private Algorithm",
    10: "ECN Tunnel",  # RFC 3168
    11: "Extended (64-bit) Sequence Number",  # RFC 4304
    12: "Authentication Key Length",  # RFC 4359
    13: "Signature Encoding Algorithm",  # RFC 4359
    14: "Address Preservation",  # RFC 6407
    15: "SA Direction",  # RFC 6407
}

IPSEC_SA_LIFE_TYPES: dict[int, str] = {1: "seconds", 2: "kilobytes"}

IPSEC_ENCAPSULATION_MODES: dict[int, str] = {
    1: "Tunnel",
    2: "Transport",
    3: "UDP-Encapsulated-Tunnel",  # RFC 3947
    4: "UDP-Encapsulated-Transport",  # RFC 3947
    61440: "Check-Point-UDP-Encapsulation",  # private use
    61443: "UDP-Encapsulated-Tunnel-draft",  # draft-ietf-ipsec-nat-t-ike-00..08
    61444: "UDP-Encapsulated-Transport-draft",
}

IPSEC_AUTHENTICATION_ALGORITHMS: dict[int, str] = {
    1: "HMAC-MD5",
    2: "HMAC-SHA",
    3: "DES-MAC",
    4: "KPDK",
    5: "HMAC-SHA2-256",
    6: "HMAC-SHA2-384",
    7: "HMAC-SHA2-512",
    8: "HMAC-RIPEMD",  # RFC 2857
    9: "AES-XCBC-MAC",  # RFC 3566
    10: "SIG-RSA",  # RFC 4359
    11: "AES-128-GMAC",  # RFC 4543
    12: "AES-192-GMAC",
    13: "AES-256-GMAC",
}

IPSEC_ECN_TUNNEL: dict[int, str] = {1: "Allowed", 2: "Forbidden"}
IPSEC_EXTENDED_SEQUENCE_NUMBER: dict[int, str] = {1: "64-bit Sequence Number"}
IPSEC_SIGNATURE_ENCODING_ALGORITHMS: dict[int, str] = {1: "RSASSA-PKCS1-v1_5", 2: "RSASSA-PSS"}
IPSEC_ADDRESS_PRESERVATION: dict[int, str] = {
    1: "None",
    2: "Source-Only",
    3: "Destination-Only",
    4: "Source-and-Destination",
}
IPSEC_SA_DIRECTION: dict[int, str] = {1: "Sender-Only", 2: "Receiver-Only", 3: "Symmetric"}

IPSEC_ATTRIBUTE_VALUES: dict[int, tuple[dict[int, str], str]] = {
    1: (IPSEC_SA_LIFE_TYPES, "ipsec-sa-life-type"),
    3: (IKE_GROUP_DESCRIPTIONS, "ike-group-description"),
    4: (IPSEC_ENCAPSULATION_MODES, "ipsec-encapsulation-mode"),
    5: (IPSEC_AUTHENTICATION_ALGORITHMS, "ipsec-authentication-algorithm"),
    10: (IPSEC_ECN_TUNNEL, "ipsec-ecn-tunnel"),
    11: (IPSEC_EXTENDED_SEQUENCE_NUMBER, "ipsec-esn"),
    13: (IPSEC_SIGNATURE_ENCODING_ALGORITHMS, "ipsec-signature-encoding"),
    14: (IPSEC_ADDRESS_PRESERVATION, "ipsec-address-preservation"),
    15: (IPSEC_SA_DIRECTION, "ipsec-sa-direction"),
}

# ------------------------------------------------------------------ ID types
# RFC 2407 4.6.2.1 "IPSEC Identification Type Values" (+ RFC 3554 ID_LIST)
IPSEC_IDENTIFICATION_TYPES: dict[int, str] = {
    1: "ID_IPV4_ADDR",
    2: "ID_FQDN",
    3: "ID_USER_FQDN",
    4: "ID_IPV4_ADDR_SUBNET",
    5: "ID_IPV6_ADDR",
    6: "ID_IPV6_ADDR_SUBNET",
    7: "ID_IPV4_ADDR_RANGE",
    8: "ID_IPV6_ADDR_RANGE",
    9: "ID_DER_ASN1_DN",
    10: "ID_DER_ASN1_GN",
    11: "ID_KEY_ID",
    12: "ID_LIST",
}

# RFC 2408 3.9 "Certificate Encoding"
ISAKMP_CERTIFICATE_ENCODINGS: dict[int, str] = {
    0: "NONE",
    1: "PKCS #7 wrapped X.509 certificate",
    2: "PGP Certificate",
    3: "DNS Signed Key",
    4: "X.509 Certificate - Signature",
    5: "X.509 Certificate - Key Exchange",
    6: "Kerberos Tokens",
    7: "Certificate Revocation List (CRL)",
    8: "Authority Revocation List (ARL)",
    9: "SPKI Certificate",
    10: "X.509 Certificate - Attribute",
}

# ----------------------------------------------------------- notify messages
# RFC 2408 3.14.1 (errors 1-30, status 16384), RFC 2407 4.6.3 (24576-24578),
# RFC 3706 (DPD), Cisco Unity private values.
ISAKMP_NOTIFY_MESSAGE_TYPES: dict[int, str] = {
    1: "INVALID-PAYLOAD-TYPE",
    2: "DOI-NOT-SUPPORTED",
    3: "SITUATION-NOT-SUPPORTED",
    4: "INVALID-COOKIE",
    5: "INVALID-MAJOR-VERSION",
    6: "INVALID-MINOR-VERSION",
    7: "INVALID-EXCHANGE-TYPE",
    8: "INVALID-FLAGS",
    9: "INVALID-MESSAGE-ID",
    10: "INVALID-PROTOCOL-ID",
    11: "INVALID-SPI",
    12: "INVALID-TRANSFORM-ID",
    13: "ATTRIBUTES-NOT-SUPPORTED",
    14: "NO-PROPOSAL-CHOSEN",
    15: "BAD-PROPOSAL-SYNTAX",
    16: "PAYLOAD-MALFORMED",
    17: "INVALID-KEY-INFORMATION",
    18: "INVALID-ID-INFORMATION",
    19: "INVALID-CERT-ENCODING",
    20: "INVALID-CERTIFICATE",
    21: "CERT-TYPE-UNSUPPORTED",
    22: "INVALID-CERT-AUTHORITY",
    23: "INVALID-HASH-INFORMATION",
    24: "AUTHENTICATION-FAILED",
    25: "INVALID-SIGNATURE",
    26: "ADDRESS-NOTIFICATION",
    27: "NOTIFY-SA-LIFETIME",
    28: "CERTIFICATE-UNAVAILABLE",
    29: "UNSUPPORTED-EXCHANGE-TYPE",
    30: "UNEQUAL-PAYLOAD-LENGTHS",
    16384: "CONNECTED",
    24576: "RESPONDER-LIFETIME",
    24577: "REPLAY-STATUS",
    24578: "INITIAL-CONTACT",
    36136: "R-U-THERE",  # RFC 3706
    36137: "R-U-THERE-ACK",
    40501: "UNITY-LOAD-BALANCE",  # Cisco
    40503: "UNITY-GROUP-HASH",  # Cisco
}

# --------------------------------------------- Mode Config (Transaction exch.)
# draft-ietf-ipsec-isakmp-mode-cfg-05 3.2 "Attribute Payload" types
ISAKMP_CFG_TYPES: dict[int, str] = {
    1: "ISAKMP_CFG_REQUEST",
    2: "ISAKMP_CFG_REPLY",
    3: "ISAKMP_CFG_SET",
    4: "ISAKMP_CFG_ACK",
}

# draft-ietf-ipsec-isakmp-mode-cfg-05 3.3, draft-beaulieu-ike-xauth-02 6,
# Cisco Unity private values.
ISAKMP_CFG_ATTRIBUTE_TYPES: dict[int, str] = {
    1: "INTERNAL_IP4_ADDRESS",
    2: "INTERNAL_IP4_NETMASK",
    3: "INTERNAL_IP4_DNS",
    4: "INTERNAL_IP4_NBNS",
    5: "INTERNAL_ADDRESS_EXPIRY",
    6: "INTERNAL_IP4_DHCP",
    7: "APPLICATION_VERSION",
    8: "INTERNAL_IP6_ADDRESS",
    9: "INTERNAL_IP6_NETMASK",
    10: "INTERNAL_IP6_DNS",
    11: "INTERNAL_IP6_NBNS",
    12: "INTERNAL_IP6_DHCP",
    13: "INTERNAL_IP4_SUBNET",
    14: "SUPPORTED_ATTRIBUTES",
    15: "INTERNAL_IP6_SUBNET",
    16520: "XAUTH_TYPE",
    16521: "XAUTH_USER_NAME",
    16522: "XAUTH_USER_PASSWORD",
    16523: "XAUTH_PASSCODE",
    16524: "XAUTH_MESSAGE",
    16525: "XAUTH_CHALLENGE",
    16526: "XAUTH_DOMAIN",
    16527: "XAUTH_STATUS",
    16528: "XAUTH_NEXT_PIN",
    16529: "XAUTH_ANSWER",
    28672: "UNITY_BANNER",
    28673: "UNITY_SAVE_PASSWD",
    28674: "UNITY_DEF_DOMAIN",
    28675: "UNITY_SPLIT_DNS_NAME",
    28676: "UNITY_SPLIT_INCLUDE",
    28677: "UNITY_NATT_PORT",
    28678: "UNITY_LOCAL_LAN",
    28679: "UNITY_PFS",
    28680: "UNITY_FW_TYPE",
    28681: "UNITY_BACKUP_SERVERS",
    28682: "UNITY_DDNS_HOSTNAME",
    28683: "UNITY_SMARTCARD_REMOVAL_DISCONNECT",
}


# ====================================================================== IKEv2
# RFC 7296 3.2 "Payload Types"; IANA ikev2-parameters.
IKEV2_PAYLOAD_TYPES: dict[int, str] = {
    0: "NONE",
    33: "SA",
    34: "KE",
    35: "IDi",
    36: "IDr",
    37: "CERT",
    38: "CERTREQ",
    39: "AUTH",
    40: "Nonce",
    41: "N",
    42: "D",
    43: "V",
    44: "TSi",
    45: "TSr",
    46: "SK",
    47: "CP",
    48: "EAP",
    49: "GSPM",  # RFC 6467
    50: "IDg",  # G-IKEv2
    51: "GSA",
    52: "KD",
    53: "SKF",  # RFC 7383
    54: "PS",  # RFC 8019 (puzzle solution)
}

# RFC 7296 3.1 "Exchange Type"
IKEV2_EXCHANGE_TYPES: dict[int, str] = {
    34: "IKE_SA_INIT",
    35: "IKE_AUTH",
    36: "CREATE_CHILD_SA",
    37: "INFORMATIONAL",
    38: "IKE_SESSION_RESUME",  # RFC 5723
    39: "GSA_AUTH",  # G-IKEv2
    40: "GSA_REGISTRATION",
    41: "GSA_REKEY",
    42: "GSA_INBAND_REKEY",
    43: "IKE_INTERMEDIATE",  # RFC 9242
    44: "IKE_FOLLOWUP_KE",  # RFC 9370
}

# RFC 7296 3.3.1 "Protocol ID" (+ RFC 4595 Fibre Channel)
IKEV2_SECURITY_PROTOCOL_IDENTIFIERS: dict[int, str] = {
    0: "NONE",
    1: "IKE",
    2: "AH",
    3: "ESP",
    4: "FC_ESP_HEADER",
    5: "FC_CT_AUTHENTICATION",
}

# RFC 7296 3.3.2 "Transform Type Values" (+ RFC 9370 ADDKE1-7)
IKEV2_TRANSFORM_TYPES: dict[int, str] = {
    1: "ENCR",
    2: "PRF",
    3: "INTEG",
    4: "KE",  # "D-H" before RFC 9370
    5: "ESN",
    6: "ADDKE1",
    7: "ADDKE2",
    8: "ADDKE3",
    9: "ADDKE4",
    10: "ADDKE5",
    11: "ADDKE6",
    12: "ADDKE7",
}

# Transform Type 1 - Encryption Algorithm Transform IDs
IKEV2_ENCRYPTION_ALGORITHMS: dict[int, str] = {
    1: "ENCR_DES_IV64",
    2: "ENCR_DES",
    3: "ENCR_3DES",
    4: "ENCR_RC5",
    5: "ENCR_IDEA",
    6: "ENCR_CAST",
    7: "ENCR_BLOWFISH",
    8: "ENCR_3IDEA",
    9: "ENCR_DES_IV32",
    11: "ENCR_NULL",
    12: "ENCR_AES_CBC",  # RFC 3602
    13: "ENCR_AES_CTR",  # RFC 3686
    14: "ENCR_AES_CCM_8",  # RFC 4309
    15: "ENCR_AES_CCM_12",
    16: "ENCR_AES_CCM_16",
    18: "ENCR_AES_GCM_8",  # RFC 4106
    19: "ENCR_AES_GCM_12",
    20: "ENCR_AES_GCM_16",
    21: "ENCR_NULL_AUTH_AES_GMAC",  # RFC 4543
    23: "ENCR_CAMELLIA_CBC",  # RFC 5529
    24: "ENCR_CAMELLIA_CTR",
    25: "ENCR_CAMELLIA_CCM_8",
    26: "ENCR_CAMELLIA_CCM_12",
    27: "ENCR_CAMELLIA_CCM_16",
    28: "ENCR_CHACHA20_POLY1305",  # RFC 7634
    29: "ENCR_AES_CCM_8_IIV",  # RFC 8750
    30: "ENCR_AES_GCM_16_IIV",
    31: "ENCR_CHACHA20_POLY1305_IIV",
    32: "ENCR_KUZNYECHIK_MGM_KTREE",  # RFC 9227
    33: "ENCR_MAGMA_MGM_KTREE",
    34: "ENCR_KUZNYECHIK_MGM_MAC_KTREE",
    35: "ENCR_MAGMA_MGM_MAC_KTREE",
}

# Transform Type 2 - Pseudorandom Function Transform IDs
IKEV2_PSEUDORANDOM_FUNCTIONS: dict[int, str] = {
    1: "PRF_HMAC_MD5",
    2: "PRF_HMAC_SHA1",
    3: "PRF_HMAC_TIGER",
    4: "PRF_AES128_XCBC",  # RFC 4434
    5: "PRF_HMAC_SHA2_256",  # RFC 4868
    6: "PRF_HMAC_SHA2_384",
    7: "PRF_HMAC_SHA2_512",
    8: "PRF_AES128_CMAC",  # RFC 4615
    9: "PRF_HMAC_STREEBOG_512",  # RFC 9385
}

# Transform Type 3 - Integrity Algorithm Transform IDs
IKEV2_INTEGRITY_ALGORITHMS: dict[int, str] = {
    0: "NONE",
    1: "AUTH_HMAC_MD5_96",
    2: "AUTH_HMAC_SHA1_96",
    3: "AUTH_DES_MAC",
    4: "AUTH_KPDK_MD5",
    5: "AUTH_AES_XCBC_96",
    6: "AUTH_HMAC_MD5_128",  # RFC 4595
    7: "AUTH_HMAC_SHA1_160",
    8: "AUTH_AES_CMAC_96",  # RFC 4494
    9: "AUTH_AES_128_GMAC",  # RFC 4543
    10: "AUTH_AES_192_GMAC",
    11: "AUTH_AES_256_GMAC",
    12: "AUTH_HMAC_SHA2_256_128",  # RFC 4868
    13: "AUTH_HMAC_SHA2_384_192",
    14: "AUTH_HMAC_SHA2_512_256",
}

# Transform Type 4 - Key Exchange Method Transform IDs (RFC 9370; was
# "Diffie-Hellman Group Transform IDs").  Also used by ADDKE1-7.
IKEV2_KEY_EXCHANGE_METHODS: dict[int, str] = {
    0: "NONE",
    1: "MODP-768",  # RFC 2409
    2: "MODP-1024",
    5: "MODP-1536",  # RFC 3526
    14: "MODP-2048",
    15: "MODP-3072",
    16: "MODP-4096",
    17: "MODP-6144",
    18: "MODP-8192",
    19: "ECP-256",  # RFC 5903
    20: "ECP-384",
    21: "ECP-521",
    22: "MODP-1024-S160",  # RFC 5114
    23: "MODP-2048-S224",
    24: "MODP-2048-S256",
    25: "ECP-192",
    26: "ECP-224",
    27: "brainpoolP224r1",  # RFC 6954
    28: "brainpoolP256r1",
    29: "brainpoolP384r1",
    30: "brainpoolP512r1",
    31: "Curve25519",  # RFC 8031
    32: "Curve448",
    33: "GOST3410_2012_256",  # RFC 9385
    34: "GOST3410_2012_512",
    35: "ML-KEM-512",  # draft-ietf-ipsecme-ikev2-mlkem
    36: "ML-KEM-768",
    37: "ML-KEM-1024",
}

# Transform Type 5 - Extended Sequence Numbers Transform IDs
IKEV2_EXTENDED_SEQUENCE_NUMBERS: dict[int, str] = {0: "No ESN", 1: "ESN"}

IKEV2_TRANSFORM_IDS_BY_TYPE: dict[int, tuple[dict[int, str], str]] = {
    1: (IKEV2_ENCRYPTION_ALGORITHMS, "ikev2-encr"),
    2: (IKEV2_PSEUDORANDOM_FUNCTIONS, "ikev2-prf"),
    3: (IKEV2_INTEGRITY_ALGORITHMS, "ikev2-integ"),
    4: (IKEV2_KEY_EXCHANGE_METHODS, "ikev2-ke"),
    5: (IKEV2_EXTENDED_SEQUENCE_NUMBERS, "ikev2-esn"),
    **{t: (IKEV2_KEY_EXCHANGE_METHODS, "ikev2-ke") for t in range(6, 13)},
}

# RFC 7296 3.3.5 "IKEv2 Transform Attribute Types"
IKEV2_TRANSFORM_ATTRIBUTE_TYPES: dict[int, str] = {14: "Key Length"}

# RFC 7296 3.5 "IKEv2 Identification Payload ID Types"
IKEV2_IDENTIFICATION_TYPES: dict[int, str] = {
    1: "ID_IPV4_ADDR",
    2: "ID_FQDN",
    3: "ID_RFC822_ADDR",
    5: "ID_IPV6_ADDR",
    9: "ID_DER_ASN1_DN",
    10: "ID_DER_ASN1_GN",
    11: "ID_KEY_ID",
    12: "ID_FC_NAME",  # RFC 4595
    13: "ID_NULL",  # RFC 7619
}

# RFC 7296 3.6 "IKEv2 Certificate Encodings"
IKEV2_CERTIFICATE_ENCODINGS: dict[int, str] = {
    1: "PKCS #7 wrapped X.509 certificate",
    2: "PGP Certificate",
    3: "DNS Signed Key",
    4: "X.509 Certificate - Signature",
    6: "Kerberos Token",
    7: "Certificate Revocation List (CRL)",
    8: "Authority Revocation List (ARL)",
    9: "SPKI Certificate",
    10: "X.509 Certificate - Attribute",
    11: "Raw RSA Key",  # deprecated by RFC 7296
    12: "Hash and URL of X.509 certificate",
    13: "Hash and URL of X.509 bundle",
    14: "OCSP Content",  # RFC 4806
    15: "Raw Public Key",  # RFC 7670
}

# RFC 7296 3.8 "IKEv2 Authentication Method"
IKEV2_AUTHENTICATION_METHODS: dict[int, str] = {
    1: "RSA Digital Signature",
    2: "Shared Key Message Integrity Code",
    3: "DSS Digital Signature",
    9: "ECDSA with SHA-256 on the P-256 curve",  # RFC 4754
    10: "ECDSA with SHA-384 on the P-384 curve",
    11: "ECDSA with SHA-512 on the P-521 curve",
    12: "Generic Secure Password Authentication Method",  # RFC 6467
    13: "NULL Authentication",  # RFC 7619
    14: "Digital Signature",  # RFC 7427
}

# RFC 7296 3.10.1 "IKEv2 Notify Message Types" (error 0-16383, status 16384-)
IKEV2_NOTIFY_MESSAGE_TYPES: dict[int, str] = {
    1: "UNSUPPORTED_CRITICAL_PAYLOAD",
    4: "INVALID_IKE_SPI",
    5: "INVALID_MAJOR_VERSION",
    7: "INVALID_SYNTAX",
    9: "INVALID_MESSAGE_ID",
    11: "INVALID_SPI",
    14: "NO_PROPOSAL_CHOSEN",
    17: "INVALID_KE_PAYLOAD",
    24: "AUTHENTICATION_FAILED",
    34: "SINGLE_PAIR_REQUIRED",
    35: "NO_ADDITIONAL_SAS",
    36: "INTERNAL_ADDRESS_FAILURE",
    37: "FAILED_CP_REQUIRED",
    38: "TS_UNACCEPTABLE",
    39: "INVALID_SELECTORS",
    40: "UNACCEPTABLE_ADDRESSES",  # RFC 4555
    41: "UNEXPECTED_NAT_DETECTED",  # RFC 4555
    42: "USE_ASSIGNED_HoA",  # RFC 5026
    43: "TEMPORARY_FAILURE",  # RFC 7296
    44: "CHILD_SA_NOT_FOUND",  # RFC 7296
    45: "INVALID_GROUP_ID",  # G-IKEv2
    46: "AUTHORIZATION_FAILED",  # G-IKEv2
    47: "STATE_NOT_FOUND",  # RFC 9370
    16384: "INITIAL_CONTACT",
    16385: "SET_WINDOW_SIZE",
    16386: "ADDITIONAL_TS_POSSIBLE",
    16387: "IPCOMP_SUPPORTED",
    16388: "NAT_DETECTION_SOURCE_IP",
    16389: "NAT_DETECTION_DESTINATION_IP",
    16390: "COOKIE",
    16391: "USE_TRANSPORT_MODE",
    16392: "HTTP_CERT_LOOKUP_SUPPORTED",
    16393: "REKEY_SA",
    16394: "ESP_TFC_PADDING_NOT_SUPPORTED",
    16395: "NON_FIRST_FRAGMENTS_ALSO",
    16396: "MOBIKE_SUPPORTED",  # RFC 4555
    16397: "ADDITIONAL_IP4_ADDRESS",
    16398: "ADDITIONAL_IP6_ADDRESS",
    16399: "NO_ADDITIONAL_ADDRESSES",
    16400: "UPDATE_SA_ADDRESSES",
    16401: "COOKIE2",
    16402: "NO_NATS_ALLOWED",
    16403: "AUTH_LIFETIME",  # RFC 4478
    16404: "MULTIPLE_AUTH_SUPPORTED",  # RFC 4739
    16405: "ANOTHER_AUTH_FOLLOWS",
    16406: "REDIRECT_SUPPORTED",  # RFC 5685
    16407: "REDIRECT",
    16408: "REDIRECTED_FROM",
    16409: "TICKET_LT_OPAQUE",  # RFC 5723
    16410: "TICKET_REQUEST",
    16411: "TICKET_ACK",
    16412: "TICKET_NACK",
    16413: "TICKET_OPAQUE",
    16414: "LINK_ID",  # RFC 5739
    16415: "USE_WESP_MODE",  # RFC 5840
    16416: "ROHC_SUPPORTED",  # RFC 5857
    16417: "EAP_ONLY_AUTHENTICATION",  # RFC 5998
    16418: "CHILDLESS_IKEV2_SUPPORTED",  # RFC 6023
    16419: "QUICK_CRASH_DETECTION",  # RFC 6290
    16420: "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",  # RFC 6311
    16421: "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED",
    16422: "IKEV2_MESSAGE_ID_SYNC",
    16423: "IPSEC_REPLAY_COUNTER_SYNC",
    16424: "SECURE_PASSWORD_METHODS",  # RFC 6467
    16425: "PSK_PERSIST",  # RFC 6631
    16426: "PSK_CONFIRM",
    16427: "ERX_SUPPORTED",  # RFC 6867
    16428: "IFOM_CAPABILITY",
    16429: "SENDER_REQUEST_ID",  # G-IKEv2
    16430: "IKEV2_FRAGMENTATION_SUPPORTED",  # RFC 7383
    16431: "SIGNATURE_HASH_ALGORITHMS",  # RFC 7427
    16432: "CLONE_IKE_SA_SUPPORTED",  # RFC 7791
    16433: "CLONE_IKE_SA",
    16434: "PUZZLE",  # RFC 8019
    16435: "USE_PPK",  # RFC 8784
    16436: "PPK_IDENTITY",
    16437: "NO_PPK_AUTH",
    16438: "INTERMEDIATE_EXCHANGE_SUPPORTED",  # RFC 9242
    16439: "IP4_ALLOWED",  # RFC 8983
    16440: "IP6_ALLOWED",
    16441: "ADDITIONAL_KEY_EXCHANGE",  # RFC 9370
    16442: "USE_AGGFRAG",  # RFC 9347
    16443: "SUPPORTED_AUTH_METHODS",  # RFC 9593
    16444: "SA_RESOURCE_INFO",  # RFC 9611
    16445: "USE_PPK_INT",
    16446: "PPK_IDENTITY_KEY",
}

# RFC 7296 3.13.1 "IKEv2 Traffic Selector Types"
IKEV2_TRAFFIC_SELECTOR_TYPES: dict[int, str] = {
    7: "TS_IPV4_ADDR_RANGE",
    8: "TS_IPV6_ADDR_RANGE",
    9: "TS_FC_ADDR_RANGE",  # RFC 4595
    10: "TS_SECLABEL",  # RFC 9478
}

# RFC 7296 3.15 "IKEv2 Configuration Payload CFG Types"
IKEV2_CFG_TYPES: dict[int, str] = {
    1: "CFG_REQUEST",
    2: "CFG_REPLY",
    3: "CFG_SET",
    4: "CFG_ACK",
}

# RFC 7296 3.15.1 "IKEv2 Configuration Payload Attribute Types"
IKEV2_CFG_ATTRIBUTE_TYPES: dict[int, str] = {
    1: "INTERNAL_IP4_ADDRESS",
    2: "INTERNAL_IP4_NETMASK",
    3: "INTERNAL_IP4_DNS",
    4: "INTERNAL_IP4_NBNS",
    6: "INTERNAL_IP4_DHCP",
    7: "APPLICATION_VERSION",
    8: "INTERNAL_IP6_ADDRESS",
    10: "INTERNAL_IP6_DNS",
    12: "INTERNAL_IP6_DHCP",
    13: "INTERNAL_IP4_SUBNET",
    14: "SUPPORTED_ATTRIBUTES",
    15: "INTERNAL_IP6_SUBNET",
    16: "MIP6_HOME_PREFIX",  # RFC 5026
    17: "INTERNAL_IP6_LINK",  # RFC 5739
    18: "INTERNAL_IP6_PREFIX",
    19: "HOME_AGENT_ADDRESS",  # 3GPP TS 24.302
    20: "P_CSCF_IP4_ADDRESS",  # RFC 7651
    21: "P_CSCF_IP6_ADDRESS",
    22: "FTT_KAT",  # 3GPP
    23: "EXTERNAL_SOURCE_IP4_NAT_INFO",
    24: "TIMEOUT_PERIOD_FOR_LIVENESS_CHECK",
    25: "INTERNAL_DNS_DOMAIN",  # RFC 8598
    26: "INTERNAL_DNSSEC_TA",
    27: "ENCDNS_IP4",  # RFC 9464
    28: "ENCDNS_IP6",
    29: "ENCDNS_DIGEST_INFO",
}

# RFC 3748 4 "EAP Codes" (+ RFC 6696 Initiate/Finish)
EAP_CODES: dict[int, str] = {
    1: "Request",
    2: "Response",
    3: "Success",
    4: "Failure",
    5: "Initiate",
    6: "Finish",
}

# RFC 3748 5 "Method Types" (the ones IKEv2 peers use)
EAP_METHOD_TYPES: dict[int, str] = {
    1: "Identity",
    2: "Notification",
    3: "Nak",
    4: "MD5-Challenge",
    5: "OTP",
    6: "GTC",
    13: "EAP-TLS",
    17: "LEAP",
    18: "EAP-SIM",
    21: "EAP-TTLS",
    23: "EAP-AKA",
    25: "PEAP",
    26: "EAP-MSCHAPv2",
    43: "EAP-FAST",
    50: "EAP-AKA'",
    254: "Expanded",
}


# ================================================================ Vendor IDs
# Exact Vendor ID payload contents -> name.  Values that are MD5 hashes of a
# string say which string (tests/dissectors/test_iana.py recomputes them).
VENDOR_IDS: dict[bytes, str] = {
    # NAT traversal (RFC 3947 and its drafts): MD5 of the name
    bytes.fromhex("4a131c81070358455c5728f20e95452f"): "RFC 3947",
    bytes.fromhex("4485152d18b6bbcd0be8a8469579ddcc"): "draft-ietf-ipsec-nat-t-ike-00",
    bytes.fromhex("16f6ca16e4a4066d83821a0f0aeaa862"): "draft-ietf-ipsec-nat-t-ike-01",
    bytes.fromhex("cd60464335df21f87cfdb2fc68b6a448"): "draft-ietf-ipsec-nat-t-ike-02",
    # MD5("draft-ietf-ipsec-nat-t-ike-02\n"): the draft's own hash has the newline
    bytes.fromhex("90cb80913ebb696e086381b5ec427b1f"): "draft-ietf-ipsec-nat-t-ike-02\\n",
    bytes.fromhex("7d9419a65310ca6f2c179d9215529d56"): "draft-ietf-ipsec-nat-t-ike-03",
    bytes.fromhex("9909b64eed937c6573de52ace952fa6b"): "draft-ietf-ipsec-nat-t-ike-04",
    bytes.fromhex("80d0bb3def54565ee84645d4c85ce3ee"): "draft-ietf-ipsec-nat-t-ike-05",
    bytes.fromhex("4d1e0e136deafa34c4f3ea9f02ec7285"): "draft-ietf-ipsec-nat-t-ike-06",
    bytes.fromhex("439b59f8ba676c4c7737ae22eab8f582"): "draft-ietf-ipsec-nat-t-ike-07",
    bytes.fromhex("8f8d83826d246b6fc7a8a6a428c11de8"): "draft-ietf-ipsec-nat-t-ike-08",
    # MD5("draft-ietf-ipsec-nat-t-ike"); Libreswan also lists it as "Mac OSX 10.x"
    bytes.fromhex("4df37928e9fc4fd1b3262170d515c662"): "draft-ietf-ipsec-nat-t-ike",
    bytes.fromhex("27bab5dc01ea0760ea4e3190ac27c0d0"): "draft-stenberg-ipsec-nat-traversal-01",
    bytes.fromhex("6105c422e76847e43f9684801292aecd"): "draft-stenberg-ipsec-nat-traversal-02",
    bytes.fromhex("50760f624c63e5c53eea386c685ca083"): "ESPThruNAT",
    # Extensions
    bytes.fromhex("09002689dfd6b712"): "XAUTH",  # MD5("draft-ietf-ipsra-isakmp-xauth-06.txt")[:8]
    bytes.fromhex("afcad71368a1f1c96b8696fc77570100"): "Dead Peer Detection v1.0",  # RFC 3706
    # MD5("FRAGMENTATION") (Cisco/Microsoft IKEv1 fragmentation); with a
    # 4-byte capability word it is matched by prefix below.
    bytes.fromhex("4048b7d56ebce88525e7de7f00d6c2d3"): "FRAGMENTATION",
    bytes.fromhex("882fe56d6fd20dbc2251613b2ebe5beb"): "strongSwan",  # MD5("strongSwan")
    bytes.fromhex("7003cbc1097dbe9c2600ba6983bc8b35"): "KAME/racoon",  # MD5("KAME/racoon")
    bytes.fromhex("621b04bb09882ac1e15935fefa24aeee"): "GSSAPI",  # MD5("GSSAPI")
    # MD5("A GSS-API Authentication Method for IKE")
    bytes.fromhex("ad2c0dd0b9c32083ccba25b8861ec455"): "A GSS-API Authentication Method for IKE",
    # Microsoft (MS-IKEE / MS-AIPS): MD5 of the names
    bytes.fromhex("fb1de3cdf341b7ea16b7e5be0855f120"): "MS-Negotiation Discovery Capable",
    bytes.fromhex("e3a5966a76379fe707228231e5ce8652"): "IKE CGA version 1",
    bytes.fromhex("214ca4faffa7f32d6748e5303395ae83"): "MS-MamieExists",
    bytes.fromhex("26244d38eddb61b3172a36e3d0cfb819"): "Vid-Initial-Contact",
    # Cisco IKEv2 vendor IDs are plain strings
    b"CISCO-DELETE-REASON": "CISCO-DELETE-REASON",
    b"FLEXVPN-SUPPORTED": "FLEXVPN-SUPPORTED",
    b"CISCO-GRE-MODE": "CISCO-GRE-MODE",
    b"CISCO-DYNAMIC-ROUTE": "CISCO-DYNAMIC-ROUTE",
    b"CISCO(COPYRIGHT)&Copyright (c) 2009 Cisco Systems, Inc.": "Cisco Copyright (c) 2009",
    b"IKEv2": "CAN-IKEv2",  # Openswan/Libreswan IKEv1 "can do IKEv2"
    b"OpenPGP10171": "OpenPGP",
    bytes.fromhex("f4ed19e0c114eb516faaac0ee37daf2807b4381f"): "Check Point",
    bytes.fromhex("101fb0b35c5a4f4c08b919f1cb9777b0"): "NCP client",
    bytes.fromhex("f14b94b7bff1fef02773b8c49feded26"): "Shrew Soft client",
    bytes.fromhex("625027749d5ab97f5616c1602765cf480a3b7d0b"): "ZyXEL ZyWALL",
    bytes.fromhex("b858d1addd08c1e8adafea150608aa4497aa6cc8"): "ZyXEL ZyWALL Router",
    bytes.fromhex("8404adf9cda05760b2ca292e4bff537b"): "Sidewinder",
    bytes.fromhex("da8e937880010000"): "WatchGuard/SonicWall",
    bytes.fromhex("404bf439522ca3f6"): "SonicWall",
    b"CISCOVPN-REV-02": "Cisco VPN Revision 2",
    b"OEplutounit0": "Openswan unit test",  # fixed VID of Openswan's libpluto tests
}

# Vendor ID prefixes -> name, for IDs that carry a version or flags after a
# fixed part.  Checked longest prefix first, after the exact table.
VENDOR_ID_PREFIXES: dict[bytes, str] = {
    # MD5("CISCO-UNITY")[:14] + major/minor version bytes
    bytes.fromhex("12f5f28c457168a9702d9fe274cc"): "Cisco Unity",
    # RFC 3706: 14 fixed bytes + major/minor version
    bytes.fromhex("afcad71368a1f1c96b8696fc7757"): "Dead Peer Detection",
    # MD5("MS NT5 ISAKMPOAKLEY") + 4-byte Windows version
    bytes.fromhex("1e2b516905991c7d7c96fcbfb587e461"): "MS NT5 ISAKMPOAKLEY",
    # MD5("FRAGMENTATION") + 4-byte capability flags (0x80000000: main/aggr.)
    bytes.fromhex("4048b7d56ebce88525e7de7f00d6c2d3"): "FRAGMENTATION",
    # Cisco VPN 3000 + version bytes
    bytes.fromhex("1f07f70eaa6514d3b0fa96542a50"): "Cisco VPN 3000",
    # SafeNet SoftRemote / Microsoft L2TP client + version text
    bytes.fromhex("47bbe7c993f1fc13b4e6d0db565c68e5"): "SafeNet SoftRemote",
    b"TIMESTEP": "Timestep",
    b"HeartBeat_Notify": "HeartBeat Notify",
    bytes.fromhex("8299031757a36082c6a621de"): "Fortinet FortiGate",  # + release, build
    # Juniper NetScreen (Libreswan vendor.c), sometimes followed by a version
    bytes.fromhex("299ee8289f40a8973bc78687e2e7226b532c3b76"): "NetScreen-01",
    bytes.fromhex("3a15e1f3cf2a63582e3ac82d1c64cbe3b6d779e7"): "NetScreen-02",
    bytes.fromhex("47d2b126bfcd83489760e2cf8c5d4d5a03497c15"): "NetScreen-03",
    bytes.fromhex("4a4340b543e02b84c88a8b96a8af9ebe77d9accc"): "NetScreen-04",
    bytes.fromhex("64405f46f03b7660a23be116a1975058e69e8387"): "NetScreen-05",
    bytes.fromhex("699369228741c6d4ca094c93e242c9de19e7b7c6"): "NetScreen-06",
    bytes.fromhex("8c0dc6cf62a0ef1b5c6eabd1b67ba69866adf16a"): "NetScreen-07",
    bytes.fromhex("92d27a9ecb31d99246986d3453d0c3d57a222a61"): "NetScreen-08",
    bytes.fromhex("9b096d9ac3275a7d6fe8b91c583111b09efed1a0"): "NetScreen-09",
    bytes.fromhex("bf03746108d746c904f1f3547de24f78479fed12"): "NetScreen-10",
    bytes.fromhex("c2e80500f4cc5fbf5daaeed3bb59abaeee56c652"): "NetScreen-11",
    bytes.fromhex("c8660a62b03b1b6130bf781608d32a6a8d0fb89f"): "NetScreen-12",
    bytes.fromhex("f885da40b1e7a9abd17655ec5bbec0f21f0ed52e"): "NetScreen-13",
    bytes.fromhex("2a2bcac19b8e91b426107807e02e7249569d6fd3"): "NetScreen-14",
    bytes.fromhex("166f932d55eb64d8e4df4fd37e2313f0d0fd8451"): "NetScreen-15",
    bytes.fromhex("a35bfd05ca1ac0b3d2f24e9e82bfcbff9c9e52b5"): "NetScreen-16",
}

# "MS NT5 ISAKMPOAKLEY" version word -> Windows release (MS-IKEE 2.2.1).
MS_NT5_ISAKMPOAKLEY_VERSIONS: dict[int, str] = {
    2: "Windows 2000",
    3: "Windows XP",
    4: "Windows Server 2003",
    5: "Windows Vista",
    6: "Windows Server 2008",
    7: "Windows 7",
    8: "Windows Server 2008 R2",
    9: "Windows 8",
}


def vendor_id_name(data: bytes) -> str | None:
    """Name a Vendor ID payload's contents, or None when it is not known."""
    exact = VENDOR_IDS.get(bytes(data))
    if exact is not None:
        return exact
    for prefix in sorted(VENDOR_ID_PREFIXES, key=len, reverse=True):
        if data.startswith(prefix):
            label = VENDOR_ID_PREFIXES[prefix]
            rest = data[len(prefix):]
            if label == "MS NT5 ISAKMPOAKLEY" and len(rest) == 4:
                version = int.from_bytes(rest, "big")
                return f"{label} {name(MS_NT5_ISAKMPOAKLEY_VERSIONS, 'ms-nt5-version', version)}"
            if label in ("Cisco Unity", "Dead Peer Detection") and len(rest) == 2:
                return f"{label} v{rest[0]}.{rest[1]}"
            return label
    # FreeS/WAN, Openswan and Libreswan: "OE" + 10 MD5-derived bytes forced
    # into 0x40-0x7f (Libreswan vendor.c, VID_FSWAN_HASH).
    if len(data) == 12 and data.startswith(b"OE") and all(0x40 <= b <= 0x7F for b in data[2:]):
        return "FreeS/WAN/Openswan/Libreswan"
    return None
