// Page helpers: strings (the page's catalogue, embedded by the server), DOM building without
// innerHTML (every value is text), status messages, and errors explained as what happened and what
// to do.

const strings = JSON.parse(document.getElementById("i18n")?.textContent || "{}");
export const lang = document.documentElement.lang || "zh-CN";

/** The string `key` with {name} placeholders filled; the key itself when missing (visible in tests). */
export function t(key, vars = {}) {
  const text = strings[key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export const has = (key) => key in strings;

/** Build an element: h("p", {class: "x", onclick: fn}, "text", child, …). Strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = tag === "svg" || attrs.svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false || name === "svg") continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const svg = (tag, attrs = {}, ...children) => h(tag, { ...attrs, svg: true }, ...children);

export function byId(id) {
  return document.getElementById(id);
}

export function fill(target, ...children) {
  const el = typeof target === "string" ? byId(target) : target;
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  el.removeAttribute("aria-busy");
  return el;
}

export function show(id, visible = true) {
  const el = typeof id === "string" ? byId(id) : id;
  if (el) el.hidden = !visible;
}

/** A message in the page's live region: kind "info" | "success" | "error". */
export function status(message, kind = "info", detail = null) {
  const box = byId("status");
  if (!box) return;
  const children = [h("p", {}, message)];
  if (detail) children.push(h("details", {}, h("summary", {}, t("error.details")), h("p", { class: "mono small" }, detail)));
  box.replaceChildren(h("div", { class: `alert alert-${kind}` }, ...children));
  if (kind === "error") box.scrollIntoView({ block: "nearest" });
}

export function clearStatus() {
  byId("status")?.replaceChildren();
}

/** What happened and what to do, for any error the portal meets. */
export function explain(err) {
  const code = err?.code || "";
  const status = err?.status;
  let what;
  let todo;
  if (code === "network") [what, todo] = [t("error.network"), t("todo.network")];
  else if (code === "no_webcrypto") [what, todo] = [t("error.webcrypto"), t("todo.webcrypto")];
  else if (code === "unknown_key") [what, todo] = [t("error.unknown_key"), t("todo.unknown_key")];
  else if (code === "clock") [what, todo] = [t("error.clock"), t("todo.clock")];
  else if (code === "replayed") [what, todo] = [t("error.replayed"), t("todo.retry")];
  else if (code.startsWith("keystore_")) [what, todo] = [t(`error.${code}`), t(`todo.${code}`)];
  else if (code === "log_key_changed") [what, todo] = [t("error.log_key_changed"), t("todo.log_key_changed")];
  else if (code === "inconsistent") [what, todo] = [t("error.inconsistent"), t("todo.log_key_changed")];
  else if (status === 401) [what, todo] = [t("error.unauthenticated"), t("todo.signin_again")];
  else if (status === 403) [what, todo] = [t("error.forbidden"), t("todo.forbidden")];
  else if (status === 404) [what, todo] = [t("error.not_found"), t("todo.not_found")];
  else if (status === 409) [what, todo] = [t("error.conflict"), t("todo.conflict")];
  else if (status === 400 || status === 413 || status === 422) [what, todo] = [t("error.invalid"), t("todo.invalid")];
  else if (status >= 500) [what, todo] = [t("error.server"), t("todo.retry_later")];
  else if (err?.name === "ProofError" || err?.name === "NoteError" || err?.name === "VerifyError") {
    [what, todo] = [t("error.verify"), t("todo.verify")];
  } else if (err?.name === "SealedError" || err?.name === "ReleaseError") [what, todo] = [t("error.release"), t("todo.release")];
  else [what, todo] = [t("error.unexpected"), t("todo.retry")];
  return { what, todo, detail: err?.detail || err?.message || String(err) };
}

export function showError(err, where = null) {
  const { what, todo, detail } = explain(err);
  const message = `${what} ${todo}`;
  if (where) {
    const el = typeof where === "string" ? byId(where) : where;
    fill(el, h("div", { class: "alert alert-error", role: "alert" }, h("p", {}, message),
      h("details", {}, h("summary", {}, t("error.details")), h("p", { class: "mono small" }, detail))));
  } else {
    status(message, "error", detail);
  }
  console.warn(err);
}

// -- formatting ---------------------------------------------------------------------------------

export function when(ts) {
  if (!ts) return "";
  const d = new Date(String(ts).replace(/(\.\d{3})\d*Z$/, "$1Z"));
  if (Number.isNaN(d.getTime())) return String(ts);
  return d.toLocaleString(lang, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

export function day(ts) {
  const d = new Date(String(ts).replace(/(\.\d{3})\d*Z$/, "$1Z"));
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleDateString(lang);
}

export const fieldName = (name) => (has(`field.${name}`) ? t(`field.${name}`) : name);
export const fieldList = (names) => names.map(fieldName).join(t("common.list_sep"));
export const reason = (code) => (has(`reason.${code}`) ? t(`reason.${code}`) : code);
export const short = (text, n = 12) => (text && text.length > n ? `${text.slice(0, n)}…` : text || "");

/** A verification badge, updated in place: pending → verified | failed (with the reason). */
export function badge() {
  const el = h("span", { class: "badge", "data-state": "pending" }, t("verify.pending"));
  el.verified = (text = t("verify.ok")) => {
    el.dataset.state = "verified";
    el.textContent = `✓ ${text}`;
  };
  el.failed = (err) => {
    el.dataset.state = "failed";
    el.textContent = `✗ ${t("verify.failed")}`;
    el.title = err?.message || String(err);
    el.setAttribute("aria-label", `${t("verify.failed")}: ${el.title}`);
  };
  return el;
}

export function facts(pairs) {
  return pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]);
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}
