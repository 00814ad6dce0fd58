// The k-of-n witness policy of the "verified" mark (DESIGN §6): a checkpoint counts as witnessed only
// with valid tlog-cosignature/v1 cosignatures by at least k of the n witness keys the server embeds
// in the page (from its witness_state). Fail closed: fewer than k valid cosignatures = not verified.
// The first non-empty policy this browser sees is pinned in localStorage (trust on first use, as the
// log key is): a server that later lists other witnesses (its own, say) does not change what the mark
// rests on; the page says the list changed, and the citizen may choose to trust the new one.

import { equal } from "./bytes.js";
import { ALG_COSIGNATURE_V1, parseVerifierKey, verifyCosignature } from "./note.js";
import { byId, h, t } from "./ui.js";
import { VerifyError } from "./verify.js";

const PIN = "shulian.witness-policy";

/** A policy document as {witnesses: [text, …] sorted, quorum: int | null}. */
function normal(doc) {
  const witnesses = Array.isArray(doc?.witnesses) ? doc.witnesses.filter((w) => typeof w === "string").sort() : [];
  return { witnesses, quorum: Number.isInteger(doc?.quorum) ? doc.quorum : null };
}

function readJSON(text) {
  try {
    return JSON.parse(text || "null");
  } catch {
    return null;
  }
}

/** Pin the policy the page offers now in place of the pinned one (the citizen's choice). */
export function trustOfferedPolicy(id = "witness-policy") {
  localStorage.setItem(PIN, JSON.stringify(normal(readJSON(byId(id)?.textContent))));
}

/**
 * The policy the mark rests on: {keys, quorum, total, bad, changed}. It is the pinned one when this
 * browser has pinned one (``changed`` when the page offers another), else the page's, pinned now if
 * it names any witness. Malformed keys are counted in `bad`.
 */
export async function witnessPolicy(id = "witness-policy") {
  const offered = normal(readJSON(byId(id)?.textContent));
  const pinned = readJSON(localStorage.getItem(PIN));
  let doc = offered;
  let changed = false;
  if (pinned && Array.isArray(pinned.witnesses) && pinned.witnesses.length) {
    doc = normal(pinned);
    changed = JSON.stringify(doc) !== JSON.stringify(offered);
  } else if (offered.witnesses.length) {
    localStorage.setItem(PIN, JSON.stringify(offered));
  }
  const texts = doc.witnesses;
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
  const asked = doc.quorum ?? texts.length;
  // a key the page cannot read still counts in n and in k: it can never cosign, so the policy stays as strict
  return { keys, quorum: Math.max(asked, texts.length ? 1 : 0), total: texts.length, bad, changed };
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

/**
 * `check` each raw entry (proof against a log-signed checkpoint), then require the policy's witnesses on
 * that checkpoint: an entry is ok only with both; `witnesses` holds {cosigned, total, quorum} when it is.
 */
export async function checkedWitnessed(raw, check, policy) {
  const witnessed = witnessChecker(policy);
  return Promise.all(raw.map(async (e) => {
    const r = await check(e);
    if (!r.ok) return r;
    try {
      r.witnesses = await witnessed(r.entry.checkpoint);
    } catch (error) {
      return { ...r, ok: false, error };
    }
    return r;
  }));
}

/** The policy in the paragraph `id`: its line, state, quorum, and a way to trust a changed list. */
export function showPolicy(policy, id = "witness-policy-line") {
  const line = byId(id);
  line.textContent = policyLine(policy);
  line.dataset.state = policy.total ? "witnessed" : "none";
  line.dataset.quorum = String(policy.quorum);
  line.dataset.changed = String(policy.changed);
  if (policy.changed) {
    const trust = h("button", { type: "button", class: "secondary", id: "witness-policy-trust" }, t("witness.policy.trust"));
    trust.addEventListener("click", () => {
      trustOfferedPolicy();
      location.reload();
    });
    line.append(" ", h("strong", { class: "policy-changed" }, t("witness.policy.changed")), " ", trust);
  }
}

/** The verified mark's text for a checked entry: with the witnesses that cosigned, where there is a policy. */
export function verifiedText(r) {
  return r.witnesses?.total ? t("witness.verified", { m: r.witnesses.cosigned, n: r.witnesses.total }) : undefined;
}
