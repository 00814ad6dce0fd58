"""ledger.sodium: the append path's libsodium calls give PyNaCl's signatures and verdicts."""

from __future__ import annotations

import nacl.exceptions
import nacl.signing
import pytest

from ledger import sodium


def _pynacl_accepts(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def test_sign_is_pynacls_signature() -> None:
    key = nacl.signing.SigningKey(bytes(range(32)))
    for message in (b"", b"x", "检查点".encode() * 100):
        assert sodium.sign(key, message) == key.sign(message).signature


@pytest.mark.parametrize("release_gil", [False, True])
def test_verify_agrees_with_pynacl(release_gil: bool) -> None:
    key = nacl.signing.SigningKey(bytes([7]) * 32)
    other = bytes(nacl.signing.SigningKey(bytes([8]) * 32).verify_key)
    public = bytes(key.verify_key)
    message = b'{"actor":"x","body":{},"ts":"2026-01-01T00:00:00Z","type":"record.commit","v":1}'
    signature = key.sign(message).signature
    cases = [(public, message, signature)]
    for i in (0, 31, 63):  # one bit flipped in the signature: R, and S (also above the group order)
        cases.append((public, message, signature[:i] + bytes([signature[i] ^ 0x01]) + signature[i + 1 :]))
    cases += [
        (public, message + b" ", signature),
        (public, message[:-1], signature),
        (other, message, signature),
        (public, message, signature[:63]),  # wrong lengths: refused, never read past the buffer
        (public[:31], message, signature),
        (bytes(32), message, bytes(64)),  # the identity point and a zero signature
    ]
    verdicts = [sodium.verify(*case, release_gil=release_gil) for case in cases]
    assert verdicts == [_pynacl_accepts(*case) for case in cases]
    assert verdicts[0] is True
    assert not any(verdicts[1:])


def test_seal_opens_with_pynacls_sealed_box() -> None:
    import nacl.public

    recipient = nacl.public.PrivateKey(bytes([9]) * 32)
    for message in (b"", b"{}", "低保".encode() * 500):
        sealed = sodium.seal(message, bytes(recipient.public_key))
        assert len(sealed) == len(message) + sodium.SEAL_BYTES
        assert nacl.public.SealedBox(recipient).decrypt(sealed) == message
        assert sodium.seal(message, bytes(recipient.public_key)) != sealed  # a fresh ephemeral key each time
    with pytest.raises(nacl.exceptions.CryptoError):  # only the recipient opens it
        nacl.public.SealedBox(nacl.public.PrivateKey(bytes([10]) * 32)).decrypt(sealed)


def test_seal_refuses_what_is_not_an_x25519_key() -> None:
    with pytest.raises(ValueError):
        sodium.seal(b"x", bytes(31))
    with pytest.raises(nacl.exceptions.CryptoError):  # a low-order point: no shared secret
        sodium.seal(b"x", bytes(32))


def test_seal_key_makes_a_sealed_box_once() -> None:
    """SealKey: crypto_box_seal in two halves; the box opens as any sealed box, and a key seals once."""
    import nacl.public

    recipient = nacl.public.PrivateKey(bytes([9]) * 32)
    ahead = sodium.SealKey(bytes(recipient.public_key))
    assert not ahead.used
    message = "释放".encode() * 50
    sealed = ahead.seal(message)
    assert ahead.used and len(sealed) == len(message) + sodium.SEAL_BYTES
    assert sealed[: sodium.X25519_BYTES] == ahead.ephemeral
    assert nacl.public.SealedBox(recipient).decrypt(sealed) == message
    with pytest.raises(ValueError, match="sealed a message already"):
        ahead.seal(b"a second message under the same key stream")
    other = sodium.SealKey(bytes(recipient.public_key))
    assert other.ephemeral != ahead.ephemeral  # a fresh ephemeral key each time
    wrong = nacl.public.PrivateKey(bytes([10]) * 32)
    with pytest.raises(nacl.exceptions.CryptoError):
        nacl.public.SealedBox(wrong).decrypt(other.seal(message))
    with pytest.raises(ValueError):
        sodium.SealKey(b"short")
    with pytest.raises(nacl.exceptions.CryptoError):
        sodium.SealKey(bytes(32))  # a low-order point: no shared key
