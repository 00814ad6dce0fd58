// Opening a NaCl sealed box (libsodium crypto_box_seal, what PyNaCl's SealedBox makes) in the page:
// X25519 with WebCrypto (the private key stays non-extractable), HSalsa20 and XSalsa20-Poly1305
// from the vendored tweetnacl-js (audited; public domain), the nonce from BLAKE2b-192.

import { concat } from "./bytes.js";
import { blake2b } from "./blake2b.js";
import { x25519 } from "./ed25519.js";

const SIGMA = new TextEncoder().encode("expand 32-byte k");

export class SealedError extends Error {
  constructor(message, code = "sealed") {
    super(message);
    this.name = "SealedError";
    this.code = code;
  }
}

function nacl() {
  const lib = globalThis.nacl;
  if (!lib?.lowlevel?.crypto_core_hsalsa20 || !lib?.secretbox?.open) {
    throw new SealedError("the sealed-box library (tweetnacl) did not load; reload the page", "no_nacl");
  }
  return lib;
}

/** The nonce of a sealed box: BLAKE2b-192(ephemeral public ‖ recipient public). */
export const sealNonce = (ephemeral, recipient) => blake2b(concat(ephemeral, recipient), 24);

/** Open `sealed` (ephemeral public key ‖ box) with the recipient's X25519 key pair. */
export async function openSealed(sealed, privateKey, publicKey) {
  const lib = nacl();
  if (sealed.length < 32 + 16) throw new SealedError("sealed release is too short");
  const ephemeral = sealed.subarray(0, 32);
  let shared;
  try {
    shared = await x25519(privateKey, ephemeral);
  } catch {
    throw new SealedError("the sealed release's ephemeral key is not a usable X25519 key");
  }
  const key = new Uint8Array(32);
  lib.lowlevel.crypto_core_hsalsa20(key, new Uint8Array(16), shared, SIGMA);
  shared.fill(0);
  const plain = lib.secretbox.open(sealed.subarray(32), sealNonce(ephemeral, publicKey), key);
  key.fill(0);
  if (!plain) throw new SealedError("cannot open the release: it is not for this key, or it was altered", "sealed_open");
  return plain;
}
