// RFC 8785 JSON Canonicalization (JCS) for the values the ledger signs: objects with keys sorted by
// UTF-16 code units, no whitespace, strings as ECMAScript's JSON.stringify writes them, and only
// integers within ±(2**53-1) (the ledger refuses floats). Pure.

import { utf8 } from "./bytes.js";

export class CanonicalError extends Error {
  constructor(message) {
    super(message);
    this.name = "CanonicalError";
    this.code = "canonical";
  }
}

function text(value) {
  if (!value.isWellFormed()) throw new CanonicalError("string holds a lone surrogate");
  return JSON.stringify(value);
}

export function canonicalize(value) {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isSafeInteger(value)) throw new CanonicalError(`${value} is not an integer within ±(2**53-1)`);
      return String(value === 0 ? 0 : value);
    case "string":
      return text(value);
    case "object": {
      if (Array.isArray(value)) return "[" + value.map(canonicalize).join(",") + "]";
      const keys = Object.keys(value).sort(); // default sort: UTF-16 code units, as RFC 8785 §3.2.3 asks
      return "{" + keys.map((k) => text(k) + ":" + canonicalize(value[k])).join(",") + "}";
    }
    default:
      throw new CanonicalError(`a ${typeof value} has no JSON form`);
  }
}

export const canonicalBytes = (value) => utf8(canonicalize(value));
