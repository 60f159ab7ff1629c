// Sign-in: an API key or a user name and password become a session cookie.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const {h, api, clear, say} = LG;
  const main = clear(document.getElementById("main"));
  document.getElementById("nav").hidden = true;

  // only a page of this app: a crafted ?next=https://elsewhere must not redirect off-site
  const next = LG.params().next || "";
  const target = /^\/app\/[A-Za-z0-9/_?=&%.:+-]*$/.test(next) && !next.startsWith("/app/signin") ? next : "/app/";

  async function signIn(body, form) {
    const btn = form.querySelector("button");
    btn.disabled = true;
    try {
      await api("/api/v1/session", {method: "POST", body, noRedirect: true});
      location.assign(target);
    } catch (err) {
      say(err.status !== 401 ? err.message : body.api_key
        ? "Not signed in: the key is not right, or was revoked. Ask an admin for a new key."
        : "Not signed in: the user name or the password is not right (or the user is disabled). An admin can reset "
          + "the password on the Keys and users page.", "error");
      btn.disabled = false;
    }
  }

  const keyForm = h("form", {class: "panel", id: "key-form", onsubmit: (e) => {
    e.preventDefault();
    signIn({api_key: keyForm.elements.api_key.value.trim()}, keyForm);
  }},
  h("h2", {}, "With an API key"),
  h("p", {class: "muted"}, "For a station PC or a wall display given a key by an admin."),
  // a key is no password of a person's: the browser neither fills one in nor offers to keep it
  LG.field("API key", h("input", {name: "api_key", type: "password", autocomplete: "off", required: true, size: 40,
    spellcheck: "false", autocapitalize: "none"})),
  h("p", {}, h("button", {type: "submit", class: "secondary"}, "Sign in with the key")));

  const userForm = h("form", {class: "panel", id: "user-form", onsubmit: (e) => {
    e.preventDefault();
    signIn({username: userForm.elements.username.value.trim(), password: userForm.elements.password.value}, userForm);
  }},
  h("h2", {}, "With a user name"),
  // a tablet's keyboard neither capitalises nor corrects a user name
  LG.field("User name", h("input", {name: "username", autocomplete: "username", required: true,
    autocapitalize: "none", spellcheck: "false"})),
  LG.field("Password", h("input", {name: "password", type: "password", autocomplete: "current-password", required: true})),
  h("p", {}, h("button", {type: "submit"}, "Sign in")));

  // sent here by a page whose session the station no longer takes (common.js toSignIn)
  // The station's 401 does not say which of its causes ended it: each one that can end this
  // kind of sign-in is named. "Signed in too long ago or signed out elsewhere" alone sent a
  // wall display whose key was revoked to sign in again with the same key.
  const lost = LG.takeLost();
  const ENDED = {
    key: "This screen's sign-in ended: its key was revoked, it was signed out elsewhere, or it was signed in "
      + "too long ago. Sign in again to go on (a revoked key is not taken again: ask an admin for a new one).",
    user: "Your sign-in ended: your user was disabled or given a new password, you signed out elsewhere, or you "
      + "signed in too long ago. Sign in again to go on (a password not taken: an admin can reset it).",
  };
  const params = LG.params();
  const why = params.why === "expired" ? h("p", {class: "signin-why", id: "signin-why", role: "alert"},
    (ENDED[params.as] || "Your sign-in ended: signed in too long ago, signed out elsewhere, its key revoked, or "
      + "the user disabled or given a new password. Sign in again to go on.")
    + (lost ? ` Not saved: ${lost}. Do it again once signed in.` : "")) : null;
  // append() writes a null as the text "null" under the heading: left out when nothing ended
  main.append(h("h1", {}, "Sign in to this station"), ...(why ? [why] : []),
    // operators sign in with their user name: its form first (it has the focus), the key's after
    h("div", {class: "row"}, h("div", {class: "grow"}, userForm), h("div", {class: "grow"}, keyForm)),
    h("p", {class: "muted"}, "Keys are made by an admin (", h("code", {}, "lineguard keys create"),
      " on the station PC, or the Admin page)."));
  userForm.elements.username.focus();
});
