"""Errors the library raises on purpose, each with its documented exit code.

The CLI turns them into one line on standard error and the exit code; no
traceback reaches the user.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1  # reserved: a finding at or above --fail-on
EXIT_USAGE = 2  # bad command line (click's own code), or a policy or rule file with a mistake
EXIT_INPUT = 3  # a capture cannot be read: missing, unreadable, not a capture
EXIT_KEYS = 4  # a key file cannot be used: unreadable, unknown format, malformed entry
EXIT_INTERNAL = 70  # a bug: an unexpected exception (EX_SOFTWARE)


class IpsecpcapError(Exception):
    exit_code = EXIT_INTERNAL


class InputError(IpsecpcapError):
    """A capture (or other input file) cannot be read."""

    exit_code = EXIT_INPUT


class UsageError(IpsecpcapError):
    """A policy file, rule file or option the user gave has a mistake."""

    exit_code = EXIT_USAGE
