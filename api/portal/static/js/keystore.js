// Keystore files in the browser: the "shulian-keystore/1" format with kdf "pbkdf2-sha256" and
// cipher "aes-256-gcm" (keys/keystore.py writes and reads the same). The Argon2id variant cannot be
// opened here: WebCrypto has no Argon2id.

import { b64decode, fromUtf8, utf8, wipe } from "./bytes.js";
import { keyIdOf, importSeed, importX25519 } from "./ed25519.js";

export const FORMAT = "shulian-keystore/1";
const MIN_ITERATIONS = 100_000;
const MAX_ITERATIONS = 10_000_000;

export class KeystoreError extends Error {
  constructor(message, code) {
    super(message);
    this.name = "KeystoreError";
    this.code = code;
  }
}

/** Decrypt a keystore document: [{name, role, seed, x25519}] with raw bytes (wipe them after use). */
export async function openKeystore(doc, passphrase) {
  if (!doc || doc.format !== FORMAT) throw new KeystoreError("not a shulian-keystore/1 file", "keystore_format");
  const kdf = doc.kdf || {};
  if (kdf.name === "argon2id") throw new KeystoreError("Argon2id keystores cannot be opened in a browser", "keystore_argon2");
  if (kdf.name !== "pbkdf2-sha256" || doc.cipher !== "aes-256-gcm") {
    throw new KeystoreError("unknown keystore KDF or cipher", "keystore_format");
  }
  const iterations = kdf.iterations;
  if (!Number.isSafeInteger(iterations) || iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) {
    throw new KeystoreError(`keystore asks for ${iterations} PBKDF2 iterations`, "keystore_format");
  }
  let salt;
  let nonce;
  let sealed;
  try {
    salt = b64decode(kdf.salt, "salt");
    nonce = b64decode(doc.nonce, "nonce");
    sealed = b64decode(doc.sealed, "sealed");
  } catch {
    throw new KeystoreError("keystore is malformed", "keystore_format");
  }
  if (salt.length < 16 || nonce.length !== 12) throw new KeystoreError("keystore is malformed", "keystore_format");
  const base = await crypto.subtle.importKey("raw", utf8(passphrase), "PBKDF2", false, ["deriveKey"]);
  const aes = await crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    ["decrypt"],
  );
  let plain;
  try {
    plain = new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: utf8(FORMAT) }, aes, sealed),
    );
  } catch {
    throw new KeystoreError("wrong passphrase, or the file was altered", "keystore_passphrase");
  }
  let content;
  try {
    content = JSON.parse(fromUtf8(plain));
  } finally {
    wipe(plain);
  }
  if (!Array.isArray(content?.keys) || !content.keys.length) throw new KeystoreError("keystore holds no keys", "keystore_format");
  return content.keys.map((k) => ({
    name: k.name,
    role: k.role ?? null,
    seed: b64decode(k.ed25519_seed, "seed"),
    x25519: k.x25519 ? b64decode(k.x25519, "x25519") : null,
  }));
}

/** Turn one opened key into the identity kept in IndexedDB (non-extractable CryptoKeys). */
export async function identityFromKey(entry, source) {
  const signing = await importSeed(entry.seed);
  wipe(entry.seed);
  const identity = {
    keyId: await keyIdOf(signing.publicKey),
    name: entry.name,
    role: entry.role,
    source,
    signing: signing.key,
    publicKey: signing.publicKey,
    x25519: null,
    x25519Public: null,
    created: new Date().toISOString(),
  };
  if (entry.x25519) {
    const x = await importX25519(entry.x25519);
    wipe(entry.x25519);
    identity.x25519 = x.key;
    identity.x25519Public = x.publicKey;
  }
  return identity;
}
