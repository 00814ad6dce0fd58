// 审计与公开: the latest checkpoint verified in the page (anyone); charts of decisions and releases
// (any signed-in key); a verification run over the whole block chain, the block explorer and the
// entry explorer (auditors).

import { b64decode, equal, sha256 } from "./bytes.js";
import { canonicalBytes } from "./jcs.js";
import { verifyEd25519 } from "./ed25519.js";
import { ALG_COSIGNATURE_V1, parseVerifierKey, verifyCheckpoint, verifyCosignature } from "./note.js";
import { publicText, serverNow } from "./api.js";
import { barChart } from "./charts.js";
import { checked, directory } from "./common.js";
import { session } from "./session.js";
import { badge, byId, empty, facts, fill, h, has, reason, show, showError, t, when } from "./ui.js";
import { VerifyError, verifier } from "./verify.js";

const ctx = { api: null, dir: null, explorer: false, nextBefore: null, nextAfter: null, size: 0 };
const ZERO = new Uint8Array(32);

// -- the checkpoint (public) --------------------------------------------------------------------

async function loadCheckpoint() {
  const verdict = byId("cp-verdict");
  verdict.dataset.state = "pending";
  verdict.textContent = t("verify.pending");
  const note = await publicText("/v1/checkpoint");
  byId("cp-note").textContent = note;
  try {
    const key = await verifier.logKey();
    const cp = await verifier.checkpoint(note);
    ctx.size = cp.size;
    verdict.dataset.state = "verified";
    verdict.textContent = `✓ ${t("audit.cp.verified", { size: cp.size })}`;
    fill("cp-facts", facts([
      [t("audit.cp.origin"), cp.origin],
      [t("audit.cp.size"), String(cp.size)],
      [t("audit.cp.root"), h("span", { class: "mono small" }, note.split("\n")[2])],
      [t("audit.cp.key"), h("span", { class: "mono small" }, key.text)],
    ]));
    const witnesses = await witnessKeys();
    const items = [];
    for (const c of cp.cosignatures) {
      const wkey = witnesses.find((w) => w.name === c.name && equal(w.hash, c.sig.keyHash));
      let mark;
      if (wkey) {
        mark = badge();
        try {
          await verifyCosignature(cp.text, c.sig, wkey);
          mark.verified(t("audit.cp.cosig_ok"));
        } catch (err) {
          mark.failed(err);
        }
      } else {
        mark = h("span", { class: "badge", "data-state": "unknown" }, t("audit.cp.cosig_unchecked"));
      }
      items.push(h("li", { class: "cosig", "data-witness": c.name },
        h("strong", {}, c.name), ` · ${t("audit.cp.cosig_hash", { hash: c.keyHash })}`,
        c.time !== null ? ` · ${when(new Date(c.time * 1000).toISOString())} ` : " ", mark));
    }
    fill("cp-cosigs", items.length ? h("ul", { class: "plain-list" }, items) : empty(t("audit.cp.no_cosigs")));
  } catch (err) {
    verdict.dataset.state = "failed";
    verdict.textContent = `✗ ${t("audit.cp.failed")}`;
    showError(err);
  }
}

/** The witness verifier keys the server lists in the page (cosignature/v1 only; malformed ones skipped). */
async function witnessKeys() {
  let texts;
  try {
    texts = JSON.parse(byId("witness-keys")?.textContent || "[]");
  } catch {
    return [];
  }
  const keys = [];
  for (const text of Array.isArray(texts) ? texts : []) {
    try {
      const key = await parseVerifierKey(text);
      if (key.alg === ALG_COSIGNATURE_V1) keys.push(key);
    } catch (err) {
      console.warn(err);
    }
  }
  return keys;
}

// -- charts (signed in) ---------------------------------------------------------------------------

async function loadCharts() {
  const stats = await ctx.api.get("/portal/api/stats");
  fill("totals",
    h("div", { class: "total allow" }, h("strong", {}, String(stats.totals.allow)), h("span", {}, t("audit.charts.allow"))),
    h("div", { class: "total deny" }, h("strong", {}, String(stats.totals.deny)), h("span", {}, t("audit.charts.deny"))),
    h("div", { class: "total release" }, h("strong", {}, String(stats.totals.release)), h("span", {}, t("audit.charts.release"))));
  if (!stats.buckets.length) {
    fill("chart-decisions", empty(t("audit.charts.none")));
    fill("chart-releases", empty(t("audit.charts.none")));
  } else {
    fill("chart-decisions", barChart({
      buckets: stats.buckets, unit: stats.unit, title: t("audit.charts.decisions"),
      series: [{ key: "allow", label: t("audit.charts.allow"), cls: "s-allow" }, { key: "deny", label: t("audit.charts.deny"), cls: "s-deny" }],
    }));
    fill("chart-releases", barChart({
      buckets: stats.buckets, unit: stats.unit, title: t("audit.charts.releases"),
      series: [{ key: "release", label: t("audit.charts.release"), cls: "s-release" }],
    }));
  }
  const reasons = Object.entries(stats.deny_reasons);
  const max = Math.max(1, ...reasons.map(([, n]) => n));
  fill("reasons", reasons.length
    ? h("ul", { class: "bars" }, reasons.map(([code, n]) => h("li", {},
      h("span", { class: "bar-label" }, reason(code)),
      h("span", { class: "bar", style: null, "data-n": n }, h("span", { class: "bar-fill", "data-w": Math.round((100 * n) / max) })),
      h("span", { class: "bar-n" }, String(n)))))
    : empty(t("audit.charts.no_denials")));
  for (const el of document.querySelectorAll(".bar-fill")) el.style.width = `${el.dataset.w}%`;
}

// -- alerts (auditors: every department; a department: its own) -------------------------------

const ALERT_DAYS = 30;

function alertSeqs(seqs) {
  const out = [];
  for (const seq of seqs) {
    if (out.length) out.push(" ");
    out.push(ctx.explorer
      ? h("a", { href: "#entries-title", class: "seq-link", "data-seq": seq, onclick: (ev) => {
        ev.preventDefault();
        byId("entry-seq").value = String(seq);
        guarded("entries", () => showEntry(seq)).then(() => byId("entries-title").scrollIntoView({ block: "start" }));
      } }, `#${seq}`)
      : h("span", { class: "mono", "data-seq": seq }, `#${seq}`));
  }
  return out;
}

/** A department's public name from its principal (the directory is keyed by key id). */
function deptName(principal) {
  if (!principal) return "";
  for (const d of ctx.dir.entries.values()) if (d.principal === principal) return d.name || principal;
  return principal;
}

async function loadAlerts() {
  const to = serverNow();
  const from = new Date(to.getTime() - ALERT_DAYS * 86_400_000);
  const report = await ctx.api.get("/v1/audit/report", { from: from.toISOString(), to: to.toISOString(), format: "json" });
  const alerts = report.alerts || [];
  const summary = h("p", { class: "small muted" }, t("audit.alerts.summary", { from: when(report.from), to: when(report.to), n: alerts.length }));
  if (!alerts.length) {
    fill("alerts", summary, h("div", { "data-state": "empty" }, empty(t("audit.alerts.none"))));
    return;
  }
  const rule = (code) => (has(`alert.rule.${code}`) ? t(`alert.rule.${code}`) : code);
  const severity = (s) => (has(`alert.severity.${s}`) ? t(`alert.severity.${s}`) : s);
  const withDept = ctx.dir !== null;
  fill("alerts", summary, h("div", { class: "table-wrap" }, h("table", { class: "table", id: "alerts-table" },
    h("caption", { class: "sr-only" }, t("audit.alerts.title")),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, t("audit.alerts.severity")), h("th", { scope: "col" }, t("audit.alerts.code")),
      withDept ? h("th", { scope: "col" }, t("audit.alerts.department")) : null,
      h("th", { scope: "col" }, t("audit.alerts.time")), h("th", { scope: "col" }, t("audit.alerts.message")),
      h("th", { scope: "col" }, t("audit.alerts.seqs")))),
    h("tbody", {}, alerts.map((a) => h("tr", { class: "alert-row", "data-code": a.code, "data-severity": a.severity },
      h("td", {}, h("span", { class: `severity severity-${a.severity}` }, severity(a.severity))),
      h("td", {}, h("span", { title: a.code }, rule(a.code)), h("br"), h("span", { class: "mono small muted" }, a.code)),
      withDept ? h("td", {}, deptName(a.department)) : null,
      h("td", {}, when(a.at)),
      h("td", { class: "small" }, a.message),
      h("td", {}, alertSeqs(a.seqs))))))));
}

// -- blocks (auditors) ----------------------------------------------------------------------------

/** Check one block: header signature, its checkpoint (signature, same size and root), shape. */
async function checkBlock(block, key) {
  const { sig, ...unsigned } = block.header;
  if (block.header.height !== block.height) throw new VerifyError(`block ${block.height}: header names height ${block.header.height}`);
  if (!(await verifyEd25519(key.publicKey, canonicalBytes(unsigned), b64decode(sig, "header sig")))) {
    throw new VerifyError(`block ${block.height}: header signature does not verify`);
  }
  const cp = await verifyCheckpoint(block.checkpoint, key);
  if (cp.size !== block.header.tree_size || !equal(cp.root, b64decode(block.header.root, "root"))) {
    throw new VerifyError(`block ${block.height}: checkpoint and header name different trees`);
  }
  if (block.height === 0 && !equal(b64decode(block.header.prev, "prev"), ZERO)) {
    throw new VerifyError("block 0: prev is not 32 zero bytes");
  }
  return sha256(canonicalBytes(block.header));
}

/** Check that `newer` links to `older` (prev, heights, first_seq). */
function checkLink(older, olderDigest, newer) {
  if (newer.height !== older.height + 1) throw new VerifyError(`block ${newer.height} follows block ${older.height}`);
  if (!equal(b64decode(newer.header.prev, "prev"), olderDigest)) throw new VerifyError(`block ${newer.height}: prev is not the hash of block ${older.height}`);
  if (newer.header.first_seq !== older.header.tree_size) throw new VerifyError(`block ${newer.height}: first_seq is not where block ${older.height} ended`);
}

async function loadBlocks(more = false) {
  const key = await verifier.logKey();
  const page = await ctx.api.get("/portal/api/blocks", { before: more ? ctx.nextBefore : null, limit: 20 });
  ctx.nextBefore = page.next_before;
  show("blocks-more", page.next_before !== null);
  const rows = [];
  let newer = more ? ctx.lastBlock : null;
  for (const block of page.blocks) {
    const mark = badge();
    try {
      const digest = await checkBlock(block, key);
      if (newer) checkLink(block, digest, newer);
      mark.verified();
    } catch (err) {
      mark.failed(err);
    }
    newer = block;
    const hd = block.header;
    rows.push(h("tr", { "data-height": block.height },
      h("td", {}, String(block.height)), h("td", {}, String(hd.tree_size)), h("td", {}, String(hd.tree_size - hd.first_seq)),
      h("td", {}, when(hd.time)), h("td", { class: "mono small" }, `${hd.root.slice(0, 16)}…`), h("td", {}, mark)));
  }
  ctx.lastBlock = newer;
  const body = byId("blocks");
  if (more) body.append(...rows); else body.replaceChildren(...rows);
}

async function verificationRun() {
  const out = byId("run-result");
  const button = byId("run-start");
  button.disabled = true;
  const started = performance.now();
  try {
    const key = await verifier.logKey();
    const latest = await verifier.latest();
    let before = null;
    let newer = null;
    let count = 0;
    let entries = 0;
    for (;;) {
      const page = await ctx.api.get("/portal/api/blocks", { before, limit: 200 });
      for (const block of page.blocks) {
        const digest = await checkBlock(block, key);
        if (newer) checkLink(block, digest, newer);
        else if (block.header.tree_size !== latest.size) throw new VerifyError("the newest block is not the latest checkpoint");
        newer = block;
        count += 1;
        entries = Math.max(entries, block.header.tree_size);
      }
      fill(out, h("p", { class: "loading" }, t("audit.run.progress", { n: count })));
      if (page.next_before === null) break;
      before = page.next_before;
    }
    if (!newer || newer.height !== 0 || newer.header.first_seq !== 0) throw new VerifyError("the chain does not reach block 0");
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    fill(out, h("div", { class: "alert alert-success", "data-state": "verified" },
      h("p", {}, `✓ ${t("audit.run.ok", { blocks: count, entries, secs })}`)));
  } catch (err) {
    fill(out, h("div", { class: "alert alert-error", "data-state": "failed" }, h("p", {}, `✗ ${t("audit.run.failed")}`), h("p", { class: "mono small" }, err.message)));
  } finally {
    button.disabled = false;
  }
}

// -- entries (auditors) ---------------------------------------------------------------------------

function entryItem(c) {
  const e = c.entry;
  const mark = badge();
  if (c.ok) mark.verified(); else mark.failed(c.error);
  return h("li", { class: "entry", "data-seq": e.seq },
    h("details", {},
      h("summary", {}, h("strong", {}, `#${e.seq} · ${t(`type.${e.type}`)}`),
        h("span", { class: "small muted" }, ` · ${when(e.ts)} · ${ctx.dir.name(e.actor)} `), mark),
      h("pre", { class: "code" }, JSON.stringify(e.body, null, 2))));
}

async function showEntries(after) {
  const page = await ctx.api.get("/v1/entries", { after, limit: 20 });
  const items = await Promise.all(page.entries.map(checked));
  fill("entries", items.reverse().map(entryItem));
  ctx.nextAfter = page.next_after;
}

async function showEntry(seq) {
  fill("entries", entryItem(await checked(await ctx.api.get(`/v1/entries/${seq}`))));
}

async function guarded(id, load) {
  try {
    await load();
  } catch (err) {
    showError(err, id);
  }
}

async function main() {
  await guarded("cp-facts", loadCheckpoint);
  byId("cp-refresh").addEventListener("click", () => guarded("cp-facts", loadCheckpoint));
  const { api, me } = await session();
  ctx.api = api;
  show("app", true);
  await guarded("chart-decisions", loadCharts);
  const auditor = me.role === "auditor" || me.role === "admin";
  if (auditor || me.role === "department") {
    show("alerts-panel", true);
    show("alerts-intro", auditor);
    show("alerts-intro-department", !auditor);
  }
  if (auditor) {
    show("auditor-only", true);
    ctx.dir = await directory(api);
    ctx.explorer = true;
    byId("run-start").addEventListener("click", verificationRun);
    byId("blocks-more").addEventListener("click", () => guarded("blocks", () => loadBlocks(true)));
    byId("entry-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const seq = Number(byId("entry-seq").value);
      if (Number.isSafeInteger(seq) && seq >= 0) guarded("entries", () => showEntry(seq));
    });
    byId("entries-latest").addEventListener("click", () => guarded("entries", () => showEntries(ctx.size > 20 ? ctx.size - 21 : null)));
    await Promise.all([guarded("blocks", () => loadBlocks()), guarded("entries", () => showEntries(ctx.size > 20 ? ctx.size - 21 : null))]);
  }
  if (auditor || me.role === "department") await guarded("alerts", loadAlerts);
  document.body.dataset.ready = "true";
}

main().catch((err) => showError(err));
