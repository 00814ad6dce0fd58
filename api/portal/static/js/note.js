// C2SP signed notes and tlog-checkpoints with Ed25519 keys, ported from ledger/note.py. Pure but
// async (WebCrypto). A checkpoint verifies only with a signature by the log key whose name is its
// origin; other signature lines (witness cosignatures) are returned for display.

import { b64decode, concat, equal, fromHex, hex, sha256, utf8 } from "./bytes.js";
import { verifyEd25519 } from "./ed25519.js";

export const ALG_ED25519 = 0x01;
export const ALG_COSIGNATURE_V1 = 0x04;
const DASH = "\u2014";

export class NoteError extends Error {
  constructor(message, code = "note") {
    super(message);
    this.name = "NoteError";
    this.code = code;
  }
}

const validName = (name) => !!name && !name.includes("+") && !/\s/.test(name);

export async function keyHash(name, alg, publicKey) {
  return (await sha256(concat(utf8(name), [0x0a, alg], publicKey))).subarray(0, 4);
}

/** Parse `<name>+<hex key hash>+<base64(alg ‖ key)>` and check its hash. */
export async function parseVerifierKey(text) {
  const t = String(text).trim();
  const first = t.indexOf("+");
  const second = first < 0 ? -1 : t.indexOf("+", first + 1);
  if (first < 0 || second < 0) throw new NoteError("verifier key is not name+hexhash+base64");
  const name = t.slice(0, first);
  const hashHex = t.slice(first + 1, second);
  if (!validName(name) || hashHex.length !== 8) throw new NoteError("verifier key is not name+hexhash+base64");
  let raw;
  let want;
  try {
    raw = b64decode(t.slice(second + 1), "verifier key");
    want = fromHex(hashHex);
  } catch {
    throw new NoteError("verifier key has bad hex or base64");
  }
  if (raw.length !== 33 || (raw[0] !== ALG_ED25519 && raw[0] !== ALG_COSIGNATURE_V1)) {
    throw new NoteError("verifier key is not an Ed25519 key");
  }
  const key = { name, alg: raw[0], publicKey: raw.slice(1), text: t };
  key.hash = await keyHash(name, key.alg, key.publicKey);
  if (!equal(key.hash, want)) throw new NoteError("verifier key hash does not match its name and key");
  return key;
}

/** Split a note into its signed text and signature lines, checking the shape. */
export function parseNote(note) {
  if (typeof note !== "string" || note.length > 1_000_000) throw new NoteError("note is missing or too large");
  const split = note.indexOf("\n\n");
  if (split < 0) throw new NoteError("note has no blank line before its signatures");
  const text = note.slice(0, split + 1);
  const rest = note.slice(split + 2);
  if (!rest.endsWith("\n")) throw new NoteError("note does not end in a newline");
  const signatures = [];
  for (const line of rest.slice(0, -1).split("\n")) {
    const parts = line.split(" ");
    if (parts.length !== 3 || parts[0] !== DASH || !validName(parts[1])) throw new NoteError("malformed signature line");
    let raw;
    try {
      raw = b64decode(parts[2], "signature");
    } catch {
      throw new NoteError("signature line is not base64");
    }
    if (raw.length < 5) throw new NoteError("signature line is too short");
    signatures.push({ name: parts[1], keyHash: raw.slice(0, 4), payload: raw.slice(4), line });
  }
  if (!signatures.length) throw new NoteError("note has no signatures");
  return { text, signatures };
}

export function parseCheckpointText(text) {
  const lines = text.split("\n");
  if (lines.length !== 4 || lines[3] !== "") throw new NoteError("checkpoint must have exactly origin, size and root lines");
  const [origin, sizeText, rootText] = lines;
  if (!origin || !/^(0|[1-9][0-9]*)$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new NoteError("checkpoint origin or size is malformed");
  }
  let root;
  try {
    root = b64decode(rootText, "root");
  } catch {
    throw new NoteError("checkpoint root is not base64");
  }
  if (root.length !== 32) throw new NoteError("checkpoint root is not 32 bytes");
  return { origin, size: Number(sizeText), root };
}

/** The bytes a tlog-cosignature/v1 signature covers: the header, then the checkpoint's note text. */
export function cosignedMessage(text, time) {
  return utf8(`cosignature/v1\ntime ${BigInt(time)}\n${text}`);
}

/**
 * Check a parsed signature line `sig` as witness `wkey`'s (a cosignature/v1 verifier key from
 * parseVerifierKey) cosignature of the note text `text`; returns its time (Unix seconds), else throws.
 */
export async function verifyCosignature(text, sig, wkey) {
  if (wkey.alg !== ALG_COSIGNATURE_V1) throw new NoteError(`${wkey.name}: not a cosignature/v1 key`);
  if (sig.name !== wkey.name || !equal(sig.keyHash, wkey.hash)) throw new NoteError(`signature line is not by witness ${wkey.name}`);
  if (sig.payload.length !== 72) throw new NoteError(`cosignature by ${wkey.name} is ${sig.payload.length} bytes, want 72`);
  const time = new DataView(sig.payload.buffer, sig.payload.byteOffset, 8).getBigUint64(0);
  if (time >= 2n ** 63n) throw new NoteError(`cosignature time ${time} out of range`);
  if (!(await verifyEd25519(wkey.publicKey, cosignedMessage(text, time), sig.payload.subarray(8)))) {
    throw new NoteError(`cosignature by ${wkey.name} does not verify`, "bad_cosignature");
  }
  return Number(time);
}

/** Describe a witness cosignature line (tlog-cosignature/v1: 8-byte time, then the signature). */
function cosignature(sig) {
  const out = { name: sig.name, keyHash: hex(sig.keyHash), time: null, sig };
  if (sig.payload.length === 72) {
    const view = new DataView(sig.payload.buffer, sig.payload.byteOffset, 8);
    out.time = Number(view.getBigUint64(0));
  }
  return out;
}

/** Verify a checkpoint note by the log key: returns {origin, size, root, text, cosignatures}. */
export async function verifyCheckpoint(note, vkey) {
  const parsed = parseNote(note);
  if (vkey.alg !== ALG_ED25519) throw new NoteError("not an Ed25519 note key");
  const mine = parsed.signatures.find((s) => s.name === vkey.name && equal(s.keyHash, vkey.hash));
  if (!mine) throw new NoteError(`note has no signature by ${vkey.name}`, "no_log_signature");
  if (!(await verifyEd25519(vkey.publicKey, utf8(parsed.text), mine.payload))) {
    throw new NoteError(`signature by ${vkey.name} does not verify`, "bad_log_signature");
  }
  const cp = parseCheckpointText(parsed.text);
  if (cp.origin !== vkey.name) throw new NoteError(`checkpoint origin ${cp.origin} is not the log key's name ${vkey.name}`);
  cp.text = parsed.text;
  cp.cosignatures = parsed.signatures.filter((s) => s !== mine).map(cosignature);
  return cp;
}

