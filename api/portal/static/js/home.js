// 首页: explains the portal; once signed in, points to the page for the user's role.

import { pageOf, session } from "./session.js";
import { byId, show, showError, t } from "./ui.js";

async function main() {
  const { me } = await session();
  byId("signed-in-text").textContent = t("home.signedin_as", { name: me.name, role: t(`role.${me.role}`) });
  const link = byId("signed-in-link");
  link.href = pageOf(me.role);
  link.textContent = t("home.go_role", { role: t(`role.${me.role}`) });
  show("signed-in", true);
  document.body.dataset.ready = "true";
}

main().catch((err) => showError(err));
