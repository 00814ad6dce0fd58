// RFC 9162 §2.1 Merkle tree hashing and proof verification, ported from ledger/tree.py. Pure: ints
// and bytes in, bytes out or a ProofError. Sizes may exceed 2**31, so no 32-bit bit operators.

import { concat, equal, sha256 } from "./bytes.js";

export const LEAF_PREFIX = 0x00;
export const NODE_PREFIX = 0x01;
export const HASH_SIZE = 32;

export class ProofError extends Error {
  constructor(message, { expected, calculated } = {}) {
    super(message);
    this.name = "ProofError";
    this.code = expected ? "root_mismatch" : "proof";
    this.expected = expected;
    this.calculated = calculated;
  }
}

export const leafHash = (leaf) => sha256(concat([LEAF_PREFIX], leaf));
export const nodeHash = (left, right) => sha256(concat([NODE_PREFIX], left, right));

const odd = (n) => n % 2 === 1;
const half = (n) => Math.floor(n / 2);

function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    throw new ProofError(`${what} is ${value?.length ?? "no"} bytes, not ${HASH_SIZE}`);
  }
}

function isSize(n) {
  return Number.isSafeInteger(n) && n >= 0;
}

function largestPowerOfTwoBelow(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n) {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** RFC 9162 §2.1.3.2: the root implied by an inclusion proof of leaf hash `leaf` at `index`. */
export async function rootFromInclusionProof(index, size, leaf, proof) {
  if (!isSize(index) || !isSize(size) || index >= size) {
    throw new ProofError(`leaf index ${index} outside a tree of size ${size}`);
  }
  checkHash(leaf, "leaf hash");
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    checkHash(p, "proof hash");
    if (sn === 0) throw new ProofError("inclusion proof too long");
    if (odd(fn) || fn === sn) {
      r = await nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError("inclusion proof too short");
  return r;
}

export async function verifyInclusion(index, size, leaf, proof, root) {
  const calculated = await rootFromInclusionProof(index, size, leaf, proof);
  if (!equal(calculated, root)) {
    throw new ProofError("inclusion proof leads to another root", { expected: root, calculated });
  }
}

/** RFC 9162 §2.1.4.2: throw unless `proof` shows the tree of size `first` is a prefix of `second`. */
export async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  checkHash(firstRoot, "first root");
  checkHash(secondRoot, "second root");
  if (!isSize(first) || !isSize(second) || first < 1 || first > second) {
    throw new ProofError(`consistency needs 1 <= first <= second, got first=${first} second=${second}`);
  }
  for (const p of proof) checkHash(p, "proof hash");
  if (first === second) {
    if (proof.length) throw new ProofError("consistency proof between equal sizes must be empty");
    if (!equal(firstRoot, secondRoot)) {
      throw new ProofError("equal sizes with different roots", { expected: secondRoot, calculated: firstRoot });
    }
    return;
  }
  const path = [...proof];
  if (isPowerOfTwo(first)) path.unshift(firstRoot);
  if (!path.length) throw new ProofError("consistency proof is empty");
  let fn = first - 1;
  let sn = second - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) throw new ProofError("consistency proof too long");
    if (odd(fn) || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError("consistency proof too short");
  if (!equal(fr, firstRoot)) throw new ProofError("first root does not match", { expected: firstRoot, calculated: fr });
  if (!equal(sr, secondRoot)) throw new ProofError("second root does not match", { expected: secondRoot, calculated: sr });
}

/** MTH over leaf hashes by RFC 9162's recursion (record commitments have a few dozen leaves). */
export async function rootFromLeaves(hashes) {
  if (!hashes.length) return sha256(new Uint8Array(0));
  if (hashes.length === 1) return hashes[0];
  const k = largestPowerOfTwoBelow(hashes.length);
  return nodeHash(await rootFromLeaves(hashes.slice(0, k)), await rootFromLeaves(hashes.slice(k)));
}
