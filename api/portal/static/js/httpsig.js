// HTTP Message Signatures (RFC 9421) in the Shulian profile, and Content-Digest (RFC 9530): the
// signing half of api/httpsig.py. One signature "sig1" tagged "shulian" over "@method",
// "@target-uri", "content-digest" (and "content-type" when sent), with created, keyid,
// alg="ed25519" and a fresh 16-byte base64url nonce.

import { b64encode, b64url, randomBytes, sha256, utf8 } from "./bytes.js";
import { sign } from "./ed25519.js";

const DEFAULT_PORTS = { "http:": "80", "https:": "443" };

export async function contentDigest(body) {
  return `sha-256=:${b64encode(await sha256(body))}:`;
}

/** The target URI as the server rebuilds it: lowercase scheme and host, no default port, "/" for no path. */
export function targetUri(url) {
  const u = new URL(url);
  const port = u.port && u.port !== DEFAULT_PORTS[u.protocol] ? `:${u.port}` : "";
  return `${u.protocol}//${u.hostname.toLowerCase()}${port}${u.pathname || "/"}${u.search}`;
}

export function signatureParams(components, { created, keyId, nonce }) {
  const list = components.map((c) => `"${c}"`).join(" ");
  return `(${list});created=${created};keyid="${keyId}";alg="ed25519";nonce="${nonce}";tag="shulian"`;
}

export function signatureBase({ method, url, digest, contentType, params }) {
  const lines = [`"@method": ${method}`, `"@target-uri": ${targetUri(url)}`, `"content-digest": ${digest}`];
  if (contentType) lines.push(`"content-type": ${contentType}`);
  lines.push(`"@signature-params": ${params}`);
  return lines.join("\n");
}

/**
 * The header fields that sign a request: Content-Digest, Signature-Input and Signature.
 * `created` is UNIX seconds (the caller corrects for clock skew); `nonce` defaults to 16 random bytes.
 */
export async function signRequest({ method, url, body, contentType, key, keyId, created, nonce }) {
  const digest = await contentDigest(body);
  const components = ["@method", "@target-uri", "content-digest"];
  if (contentType) components.push("content-type");
  const params = signatureParams(components, { created, keyId, nonce: nonce ?? b64url(randomBytes(16)) });
  const base = signatureBase({ method, url, digest, contentType, params });
  const signature = await sign(key, utf8(base));
  return {
    "Content-Digest": digest,
    "Signature-Input": `sig1=${params}`,
    Signature: `sig1=:${b64encode(signature)}:`,
  };
}
