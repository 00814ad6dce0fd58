// Ed25519 with WebCrypto: verify with a raw public key; import a raw 32-byte seed as a
// non-extractable signing key (through PKCS #8, the one private format every engine takes).

import { concat, fromHex, sha256, hex } from "./bytes.js";

const ED25519 = { name: "Ed25519" };
const X25519 = { name: "X25519" };
// PKCS #8 PrivateKeyInfo prefixes (RFC 8410): OID 1.3.101.112 (Ed25519) and 1.3.101.110 (X25519).
const PKCS8_ED25519 = fromHex("302e020100300506032b657004220420");
const PKCS8_X25519 = fromHex("302e020100300506032b656e04220420");

export class CryptoUnavailable extends Error {
  constructor() {
    super("this browser has no WebCrypto (a page served over plain HTTP from another host has none)");
    this.name = "CryptoUnavailable";
    this.code = "no_webcrypto";
  }
}

export function requireWebCrypto() {
  if (!globalThis.crypto?.subtle) throw new CryptoUnavailable();
}

export async function verifyEd25519(publicKey, message, signature) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const key = await crypto.subtle.importKey("raw", publicKey, ED25519, false, ["verify"]);
  return crypto.subtle.verify(ED25519, key, signature, message);
}

export async function sign(key, message) {
  return new Uint8Array(await crypto.subtle.sign(ED25519, key, message));
}

/** The Shulian key id: lowercase hex of the first 16 bytes of SHA-256 of the raw public key. */
export async function keyIdOf(publicKey) {
  return hex((await sha256(publicKey)).subarray(0, 16));
}

async function importPrivate(prefix, raw, algorithm, usages) {
  const pkcs8 = concat(prefix, raw);
  const extractable = await crypto.subtle.importKey("pkcs8", pkcs8, algorithm, true, usages);
  const jwk = await crypto.subtle.exportKey("jwk", extractable);
  pkcs8.fill(0);
  const publicKey = Uint8Array.from(atob(jwk.x.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("jwk", jwk, algorithm, false, usages);
  jwk.d = "";
  return { key, publicKey };
}

/** A non-extractable Ed25519 signing key from a 32-byte seed, and its raw public key. */
export const importSeed = (seed) => importPrivate(PKCS8_ED25519, seed, ED25519, ["sign"]);

/** A non-extractable X25519 key from a 32-byte private key, and its raw public key. */
export const importX25519 = (raw) => importPrivate(PKCS8_X25519, raw, X25519, ["deriveBits"]);

export async function generateSigning() {
  const pair = await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"]);
  return { key: pair.privateKey, publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)) };
}

export async function generateX25519() {
  const pair = await crypto.subtle.generateKey(X25519, false, ["deriveBits"]);
  return { key: pair.privateKey, publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)) };
}

export async function x25519(privateKey, peerPublic) {
  const peer = await crypto.subtle.importKey("raw", peerPublic, X25519, true, []);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256));
}

