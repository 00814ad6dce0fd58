// The k-of-n witness policy of the "verified" mark (DESIGN §6): a checkpoint counts as witnessed only
// with valid tlog-cosignature/v1 cosignatures by at least k of the n witness keys the server embeds
// in the page (from its witness_state). Fail closed: fewer than k valid cosignatures = not verified.

import { equal } from "./bytes.js";
import { ALG_COSIGNATURE_V1, parseVerifierKey, verifyCosignature } from "./note.js";
import { byId, t } from "./ui.js";
import { VerifyError } from "./verify.js";

/** The policy in `<script id=witness-policy>`: {keys, quorum, bad}; malformed keys are counted in `bad`. */
export async function witnessPolicy(id = "witness-policy") {
  let doc;
  try {
    doc = JSON.parse(byId(id)?.textContent || "null");
  } catch {
    doc = null;
  }
  const texts = Array.isArray(doc?.witnesses) ? doc.witnesses : [];
  const keys = [];
  let bad = 0;
  for (const text of texts) {
    try {
      const key = await parseVerifierKey(text);
      if (key.alg === ALG_COSIGNATURE_V1) keys.push(key); else bad += 1;
    } catch {
      bad += 1;
    }
  }
  const asked = Number.isInteger(doc?.quorum) ? doc.quorum : texts.length;
  // a key the page cannot read still counts in n and in k: it can never cosign, so the policy stays as strict
  return { keys, quorum: Math.max(asked, texts.length ? 1 : 0), total: texts.length, bad };
}

/** One line describing the policy, for the page. */
export function policyLine(policy) {
  if (!policy.total) return t("witness.policy.none");
  return t("witness.policy.line", { k: policy.quorum, n: policy.total });
}

/**
 * Count the valid cosignatures by the policy's witnesses on a verified checkpoint `cp` (from
 * verifyCheckpoint: its text and cosignature lines); returns {cosigned, total, quorum}, or throws a
 * VerifyError ("not_witnessed") when fewer than k verify.
 */
export async function checkWitnessed(cp, policy) {
  let cosigned = 0;
  for (const key of policy.keys) {
    const c = cp.cosignatures.find((s) => s.name === key.name && equal(s.sig.keyHash, key.hash));
    if (!c) continue;
    try {
      await verifyCosignature(cp.text, c.sig, key);
      cosigned += 1;
    } catch (err) {
      console.warn(err);
    }
  }
  const out = { cosigned, total: policy.total, quorum: policy.quorum };
  if (cosigned < policy.quorum) {
    throw new VerifyError(t("witness.short", { size: cp.size, m: cosigned, n: policy.total, k: policy.quorum }), "not_witnessed");
  }
  return out;
}

/** `checkWitnessed` once per checkpoint object. */
export function witnessChecker(policy) {
  const seen = new Map();
  return (cp) => {
    if (!seen.has(cp)) seen.set(cp, checkWitnessed(cp, policy));
    return seen.get(cp);
  };
}
