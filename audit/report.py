"""Usage reports for auditors (审计报告), pure: figures per department and period from the ledger, with the
anomaly rules' alerts, rendered as JSON, CSV or one self-contained HTML file (no external assets).

``build_report`` replays ``(seq, envelope)`` pairs in ledger order (the whole ledger up to the period's
end: the rules need history and the state its past), counting what falls in ``[start, end)``. Departments
are principals (the first key of a rotation chain). Reading the ledger is the caller's job.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from audit.rules import SEVERITIES, SHANGHAI, Alert, ObjectionOverdue, Rule, RulesEngine, default_rules
from consent.decision import ALLOW, DENY_REASONS
from ledger.envelope import Envelope
from ledger.timefmt import format_ts

FORMAT = "shulian-audit-report/1"
DEFAULT_DEADLINE = timedelta(days=15)  # objections (数据异议) are resolved within 15 days of filing

METRICS = (
    ("requests", "请求", "Requests"),
    ("allows", "允许", "Allowed"),
    ("denies", "拒绝", "Denied"),
    ("releases", "交付", "Releases"),
    ("consents_granted", "授权同意", "Consents granted"),
    ("consents_revoked", "撤回同意", "Consents revoked"),
    ("objections_filed", "异议提出", "Objections filed"),
    ("objections_resolved", "异议办结", "Objections resolved"),
    ("objections_overdue", "异议逾期未办", "Objections overdue"),
    ("objections_resolved_late", "异议逾期办结", "Objections resolved late"),
    ("alerts", "告警", "Alerts"),
)
REASON_LABELS = {
    "requester_key_invalid": "请求方密钥无效",
    "no_agreement": "无共享协议",
    "agreement_revoked": "协议已撤销",
    "agreement_expired": "协议已到期",
    "agreement_not_yet_valid": "协议未生效",
    "field_out_of_scope": "字段超出范围",
    "purpose_not_allowed": "用途不符",
    "consent_missing": "未获同意",
    "consent_revoked": "同意已撤回",
    "consent_expired": "同意已过期",
    "consent_uses_exhausted": "同意次数用尽",
}
SEVERITY_LABELS = {"high": "高 (high)", "medium": "中 (medium)", "low": "低 (low)"}


@dataclass(slots=True)
class DepartmentFigures:
    """One department's figures for the period (``denies_by_reason`` counts each reason a deny gives)."""

    department: str
    name: str
    requests: int = 0
    allows: int = 0
    denies: int = 0
    denies_by_reason: Counter[str] = field(default_factory=Counter)
    releases: int = 0
    consents_granted: int = 0
    consents_revoked: int = 0
    objections_filed: int = 0
    objections_resolved: int = 0
    objections_overdue: int = 0  # open at the period's end, past the deadline
    objections_resolved_late: int = 0  # resolved in the period, after the deadline
    alerts: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"department": self.department, "name": self.name}
        for key, _, _ in METRICS:
            out[key] = getattr(self, key)
        out["denies_by_reason"] = dict(sorted(self.denies_by_reason.items()))
        return out


OPEN, OVERDUE, RESOLVED, RESOLVED_LATE = "open", "overdue", "resolved", "resolved_late"
STATUS_LABELS = {
    OPEN: "办理中 (open)",
    OVERDUE: "逾期未办 (overdue)",
    RESOLVED: "已办结 (resolved)",
    RESOLVED_LATE: "逾期办结 (resolved late)",
}


@dataclass(frozen=True, slots=True)
class ObjectionLine:
    """One objection the period saw (filed in it, resolved in it, or open at its end), with its due time."""

    seq: int
    department: str  # the owner, who resolves it
    dataset: str
    record: str
    filed: datetime
    due: datetime
    status: str  # open | overdue | resolved | resolved_late (at the period's end)
    resolved_seq: int | None
    resolved: datetime | None
    outcome: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "department": self.department,
            "dataset": self.dataset,
            "record": self.record,
            "filed": format_ts(self.filed),
            "due": format_ts(self.due),
            "status": self.status,
            "resolved_seq": self.resolved_seq,
            "resolved": None if self.resolved is None else format_ts(self.resolved),
            "outcome": self.outcome,
        }


@dataclass(slots=True)
class Report:
    start: datetime
    end: datetime
    department: str | None  # the principal reported on, or None for all
    objection_deadline: timedelta
    departments: list[DepartmentFigures]
    totals: DepartmentFigures
    alerts: list[Alert]
    rules: list[Rule]
    objections: list[ObjectionLine] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "from": format_ts(self.start),
            "to": format_ts(self.end),
            "department": self.department,
            "objection_deadline_days": self.objection_deadline.days,
            "departments": [d.as_dict() for d in self.departments],
            "totals": {k: v for k, v in self.totals.as_dict().items() if k not in ("department", "name")},
            "objections": [o.as_dict() for o in self.objections],
            "alerts": [a.as_dict() for a in self.alerts],
            "alerts_by_severity": {s: sum(1 for a in self.alerts if a.severity == s) for s in SEVERITIES},
            "rules": [{"code": r.code, "severity": r.severity, "title": r.title} for r in self.rules],
        }


def parse_when(text: str, *, end: bool = False) -> datetime:
    """A period bound: ``YYYY-MM-DD`` (the midnight starting that day in UTC+8, or with ``end`` the one
    ending it) or an ISO 8601 time with its offset. Raises ``ValueError`` with a readable message."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or an offset such as +08:00")
    return moment


def build_report(
    entries: Iterable[tuple[int, Envelope]],
    *,
    start: datetime,
    end: datetime,
    department: str | None = None,
    rules: Sequence[Rule] | None = None,
    objection_deadline: timedelta = DEFAULT_DEADLINE,
) -> Report:
    """The report for ``[start, end)``, for one department (any of its key ids) or all of them."""
    if end <= start:
        raise ValueError(f"the period is empty: {format_ts(start)} is not before {format_ts(end)}")
    if rules is None:
        rules = [r if not isinstance(r, ObjectionOverdue) else ObjectionOverdue(deadline=objection_deadline)
                 for r in default_rules()]  # fmt: skip
    engine = RulesEngine(rules)
    figures: dict[str, DepartmentFigures] = {}
    filed: dict[int, datetime] = {}
    resolved: dict[int, datetime] = {}
    alerts: list[Alert] = []

    def of(principal: str) -> DepartmentFigures:
        found = figures.get(principal)
        if found is None:
            found = figures[principal] = DepartmentFigures(principal, "")
        return found

    for seq, env in entries:
        at = env.time
        if at >= end:
            continue
        if env.type == "objection.file":
            filed[seq] = at
        elif env.type == "objection.resolve" and isinstance(env.body.get("objection"), int):
            resolved.setdefault(env.body["objection"], at)
        if at >= start:
            _count(engine, seq, env, at, filed, objection_deadline, of)
        alerts += [a for a in engine.feed(seq, env) if a.at >= start]
    alerts += engine.finish(end)
    state, registry = engine.state, engine.registry
    lines = []
    for seq, o in sorted(state.objections.items()):
        when = filed.get(seq, end)
        due = when + objection_deadline
        if o.is_open:
            status = OVERDUE if end > due else OPEN
            if status == OVERDUE:
                of(o.owner).objections_overdue += 1
        else:
            done = resolved.get(seq, when)
            if done < start and when < start:
                continue  # settled before the period
            status = RESOLVED_LATE if done > due else RESOLVED
        ob = o.objection
        lines.append(
            ObjectionLine(
                seq, o.owner, ob.dataset, ob.record, when, due, status, o.resolved_seq, resolved.get(seq), o.outcome
            )
        )
    chosen = None
    if department is not None:
        key = registry.keys.get(department)
        if key is None or key.role != "department":
            raise ValueError(f"{department} is not a registered department key")
        chosen = state.principal_of(registry, department)
    for a in alerts:
        if a.department is not None:
            of(a.department).alerts += 1
    for principal, figs in figures.items():
        key = registry.keys.get(principal)
        figs.name = key.name if key is not None else "(未登记密钥 unregistered key)"
    if chosen is not None:
        figures = {k: v for k, v in figures.items() if k == chosen}
        alerts = [a for a in alerts if a.department == chosen]
        lines = [line for line in lines if line.department == chosen]
    departments = sorted(figures.values(), key=lambda d: (d.name, d.department))
    totals = DepartmentFigures("", "合计 (Total)")
    for d in departments:
        for metric, _, _ in METRICS:
            setattr(totals, metric, getattr(totals, metric) + getattr(d, metric))
        totals.denies_by_reason.update(d.denies_by_reason)
    alerts.sort(key=lambda a: (SEVERITIES.index(a.severity), a.at, a.seqs))
    return Report(start, end, chosen, objection_deadline, departments, totals, alerts, list(rules), lines)


def _count(
    engine: RulesEngine,
    seq: int,
    env: Envelope,
    at: datetime,
    filed: dict[int, datetime],
    deadline: timedelta,
    of: Any,
) -> None:
    """Count entry ``seq`` (in the period) for its department, from the state before it."""
    state, registry, body = engine.state, engine.registry, env.body

    def principal(kid: Any) -> str | None:
        return state.principal_of(registry, kid) if isinstance(kid, str) else None

    kind = env.type
    if kind == "access.decision":
        who = principal(body.get("requester"))
        if who is None:
            return
        figs = of(who)
        figs.requests += 1
        if body.get("outcome") == ALLOW:
            figs.allows += 1
        else:
            figs.denies += 1
            figs.denies_by_reason.update(r for r in body.get("reasons", ()) if isinstance(r, str))
    elif kind == "usage.release":
        d = state.decisions.get(body.get("decision", -1))
        who = d.requester if d is not None else principal(body.get("requester"))
        if who is not None:
            of(who).releases += 1
    elif kind == "consent.grant":
        who = principal(body.get("grantee"))
        if who is not None:
            of(who).consents_granted += 1
    elif kind == "consent.revoke":
        g = state.grants.get(body.get("grant", -1))
        if g is not None:
            of(g.grantee).consents_revoked += 1
    elif kind == "objection.file":
        ds = state.datasets.get(body.get("dataset", ""))
        if ds is not None:
            of(ds.owner).objections_filed += 1
    elif kind == "objection.resolve":
        number = body.get("objection", -1)
        o = state.objections.get(number)
        if o is not None:
            figs = of(o.owner)
            figs.objections_resolved += 1
            if at - filed.get(number, at) > deadline:
                figs.objections_resolved_late += 1


# -- rendering ----------------------------------------------------------------------------------------------


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n"


def csv_columns() -> list[str]:
    return ["department", "name"] + [k for k, _, _ in METRICS] + [f"denies:{r}" for r in DENY_REASONS]


def render_csv(report: Report) -> str:
    """One row per department, then a ``total`` row; deny reasons as ``denies:<reason>`` columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_columns())
    for d in [*report.departments, report.totals]:
        row: list[Any] = [d.department or "total", d.name]
        row += [getattr(d, k) for k, _, _ in METRICS]
        row += [d.denies_by_reason.get(r, 0) for r in DENY_REASONS]
        writer.writerow(row)
    return out.getvalue()


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _chart(report: Report) -> str:
    """An inline SVG bar chart: allowed and denied requests per department."""
    rows = [d for d in report.departments if d.requests]
    if not rows:
        return "<p>本期无请求 (no requests in this period)</p>"
    top = max(d.requests for d in rows)
    bar_h, gap, label_w, width = 18, 8, 220, 480
    height = len(rows) * (bar_h + gap) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 60}" height="{height}" '
        'role="img" aria-label="请求 (requests) per department">'
    ]
    for i, d in enumerate(rows):
        y = i * (bar_h + gap)
        allow_w = width * d.allows / top
        deny_w = width * d.denies / top
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="12">{_e(d.name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{allow_w:.1f}" height="{bar_h}" fill="#2e7d32"/>')
        parts.append(
            f'<rect x="{label_w + allow_w:.1f}" y="{y}" width="{deny_w:.1f}" height="{bar_h}" fill="#c62828"/>'
        )
        parts.append(f'<text x="{label_w + allow_w + deny_w + 4:.1f}" y="{y + 13}" font-size="12">{d.requests}</text>')
    y = len(rows) * (bar_h + gap) + 12
    parts.append(f'<rect x="{label_w}" y="{y}" width="12" height="12" fill="#2e7d32"/>')
    parts.append(f'<text x="{label_w + 16}" y="{y + 11}" font-size="12">允许 (allowed)</text>')
    parts.append(f'<rect x="{label_w + 120}" y="{y}" width="12" height="12" fill="#c62828"/>')
    parts.append(f'<text x="{label_w + 136}" y="{y + 11}" font-size="12">拒绝 (denied)</text>')
    parts.append("</svg>")
    return "\n".join(parts)


_STYLE = """
body{font-family:"Noto Sans SC","Microsoft YaHei",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:4px 8px;font-size:13px}
th{background:#eef2f7;text-align:left}td.n{text-align:right}tr.total td{font-weight:bold;background:#f6f6f6}
.high{color:#b71c1c;font-weight:bold}.medium{color:#e65100}.low{color:#555}code{font-size:12px}
"""


def render_html(report: Report) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts, no external assets)."""
    period = f"{_e(format_ts(report.start))} — {_e(format_ts(report.end))}"
    head = "".join(f"<th>{_e(zh)}<br>({_e(en)})</th>" for _, zh, en in METRICS)
    rows = []
    for d in [*report.departments, report.totals]:
        cls = ' class="total"' if d is report.totals else ""
        cells = "".join(f'<td class="n">{getattr(d, k)}</td>' for k, _, _ in METRICS)
        rows.append(f"<tr{cls}><td>{_e(d.name)}<br><code>{_e(d.department)}</code></td>{cells}</tr>")
    reason_rows = "".join(
        f'<tr><td>{_e(REASON_LABELS.get(r, r))} (<code>{_e(r)}</code>)</td><td class="n">{n}</td></tr>'
        for r, n in sorted(report.totals.denies_by_reason.items(), key=lambda x: (-x[1], x[0]))
    )
    alert_rows = "".join(
        f'<tr><td class="{_e(a.severity)}">{_e(SEVERITY_LABELS.get(a.severity, a.severity))}</td>'
        f"<td><code>{_e(a.code)}</code></td><td>{_e(format_ts(a.at))}</td>"
        f"<td>{_e(', '.join(str(s) for s in a.seqs[:20]))}{' …' if len(a.seqs) > 20 else ''}</td>"
        f"<td>{_e(a.message)}</td></tr>"
        for a in report.alerts
    )
    names = {d.department: d.name for d in report.departments}
    objection_rows = "".join(
        f'<tr><td class="n">{o.seq}</td><td>{_e(names.get(o.department, o.department))}</td>'
        f"<td><code>{_e(o.dataset)}</code> {_e(o.record)}</td><td>{_e(format_ts(o.filed))}</td>"
        f"<td>{_e(format_ts(o.due))}</td>"
        f'<td class="{"high" if o.status == OVERDUE else "medium" if o.status == RESOLVED_LATE else ""}">'
        f"{_e(STATUS_LABELS[o.status])}</td>"
        f"<td>{'' if o.resolved is None else _e(format_ts(o.resolved))}"
        f"{'' if o.resolved_seq is None else f' (seq {o.resolved_seq}, {_e(o.outcome)})'}</td></tr>"
        for o in report.objections
    )
    rule_rows = "".join(
        f"<tr><td><code>{_e(r.code)}</code></td><td>{_e(r.title)}</td>"
        f'<td class="{_e(r.severity)}">{_e(SEVERITY_LABELS.get(r.severity, r.severity))}</td></tr>'
        for r in report.rules
    )
    scope = "全部部门 (all departments)" if report.department is None else f"部门 (department) {report.department}"
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>数链审计报告 (Shulian audit report) {period}</title>
<style>{_STYLE}</style></head>
<body>
<h1>数链审计报告 (Shulian audit report)</h1>
<p>期间 (period): {period} · {_e(scope)} ·
异议办理时限 (objection deadline): {report.objection_deadline.days} 天 (days)</p>
<h2>各部门统计 (Figures per department)</h2>
<table><tr><th>部门 (Department)</th>{head}</tr>
{"".join(rows)}
</table>
<h2>请求结果 (Requests per department)</h2>
{_chart(report)}
<h2>拒绝原因 (Denials by reason)</h2>
<table><tr><th>原因 (Reason)</th><th>次数 (Count)</th></tr>{reason_rows}</table>
<h2>数据异议办理 (Objections and their deadlines)</h2>
<table><tr><th>序号 (Seq)</th><th>责任部门 (Department)</th><th>记录 (Record)</th><th>提出时间 (Filed)</th>
<th>办理时限 (Due)</th><th>状态 (Status)</th><th>办结 (Resolved)</th></tr>{objection_rows}</table>
<h2>告警 (Alerts): {len(report.alerts)}</h2>
<table><tr><th>级别 (Severity)</th><th>规则 (Rule)</th><th>时间 (Time)</th><th>序号 (Seqs)</th>
<th>说明 (Message)</th></tr>{alert_rows}</table>
<h2>审计规则 (Rules)</h2>
<table><tr><th>代码 (Code)</th><th>规则 (Rule)</th><th>级别 (Severity)</th></tr>{rule_rows}</table>
</body>
</html>
"""


RENDERERS = {"json": render_json, "csv": render_csv, "html": render_html}
