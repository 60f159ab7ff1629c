// Your password: a user signed in with a name changes their own password. The current
// one is asked for (a session left open on a shared PC must not be enough); the
// station ends the user's other sessions.
"use strict";

LG.start(async (main, me) => {
  const {h, api, field} = LG;
  main.appendChild(h("h1", {}, "Your password"));
  if (me.kind !== "user") {
    main.appendChild(h("p", {class: "muted", id: "no-password"}, `You are signed in with the API key “${me.name}”: a key `
      + "has no password. An admin replaces a key that should no longer work (Admin page: create a new one, revoke the old)."));
    return;
  }
  const form = h("form", {class: "panel", id: "password-form"},
    h("p", {}, `Signed in as ${me.name} (${me.role}). After the change your other sign-ins (other PCs, tablets) end.`),
    field("current password", h("input", {name: "current", type: "password", required: true, autocomplete: "current-password"})),
    field("new password (8 characters or more)", h("input", {name: "next", type: "password", required: true, minlength: 8,
      autocomplete: "new-password"})),
    field("new password again", h("input", {name: "again", type: "password", required: true, minlength: 8,
      autocomplete: "new-password"})),
    h("p", {}, h("button", {type: "submit"}, "Change password")));
  main.appendChild(form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = form.elements;
    if (f.next.value !== f.again.value) { LG.say("the two new passwords differ: type it the same twice", "error"); return; }
    const btn = form.querySelector("button");
    btn.disabled = true;
    try {
      await api("/api/v1/session/password", {method: "PUT", body: {current_password: f.current.value, new_password: f.next.value}});
      form.reset();
      LG.say("password changed; your other sign-ins ended", "ok");
    } catch (err) { LG.fail(err); }
    finally { btn.disabled = false; }
  });
});
