// 我的数据: a citizen's records, consents (grant, narrow, revoke), who used their data, objections.

import { allPages, catalogue, checked, directory } from "./common.js";
import { ledgerTime, serverNow } from "./api.js";
import { session } from "./session.js";
import {
  badge, byId, empty, facts, fieldList, fieldName, fill, h, reason, show, showError, status, t, when, day,
} from "./ui.js";
import { verifier } from "./verify.js";
import { checkedWitnessed, showPolicy, verifiedText, witnessPolicy } from "./witness.js";

const ctx = { api: null, me: null, dir: null, datasets: null, records: [], grants: [], policy: null };

const MONTH_MS = 30 * 24 * 3600 * 1000;
const DURATIONS = [1, 3, 6, 12];
const USES = [null, 1, 3, 10];

const datasetTitle = (id) => ctx.datasets.get(id)?.title || id;

// -- records ------------------------------------------------------------------------------------

function renderRecords() {
  if (!ctx.records.length) return fill("records", empty(t("citizen.records.none")));
  const rows = ctx.records.map((r) => {
    const ds = ctx.datasets.get(r.dataset);
    return h("li", { class: "record" },
      h("strong", {}, datasetTitle(r.dataset)),
      h("span", { class: "muted" }, ` · ${ctx.dir.name(ds?.owner)}`),
      h("div", { class: "small" }, t("citizen.records.line", {
        record: r.record, version: r.version, seq: r.seq, fields: fieldList((ds?.fields || []).map((f) => f.name)),
      })));
  });
  fill("records", h("ul", { class: "plain-list" }, rows));
  const select = byId("objection-record");
  select.replaceChildren(...ctx.records.map((r, i) => h("option", { value: String(i) }, `${datasetTitle(r.dataset)} · ${r.record}`)));
  select.onchange = objectionFields;
  objectionFields();
}

// -- consent options and grants ----------------------------------------------------------------

function durationSelect(id, maxMonths = null) {
  const keep = maxMonths === null ? [] : [h("option", { value: "keep", selected: true }, t("citizen.narrow.keep_until"))];
  const choices = DURATIONS.filter((m) => maxMonths === null || m < maxMonths);
  return h("select", { id }, keep,
    choices.map((m) => h("option", { value: String(m), selected: maxMonths === null && m === 6 }, t("citizen.grant.months", { n: m }))));
}

function usesSelect(id, max = null) {
  const allowed = USES.filter((u) => max === null || (u !== null && u <= max));
  if (max !== null && !allowed.includes(max)) allowed.push(max);
  return h("select", { id }, allowed.map((u) => h("option", { value: u === null ? "" : String(u) }, u === null ? t("citizen.grant.unlimited") : t("citizen.grant.times", { n: u }))));
}

function fieldChecks(prefix, fields, checked = null) {
  return fields.map((f, i) => {
    const id = `${prefix}-f${i}`;
    const label = f.mode ? t("common.paren", { a: fieldName(f.name), b: t(`mode.${f.mode}`) }) : fieldName(f.name);
    return h("div", { class: "check" },
      h("input", { type: "checkbox", id, value: f.name, checked: checked ? checked.includes(f.name) : true }),
      h("label", { for: id }, label));
  });
}

const chosen = (form) => [...form.querySelectorAll('input[type="checkbox"]:checked')].map((c) => c.value);

async function appendEntry(path, type, body) {
  const leaf = await ctx.api.envelope(type, body);
  const out = await ctx.api.post(path, leaf);
  return verifier.appended(out, leaf);
}

async function grant({ grantee, dataset, fields, purpose, months, uses, until = null }) {
  const start = serverNow();
  const end = until || new Date(start.getTime() + months * MONTH_MS);
  const body = {
    subject: ctx.me.subject,
    grantee,
    scope: { [dataset]: fields },
    purpose,
    valid_from: ledgerTime(start),
    valid_until: ledgerTime(end),
    max_uses: uses,
  };
  return appendEntry("/v1/consents", "consent.grant", body);
}

function renderOptions(options) {
  if (!options.length) return fill("options", empty(t("citizen.options.none")));
  const cards = options.map((o, n) => {
    const prefix = `opt${n}`;
    const purposeSelect = h("select", { id: `${prefix}-purpose` }, o.purposes.map((p) => h("option", { value: p }, p)));
    const form = h("form", { class: "option-form", "data-agreement": o.agreement, "data-dataset": o.dataset },
      h("fieldset", { class: "checks" }, h("legend", {}, t("citizen.options.fields")), fieldChecks(prefix, o.fields)),
      h("div", { class: "form-grid" },
        h("label", { for: `${prefix}-purpose` }, t("citizen.options.purpose")), purposeSelect,
        h("label", { for: `${prefix}-months` }, t("citizen.grant.duration")), durationSelect(`${prefix}-months`),
        h("label", { for: `${prefix}-uses` }, t("citizen.grant.uses")), usesSelect(`${prefix}-uses`)),
      h("div", { class: "actions" }, h("button", { type: "submit" }, t("citizen.options.grant"))));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const fields = chosen(form);
      if (!fields.length) return status(t("citizen.grant.pick_fields"), "error");
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        status(t("common.signing"));
        const done = await grant({
          grantee: o.grantee, dataset: o.dataset, fields, purpose: purposeSelect.value,
          months: Number(byId(`${prefix}-months`).value), uses: byId(`${prefix}-uses`).value ? Number(byId(`${prefix}-uses`).value) : null,
        });
        status(t("citizen.grant.done", { seq: done.seq, size: done.checkpoint.size }), "success");
        await loadConsents();
      } catch (err) {
        showError(err);
      } finally {
        button.disabled = false;
      }
    });
    return h("article", { class: "option" },
      h("h3", {}, t("citizen.options.heading", { who: o.requester_name, dataset: o.dataset_title })),
      h("p", {}, t("citizen.options.line", { purposes: o.purposes.join(t("common.list_sep")), basis: o.legal_basis, until: day(o.valid_until), owner: o.owner_name })),
      form);
  });
  fill("options", cards);
}

function grantSentence(body) {
  const [[dataset, fields]] = Object.entries(body.scope);
  return t("citizen.grant.sentence", {
    who: ctx.dir.name(body.grantee), purpose: body.purpose, dataset: datasetTitle(dataset), fields: fieldList(fields),
    until: day(body.valid_until),
  });
}

function narrowForm(item, body) {
  const [[dataset, fields]] = Object.entries(body.scope);
  const prefix = `narrow${item.entry.seq}`;
  const end = new Date(String(body.valid_until).replace(/(\.\d{3})\d*Z$/, "$1Z"));
  const monthsLeft = Math.max(1, Math.floor((end.getTime() - serverNow().getTime()) / MONTH_MS));
  const form = h("form", { class: "narrow-form" },
    h("fieldset", { class: "checks" }, h("legend", {}, t("citizen.narrow.fields")), fieldChecks(prefix, fields.map((f) => ({ name: f })))),
    h("div", { class: "form-grid" },
      h("label", { for: `${prefix}-months` }, t("citizen.grant.duration")), durationSelect(`${prefix}-months`, monthsLeft),
      h("label", { for: `${prefix}-uses` }, t("citizen.grant.uses")), usesSelect(`${prefix}-uses`, body.max_uses === null ? null : item.uses_left ?? body.max_uses)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("citizen.narrow.submit"))));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const picked = chosen(form);
    if (!picked.length) return status(t("citizen.grant.pick_fields"), "error");
    form.querySelector("button").disabled = true;
    try {
      status(t("common.signing"));
      const uses = byId(`${prefix}-uses`).value;
      const months = byId(`${prefix}-months`).value;
      const done = await grant({
        grantee: body.grantee, dataset, fields: picked, purpose: body.purpose,
        months: Number(months), until: months === "keep" ? end : null, uses: uses ? Number(uses) : null,
      });
      await appendEntry("/v1/consents", "consent.revoke", { grant: item.entry.seq, reason: t("citizen.narrow.reason", { seq: done.seq }) });
      status(t("citizen.narrow.done", { old: item.entry.seq, seq: done.seq }), "success");
      await loadConsents();
    } catch (err) {
      showError(err);
      form.querySelector("button").disabled = false;
    }
  });
  return form;
}

function revokeControls(item) {
  const reasonId = `revoke-reason-${item.entry.seq}`;
  const confirmBox = h("div", { class: "confirm", hidden: true },
    h("p", {}, t("citizen.revoke.confirm")),
    h("label", { for: reasonId }, t("citizen.revoke.reason")),
    h("select", { id: reasonId }, ["no_longer", "too_much", "other"].map((r) => h("option", { value: t(`citizen.revoke.reasons.${r}`) }, t(`citizen.revoke.reasons.${r}`)))),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "danger", "data-action": "confirm-revoke", onclick: async (ev) => {
        const button = ev.currentTarget;
        button.disabled = true;
        try {
          status(t("common.signing"));
          const done = await appendEntry("/v1/consents", "consent.revoke", { grant: item.entry.seq, reason: byId(reasonId).value });
          status(t("citizen.revoke.done", { seq: item.entry.seq, at: done.seq }), "success");
          await loadConsents();
        } catch (err) {
          showError(err);
          button.disabled = false;
        }
      } }, t("citizen.revoke.yes")),
      h("button", { type: "button", class: "secondary", onclick: () => (confirmBox.hidden = true) }, t("common.cancel"))));
  return confirmBox;
}

async function loadConsents() {
  const items = await ctx.api.get("/v1/consents");
  const results = await Promise.all(items.map(async (item) => ({ item, check: await checked(item.entry) })));
  ctx.grants = results;
  if (!results.length) return fill("consents", empty(t("citizen.consents.none")));
  results.sort((a, b) => b.item.entry.seq - a.item.entry.seq);
  fill("consents", h("ul", { class: "plain-list grants" }, results.map(({ item, check }) => {
    const body = check.entry.body;
    const mark = badge();
    if (check.ok) mark.verified(t("verify.ok_seq", { seq: check.entry.seq })); else mark.failed(check.error);
    const live = item.status === "live";
    const uses = body.max_uses === null
      ? t("citizen.grant.used_unlimited", { n: item.uses ?? 0 })
      : t("citizen.grant.used", { n: item.uses ?? 0, max: body.max_uses });
    const narrowBox = h("div", { hidden: true });
    const revokeBox = live ? revokeControls(item) : null;
    const actions = live
      ? h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", "data-action": "narrow", onclick: () => {
          if (!narrowBox.firstChild) narrowBox.append(narrowForm(item, body));
          narrowBox.hidden = !narrowBox.hidden;
        } }, t("citizen.narrow.open")),
        h("button", { type: "button", class: "danger-outline", "data-action": "revoke", onclick: () => (revokeBox.hidden = false) }, t("citizen.revoke.open")))
      : null;
    return h("li", { class: "grant", "data-seq": item.entry.seq, "data-status": item.status },
      h("div", { class: "row" }, h("span", { class: `pill pill-${item.status}` }, t(`status.${item.status}`)), mark),
      h("p", {}, grantSentence(body)),
      h("p", { class: "small muted" }, `${uses} · ${t("citizen.grant.given", { at: when(check.entry.ts), seq: check.entry.seq })}`,
        item.ended_by !== null && item.ended_by !== undefined ? ` · ${t("citizen.grant.ended", { seq: item.ended_by })}` : ""),
      actions, narrowBox, revokeBox);
  })));
}

// -- who used my data ---------------------------------------------------------------------------

async function loadTimeline() {
  const list = byId("timeline");
  list.setAttribute("aria-busy", "true");
  const raw = await allPages(ctx.api, "/v1/usage");
  // verified = the entry's proof against a log-signed checkpoint AND k of n witnesses cosigned that checkpoint
  const results = await checkedWitnessed(raw, checked, ctx.policy);
  const releases = new Map();
  const decisions = [];
  for (const r of results) {
    if (r.entry.type === "usage.release") releases.set(r.entry.body.decision, r);
    else if (r.entry.type === "access.decision") decisions.push(r);
  }
  decisions.sort((a, b) => b.entry.seq - a.entry.seq);
  if (!decisions.length) return fill(list, h("li", { class: "empty" }, t("citizen.timeline.none")));
  const grantOf = new Map(ctx.grants.map((g) => [g.item.entry.seq, g]));
  fill(list, decisions.map((d) => {
    const b = d.entry.body;
    const release = releases.get(d.entry.seq);
    const ok = d.ok && (!release || release.ok);
    const error = ok ? null : (d.ok ? release.error : d.error);
    const mark = badge();
    if (ok) {
      mark.verified(verifiedText(d));
    } else mark.failed(error);
    const allowed = b.outcome === "allow";
    const outcome = allowed
      ? (release ? t("citizen.timeline.released", { seq: release.entry.seq }) : t("citizen.timeline.allowed"))
      : t("citizen.timeline.denied", { reasons: (b.reasons || []).map(reason).join(t("common.list_sep")) });
    const basis = [];
    if (allowed && b.basis?.length) {
      basis.push(t("citizen.timeline.agreement", { seq: b.basis[0] }));
      if (b.basis.length > 1) {
        const g = grantOf.get(b.basis[1]);
        basis.push(g ? t("citizen.timeline.consent_yours", { seq: b.basis[1] }) : t("citizen.timeline.consent", { seq: b.basis[1] }));
      } else basis.push(t("citizen.timeline.no_consent_needed"));
    }
    return h("li", { class: `event event-${allowed ? "allow" : "deny"}`, "data-seq": d.entry.seq, "data-outcome": b.outcome },
      h("div", { class: "row" }, h("time", { datetime: d.entry.ts }, when(d.entry.ts)), mark),
      h("p", { class: "event-title" }, t("citizen.timeline.who", { who: ctx.dir.name(b.requester), dataset: datasetTitle(b.dataset) })),
      h("dl", { class: "facts compact" }, facts([
        [t("citizen.timeline.purpose"), b.purpose],
        [t("citizen.timeline.fields"), fieldList(b.fields || [])],
        [t("citizen.timeline.outcome"), outcome],
        ...(basis.length ? [[t("citizen.timeline.basis"), basis.join(t("common.semi"))]] : []),
        [t("citizen.timeline.record"), `${b.record}`],
      ])),
      error?.code === "not_witnessed" ? h("p", { class: "alert alert-error small not-witnessed" }, error.message) : null);
  }));
}

// -- objections -----------------------------------------------------------------------------------

function objectionFields() {
  const r = ctx.records[Number(byId("objection-record").value)];
  const fields = ctx.datasets.get(r?.dataset)?.fields || [];
  const box = byId("objection-fields");
  box.replaceChildren(h("legend", {}, t("citizen.objection.fields")), ...fieldChecks("obj", fields.map((f) => ({ name: f.name })), []));
}

async function loadObjections() {
  const [items, resolutions] = await Promise.all([
    ctx.api.get("/v1/objections"),
    ctx.api.get("/portal/api/objection-resolutions"),
  ]);
  const resolved = new Map();
  for (const r of await Promise.all(resolutions.map(checked))) resolved.set(r.entry.body.objection, r);
  if (!items.length) return fill("objections", empty(t("citizen.objection.none")));
  const rows = await Promise.all(items.map(async (item) => {
    const c = await checked(item.entry);
    const b = c.entry.body;
    const res = resolved.get(c.entry.seq);
    const mark = badge();
    if (c.ok && (!res || res.ok)) mark.verified(); else mark.failed(c.error || res?.error);
    return h("li", { class: "objection", "data-seq": c.entry.seq, "data-status": item.status },
      h("div", { class: "row" }, h("span", { class: `pill pill-${item.status}` }, t(`objection.${item.status}`)), mark),
      h("p", {}, t("citizen.objection.line", { dataset: datasetTitle(b.dataset), record: b.record, fields: fieldList(b.fields || []) })),
      h("p", { class: "small" }, t("common.labelled", { a: t("citizen.objection.reason"), b: b.reason })),
      res ? h("p", { class: "small" }, t("citizen.objection.answer", { reasons: (res.entry.body.reasons || []).join(t("common.semi")), seq: res.entry.seq })) : null,
      h("p", { class: "small muted" }, t("citizen.objection.filed", { at: when(c.entry.ts), seq: c.entry.seq })));
  }));
  rows.sort((a, b) => Number(b.dataset.seq) - Number(a.dataset.seq));
  fill("objections", h("ul", { class: "plain-list" }, rows));
}

function wireObjection() {
  byId("objection-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = ctx.records[Number(byId("objection-record").value)];
    const fields = chosen(byId("objection-fields"));
    const why = byId("objection-reason").value.trim();
    if (!r || !fields.length || !why) return status(t("citizen.objection.incomplete"), "error");
    try {
      status(t("common.signing"));
      const done = await appendEntry("/v1/objections", "objection.file", {
        subject: ctx.me.subject, dataset: r.dataset, record: r.record, fields, reason: why,
      });
      byId("objection-reason").value = "";
      status(t("citizen.objection.done", { seq: done.seq }), "success");
      await loadObjections();
    } catch (err) {
      showError(err);
    }
  });
}

// -- page ---------------------------------------------------------------------------------------

async function guarded(id, load) {
  try {
    await load();
  } catch (err) {
    showError(err, id);
  }
}

async function main() {
  const { api, me, identity } = await session({ roles: ["citizen"] });
  if (me.role !== "citizen") return;
  Object.assign(ctx, { api, me });
  fill("me-facts", facts([
    [t("me.name"), me.name],
    [t("me.keyid"), h("span", { class: "mono" }, me.key_id)],
    [t("me.subject"), h("span", { class: "mono" }, me.subject || "")],
    [t("me.source"), t(`source.${identity.source || "file"}`)],
  ]));
  show("app", true);
  ctx.policy = await witnessPolicy();
  showPolicy(ctx.policy);
  try {
    [ctx.dir, ctx.datasets, ctx.records] = await Promise.all([directory(api), catalogue(api), api.get("/v1/records")]);
  } catch (err) {
    return showError(err);
  }
  renderRecords();
  wireObjection();
  await Promise.all([
    guarded("options", async () => renderOptions(await api.get("/portal/api/consent-options"))),
    guarded("consents", loadConsents),
  ]);
  await Promise.all([guarded("timeline", loadTimeline), guarded("objections", loadObjections)]);
  byId("timeline-refresh").addEventListener("click", async () => {
    await guarded("consents", loadConsents);
    await guarded("timeline", loadTimeline);
  });
  document.body.dataset.ready = "true";
}

main().catch((err) => showError(err));
