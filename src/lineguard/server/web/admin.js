// Admin: API keys and users (list, create, revoke). The last admin cannot be removed
// (the station answers 409 and the message is shown).
"use strict";

LG.start(async (main) => {
  const {h, api, clear, field, select} = LG;
  if (!LG.roleAtLeast("admin")) {
    main.appendChild(h("p", {class: "error"}, "Only an admin manages keys and users; sign in with an admin key."));
    return;
  }
  const keysEl = h("div", {class: "table-wrap", id: "keys"}), usersEl = h("div", {class: "table-wrap", id: "users"});
  const secret = h("div", {id: "new-key"});
  const keyForm = h("form", {class: "filters", id: "key-form"},
    field("role", select("role", ["operator", "engineer", "admin"], "operator")),
    field("name (who uses it)", h("input", {name: "name", size: 16})), h("button", {type: "submit"}, "Create key"));
  const userForm = h("form", {class: "filters", id: "user-form"},
    field("user name", h("input", {name: "username", required: true, autocomplete: "off", size: 14})),
    field("password", h("input", {name: "password", type: "password", required: true, autocomplete: "new-password", size: 14})),
    field("role", select("role", ["operator", "engineer", "admin"], "operator")), h("button", {type: "submit"}, "Add user"));
  main.append(h("h1", {}, "Keys and users"),
    h("div", {class: "panel"}, h("h2", {}, "API keys"), keyForm, secret, keysEl),
    h("div", {class: "panel"}, h("h2", {}, "Users"), userForm, usersEl));

  async function load() {
    const keys = (await api("/api/v1/keys")).items;
    clear(keysEl).appendChild(h("table", {}, h("tr", {}, ["id", "prefix", "role", "name", "created", "state", ""].map((t) => h("th", {}, t))),
      keys.map((k) => h("tr", {dataset: {key: k.id}}, h("td", {}, k.id), h("td", {}, k.prefix), h("td", {}, k.role),
        h("td", {}, k.name || "–"), h("td", {}, LG.when(k.created_at)), h("td", {}, k.revoked ? "revoked" : "active"),
        h("td", {}, k.revoked ? "" : h("button", {type: "button", class: "danger", onclick: () => revokeKey(k)}, "Revoke"))))));
    let users = [];
    try { users = (await api("/api/v1/users")).items; } catch (err) { if (err.status !== 404) throw err; }
    clear(usersEl).appendChild(users.length ? h("table", {}, h("tr", {}, ["id", "user", "role", "created", "state", ""].map((t) => h("th", {}, t))),
      users.map((u) => h("tr", {dataset: {user: u.id}}, h("td", {}, u.id), h("td", {}, u.username), h("td", {}, u.role),
        h("td", {}, LG.when(u.created_at)), h("td", {}, u.disabled ? "disabled" : "active"),
        h("td", {}, u.disabled ? "" : h("button", {type: "button", class: "danger", onclick: () => removeUser(u)}, "Disable")))))
      : h("p", {class: "muted"}, "No users: people sign in with keys only."));
  }

  async function revokeKey(k) {
    if (!confirm(`Revoke key ${k.prefix} (${k.name || k.role})? Whoever uses it is signed out (you too, if you `
      + "signed in with it).")) return;
    try { await api(`/api/v1/keys/${encodeURIComponent(k.id)}`, {method: "DELETE"}); LG.say("key revoked", "ok"); await load(); }
    catch (err) { LG.fail(err); }
  }

  async function removeUser(u) {
    if (!confirm(`Disable user ${u.username}?`)) return;
    try { await api(`/api/v1/users/${encodeURIComponent(u.id)}`, {method: "DELETE"}); LG.say("user disabled", "ok"); await load(); }
    catch (err) { LG.fail(err); }
  }

  keyForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const k = await api("/api/v1/keys", {method: "POST", body: {role: keyForm.elements.role.value,
        name: keyForm.elements.name.value.trim() || null}});
      clear(secret).append(h("p", {}, "The new key, shown this once (it is stored hashed): copy it now."),
        h("div", {class: "secret", id: "secret"}, k.key));
      LG.say(`key ${k.prefix || ""} created`, "ok");     // and an earlier error cleared
      keyForm.reset();
      await load();
    } catch (err) { LG.fail(err); }
  });

  userForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = userForm.elements;
    try {
      await api("/api/v1/users", {method: "POST", body: {username: f.username.value.trim(), password: f.password.value,
        role: f.role.value}});
      LG.say("user added", "ok");
      userForm.reset();
      await load();
    } catch (err) { LG.fail(err); }
  });

  await load();
});
