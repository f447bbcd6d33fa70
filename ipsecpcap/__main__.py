"""``python -m ipsecpcap``: the same as the ``ipsecpcap`` command."""
from ipsecpcap.cli import main

main(prog_name="ipsecpcap")
