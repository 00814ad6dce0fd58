"""Ed25519 signatures made while holding the GIL, for the sequencer's committing thread.

PyNaCl, like any library called through cffi, releases the GIL around every call. For a ~20 us
signature that is the wrong trade on the commit path: with a hundred submitter threads waiting for
the GIL, getting it back costs the committing thread a millisecond or more, twice per commit (block
header and checkpoint). The libsodium that PyNaCl ships (its bundled ``_sodium`` module exports the C
API) called through ``ctypes.PyDLL`` keeps the GIL. Ed25519 is deterministic: the signature is the
one PyNaCl makes, which is the fallback whenever that library cannot be used.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import nacl.signing

SIGNATURE_BYTES = 64


@functools.cache
def _sign_detached() -> Any:
    try:
        import nacl._sodium  # PyNaCl's bundled libsodium; nacl.signing has already initialised it

        fn = ctypes.PyDLL(nacl._sodium.__file__).crypto_sign_detached
    except (ImportError, OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p]
    fn.restype = ctypes.c_int
    return fn


def sign(key: nacl.signing.SigningKey, message: bytes) -> bytes:
    """``key.sign(message).signature``, computed without releasing the GIL where possible."""
    fn = _sign_detached()
    if fn is not None:
        out = ctypes.create_string_buffer(SIGNATURE_BYTES)
        secret = bytes(key) + bytes(key.verify_key)  # libsodium's secret key: seed ‖ public key
        if fn(out, None, message, len(message), secret) == 0:
            return out.raw
    return key.sign(message).signature
