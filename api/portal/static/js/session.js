// Signing in: a demo identity (development only), a keystore file, or a key made in this browser.
// The key ends up as non-extractable WebCrypto keys in IndexedDB; /v1/me (a signed request) says
// who the ledger knows it as. An unregistered key is shown with what an administrator needs.

import { b64encode } from "./bytes.js";
import { Api, publicJson } from "./api.js";
import { generateSigning, generateX25519, keyIdOf, requireWebCrypto } from "./ed25519.js";
import { identityFromKey, openKeystore } from "./keystore.js";
import { clearIdentity, loadIdentity, saveIdentity } from "./store.js";
import { byId, clearStatus, explain, fill, h, show, showError, status, t } from "./ui.js";
import { verifier } from "./verify.js";

const ROLE_PAGES = { citizen: "/citizen", department: "/department", auditor: "/audit", admin: "/audit" };
export const pageOf = (role) => ROLE_PAGES[role] || "/";

function registrationBody(identity, role, name) {
  const body = { key_id: identity.keyId, role, name, ed25519: b64encode(identity.publicKey) };
  if (identity.x25519Public) body.x25519 = b64encode(identity.x25519Public);
  if (role === "citizen") body.subject = t("unreg.subject_placeholder");
  return body;
}

function showUnregistered(identity, onRetry) {
  show("signin", false);
  show("unregistered", true);
  byId("unreg-keyid").textContent = identity.keyId;
  const body = registrationBody(identity, identity.role || "citizen", identity.name || "");
  const text = JSON.stringify({ type: "identity.register", body }, null, 2);
  byId("unreg-body").textContent = text;
  byId("unreg-copy").onclick = async () => {
    try {
      await navigator.clipboard.writeText(text);
      status(t("unreg.copied"), "success");
    } catch {
      status(t("unreg.copy_failed"), "info");
    }
  };
  byId("unreg-retry").onclick = onRetry;
  byId("unreg-other").onclick = async () => {
    await clearIdentity();
    location.reload();
  };
}

function setWho(identity, me) {
  const who = byId("who");
  if (!who) return;
  who.textContent = t("signin.as", { name: me.name, role: t(`role.${me.role}`) });
  who.title = me.key_id;
  show(who, true);
  const out = byId("signout");
  show(out, true);
  out.onclick = async () => {
    await clearIdentity();
    location.reload();
  };
}

function logKeyFooter() {
  verifier
    .logKey()
    .then((key) => {
      const el = byId("logkey");
      if (el) el.textContent = t("footer.logkey", { key: key.text });
    })
    .catch((err) => {
      if (err.code !== "log_key_changed") return;
      const { what, todo, detail } = explain(err);
      const box = byId("status");
      box.replaceChildren(
        h("div", { class: "alert alert-error", role: "alert" },
          h("p", {}, `${what} ${todo}`),
          h("p", { class: "mono small" }, detail),
          h("button", { type: "button", onclick: () => {
            localStorage.removeItem("shulian.logKey");
            localStorage.removeItem("shulian.lastCheckpoint");
            location.reload();
          } }, t("verify.trust_new_key"))),
      );
    });
}

async function demoList(onIdentity) {
  const wrap = byId("demo-signin");
  if (!wrap) return;
  if (document.body.dataset.env !== "development") {
    show("demo-off", true);
    return;
  }
  let found;
  try {
    found = await publicJson("/portal/demo/identities");
  } catch (err) {
    show("demo-off", true);
    byId("demo-off").textContent = `${t("signin.demo.unavailable")} ${explain(err).detail}`;
    return;
  }
  const groups = { citizen: [], department: [], auditor: [] };
  for (const id of found.identities) (groups[id.role] ||= []).push(id);
  const blocks = [];
  for (const [role, items] of Object.entries(groups)) {
    if (!items.length) continue;
    blocks.push(h("h4", {}, t(`role.${role}s`)));
    blocks.push(h("ul", { class: "demo-ids" }, items.map((id) => {
      const label = id.person ? `${id.label} · ${id.person}` : id.label;
      const detail = id.role === "citizen"
        ? t("signin.demo.citizen_detail", { holds: id.holds.join(t("common.list_sep")) || "—", grants: id.grants })
        : id.key_id.slice(0, 12);
      return h("li", {}, h("button", {
        type: "button",
        class: "demo-id",
        "data-name": id.name,
        onclick: async (ev) => {
          const button = ev.currentTarget;
          button.disabled = true;
          try {
            status(t("signin.working"));
            const doc = await publicJson("/portal/demo/sign-in", {
              method: "POST",
              headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ name: id.name }),
            });
            const keys = await openKeystore(doc.keystore, doc.passphrase);
            await onIdentity(await identityFromKey(keys[0], "demo"));
          } catch (err) {
            showError(err);
          } finally {
            button.disabled = false;
          }
        },
      }, h("strong", {}, label), h("small", {}, detail)));
    })));
  }
  fill("demo-list", ...blocks);
  show(wrap, true);
}

function wireForms(onIdentity) {
  byId("keystore-form")?.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = byId("keystore-file").files[0];
    const pass = byId("keystore-pass").value;
    if (!file) return;
    try {
      status(t("signin.working"));
      let doc;
      try {
        doc = JSON.parse(await file.text());
      } catch {
        throw Object.assign(new Error("not JSON"), { code: "keystore_format" });
      }
      const keys = await openKeystore(doc, pass);
      byId("keystore-pass").value = "";
      await onIdentity(await identityFromKey(keys[keys.length - 1], "file")); // the newest, as keystores append
    } catch (err) {
      showError(err);
    }
  });
  byId("newkey-form")?.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const role = byId("newkey-role").value;
      const name = byId("newkey-name").value.trim();
      const signing = await generateSigning();
      const identity = {
        keyId: await keyIdOf(signing.publicKey),
        name,
        role,
        source: "browser",
        signing: signing.key,
        publicKey: signing.publicKey,
        x25519: null,
        x25519Public: null,
        created: new Date().toISOString(),
      };
      if (role === "department") {
        const x = await generateX25519();
        identity.x25519 = x.key;
        identity.x25519Public = x.publicKey;
      }
      await onIdentity(identity);
    } catch (err) {
      showError(err);
    }
  });
}

/**
 * Resolve the signed-in user: {identity, me, api}. Shows the sign-in panel (and waits) when nobody
 * is signed in, and the registration panel for a key the ledger does not know yet.
 */
export async function session({ roles = null } = {}) {
  try {
    requireWebCrypto();
  } catch (err) {
    showError(err);
    throw err;
  }
  logKeyFooter();
  return new Promise((resolve) => {
    const tryIdentity = async (identity) => {
      const api = new Api(identity);
      let me;
      try {
        me = await api.get("/v1/me");
      } catch (err) {
        if (err.code === "unknown_key") {
          await saveIdentity(identity);
          clearStatus();
          showUnregistered(identity, () => tryIdentity(identity));
          return;
        }
        throw err;
      }
      await saveIdentity(identity);
      clearStatus();
      show("signin", false);
      show("unregistered", false);
      setWho(identity, me);
      if (roles && !roles.includes(me.role)) {
        status(t("signin.wrong_page", { role: t(`role.${me.role}`) }), "info");
        const link = h("a", { href: pageOf(me.role), class: "button" }, t("signin.go_to_page"));
        byId("status").append(link);
      }
      resolve({ identity, me, api });
    };
    let listed = false;
    const offerSignIn = async () => {
      show("signin", true);
      if (!listed) {
        listed = true;
        await demoList(onIdentity);
      }
    };
    const onIdentity = async (identity) => {
      try {
        await tryIdentity(identity);
      } catch (err) {
        showError(err);
        await offerSignIn();
      }
    };
    wireForms(onIdentity);
    loadIdentity()
      .then(async (identity) => {
        if (identity) return onIdentity(identity);
        return offerSignIn();
      })
      .catch((err) => {
        showError(err);
        offerSignIn();
      });
  });
}
