// Loading what several pages share, each entry verified: the directory of public names, the
// catalogue, and paged lists of entries.

import { verifier } from "./verify.js";

export async function directory(api) {
  const byKey = new Map();
  for (const d of await api.get("/portal/api/directory")) byKey.set(d.key_id, d);
  return {
    name: (keyId) => byKey.get(keyId)?.name || (keyId ? `${keyId.slice(0, 8)}…` : ""),
    principal: (keyId) => byKey.get(keyId)?.principal || keyId,
    entries: byKey,
  };
}

export async function catalogue(api) {
  const byId = new Map();
  for (const d of await api.get("/v1/datasets")) byId.set(d.dataset, d);
  return byId;
}

/** Every page of /v1/usage (or another paged list), raw. */
export async function allPages(api, path, params = {}) {
  const out = [];
  let after = null;
  for (;;) {
    const page = await api.get(path, { ...params, after, limit: 500 });
    out.push(...page.entries);
    if (page.next_after === null || page.next_after === undefined) return out;
    after = page.next_after;
  }
}

/**
 * Verify an EntryOut; returns {ok, entry, error}. `entry` holds the leaf's own fields when ok, else
 * the unverified fields the service sent (shown, but never marked verified).
 */
export async function checked(e) {
  try {
    return { ok: true, entry: await verifier.entry(e), error: null };
  } catch (error) {
    return { ok: false, entry: { seq: e.seq, type: e.type, ts: e.ts, actor: e.actor, body: e.body || {} }, error };
  }
}
