// Checking an opened release against the ledger (consent/commitment.py and consent/release.py):
// each leaf's commitment is SHA-256(salt ‖ JCS({field, form, value})); the record commitment is the
// RFC 9162 root over their leaf hashes; it must equal the commitment in the record.commit on the
// ledger (read from the ledger, never from the payload). Pure.

import { b64decode, concat, equal, sha256 } from "./bytes.js";
import { canonicalBytes } from "./jcs.js";
import { leafHash, rootFromLeaves } from "./merkle.js";

export const RELEASE_FORMAT = "shulian-release/1";
const PAYLOAD_FIELDS = ["commitment", "dataset", "decision", "format", "leaves", "record", "record_seq", "subject"];

export class ReleaseError extends Error {
  constructor(message, code = "release") {
    super(message);
    this.name = "ReleaseError";
    this.code = code;
  }
}

async function itemCommitment(i, item) {
  const where = `disclosure item ${i}`;
  if (item === null || typeof item !== "object" || Array.isArray(item)) throw new ReleaseError(`${where} is not an object`);
  const keys = Object.keys(item).sort().join(",");
  if (keys === "hash") return { commitment: b64decode(item.hash, `${where}.hash`) };
  if (keys !== "field,form,salt,value") throw new ReleaseError(`${where} is neither {hash} nor {field, form, value, salt}`);
  const { field, form, value } = item;
  if (typeof field !== "string" || !field) throw new ReleaseError(`${where}.field is not a field name`);
  if (form !== "raw" && form !== "masked") throw new ReleaseError(`${where}.form is not raw or masked`);
  if (typeof value !== "string" && !Number.isSafeInteger(value)) throw new ReleaseError(`${where}.value is not a string or an integer`);
  const salt = b64decode(item.salt, `${where}.salt`);
  if (salt.length !== 16) throw new ReleaseError(`${where}.salt is ${salt.length} bytes, not 16`);
  const commitment = await sha256(concat(salt, canonicalBytes({ field, form, value })));
  return { commitment, opened: { field, form, value } };
}

/** Verify the payload against the ledger's record commitment; return {field: {value, form}} opened. */
export async function verifyRelease(payload, expectedCommitment) {
  if (payload === null || typeof payload !== "object" || Object.keys(payload).sort().join(",") !== PAYLOAD_FIELDS.join(",")) {
    throw new ReleaseError("release payload has other fields than a shulian-release/1 payload");
  }
  if (payload.format !== RELEASE_FORMAT) throw new ReleaseError(`release payload is not ${RELEASE_FORMAT}`);
  if (!Array.isArray(payload.leaves) || !payload.leaves.length) throw new ReleaseError("release has no leaves");
  const hashes = [];
  const opened = {};
  for (const [i, item] of payload.leaves.entries()) {
    const { commitment, opened: leaf } = await itemCommitment(i, item);
    if (commitment.length !== 32) throw new ReleaseError(`disclosure item ${i} commitment is not 32 bytes`);
    hashes.push(await leafHash(commitment));
    if (leaf) {
      if (leaf.field in opened) throw new ReleaseError(`disclosure opens field ${leaf.field} twice`);
      opened[leaf.field] = { value: leaf.value, form: leaf.form };
    }
  }
  const calculated = await rootFromLeaves(hashes);
  if (!equal(calculated, expectedCommitment)) {
    throw new ReleaseError("the released values do not rebuild the record commitment on the ledger", "commitment_mismatch");
  }
  if (!equal(b64decode(payload.commitment, "release commitment"), expectedCommitment)) {
    throw new ReleaseError("the release names another record commitment than the ledger's", "commitment_mismatch");
  }
  return opened;
}
