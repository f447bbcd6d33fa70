"""Protocol dissectors: pure functions from bytes to typed records (no I/O, no state).

Installed as ``ipsecpcap.dissectors`` (see ``package-dir`` in pyproject.toml).
"""
