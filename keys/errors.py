"""Errors about local keys and keystore files."""

from __future__ import annotations


class KeystoreError(Exception):
    """A keystore file that is missing, unreadable, corrupt or locked with another passphrase."""
