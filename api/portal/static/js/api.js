// Talking to the service: every request signed with the user's own key (RFC 9421), problems
// (RFC 9457) turned into errors that say what happened. The server's clock (the Date header) is
// used for `created` and entry times, so a browser whose clock is off still signs acceptably.

import { b64encode } from "./bytes.js";
import { canonicalBytes } from "./jcs.js";
import { sign } from "./ed25519.js";
import { signRequest } from "./httpsig.js";

export class ApiError extends Error {
  constructor(status, problem, code = null) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || {};
    this.detail = this.message;
    this.code = code;
  }
}

let offsetMs = 0; // server time minus local time, from the latest Date header

function learnClock(response) {
  const date = response.headers.get("date");
  if (!date) return;
  const server = Date.parse(date);
  if (!Number.isNaN(server)) {
    const diff = server - Date.now();
    offsetMs = Math.abs(diff) > 2000 ? diff : 0; // Date has one-second resolution
  }
}

export const serverNow = () => new Date(Date.now() + offsetMs);

/** The ledger's time format: YYYY-MM-DDTHH:MM:SS.ffffffZ. */
export const ledgerTime = (d = serverNow()) => d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

function classify(status, problem) {
  const detail = String(problem?.detail || "");
  if (status === 401 && /unknown key/.test(detail)) return "unknown_key";
  if (status === 401 && /(in the future|s old)/.test(detail)) return "clock";
  if (status === 401 && /replayed|nonce reused/.test(detail)) return "replayed";
  return null;
}

async function send(url, init) {
  let response;
  try {
    response = await fetch(url, { ...init, cache: "no-store", credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, { detail: String(err) }, "network");
  }
  learnClock(response);
  if (response.status >= 400) {
    let problem;
    try {
      problem = await response.json();
    } catch {
      problem = { detail: `${response.status} ${response.statusText}` };
    }
    throw new ApiError(response.status, problem, classify(response.status, problem));
  }
  return response;
}

export async function publicText(path) {
  return (await send(path, { method: "GET" })).text();
}

export async function publicJson(path, init = {}) {
  return (await send(path, init)).json();
}

export class Api {
  constructor(identity) {
    this.identity = identity;
  }

  async request(method, path, { params = null, body = null } = {}) {
    const url = new URL(path, location.href);
    if (params) for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) url.searchParams.set(k, v);
    const bytes = body === null ? new Uint8Array(0) : body instanceof Uint8Array ? body : canonicalBytes(body);
    const contentType = body === null ? null : "application/json";
    const sendOnce = async () => {
      const headers = await signRequest({
        method,
        url: url.href,
        body: bytes,
        contentType,
        key: this.identity.signing,
        keyId: this.identity.keyId,
        created: Math.floor(serverNow().getTime() / 1000),
      });
      if (contentType) headers["Content-Type"] = contentType;
      return send(url.href, { method, headers, body: body === null ? undefined : bytes });
    };
    let response;
    try {
      response = await sendOnce();
    } catch (err) {
      if (err.code !== "clock") throw err;
      response = await sendOnce(); // the first answer taught us the server's clock
    }
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json() : response.text();
  }

  get(path, params = null) {
    return this.request("GET", path, { params });
  }

  post(path, body) {
    return this.request("POST", path, { body });
  }

  /** Sign an entry (the canonical envelope without sig) with the user's key: its exact leaf bytes. */
  async envelope(type, body) {
    const unsigned = { v: 1, type, ts: ledgerTime(), actor: this.identity.keyId, body };
    const sig = await sign(this.identity.signing, canonicalBytes(unsigned));
    return canonicalBytes({ ...unsigned, sig: b64encode(sig) });
  }
}

