"""Offline verification of a whole ledger, pure: leaf bytes, block headers and notes in, a verdict out.

Nothing here reads a database or a file, or imports a web framework: ``audit.sources`` reads and hands
values over, ``audit.parallel`` spreads the stateless checks over processes. Two layers:

- stateless checks, one item at a time, safe to run anywhere and in any order: ``check_entry`` (canonical
  RFC 8785 envelope, leaf hash, signature when the signer's key is known) and ``check_block`` (header
  shape and log signature, checkpoint note, header digest);
- ``LedgerVerifier.run``, the sequential replay over their results: seq and height order, duplicates,
  entry time against the sealing block, the key registry (validity at ``ts``, role), the state machines
  the sequencer enforces (the consent rules, given by the caller), the RFC 9162 tree, the block chain
  (first_seq, prev digest, time order, root), and that every entry is sealed.

The first fault ends the replay with a ``VerificationResult`` whose message is ``seq N: <reason>`` for an
entry or ``block H: <reason>`` for a block header or checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

import orjson

from audit.errors import BlockSourceError, EntrySourceError, SetupError, VerificationError
from keys.keyid import key_id
from keys.registry import KeyRecord, KeyRegistry
from ledger import sodium
from ledger.block import GENESIS_PREV, MAX_CLOCK_SKEW_SECONDS, BlockError, BlockHeader, entry_time_fits, parse_header
from ledger.envelope import Envelope, parse_envelope, signed_bytes
from ledger.errors import LedgerError, NoteError, SignatureError
from ledger.note import ALG_ED25519, VerifierKey, verify_checkpoint
from ledger.timefmt import format_ts, parse_ts
from ledger.tree import EMPTY_ROOT, CompactRange, leaf_hash

RawEntry = tuple[int, bytes]
"""An entry as a source holds it: (seq, exact leaf bytes)."""
RawBlock = tuple[int, Any, str]
"""A block as a source holds it: (height it is filed under, header JSON value, checkpoint note)."""
Progress = Callable[[int], object]
"""Called with the number of entries verified since the last call."""


class StateMachine(Protocol):
    """Rules replayed beside the key registry, as the sequencer enforces them (``ledger.machine``).

    ``check`` raises ``LedgerError`` if entry ``seq`` may not follow the entries applied so far;
    ``apply`` records it.
    """

    def check(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None: ...

    def apply(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None: ...


KEY_TYPES = frozenset({"identity.register", "identity.rotate"})
PROGRESS_STEP = 4096


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The verdict: ``ok``, one line ``message``, and how far the replay got."""

    ok: bool
    message: str
    entries: int
    """Entries that passed every check (the verified tree size)."""
    blocks: int
    """Blocks that passed every check."""
    root: bytes
    """The tree root at the last verified block."""
    seq: int | None = None
    """The seq at fault, for an entry fault."""
    height: int | None = None
    """The height at fault, for a block fault."""

    def __bool__(self) -> bool:
        return self.ok

    def raise_for_fault(self) -> None:
        """Raise ``VerificationError`` with the fault line unless the ledger verified."""
        if not self.ok:
            raise VerificationError(self.message)


# -- stateless checks ---------------------------------------------------------------------------


class CheckedEnvelope(Envelope):
    """An envelope whose fields ``parse_envelope`` has validated, so ``time`` may take the fast parser."""

    __slots__ = ()

    @property
    def time(self) -> datetime:
        if self.ts.isascii():
            return datetime.fromisoformat(self.ts)  # the same instant as parse_ts gives for this format
        return parse_ts(self.ts)  # parse_ts also takes non-ASCII digits


def checked_envelope(env: Envelope) -> CheckedEnvelope:
    return CheckedEnvelope(env.type, env.ts, env.actor, env.body, env.sig, env.leaf)


def checked_leaf(leaf: bytes) -> CheckedEnvelope:
    """The envelope of a leaf ``check_entry`` passed (canonical, well formed), read again without the checks."""
    v = orjson.loads(leaf)
    return CheckedEnvelope(v["type"], v["ts"], v["actor"], v["body"], binascii.a2b_base64(v["sig"]), leaf)


def introduced_key(env: Envelope) -> tuple[str, bytes] | None:
    """The (key id, public key) an identity.register or .rotate entry names, when the id is that key's id.

    A key id is a hash of its public key, so the pair is true at any time and from any entry: who may
    use the key, and when, is the registry's question, not this one's.
    """
    if env.type not in KEY_TYPES:
        return None
    kid, text = env.body.get("key_id"), env.body.get("ed25519")
    if not isinstance(kid, str) or not isinstance(text, str):
        return None
    try:
        pub = base64.b64decode(text, validate=True)
    except binascii.Error:
        return None
    if len(pub) != 32 or key_id(pub) != kid:
        return None
    return kid, pub


def learn_key(env: Envelope, keys: MutableMapping[str, bytes]) -> tuple[str, bytes] | None:
    """Add the key ``env`` introduces to ``keys``; return it if it was new."""
    found = introduced_key(env)
    if found is None or found[0] in keys:
        return None
    keys[found[0]] = found[1]
    return found


def verify_signature(env: Envelope, public_key: bytes) -> None:
    """Raise ``SignatureError`` unless ``env``'s signature verifies under ``public_key``.

    ``ledger.sodium.verify``: libsodium's check, as ``ledger.envelope.verify_ed25519`` runs it, without
    PyNaCl's copies of the message.
    """
    if not sodium.verify(public_key, signed_bytes(env), env.sig):
        raise SignatureError("signature does not verify")


def check_entry(leaf: bytes, keys: Mapping[str, bytes]) -> tuple[Envelope, bytes, bool]:
    """The checks of one leaf that need no ledger state; raise ``LedgerError`` on a fault.

    Parses the leaf (canonical RFC 8785, a well-formed envelope), hashes it, and verifies its signature
    when the signer's key is known: in ``keys`` (key id → public key) or introduced by the entry itself
    (the self-signed genesis). Returns (envelope, leaf hash, whether the signature was verified).
    """
    env = parse_envelope(leaf)
    pub = keys.get(env.actor)
    if pub is None:
        own = introduced_key(env)
        if own is not None and own[0] == env.actor:
            pub = own[1]
    if pub is not None:
        verify_signature(env, pub)
    return env, leaf_hash(leaf), pub is not None


class CheckedEntry(NamedTuple):
    """What ``check_entry`` established about the entry filed as ``seq``; ``fault`` when it failed."""

    seq: int
    leaf: bytes
    leaf_hash: bytes
    env: CheckedEnvelope | None
    verified: bool
    fault: str | None


class CheckedBlock(NamedTuple):
    """What ``check_block`` established about the block filed as ``label``; ``fault`` when it failed."""

    label: int
    header: BlockHeader | None
    digest: bytes
    time: datetime | None
    earliest: str
    """The earliest entry ``ts`` this block may seal (block time − skew), in the ledger's time format."""
    latest: str
    fault: str | None


def check_block(label: int, header_value: Any, checkpoint: str, log_key: VerifierKey) -> CheckedBlock:
    """The checks of one block that need no ledger state: header shape and signature, checkpoint note."""
    try:
        header = parse_header(header_value)
        if header.height != label:
            raise BlockError(f"filed as block {label} but its header says height {header.height}")
        header.verify_signature(log_key.public_key)
        try:
            cp = verify_checkpoint(checkpoint, log_key)
        except NoteError as exc:
            raise BlockError(f"checkpoint: {exc}") from exc
        if cp.size != header.tree_size:
            raise BlockError(f"checkpoint size {cp.size} differs from the header's tree_size {header.tree_size}")
        if cp.root != header.root:
            raise BlockError(f"checkpoint root {_b64(cp.root)} differs from the header's root {_b64(header.root)}")
        digest = header.digest()
        at = parse_ts(header.time)
    except LedgerError as exc:
        return CheckedBlock(label, None, b"", None, "", "", str(exc))
    skew = timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
    try:
        earliest = format_ts(at - skew)
    except OverflowError:
        earliest = ""  # every valid time is later
    try:
        latest = format_ts(at + skew)
    except OverflowError:
        latest = "\U0010ffff"  # every valid time is earlier
    return CheckedBlock(label, header, digest, at, earliest, latest, None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the sequential replay ----------------------------------------------------------------------


class _Fault(Exception):
    def __init__(self, message: str, *, seq: int | None = None, height: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq
        self.height = height


def _entry_fault(seq: int, reason: str) -> _Fault:
    return _Fault(f"seq {seq}: {reason}", seq=seq)


def _block_fault(height: int, reason: str) -> _Fault:
    return _Fault(f"block {height}: {reason}", height=height)


class LedgerVerifier:
    """Replays one ledger, entries in seq order and blocks in height order; use once.

    ``verify`` runs the stateless checks in this process; ``run`` takes their results from elsewhere
    (``audit.parallel``). Either way each block header is checked before the entries it seals (so
    their times can be checked against it) and its root after them.
    """

    def __init__(self, log_vkey: str, origin: str, *, machines: Sequence[StateMachine] = ()) -> None:
        try:
            self.log_key = VerifierKey.parse(log_vkey)
        except NoteError as exc:
            raise SetupError(f"log key {log_vkey!r}: {exc}") from exc
        if self.log_key.alg != ALG_ED25519:
            raise SetupError("log key is not an Ed25519 note key")
        if self.log_key.name != origin:
            raise SetupError(f"log key is named {self.log_key.name!r}, not the origin {origin!r}")
        self.origin = origin
        self.machines = list(machines)
        self.registry = KeyRegistry()
        self.keys: dict[str, bytes] = {}
        """Every public key introduced so far, by key id."""
        self.key_log: list[tuple[str, bytes]] = []
        """The same keys in the order they were introduced (for handing on to workers)."""
        self.tree = CompactRange()
        self.size = 0
        self.height = 0
        self.root = EMPTY_ROOT
        self._prev = GENESIS_PREV
        self._prev_time: datetime | None = None
        self._prev_time_text = ""
        # For duplicates, the first 128 bits of each leaf hash (two different leaves alike in them would
        # take ~2**64 work, the strength of the key ids), packed 16 bytes each into byte strings, by ts
        # second and then by their first byte. A duplicate has the same ts, and a ts earlier than the
        # current block's earliest allowed time can never be sealed again, so older seconds are dropped.
        self._seen: dict[str, dict[int, bytearray]] = {}
        self._seen_order: list[str] = []
        self._used = False
        self._reported = 0  # entries reported to the progress callback

    # stateless checks bound to this verifier's keys
    def check_entry_here(self, item: RawEntry) -> CheckedEntry:
        """``check_entry`` on a raw entry with the keys known so far."""
        seq, leaf = item
        try:
            env, digest, verified = check_entry(leaf, self.keys)
        except LedgerError as exc:
            return CheckedEntry(seq, leaf, b"", None, False, str(exc))
        return CheckedEntry(seq, leaf, digest, checked_envelope(env), verified, None)

    def check_block_here(self, item: RawBlock) -> CheckedBlock:
        """``check_block`` on a raw block with this ledger's log key."""
        return check_block(item[0], item[1], item[2], self.log_key)

    def verify(
        self, entries: Iterable[RawEntry], blocks: Iterable[RawBlock], progress: Progress | None = None
    ) -> VerificationResult:
        """Verify raw streams entirely in this process."""
        return self.run(map(self.check_entry_here, entries), map(self.check_block_here, blocks), progress)

    def run(
        self, entries: Iterable[CheckedEntry], blocks: Iterable[CheckedBlock], progress: Progress | None = None
    ) -> VerificationResult:
        """Replay checked streams; both are pulled lazily, one item at a time. Never raises on bad data."""
        if self._used:
            raise RuntimeError("a LedgerVerifier replays one ledger once")
        self._used = True
        try:
            self._replay(iter(entries), iter(blocks), progress)
        except _Fault as fault:
            return VerificationResult(False, str(fault), self.size, self.height, self.root, fault.seq, fault.height)
        finally:
            if progress is not None and self.size > self._reported:
                progress(self.size - self._reported)
        return VerificationResult(
            True,
            f"ok: {self.size} entries in {self.height} blocks, root {_b64(self.root)}",
            self.size,
            self.height,
            self.root,
        )

    def _replay(
        self, entries: Iterator[CheckedEntry], blocks: Iterator[CheckedBlock], progress: Progress | None
    ) -> None:
        while (block := self._next_block(blocks)) is not None:
            header = self._open(block)
            while self.size < header.tree_size:
                item = self._next_entry(entries)
                if item is None:
                    reason = f"missing: the entries end before block {self.height} seals seq {header.tree_size - 1}"
                    raise _entry_fault(self.size, reason)
                self._entry(item, block.earliest, block.latest, header.time)
                if progress is not None and self.size - self._reported >= PROGRESS_STEP:
                    progress(self.size - self._reported)
                    self._reported = self.size
            self._close(block, header)
        extra = self._next_entry(entries)
        if extra is not None:
            where = f"the last block ends at tree size {self.size}" if self.height else "there are no blocks"
            raise _entry_fault(self.size, f"not sealed by any block ({where})")
        if self.size == 0:
            raise _entry_fault(0, "missing: the ledger has no entries (seq 0 must be the genesis)")

    def _next_entry(self, entries: Iterator[CheckedEntry]) -> CheckedEntry | None:
        try:
            return next(entries)
        except StopIteration:
            return None
        except EntrySourceError as exc:
            raise _entry_fault(self.size, str(exc)) from exc

    def _next_block(self, blocks: Iterator[CheckedBlock]) -> CheckedBlock | None:
        try:
            return next(blocks)
        except StopIteration:
            return None
        except BlockSourceError as exc:
            raise _block_fault(self.height, str(exc)) from exc

    def _open(self, block: CheckedBlock) -> BlockHeader:
        """The checks of a block before its entries: place in the chain, signature, checkpoint, link, time."""
        height = self.height
        if block.label != height:
            raise _block_fault(height, f"missing or out of order (found block {block.label} in its place)")
        header = block.header
        if block.fault is not None or header is None:
            raise _block_fault(height, block.fault or "unchecked")
        if header.first_seq != self.size:
            raise _block_fault(height, f"first_seq {header.first_seq} is not the tree size {self.size} before it")
        if header.tree_size <= header.first_seq:
            raise _block_fault(height, f"empty: tree_size {header.tree_size} is not above first_seq {header.first_seq}")
        if header.prev != self._prev:
            want = "32 zero bytes" if height == 0 else f"the digest of block {height - 1}"
            raise _block_fault(height, f"prev {_b64(header.prev)} is not {want} ({_b64(self._prev)})")
        if block.time is None or (self._prev_time is not None and block.time < self._prev_time):
            before = self._prev_time_text
            raise _block_fault(height, f"time {header.time} is earlier than block {height - 1}'s time {before}")
        horizon = block.earliest[:19]
        while self._seen_order and self._seen_order[0] < horizon:
            del self._seen[heapq.heappop(self._seen_order)]
        return header

    def _close(self, block: CheckedBlock, header: BlockHeader) -> None:
        """The checks of a block after its entries: its root is the tree's."""
        root = self.tree.root()
        if root != header.root:
            raise _block_fault(
                self.height,
                f"root {_b64(header.root)} is not the root {_b64(root)} of the tree of its {header.tree_size} entries",
            )
        self.root = root
        self._prev = block.digest
        self._prev_time = block.time
        self._prev_time_text = header.time
        self.height += 1

    def _entry(self, item: CheckedEntry, earliest: str, latest: str, block_time: str) -> None:
        seq, _leaf, digest, env, verified, fault = item
        n = self.size
        if seq != n:
            raise _entry_fault(n, f"missing or out of order (found seq {seq} in its place)")
        if fault is not None or env is None:
            raise _entry_fault(n, fault or "unchecked")
        if not verified:
            pub = self.keys.get(env.actor)
            if pub is not None:  # a key the checker did not know yet
                try:
                    verify_signature(env, pub)
                except LedgerError as exc:
                    raise _entry_fault(n, str(exc)) from exc
                verified = True
        ts = env.ts
        second = ts[:19]
        bucket = self._seen.get(second)
        if bucket is None:
            bucket = self._seen[second] = {}
            heapq.heappush(self._seen_order, second)
        fingerprint = digest[:16]
        packed = bucket.get(digest[0])
        if packed is None:
            packed = bucket[digest[0]] = bytearray()
        elif _holds(packed, fingerprint):
            raise _entry_fault(n, f"duplicate: the same leaf (hash {_b64(digest)}) is already on the ledger")
        # The fixed-width ASCII format orders as text; entry_time_fits decides everything else.
        if not (ts.isascii() and earliest <= ts <= latest) and not entry_time_fits(ts, block_time):
            raise _entry_fault(
                n,
                f"ts {ts} is more than {MAX_CLOCK_SKEW_SECONDS} s from the time {block_time} "
                f"of block {self.height}, which seals it",
            )
        registry = self.registry
        try:
            signer = registry.check(n, env, signature_checked=verified)
            for machine in self.machines:
                machine.check(n, env, signer, registry)
            registry.apply(n, env)
            for machine in self.machines:
                machine.apply(n, env, signer, registry)
        except LedgerError as exc:
            raise _entry_fault(n, str(exc)) from exc
        if env.type in KEY_TYPES:
            new = learn_key(env, self.keys)
            if new is not None:
                self.key_log.append(new)
        self.tree.append(digest)
        packed += fingerprint
        self.size = n + 1


def _holds(packed: bytearray, fingerprint: bytes) -> bool:
    """Whether ``packed`` (16-byte records) holds ``fingerprint`` as one of its records."""
    at = packed.find(fingerprint)
    while at > 0 and at % 16:
        at = packed.find(fingerprint, at + 1)
    return at >= 0


def verify_ledger(
    log_vkey: str,
    origin: str,
    entries: Iterable[RawEntry],
    blocks: Iterable[RawBlock],
    progress: Progress | None = None,
    *,
    machines: Sequence[StateMachine] = (),
) -> VerificationResult:
    """Verify raw streams in this process (``LedgerVerifier(log_vkey, origin, machines=…).verify``)."""
    return LedgerVerifier(log_vkey, origin, machines=machines).verify(entries, blocks, progress)
