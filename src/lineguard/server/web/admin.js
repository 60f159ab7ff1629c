// Admin: API keys and users (list, create, revoke; a user's role, enable, password reset)
// and the sign-in lock-outs. The last admin cannot be removed
// (the station answers 409 and the message is shown).
"use strict";

LG.start(async (main, me) => {
  const {h, api, clear, field, select} = LG;
  if (!LG.roleAtLeast("admin")) {
    // admins sign in with a user name and password too, not only with a key
    main.appendChild(h("p", {class: "error"}, "Only an admin manages keys and users: sign in as an admin, "
      + "with an admin user's name and password or an admin key."));
    return;
  }
  const keysEl = h("div", {class: "table-wrap", id: "keys"}), usersEl = h("div", {class: "table-wrap", id: "users"});
  const secret = h("div", {id: "new-key"}), locksEl = h("div", {class: "table-wrap", id: "locks"});
  const keyForm = h("form", {class: "filters", id: "key-form"},
    field("role", select("role", ["operator", "engineer", "admin"], "operator")),
    field("name (who uses it)", h("input", {name: "name", size: 16})), h("button", {type: "submit"}, "Create key"));
  const userForm = h("form", {class: "filters", id: "user-form"},
    field("user name", h("input", {name: "username", required: true, autocomplete: "off", size: 14, maxlength: 100})),
    field("password", h("input", {name: "password", type: "password", required: true, autocomplete: "new-password", size: 14})),
    field("role", select("role", ["operator", "engineer", "admin"], "operator")), h("button", {type: "submit"}, "Add user"));
  main.append(h("h1", {}, "Keys and users"),
    h("div", {class: "panel"}, h("h2", {}, "API keys"), keyForm, secret, keysEl),
    h("div", {class: "panel"}, h("h2", {}, "Users"), userForm, usersEl),
    h("div", {class: "panel"}, h("h2", {}, "Sign-in lock-outs"),
      h("p", {class: "muted"}, "Five wrong passwords for a name, or twenty from one address, lock it out for five "
        + "minutes (API keys are never locked out)."), locksEl));

  async function load() {
    const keys = (await api("/api/v1/keys")).items;
    clear(keysEl).appendChild(h("table", {}, h("tr", {}, ["id", "prefix", "role", "name", "created", "state", ""].map((t) => h("th", {}, t))),
      keys.map((k) => h("tr", {dataset: {key: k.id}}, h("td", {}, k.id), h("td", {}, k.prefix), h("td", {}, k.role),
        h("td", {}, k.name || "–"), h("td", {}, LG.when(k.created_at)), h("td", {}, k.revoked ? "revoked" : "active"),
        h("td", {}, k.revoked ? "" : h("button", {type: "button", class: "danger", onclick: () => revokeKey(k)}, "Revoke"))))));
    let users = [];
    try { users = (await api("/api/v1/users")).items; } catch (err) { if (err.status !== 404) throw err; }
    clear(usersEl).appendChild(users.length ? h("table", {}, h("tr", {}, ["id", "user", "role", "created", "state", ""].map((t) => h("th", {}, t))),
      users.map(userRow)) : h("p", {class: "muted"}, "No users: people sign in with keys only."));
    await loadLocks();
  }

  function userRow(u) {
    const role = select("role", ["operator", "engineer", "admin"], u.role);
    role.setAttribute("aria-label", `role of ${u.username}`);
    role.addEventListener("change", async () => {
      // "an engineer", "an operator", "an admin"
      if (!confirm(`Make ${u.username} ${/^[aeiou]/.test(role.value) ? "an" : "a"} ${role.value}? Their open sign-ins `
        + "get the new role at once.")) { role.value = u.role; return; }
      await changeUser(u, {role: role.value}, `${u.username} is now ${role.value}`);
    });
    const actions = h("td", {class: "actions"});
    const showButtons = () => clear(actions).append(
      u.disabled ? h("button", {type: "button", onclick: () => changeUser(u, {disabled: false}, `${u.username} may sign in again`)}, "Enable")
        : h("button", {type: "button", class: "danger", onclick: () => removeUser(u)}, "Disable"),
      " ", h("button", {type: "button", onclick: resetForm}, "Reset password"));
    function resetForm() {
      const pw = h("input", {type: "password", name: "new-password", minlength: 8, required: true, size: 14,
        autocomplete: "new-password", "aria-label": `new password for ${u.username}`});
      const form = h("form", {class: "inline"}, pw, " ", h("button", {type: "submit"}, "Set"), " ",
        h("button", {type: "button", class: "link", onclick: showButtons}, "Cancel"));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        await changeUser(u, {password: pw.value}, `password of ${u.username} reset; their sign-ins ended`);
      });
      clear(actions).appendChild(form);
      pw.focus();
    }
    showButtons();
    return h("tr", {dataset: {user: u.id}}, h("td", {}, u.id), h("td", {}, u.username), h("td", {}, role),
      h("td", {}, LG.when(u.created_at)), h("td", {}, u.disabled ? "disabled" : "active"), actions);
  }

  async function changeUser(u, body, done) {
    let changed = false;
    try { await api(`/api/v1/users/${encodeURIComponent(u.id)}`, {method: "PATCH", body}); LG.say(done, "ok"); changed = true; }
    catch (err) { LG.fail(err); }
    // an admin who made themselves engineer may no longer read this page: reloaded, once the
    // station took it. Not on a refusal (the last admin demoting themselves): the reload wiped
    // the station's words and the role quietly went back to admin
    if (changed && u.username === me.name && me.kind === "user" && body.role && body.role !== "admin") {
      location.reload();
      return;
    }
    // on a refusal too: the row shows what is stored, not what was picked
    try { await load(); } catch (err) { LG.fail(err); }
  }

  async function loadLocks() {
    const locks = (await api("/api/v1/sign-in-locks")).items;
    clear(locksEl).append(locks.length
      ? h("div", {}, h("table", {}, h("tr", {}, ["locked", "failed tries", "lifts by itself in"].map((t) => h("th", {}, t))),
        locks.map((l) => h("tr", {}, h("td", {}, `${l.kind === "name" ? "user name" : "address"} ${l.value}`),
          h("td", {}, l.failures), h("td", {}, `${Math.ceil(l.wait_s / 60)} min`)))),
        h("p", {}, h("button", {type: "button", id: "lift-locks", onclick: liftLocks}, "Lift all lock-outs now")))
      : h("p", {class: "muted"}, "None: no name or address is locked out by failed sign-ins."));
  }

  async function liftLocks() {
    try { await api("/api/v1/sign-in-locks", {method: "DELETE"}); LG.say("lock-outs lifted", "ok"); await loadLocks(); }
    catch (err) { LG.fail(err); }
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

  // the key onto the clipboard: the browser's clipboard where the page may use it (https or
  // this PC), else the key selected and copied as Ctrl+C does (a station on the plant's
  // network over plain http has no clipboard API); said either way
  const COPIED = "The key is copied: paste it where it is used (the camera PC's or script's settings).";
  async function copyKey(key, el) {
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard here");
      await navigator.clipboard.writeText(key);
      LG.say(COPIED, "ok");
      return;
    } catch (_e) { /* the selection below instead */ }
    const range = document.createRange();
    range.selectNodeContents(el);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    const copied = document.execCommand && document.execCommand("copy");
    LG.say(copied ? COPIED : "The key is selected: copy it with Ctrl+C (or the browser's menu).", copied ? "ok" : "info");
  }

  // each once per tap: a double click made two keys, one of them never shown
  LG.once(keyForm, async () => {
    const k = await api("/api/v1/keys", {method: "POST", body: {role: keyForm.elements.role.value,
      name: keyForm.elements.name.value.trim() || null}});
    const shown = h("div", {class: "secret", id: "secret"}, k.key);
    clear(secret).append(h("p", {}, "The new key, shown this once (it is stored hashed): copy it now."), shown,
      h("p", {}, h("button", {type: "button", id: "copy-key", onclick: () => copyKey(k.key, shown)}, "Copy"), " ",
        h("button", {type: "button", class: "secondary", id: "hide-key", onclick: () => clear(secret)},
          "I have copied it: hide")));
    LG.say(`key ${k.prefix} created`, "ok");     // and an earlier error cleared
    keyForm.reset();
    await load();
  });

  LG.once(userForm, async () => {
    const f = userForm.elements;
    await api("/api/v1/users", {method: "POST", body: {username: f.username.value.trim(), password: f.password.value,
      role: f.role.value}});
    LG.say("user added", "ok");
    userForm.reset();
    await load();
  });

  await load();
});
