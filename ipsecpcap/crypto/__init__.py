"""Cryptography for IPsec and IKE: an algorithm registry (names, key, salt,
IV and ICV sizes as data), ESP open (verify, then decrypt), AH ICV
verification, IKEv2 SK/SKF and IKEv1 decryption.  Pure functions and small
prepared objects over bytes; built on the ``cryptography`` package.

Integrity is always verified before anything is decrypted; a failure is a
result of its own, never garbage handed back as plaintext.
"""
