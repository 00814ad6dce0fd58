"""Ed25519 for the append path: signatures made holding the GIL, verification without copies.

PyNaCl, like any library called through cffi, releases the GIL around every call. For a ~20 us
signature that is the wrong trade on the commit path: with a hundred submitter threads waiting for
the GIL, getting it back costs the committing thread a millisecond or more, twice per commit (block
header and checkpoint). The libsodium that PyNaCl ships (its bundled ``_sodium`` module exports the C
API) called through ``ctypes.PyDLL`` keeps the GIL. Ed25519 is deterministic: the signature is the
one PyNaCl makes, which is the fallback whenever that library cannot be used.

``verify`` is libsodium's ``crypto_sign_verify_detached``: the check PyNaCl's ``VerifyKey.verify``
makes (its ``crypto_sign_open`` calls the same function), without building a key object and copying
signature and message into one buffer and out again.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
from typing import Any

import nacl.exceptions
import nacl.signing

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32


_P, _N = ctypes.c_char_p, ctypes.c_ulonglong  # a buffer, a length


@functools.cache
def _function(name: str, argtypes: tuple[Any, ...], release_gil: bool = False) -> Any:
    """libsodium's ``name`` from the library PyNaCl bundles, or None where it cannot be loaded.

    ``ctypes.PyDLL`` keeps the GIL during the call; ``ctypes.CDLL`` releases it.
    """
    try:
        import nacl._sodium  # PyNaCl's bundled libsodium; nacl.signing has already initialised it

        library = ctypes.CDLL if release_gil else ctypes.PyDLL
        fn = getattr(library(nacl._sodium.__file__), name)
    except (ImportError, OSError, AttributeError):
        return None
    fn.argtypes = list(argtypes)
    fn.restype = ctypes.c_int
    return fn


def sign(key: nacl.signing.SigningKey, message: bytes) -> bytes:
    """``key.sign(message).signature``, computed without releasing the GIL where possible."""
    fn = _function("crypto_sign_detached", (_P, ctypes.c_void_p, _P, _N, _P))
    if fn is not None:
        out = ctypes.create_string_buffer(SIGNATURE_BYTES)
        secret = bytes(key) + bytes(key.verify_key)  # libsodium's secret key: seed ‖ public key
        if fn(out, None, message, len(message), secret) == 0:
            return out.raw
    return key.sign(message).signature


def verify(public_key: bytes, message: bytes, signature: bytes, *, release_gil: bool = False) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` under ``public_key``.

    libsodium's ``crypto_sign_verify_detached``, the check PyNaCl's ``VerifyKey.verify`` runs through
    ``crypto_sign_open``, without that path's copies of the message (the offline verifier runs it once
    an entry); PyNaCl where the library cannot be loaded. With ``release_gil`` (the sequencer's
    submitter threads) other threads of the process run meanwhile, as under PyNaCl.
    """
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    fn = _function("crypto_sign_verify_detached", (_P, _P, _N, _P), release_gil)
    if fn is not None:
        return bool(fn(signature, message, len(message), public_key) == 0)
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


SEAL_BYTES = 48  # crypto_box_SEALBYTES: the ephemeral public key and the MAC
X25519_BYTES = 32
NONCE_BYTES = 24  # crypto_box_NONCEBYTES


def seal(message: bytes, x25519_public: bytes) -> bytes:
    """``nacl.public.SealedBox(PublicKey(x25519_public)).encrypt(message)``, holding the GIL where possible.

    The release is sealed inside the writer, on the committing thread (see the module's docstring).
    The box is randomised (a fresh ephemeral key), so its bytes differ from any other sealing of the
    same message; it opens with ``SealedBox.decrypt`` as PyNaCl's does.
    """
    if len(x25519_public) != X25519_BYTES:
        raise ValueError("not an X25519 public key")
    fn = _function("crypto_box_seal", (_P, _P, _N, _P))
    if fn is not None:
        out = ctypes.create_string_buffer(len(message) + SEAL_BYTES)
        if fn(out, message, len(message), x25519_public) == 0:
            return out.raw
    import nacl.public

    return bytes(nacl.public.SealedBox(nacl.public.PublicKey(x25519_public)).encrypt(message))


class SealKey:
    """The public-key half of one sealed box, made ahead: ``crypto_box_seal`` split in two.

    ``crypto_box_seal`` makes an ephemeral X25519 key pair, derives the shared key with the recipient's
    key (two scalar multiplications: nearly all its cost) and the nonce BLAKE2b-192(ephemeral ‖
    recipient), then boxes the message. Made ahead, outside the writer lock, only the box is left for
    the commit. The bytes are a sealed box like any other (``SealedBox.decrypt`` opens them). One use
    only: a second message under the same key and nonce would reuse the stream cipher's key stream,
    so ``seal`` refuses a second call.
    """

    __slots__ = ("_nonce", "_shared", "ephemeral", "recipient")

    def __init__(self, recipient: bytes) -> None:
        import nacl.bindings as b

        if len(recipient) != X25519_BYTES:
            raise ValueError("not an X25519 public key")
        ephemeral, secret = b.crypto_box_keypair()
        self.recipient = recipient
        self.ephemeral = ephemeral
        self._shared: bytes | None = b.crypto_box_beforenm(recipient, secret)  # CryptoError for a low-order key
        self._nonce = hashlib.blake2b(ephemeral + recipient, digest_size=NONCE_BYTES).digest()

    @property
    def used(self) -> bool:
        return self._shared is None

    def seal(self, message: bytes) -> bytes:
        """The sealed box of ``message`` to ``recipient`` (ValueError if this key sealed one already)."""
        import nacl.bindings as b

        shared, self._shared = self._shared, None
        if shared is None:
            raise ValueError("this seal key has sealed a message already")
        return self.ephemeral + bytes(b.crypto_box_easy_afternm(message, self._nonce, shared))
