// What the page verifies itself, before it marks anything verified:
//  - the log's verifier key, pinned in this browser on first use (a changed key is an error);
//  - every checkpoint's Ed25519 note signature by that key (WebCrypto);
//  - consistency (RFC 9162 §2.1.4) of each newer checkpoint with the last one this browser accepted;
//  - every entry's leaf hash, computed from its exact bytes, and its inclusion proof against the
//    verified checkpoint; what the page shows comes from those bytes, not from other fields.

import { b64decode, b64encode, equal, fromUtf8 } from "./bytes.js";
import { canonicalize } from "./jcs.js";
import { leafHash, verifyConsistency, verifyInclusion } from "./merkle.js";
import { parseVerifierKey, verifyCheckpoint } from "./note.js";
import { publicJson, publicText } from "./api.js";

export class VerifyError extends Error {
  constructor(message, code = "verify") {
    super(message);
    this.name = "VerifyError";
    this.code = code;
  }
}

const PIN = "shulian.logKey";
const LAST = "shulian.lastCheckpoint";

export class Verifier {
  constructor() {
    this._key = null;
    this._checkpoints = new Map();
    this._chain = Promise.resolve();
  }

  /** The log's verifier key, fetched once and pinned in localStorage (trust on first use). */
  logKey() {
    if (!this._key) {
      this._key = (async () => {
        const text = (await publicText("/v1/log/key")).trim();
        const key = await parseVerifierKey(text);
        const pinned = localStorage.getItem(PIN);
        if (pinned && pinned !== text) {
          throw new VerifyError(`the log key is now ${text}, but this browser pinned ${pinned}`, "log_key_changed");
        }
        if (!pinned) localStorage.setItem(PIN, text);
        return key;
      })();
      this._key.catch(() => (this._key = null));
    }
    return this._key;
  }

  /** Verify a checkpoint note (cached by its text) and its consistency with the last one accepted. */
  checkpoint(note) {
    let found = this._checkpoints.get(note);
    if (!found) {
      found = (async () => {
        const cp = await verifyCheckpoint(note, await this.logKey());
        await this._consistent(cp);
        return cp;
      })();
      this._checkpoints.set(note, found);
      found.catch(() => this._checkpoints.delete(note));
    }
    return found;
  }

  _consistent(cp) {
    // one at a time: each check reads and moves the remembered checkpoint
    const step = this._chain.then(async () => {
      const saved = JSON.parse(localStorage.getItem(LAST) || "null");
      if (saved && saved.logKey === (await this.logKey()).text) {
        const root = b64decode(saved.root, "saved root");
        if (cp.size < saved.size) return; // an older checkpoint: proofs against it still hold
        if (cp.size === saved.size) {
          if (!equal(root, cp.root)) throw new VerifyError(`two different roots for tree size ${cp.size}`, "inconsistent");
          return;
        }
        const proof = await publicJson(`/v1/proof/consistency?first=${saved.size}&second=${cp.size}`);
        try {
          await verifyConsistency(saved.size, cp.size, root, cp.root, proof.hashes.map((x) => b64decode(x, "proof hash")));
        } catch (err) {
          throw new VerifyError(`the log is not consistent with the checkpoint of size ${saved.size}: ${err.message}`, "inconsistent");
        }
      }
      const logKey = (await this.logKey()).text;
      localStorage.setItem(LAST, JSON.stringify({ logKey, size: cp.size, root: b64encode(cp.root) }));
    });
    this._chain = step.catch(() => {});
    return step;
  }

  /** The latest checkpoint, verified. */
  async latest() {
    return this.checkpoint(await publicText("/v1/checkpoint"));
  }

  /** An EntryOut from the API: returns {seq, type, ts, actor, body, checkpoint} read from the verified leaf. */
  async entry(e) {
    const cp = await this.checkpoint(e.checkpoint);
    const leaf = b64decode(e.leaf, "leaf");
    const hash = await leafHash(leaf);
    if (e.leaf_hash !== undefined && !equal(hash, b64decode(e.leaf_hash, "leaf hash"))) {
      throw new VerifyError(`entry ${e.seq}: its leaf hash is not the hash of its bytes`);
    }
    if (!e.proof || e.proof.tree_size !== cp.size) throw new VerifyError(`entry ${e.seq}: proof is for another tree size`);
    await verifyInclusion(e.seq, cp.size, hash, e.proof.hashes.map((x) => b64decode(x, "proof hash")), cp.root);
    return { seq: e.seq, ...parseLeaf(leaf), checkpoint: cp };
  }

  /** An AppendOut (what a POST answers): the entry we sent is at `seq` under a signed checkpoint. */
  async appended(out, leaf = null) {
    const cp = await this.checkpoint(out.checkpoint);
    const hash = b64decode(out.leaf_hash, "leaf hash");
    if (leaf && !equal(hash, await leafHash(leaf))) throw new VerifyError("the service logged other bytes than the ones sent");
    if (out.tree_size !== cp.size) throw new VerifyError("the proof is for another tree size");
    await verifyInclusion(out.seq, cp.size, hash, out.inclusion.map((x) => b64decode(x, "proof hash")), cp.root);
    return { seq: out.seq, checkpoint: cp };
  }
}

/** The envelope in leaf bytes; they must be the canonical JSON of what they parse to. */
export function parseLeaf(leaf) {
  const text = fromUtf8(leaf);
  const env = JSON.parse(text);
  if (canonicalize(env) !== text) throw new VerifyError("entry bytes are not canonical JSON");
  return { type: env.type, ts: env.ts, actor: env.actor, body: env.body };
}

export const verifier = new Verifier();
