"""Anomaly rules for auditors (全程追溯监管), pure: ``(seq, envelope)`` pairs in ledger order in, alerts out.

``RulesEngine`` keeps its own key registry and consent state, applied after the rules have looked at each
entry (so a rule sees the state *before* the entry, as the sequencer did when it checked it). It never
checks entries: the verifier (``audit.verifier``) says whether a ledger is valid; the rules say what in a
valid ledger deserves a look, and ``ReleaseWithoutPath`` also catches what a broken sequencer let through.

Each rule is a small class with a stable ``code``, a ``severity`` and thresholds as keyword arguments.
``observe`` is called for every entry; ``finish`` once, at the end of the period, for the rules about
what is due (agreements about to expire, objections past their deadline). Times are ledger times (each
entry's ``ts``), never the wall clock. Nothing here reads a database or a file.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any

from consent.decision import ALLOW, DENY
from consent.principal import key_valid_at
from consent.state import LIVE, ConsentState
from keys.registry import KeyRegistry
from ledger.envelope import Envelope
from ledger.errors import LedgerError
from ledger.timefmt import format_ts

HIGH = "high"
MEDIUM = "medium"
LOW = "low"
SEVERITIES = (HIGH, MEDIUM, LOW)

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # China keeps UTC+8 all year (no DST since 1991)
CORE_LEVEL = "核心"


@dataclass(frozen=True, slots=True)
class Alert:
    """One finding: which rule (``code``), how bad, the seqs it is about and a message naming them.

    ``at`` is the ledger time of the entry that raised it (or the period's end for the rules run at the
    end); ``department`` is the principal of the department concerned (requester, grantee or owner).
    """

    code: str
    severity: str
    seqs: tuple[int, ...]
    message: str
    at: datetime
    department: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "seqs": list(self.seqs),
            "message": self.message,
            "at": format_ts(self.at),
            "department": self.department,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """An entry as a rule sees it: the registry and consent state as they stood before it."""

    seq: int
    env: Envelope
    at: datetime
    registry: KeyRegistry
    state: ConsentState

    def principal(self, key_id: str) -> str:
        return self.state.principal_of(self.registry, key_id)


class Rule:
    """Base of the rules: ``observe`` each entry, ``finish`` at the period's end; both yield alerts."""

    code = ""
    severity = MEDIUM
    title = ""  # a short zh-CN (English) label for reports

    def observe(self, event: Event) -> Iterator[Alert]:
        return iter(())

    def finish(self, end: datetime, registry: KeyRegistry, state: ConsentState) -> Iterator[Alert]:
        return iter(())

    def alert(self, seqs: Sequence[int], message: str, at: datetime, department: str | None = None) -> Alert:
        return Alert(self.code, self.severity, tuple(seqs), message, at, department)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _key_valid(event: Event, key_id: str) -> bool:
    key = event.registry.keys.get(key_id)
    return key is not None and key_valid_at(key, event.at)


def _decision(event: Event) -> tuple[str, str, str, str, list[int]] | None:
    """(requester principal, dataset, subject, outcome, basis) of an ``access.decision``; None for any other
    entry or a malformed one."""
    if event.env.type != "access.decision":
        return None
    body = event.env.body
    requester, dataset, subject, outcome = (body.get(k) for k in ("requester", "dataset", "subject", "outcome"))
    basis = body.get("basis")
    if not all(isinstance(x, str) for x in (requester, dataset, subject, outcome)) or not isinstance(basis, list):
        return None
    seqs = [b for b in (_int(x) for x in basis) if b is not None]
    return event.principal(str(requester)), str(dataset), str(subject), str(outcome), seqs


# -- the rules ----------------------------------------------------------------------------------------------


class ReleaseWithoutPath(Rule):
    """A ``usage.release`` whose decision is not an allow (not yet released, by a requester whose key is still
    valid) resting on a live agreement and, where the agreement requires it, a live consent grant, at the
    time of the release. Never fires on a ledger the sequencer built; it is the auditor's own check of
    最小必要 and 个人链上授权, the same rules ``ConsentState`` enforces when a release is appended."""

    code = "release_without_path"
    severity = HIGH
    title = "无有效授权路径的数据交付 (release without a valid path)"

    def observe(self, event: Event) -> Iterator[Alert]:
        if event.env.type != "usage.release":
            return
        state, at = event.state, event.at
        number = _int(event.env.body.get("decision"))
        seqs = [event.seq] if number is None else [event.seq, number]
        department = None
        why = None
        d = state.decisions.get(number) if number is not None else None
        if d is None:
            why = f"seq {number} is not an access.decision"
        else:
            department = d.requester
            basis = list(d.entry.basis)
            seqs += basis
            agreement = state.agreements.get(basis[0]) if basis else None
            if d.entry.outcome != ALLOW:
                why = f"decision {number} is a deny ({', '.join(d.entry.reasons)})"
            elif d.released_seq is not None:
                why = f"decision {number} was already released at seq {d.released_seq}"
            elif not _key_valid(event, d.entry.requester):
                why = f"the requester's key {d.entry.requester} is not valid at the release"
            elif agreement is None:
                why = f"the allow's basis {basis} names no agreement.approve"
            elif agreement.status(at) != LIVE:
                why = f"agreement {agreement.seq} is {agreement.status(at)} at the release"
            elif agreement.agreement.consent_required:
                grant = state.grants.get(basis[1]) if len(basis) > 1 else None
                if grant is None:
                    why = f"agreement {agreement.seq} requires consent and the allow names no consent.grant"
                elif grant.revoked_seq is not None:
                    why = f"consent grant {grant.seq} was revoked at seq {grant.revoked_seq}"
                elif not grant.grant.in_window(at):
                    why = f"consent grant {grant.seq} is outside its validity window at the release"
        if why is not None:
            yield self.alert(seqs, f"seq {event.seq}: release without a valid path: {why}", at, department)


class DenialBurst(Rule):
    """A requester refused again and again: at least ``min_denials`` denies within ``window``, making up at
    least ``min_share`` of its decisions in that window (probing, or a broken integration).

    Defaults: 30 denies in 10 minutes (one every 20 s, far more than a person at a counter makes), 80 % of
    the requester's decisions. ``shulian simulate`` packs a day's mixed traffic into seconds, so its whole
    run falls in one window: in 500 events the most refused demo department (its only agreement is not yet
    in force, so it is always refused) gets about 20 denies, below the count, and the busy departments are
    refused about a third of the time, below the share. After an alert the window starts afresh, so one
    burst gives one alert.
    """

    code = "denial_burst"
    severity = MEDIUM
    title = "短时间内大量拒绝 (burst of denials)"

    def __init__(
        self, *, min_denials: int = 30, window: timedelta = timedelta(minutes=10), min_share: float = 0.8
    ) -> None:
        self.min_denials, self.window, self.min_share = min_denials, window, min_share
        self._recent: dict[str, deque[tuple[datetime, int, bool]]] = {}

    def observe(self, event: Event) -> Iterator[Alert]:
        found = _decision(event)
        if found is None:
            return
        requester, _, _, outcome, _ = found
        recent = self._recent.setdefault(requester, deque())
        recent.append((event.at, event.seq, outcome == DENY))
        while recent and recent[0][0] <= event.at - self.window:
            recent.popleft()
        denies = [seq for _, seq, denied in recent if denied]
        if len(denies) >= self.min_denials and len(denies) >= self.min_share * len(recent):
            recent.clear()
            minutes = self.window.total_seconds() / 60
            yield self.alert(
                denies,
                f"seq {denies[0]}–{denies[-1]}: requester {requester} was denied {len(denies)} times "
                f"within {minutes:g} minutes (seqs {_seq_list(denies)})",
                event.at,
                requester,
            )


class AttemptAfterRevocation(Rule):
    """A requester refused for a dataset (and subject) after an agreement or consent grant its earlier allows
    rested on was revoked, ``grace`` or more after the revocation (requests in flight when it happened, or
    sent before the requester's systems learnt of it, are not an anomaly). Default grace: 1 hour."""

    code = "attempt_after_revocation"
    severity = MEDIUM
    title = "撤销后仍尝试访问 (attempt after revocation)"

    def __init__(self, *, grace: timedelta = timedelta(hours=1)) -> None:
        self.grace = grace
        self._agreements: dict[tuple[str, str], set[int]] = {}  # (requester, dataset) -> agreements relied on
        self._grants: dict[tuple[str, str, str], set[int]] = {}  # (requester, subject, dataset) -> grants
        self._revoked: dict[int, tuple[int, datetime]] = {}  # agreement or grant seq -> (revocation seq, time)

    def observe(self, event: Event) -> Iterator[Alert]:
        kind, body = event.env.type, event.env.body
        if kind in ("agreement.revoke", "consent.revoke"):
            target = _int(body.get("agreement" if kind == "agreement.revoke" else "grant"))
            if target is not None:
                self._revoked.setdefault(target, (event.seq, event.at))
            return
        found = _decision(event)
        if found is None:
            return
        requester, dataset, subject, outcome, basis = found
        if outcome == ALLOW:
            if basis:
                self._agreements.setdefault((requester, dataset), set()).add(basis[0])
            if len(basis) > 1:
                self._grants.setdefault((requester, subject, dataset), set()).add(basis[1])
            return
        relied = [("agreement", s) for s in sorted(self._agreements.get((requester, dataset), ()))]
        relied += [("consent grant", s) for s in sorted(self._grants.get((requester, subject, dataset), ()))]
        for what, basis_seq in relied:
            revoked = self._revoked.get(basis_seq)
            if revoked is not None and event.at - revoked[1] >= self.grace:
                yield self.alert(
                    [event.seq, basis_seq, revoked[0]],
                    f"seq {event.seq}: requester {requester} asked for {dataset} again after the {what} "
                    f"{basis_seq} it relied on was revoked at seq {revoked[0]}",
                    event.at,
                    requester,
                )
                return


class VolumeSpike(Rule):
    """Requests per dataset or per requester in one ``bucket`` of time far above their running baseline.

    The baseline is an exponentially weighted mean of the earlier buckets (empty ones included) with
    weight ``alpha``. A bucket alerts once, when its count reaches ``factor`` × the baseline and at least
    ``min_count``, and only after ``min_history`` buckets of history: a dataset or requester without a
    day's history has no baseline to spike above (so a fresh ledger, such as ``shulian demo`` followed by
    ``shulian simulate``, raises none). Defaults: hourly buckets, 5×, at least 20, 24 hours of history,
    alpha 1/24 (about a day's memory). A dataset's spike concerns its owner, a requester's the requester.
    """

    code = "volume_spike"
    severity = MEDIUM
    title = "访问量激增 (volume spike)"

    def __init__(
        self,
        *,
        bucket: timedelta = timedelta(hours=1),
        factor: float = 5.0,
        min_count: int = 20,
        min_history: int = 24,
        alpha: float = 1 / 24,
    ) -> None:
        self.bucket, self.factor, self.min_count = bucket, factor, min_count
        self.min_history, self.alpha = min_history, alpha
        self._series: dict[tuple[str, str], _Series] = {}

    def observe(self, event: Event) -> Iterator[Alert]:
        found = _decision(event)
        if found is None:
            return
        requester, dataset = found[0], found[1]
        index = int(event.at.timestamp() // self.bucket.total_seconds())
        ds = event.state.datasets.get(dataset)
        owner = ds.owner if ds is not None else None
        for kind, key, department in (("dataset", dataset, owner), ("requester", requester, requester)):
            series = self._series.get((kind, key))
            if series is None:
                series = self._series[(kind, key)] = _Series(index)
            series.advance(index, self.alpha)
            series.seqs.append(event.seq)
            count = len(series.seqs)
            if (
                not series.alerted
                and series.history >= self.min_history
                and count >= self.min_count
                and count >= self.factor * series.baseline
            ):
                series.alerted = True
                hours = self.bucket.total_seconds() / 3600
                yield self.alert(
                    series.seqs,
                    f"seq {series.seqs[0]}–{event.seq}: {count} requests for {kind} {key} within {hours:g} h, "
                    f"against a baseline of {series.baseline:.1f}",
                    event.at,
                    department,
                )


@dataclass(slots=True)
class _Series:
    index: int  # the current bucket
    history: int = 0  # buckets closed so far
    baseline: float = 0.0
    seqs: list[int] = field(default_factory=list)  # requests in the current bucket
    alerted: bool = False

    def advance(self, index: int, alpha: float) -> None:
        if index <= self.index:
            return
        self.baseline = alpha * len(self.seqs) + (1 - alpha) * self.baseline
        gap = index - self.index - 1  # empty buckets in between
        self.baseline *= (1 - alpha) ** gap
        self.history += index - self.index
        self.index, self.seqs, self.alerted = index, [], False


class CoreAccessOffHours(Rule):
    """An allowed access to 核心-level data outside working hours: before ``start`` or from ``end`` local time
    (``tz``, default Asia/Shanghai, UTC+8), or on a day not in ``weekdays`` (default Monday to Friday;
    public holidays are not known here). Defaults: 09:00–18:00."""

    code = "core_access_off_hours"
    severity = MEDIUM
    title = "非工作时间访问核心数据 (核心 data accessed outside working hours)"

    def __init__(
        self,
        *,
        start: time = time(9),
        end: time = time(18),
        weekdays: frozenset[int] = frozenset(range(5)),
        tz: timezone = SHANGHAI,
    ) -> None:
        self.start, self.end, self.weekdays, self.tz = start, end, weekdays, tz

    def off_hours(self, at: datetime) -> bool:
        local = at.astimezone(self.tz)
        return local.weekday() not in self.weekdays or not self.start <= local.time() < self.end

    def observe(self, event: Event) -> Iterator[Alert]:
        found = _decision(event)
        if found is None or found[3] != ALLOW:
            return
        ds = event.state.datasets.get(found[1])
        if ds is None or ds.dataset.level != CORE_LEVEL or not self.off_hours(event.at):
            return
        local = event.at.astimezone(self.tz).strftime("%a %Y-%m-%d %H:%M")
        yield self.alert(
            [event.seq],
            f"seq {event.seq}: requester {found[0]} was allowed 核心 dataset {found[1]} at {local} (UTC+8)",
            event.at,
            found[0],
        )


class AgreementExpiring(Rule):
    """Agreements in force at the period's end (not revoked) whose validity ends within ``within`` of it,
    so the departments can renew or wind down in time. Default: 30 days."""

    code = "agreement_expiring"
    severity = LOW
    title = "共享协议即将到期 (agreement about to expire)"

    def __init__(self, *, within: timedelta = timedelta(days=30)) -> None:
        self.within = within

    def finish(self, end: datetime, registry: KeyRegistry, state: ConsentState) -> Iterator[Alert]:
        for seq, a in sorted(state.agreements.items()):
            until = a.agreement.valid_until
            if a.revoked_seq is None and a.agreement.valid_from <= end < until <= end + self.within:
                days = (until - end).total_seconds() / 86400
                yield self.alert(
                    [seq],
                    f"seq {seq}: agreement of {a.owner} with {a.requester} ends {format_ts(until)}, in {days:.0f} days",
                    end,
                    a.owner,
                )


class ObjectionOverdue(Rule):
    """Objections (数据异议) not resolved within ``deadline`` of their filing: one alert when a late
    resolution is logged, and one at the period's end for each still open past it. Default: 15 days."""

    code = "objection_overdue"
    severity = MEDIUM
    title = "数据异议逾期未处理 (objection past its deadline)"

    def __init__(self, *, deadline: timedelta = timedelta(days=15)) -> None:
        self.deadline = deadline
        self.filed: dict[int, datetime] = {}  # objection seq -> filing time

    def observe(self, event: Event) -> Iterator[Alert]:
        if event.env.type == "objection.file":
            self.filed[event.seq] = event.at
        if event.env.type != "objection.resolve":
            return
        number = _int(event.env.body.get("objection"))
        o = event.state.objections.get(number) if number is not None else None
        if o is None:
            return
        filed = self.filed.get(o.seq)
        if filed is not None and event.at - filed > self.deadline:
            days = (event.at - filed).total_seconds() / 86400
            yield self.alert(
                [o.seq, event.seq],
                f"seq {event.seq}: objection {o.seq} resolved {days:.0f} days after filing "
                f"(deadline {self.deadline.days} days)",
                event.at,
                o.owner,
            )

    def finish(self, end: datetime, registry: KeyRegistry, state: ConsentState) -> Iterator[Alert]:
        for seq, o in sorted(state.objections.items()):
            filed = self.filed.get(seq)
            if o.is_open and filed is not None and end - filed > self.deadline:
                days = (end - filed).total_seconds() / 86400
                yield self.alert(
                    [seq],
                    f"seq {seq}: objection open for {days:.0f} days (deadline {self.deadline.days} days)",
                    end,
                    o.owner,
                )


def default_rules() -> list[Rule]:
    """Every rule with its documented defaults."""
    return [
        ReleaseWithoutPath(),
        DenialBurst(),
        AttemptAfterRevocation(),
        VolumeSpike(),
        CoreAccessOffHours(),
        AgreementExpiring(),
        ObjectionOverdue(),
    ]


def _seq_list(seqs: Sequence[int], most: int = 12) -> str:
    shown = ", ".join(str(s) for s in seqs[:most])
    return shown + (f", … ({len(seqs)} in all)" if len(seqs) > most else "")


# -- the engine ---------------------------------------------------------------------------------------------


class RulesEngine:
    """Feeds each entry to every rule, then applies it to its own registry and consent state."""

    def __init__(self, rules: Sequence[Rule] | None = None) -> None:
        self.rules = list(default_rules() if rules is None else rules)
        self.registry = KeyRegistry()
        self.state = ConsentState()
        self.skipped: list[int] = []  # entries the state could not apply (a ledger the verifier would refuse)

    def feed(self, seq: int, env: Envelope) -> list[Alert]:
        """The alerts entry ``seq`` raises; then its effect on the state."""
        event = Event(seq, env, env.time, self.registry, self.state)
        alerts = [a for rule in self.rules for a in rule.observe(event)]
        signer = self.registry.keys.get(env.actor)
        try:
            self.registry.apply(seq, env)
            self.state.apply(seq, env, signer, self.registry)
        except (LedgerError, KeyError, IndexError, TypeError, ValueError):
            self.skipped.append(seq)
            self.registry.next_seq = self.state.next_seq = seq + 1
        return alerts

    def finish(self, end: datetime) -> list[Alert]:
        """The alerts due at ``end`` (the period's end)."""
        return [a for rule in self.rules for a in rule.finish(end, self.registry, self.state)]


def run_rules(
    entries: Iterable[tuple[int, Envelope]], *, end: datetime, rules: Sequence[Rule] | None = None
) -> list[Alert]:
    """Every alert over ``entries`` (those before ``end``), then those due at ``end``."""
    engine = RulesEngine(rules)
    alerts: list[Alert] = []
    for seq, env in entries:
        if env.time < end:
            alerts += engine.feed(seq, env)
    return alerts + engine.finish(end)
