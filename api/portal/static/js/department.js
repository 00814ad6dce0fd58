// 部门工作台: a department's catalogue, records, agreements, requests (released data opened and
// verified in the page), decisions with reasons, and objections to answer.

import { b64decode, b64encode, fromUtf8, sha256 } from "./bytes.js";
import { allPages, catalogue, checked, directory } from "./common.js";
import { serverNow } from "./api.js";
import { session } from "./session.js";
import { openSealed } from "./sealed.js";
import { verifyRelease } from "./release.js";
import { releasesOf, saveRelease } from "./store.js";
import {
  badge, byId, empty, facts, fieldList, fieldName, fill, h, reason, show, showError, status, t, when, day, short,
} from "./ui.js";
import { VerifyError, verifier } from "./verify.js";
import { checkedWitnessed, showPolicy, verifiedText, witnessPolicy } from "./witness.js";

const ctx = {
  api: null, me: null, identity: null, dir: null, datasets: null, received: [], records: [], deadlineDays: 15,
  policy: { keys: [], quorum: 0, total: 0, bad: 0, changed: false }, // the witness policy, read in main()
};
const datasetTitle = (id) => ctx.datasets.get(id)?.title || id;
const mine = (keyId) => keyId && ctx.dir.principal(keyId) === ctx.me.principal;

// -- catalogue and records ------------------------------------------------------------------------

function renderCatalogue(records) {
  const owned = [...ctx.datasets.values()].filter((d) => mine(d.owner));
  if (!owned.length) return fill("catalogue", empty(t("dept.catalogue.none")));
  const counts = new Map();
  for (const r of records) counts.set(r.dataset, (counts.get(r.dataset) || 0) + 1);
  fill("catalogue", owned.map((d) => h("article", { class: "dataset" },
    h("h3", {}, `${d.title} `, h("span", { class: "mono small muted" }, d.dataset)),
    h("p", { class: "small" }, t("dept.catalogue.line", {
      level: d.level, personal: d.personal ? t("common.yes") : t("common.no"), freq: d.update_frequency,
      records: counts.get(d.dataset) || 0, seq: d.seq,
    })),
    h("ul", { class: "tags" }, d.fields.map((f) => h("li", { class: `tag sens-${f.sensitivity}` }, `${fieldName(f.name)} · ${t(`sensitivity.${f.sensitivity}`)}`))))));
}

function renderRecords(records) {
  if (!records.length) return fill("records", empty(t("dept.records.none")));
  const latest = [...records].sort((a, b) => b.seq - a.seq).slice(0, 12);
  fill("records",
    h("p", {}, t("dept.records.count", { n: records.length, shown: latest.length })),
    h("div", { class: "table-wrap" }, h("table", { class: "table" },
      h("thead", {}, h("tr", {}, [t("dept.records.dataset"), t("dept.records.record"), t("dept.records.version"), t("dept.records.subject"), t("dept.records.seq")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, latest.map((r) => h("tr", {},
        h("td", {}, datasetTitle(r.dataset)), h("td", { class: "mono" }, r.record), h("td", {}, String(r.version)),
        h("td", { class: "mono small" }, short(r.subject, 14)), h("td", {}, String(r.seq))))))));
}

// -- agreements ---------------------------------------------------------------------------------

function agreementLine(b) {
  const scope = Object.entries(b.scope).map(([ds, fields]) =>
    t("common.labelled", { a: datasetTitle(ds), b: Object.entries(fields).map(([f, m]) => t("common.paren", { a: fieldName(f), b: t(`mode.${m}`) })).join(t("common.list_sep")) }));
  return scope.join(t("common.semi"));
}

async function loadAgreements() {
  const items = await ctx.api.get("/v1/agreements");
  const results = await Promise.all(items.map(async (item) => ({ item, check: await checked(item.entry) })));
  const given = [];
  const received = [];
  for (const r of results.sort((a, b) => b.check.entry.seq - a.check.entry.seq)) {
    const b = r.check.entry.body;
    const mark = badge();
    if (r.check.ok) mark.verified(t("verify.ok_seq", { seq: r.check.entry.seq })); else mark.failed(r.check.error);
    const other = mine(b.owner) ? b.requester : b.owner;
    const li = h("li", { class: "agreement", "data-seq": r.check.entry.seq, "data-status": r.item.status },
      h("div", { class: "row" }, h("strong", {}, ctx.dir.name(other)), h("span", { class: `pill pill-${r.item.status}` }, t(`status.${r.item.status}`)), mark),
      h("p", { class: "small" }, agreementLine(b)),
      h("p", { class: "small" }, t("dept.agreements.line", {
        purposes: b.purposes.join(t("common.list_sep")), basis: b.legal_basis,
        consent: b.consent_required ? t("dept.agreements.consent_required") : t("dept.agreements.no_consent"),
        from: day(b.valid_from), until: day(b.valid_until),
      })),
      b.commitment ? h("p", { class: "small muted" }, t("common.labelled", { a: t("dept.agreements.commitment"), b: b.commitment.statement })) : null);
    (mine(b.owner) ? given : received).push(li);
    if (mine(b.requester) && r.item.status === "live" && r.check.ok) ctx.received.push({ seq: r.check.entry.seq, body: b });
  }
  fill("agreements-given", given.length ? h("ul", { class: "plain-list" }, given) : empty(t("dept.agreements.none_given")));
  fill("agreements-received", received.length ? h("ul", { class: "plain-list" }, received) : empty(t("dept.agreements.none_received")));
  renderRequestForm();
}

// -- requesting data ----------------------------------------------------------------------------

function renderRequestForm() {
  const select = byId("request-agreement");
  const options = [];
  for (const a of ctx.received) {
    for (const ds of Object.keys(a.body.scope)) {
      options.push({ agreement: a.seq, dataset: ds, scope: a.body.scope[ds], purposes: a.body.purposes, owner: a.body.owner });
    }
  }
  ctx.requestOptions = options;
  if (!options.length) {
    select.replaceChildren(h("option", { value: "" }, t("dept.request.no_agreement")));
    byId("request-form").querySelector("button").disabled = true;
    return;
  }
  select.replaceChildren(...options.map((o, i) => h("option", { value: String(i) },
    t("dept.request.option", { owner: ctx.dir.name(o.owner), dataset: datasetTitle(o.dataset), seq: o.agreement }))));
  select.onchange = requestFields;
  requestFields();
}

function requestFields() {
  const o = ctx.requestOptions[Number(byId("request-agreement").value)];
  const box = byId("request-fields");
  const order = (ctx.datasets.get(o.dataset)?.fields || []).map((f) => f.name);
  const scope = Object.entries(o.scope).sort(([a], [b]) => order.indexOf(a) - order.indexOf(b));
  box.replaceChildren(h("legend", {}, t("dept.request.fields")), ...scope.map(([f, m], i) => h("div", { class: "check" },
    h("input", { type: "checkbox", id: `req-f${i}`, value: f, checked: i < 2 }),
    h("label", { for: `req-f${i}` }, t("common.paren", { a: fieldName(f), b: t(`mode.${m}`) })))));
  byId("request-purpose").replaceChildren(...o.purposes.map((p) => h("option", { value: p }, p)));
  byId("request-record").placeholder = t("dept.request.record_hint");
}

/** Open a sealed release in the page and check it against the ledger; returns the opened values. */
async function openAndVerify(stored) {
  const sealed = b64decode(stored.sealed, "sealed release");
  const delivered = b64encode(await sha256(sealed));
  const logged = await checked(await ctx.api.get(`/v1/entries/${stored.release}`));
  if (!logged.ok) throw logged.error;
  if (logged.entry.type !== "usage.release" || logged.entry.body.delivered !== delivered) {
    throw new VerifyError("the ledger's usage.release names other bytes than the ones delivered");
  }
  if (!ctx.identity.x25519) throw new VerifyError("this key has no X25519 key to open releases with", "no_x25519");
  const plain = await openSealed(sealed, ctx.identity.x25519, ctx.identity.x25519Public);
  const payload = JSON.parse(fromUtf8(plain));
  if (payload.decision !== logged.entry.body.decision || payload.record_seq !== logged.entry.body.record_seq) {
    throw new VerifyError("the release answers another decision or record than the ledger says");
  }
  const commit = await checked(await ctx.api.get(`/v1/entries/${payload.record_seq}`));
  if (!commit.ok) throw commit.error;
  if (commit.entry.type !== "record.commit" || commit.entry.body.record !== payload.record || commit.entry.body.dataset !== payload.dataset) {
    throw new VerifyError("the release points at another record");
  }
  const values = await verifyRelease(payload, b64decode(commit.entry.body.commitment, "record commitment"));
  return { payload, values, commitSeq: commit.entry.seq };
}

function valuesTable(opened) {
  return h("div", { class: "table-wrap" }, h("table", { class: "table values" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("dept.release.field")), h("th", { scope: "col" }, t("dept.release.value")), h("th", { scope: "col" }, t("dept.release.form")))),
    h("tbody", {}, Object.entries(opened.values).map(([f, v]) => h("tr", { "data-field": f },
      h("td", {}, fieldName(f)), h("td", { class: "value" }, String(v.value)), h("td", {}, t(`form.${v.form}`)))))));
}

async function submitRequest(ev) {
  ev.preventDefault();
  const o = ctx.requestOptions?.[Number(byId("request-agreement").value)];
  const fields = [...byId("request-fields").querySelectorAll("input:checked")].map((c) => c.value);
  const record = byId("request-record").value.trim();
  if (!o || !fields.length || !record) return status(t("dept.request.incomplete"), "error");
  const button = ev.submitter || byId("request-form").querySelector("button");
  button.disabled = true;
  const out = byId("request-result");
  fill(out, h("p", { class: "loading" }, t("dept.request.sending")));
  try {
    let answer;
    try {
      answer = await ctx.api.post("/v1/access/requests", { dataset: o.dataset, record, fields, purpose: byId("request-purpose").value });
    } catch (err) {
      if (err.status === 403 && err.problem?.decision !== undefined) {
        const d = await checked(await ctx.api.get(`/v1/entries/${err.problem.decision}`));
        const mark = badge();
        if (d.ok) mark.verified(t("verify.ok_seq", { seq: d.entry.seq })); else mark.failed(d.error);
        fill(out, h("div", { class: "alert alert-deny", "data-outcome": "deny" },
          h("p", {}, h("strong", {}, t("dept.request.denied")), " ", mark),
          h("p", {}, (d.entry.body.reasons || err.problem.reasons || []).map(reason).join(t("common.list_sep")))));
        await loadDecisions();
        return;
      }
      throw err;
    }
    await verifier.appended(answer.decision.appended);
    await verifier.appended(answer.release.appended);
    const stored = {
      id: `${ctx.identity.keyId}:${answer.release.seq}`,
      owner: ctx.identity.keyId,
      decision: answer.decision.seq,
      release: answer.release.seq,
      dataset: o.dataset,
      record,
      purpose: byId("request-purpose").value,
      sealed: answer.release.sealed,
      at: new Date().toISOString(),
    };
    if (answer.release.delivered !== b64encode(await sha256(b64decode(stored.sealed, "sealed")))) {
      throw new VerifyError("the sealed release does not match its logged hash");
    }
    await saveRelease(stored);
    const opened = await openAndVerify(stored);
    const mark = badge();
    mark.verified(t("dept.release.verified"));
    fill(out, h("div", { class: "alert alert-allow", "data-outcome": "allow" },
      h("p", {}, h("strong", {}, t("dept.request.allowed", { seq: answer.decision.seq })), " ", mark),
      valuesTable(opened)));
    await Promise.all([loadReleases(), loadDecisions()]);
  } catch (err) {
    showError(err, out);
  } finally {
    button.disabled = false;
  }
}

async function loadReleases() {
  const stored = (await releasesOf(ctx.identity.keyId)).sort((a, b) => b.release - a.release);
  if (!stored.length) return fill("releases", empty(t("dept.releases.none")));
  fill("releases", h("ul", { class: "plain-list" }, stored.map((s) => {
    const slot = h("div", {});
    const mark = badge();
    mark.textContent = t("dept.releases.sealed");
    const openBtn = h("button", { type: "button", class: "secondary", onclick: async () => {
      openBtn.disabled = true;
      try {
        const opened = await openAndVerify(s);
        mark.verified(t("dept.release.verified"));
        fill(slot, valuesTable(opened));
      } catch (err) {
        mark.failed(err);
        showError(err, slot);
      } finally {
        openBtn.disabled = false;
      }
    } }, t("dept.releases.open"));
    return h("li", { class: "release", "data-seq": s.release },
      h("div", { class: "row" }, h("strong", {}, `${datasetTitle(s.dataset)} · ${s.record}`), mark),
      h("p", { class: "small muted" }, t("dept.releases.line", { purpose: s.purpose, at: when(s.at), seq: s.release, decision: s.decision })),
      h("div", { class: "actions" }, openBtn), slot);
  })));
}

// -- decisions and objections -------------------------------------------------------------------

async function loadDecisions() {
  // verified, as on the citizen's page: the proof AND k of n witnesses on the checkpoint it is against
  const results = await checkedWitnessed(await allPages(ctx.api, "/v1/usage"), checked, ctx.policy);
  const released = new Map();
  for (const r of results) if (r.entry.type === "usage.release") released.set(r.entry.body.decision, r);
  const decisions = results.filter((r) => r.entry.type === "access.decision").sort((a, b) => b.entry.seq - a.entry.seq);
  if (!decisions.length) return fill("decisions", h("li", { class: "empty" }, t("dept.decisions.none")));
  fill("decisions", decisions.slice(0, 100).map((d) => {
    const b = d.entry.body;
    const rel = released.get(d.entry.seq);
    const mark = badge();
    if (d.ok && (!rel || rel.ok)) mark.verified(verifiedText(d)); else mark.failed(d.ok ? rel.error : d.error);
    const allowed = b.outcome === "allow";
    return h("li", { class: `event event-${allowed ? "allow" : "deny"}`, "data-seq": d.entry.seq, "data-outcome": b.outcome },
      h("div", { class: "row" }, h("time", { datetime: d.entry.ts }, when(d.entry.ts)), mark),
      h("p", { class: "event-title" }, `${datasetTitle(b.dataset)} · ${b.record}`),
      h("dl", { class: "facts compact" }, facts([
        [t("citizen.timeline.purpose"), b.purpose],
        [t("citizen.timeline.fields"), fieldList(b.fields || [])],
        [t("citizen.timeline.outcome"), allowed
          ? (rel ? t("dept.decisions.released", { seq: rel.entry.seq }) : t("citizen.timeline.allowed"))
          : t("citizen.timeline.denied", { reasons: (b.reasons || []).map(reason).join(t("common.list_sep")) })],
        ...(allowed ? [[t("citizen.timeline.basis"), (b.basis || []).map((s) => `#${s}`).join(t("common.list_sep"))]] : []),
      ])));
  }));
}

const DAY_MS = 24 * 3600 * 1000;

/** When an objection filed at ledger time `ts` is due (the deadline the reports track). */
function dueOf(ts) {
  const filed = new Date(String(ts).replace(/(\.\d{3})\d*Z$/, "$1Z"));
  return new Date(filed.getTime() + ctx.deadlineDays * DAY_MS);
}

function dueLine(item, due) {
  if (item.status !== "open") return t("dept.objections.was_due", { due: day(due.toISOString()) });
  const left = due.getTime() - serverNow().getTime();
  if (left < 0) return t("dept.objections.overdue", { due: day(due.toISOString()), days: Math.max(1, Math.floor(-left / DAY_MS)) });
  return t("dept.objections.due", { due: day(due.toISOString()), days: Math.ceil(left / DAY_MS) });
}

/** The answer form of an open objection: reject with reasons, or name the corrected record version. */
function resolveForm(seq, b) {
  const prefix = `resolve-${seq}`;
  const latest = ctx.records.find((r) => r.dataset === b.dataset && r.record === b.record);
  const corrected = latest && latest.seq > seq ? latest : null;
  const outcome = h("select", { id: `${prefix}-outcome`, name: "outcome" },
    h("option", { value: "rejected" }, t("dept.objections.reject")),
    h("option", { value: "corrected", disabled: !corrected }, corrected
      ? t("dept.objections.correct", { version: corrected.version, seq: corrected.seq })
      : t("dept.objections.correct_first")));
  const reasons = h("textarea", { id: `${prefix}-reasons`, name: "reasons", rows: 2, maxlength: 1000, required: true });
  const form = h("form", { class: "resolve-form form-grid", "data-objection": seq },
    h("label", { for: `${prefix}-outcome` }, t("dept.objections.outcome")), outcome,
    h("label", { for: `${prefix}-reasons` }, t("dept.objections.reasons")), reasons,
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("dept.objections.submit"))));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const why = reasons.value.split("\n").map((x) => x.trim()).filter(Boolean);
    if (!why.length) return status(t("dept.objections.incomplete"), "error");
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      status(t("common.signing"));
      const body = {
        objection: seq, outcome: outcome.value, reasons: why,
        correction: outcome.value === "corrected" ? corrected.seq : null,
      };
      const leaf = await ctx.api.envelope("objection.resolve", body);
      const done = await verifier.appended(await ctx.api.post("/v1/objections", leaf), leaf);
      status(t("dept.objections.done", { seq, at: done.seq }), "success");
      await loadObjections();
    } catch (err) {
      showError(err);
      button.disabled = false;
    }
  });
  return form;
}

async function loadObjections() {
  const items = await ctx.api.get("/v1/objections");
  if (!items.length) return fill("dept-objections", empty(t("dept.objections.none")));
  const rows = await Promise.all(items.map(async (item) => {
    const c = await checked(item.entry);
    const b = c.entry.body;
    const mark = badge();
    if (c.ok) mark.verified(); else mark.failed(c.error);
    const due = dueOf(c.entry.ts);
    const overdue = item.status === "open" && due < serverNow();
    const li = h("li", { class: `objection${overdue ? " overdue" : ""}`, "data-seq": c.entry.seq, "data-status": item.status, "data-overdue": String(overdue) },
      h("div", { class: "row" }, h("span", { class: `pill pill-${item.status}` }, t(`objection.${item.status}`)), mark),
      h("p", {}, t("citizen.objection.line", { dataset: datasetTitle(b.dataset), record: b.record, fields: fieldList(b.fields || []) })),
      h("p", { class: "small" }, t("common.labelled", { a: t("citizen.objection.reason"), b: b.reason })),
      h("p", { class: "small muted" }, t("citizen.objection.filed", { at: when(c.entry.ts), seq: c.entry.seq }),
        " · ", h("span", { class: "due" }, dueLine(item, due))),
      item.status === "open"
        ? resolveForm(c.entry.seq, b)
        : h("p", { class: "small" }, t("dept.objections.answered", { seq: item.ended_by })));
    return { li, open: item.status === "open", due, overdue };
  }));
  // the most urgent first: open ones by due date, then the answered ones, newest first
  rows.sort((a, b) => (b.open - a.open) || (a.open ? a.due - b.due : Number(b.li.dataset.seq) - Number(a.li.dataset.seq)));
  const open = rows.filter((r) => r.open).length;
  const overdue = rows.filter((r) => r.overdue).length;
  fill("dept-objections",
    h("p", { class: `objection-summary${overdue ? " overdue" : ""}`, id: "objection-summary" },
      t("dept.objections.summary", { open, overdue, days: ctx.deadlineDays })),
    h("ul", { class: "plain-list" }, rows.slice(0, 100).map((r) => r.li)));
}

async function guarded(id, load) {
  try {
    await load();
  } catch (err) {
    showError(err, id);
  }
}

async function main() {
  const { api, me, identity } = await session({ roles: ["department"] });
  if (me.role !== "department") return;
  Object.assign(ctx, { api, me, identity });
  fill("me-facts", facts([
    [t("me.name"), me.name],
    [t("me.keyid"), h("span", { class: "mono" }, me.key_id)],
    [t("dept.me.x25519"), me.has_x25519 && identity.x25519 ? t("common.yes") : t("dept.me.no_x25519")],
    [t("me.source"), t(`source.${identity.source || "file"}`)],
  ]));
  show("app", true);
  ctx.policy = await witnessPolicy();
  showPolicy(ctx.policy);
  try {
    [ctx.dir, ctx.datasets] = await Promise.all([directory(api), catalogue(api)]);
  } catch (err) {
    return showError(err);
  }
  byId("request-form").addEventListener("submit", submitRequest);
  await Promise.all([
    guarded("catalogue", async () => {
      const records = await api.get("/v1/records", { limit: 1000 });
      ctx.records = records;
      renderCatalogue(records);
      renderRecords(records);
    }),
    guarded("agreements-given", loadAgreements),
    guarded("releases", loadReleases),
    guarded("decisions", loadDecisions),
  ]);
  ctx.deadlineDays = Number(byId("dobj").dataset.deadlineDays) || 15;
  await guarded("dept-objections", loadObjections); // after the records: the answer form offers the corrected version
  byId("decisions-refresh").addEventListener("click", () => guarded("decisions", loadDecisions));
  document.body.dataset.ready = "true";
}

main().catch((err) => showError(err));
