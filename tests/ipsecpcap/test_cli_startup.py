"""What the command line's start-up leaves out (no timing here: what is imported and how
many threads run, each in a fresh interpreter)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CAPTURE = Path(__file__).resolve().parents[2] / "fixtures" / "strongswan" / "ikev2-gcm" / "capture.pcap"
POLICY = Path(__file__).resolve().parents[2] / "fixtures" / "policies" / "strongswan-sun.yaml"


def _run(code: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=full).stdout.strip()


ANALYZE = (f"import sys, io, contextlib\nfrom ipsecpcap.cli import main\n"
           f"with contextlib.redirect_stdout(io.StringIO()):\n"
           f"    try: main(['analyze', '-q', {str(CAPTURE)!r}] + sys.argv[1:], prog_name='ipsecpcap')\n"
           f"    except SystemExit: pass\n")


def test_analyze_without_keys_or_policy_imports_neither_yaml_nor_the_ciphers():
    out = _run(ANALYZE + "print(sorted(m for m in ('yaml', 'cryptography', 'traceback') if m in sys.modules))")
    assert out == "[]"


def test_with_a_policy_yaml_is_there():
    code = ANALYZE.replace("+ sys.argv[1:]", f"+ ['--policy', {str(POLICY)!r}]")
    assert _run(code + "print('yaml' in sys.modules)") == "True"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="counts threads in /proc")
def test_numpy_runs_no_thread_pool_under_the_command_line():
    count = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('Threads:')][0])"
    assert _run("import ipsecpcap.cli, numpy; " + count) == "1"
    assert _run("import ipsecpcap.cli, os; print(os.environ['OPENBLAS_NUM_THREADS'])",
                OPENBLAS_NUM_THREADS="2") == "2"  # the user's own setting stands


def test_help_and_usage_errors_import_no_analysis():
    code = ("import sys\nfrom ipsecpcap.cli import main\n"
            "for args in (['--help'], ['analyze', '--help'], ['--version'], ['sas', '--no-such-option']):\n"
            "    try: main(args, prog_name='ipsecpcap')\n"
            "    except SystemExit: pass\n"
            "print(sorted(m for m in ('numpy', 'ipsecpcap.analysis', 'ipsecpcap.reader') if m in sys.modules))")
    assert _run(code).splitlines()[-1] == "[]"


def test_the_engines_offered_are_the_analysis_engines():
    from ipsecpcap import analysis, cli

    assert cli.ENGINES == analysis.ENGINES
