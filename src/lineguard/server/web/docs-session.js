// /docs "Try it out" with the page's sign-in: a signed-in browser sends its session cookie,
// and the station asks every request that changes something for the session's CSRF token
// (X-CSRF-Token), which Swagger UI does not know. Loaded before Swagger UI, this adds the
// token to the station's own POST/PUT/PATCH/DELETE requests; a request that carries an API
// key, or goes elsewhere, is left as it is. The token is asked from GET /api/v1/session for
// each such request, not once: kept for the page's life, a sign-in made after the page was
// opened (the docs opened first, or a sign-in again in another tab) was never sent, and
// every "Try it out" change was refused 403 until a reload.
"use strict";

(function () {
  const plain = window.fetch.bind(window);

  async function csrfToken() {
    try {
      const r = await plain("/api/v1/session", {credentials: "same-origin"});
      return r.ok ? (await r.json()).csrf_token || "" : "";
    } catch (_e) { return ""; }
  }

  window.fetch = async function (input, init) {
    const req = input instanceof Request ? input : null;
    const method = ((init && init.method) || (req && req.method) || "GET").toUpperCase();
    const url = new URL(req ? req.url : String(input), location.href);
    if (url.origin !== location.origin || ["GET", "HEAD", "OPTIONS"].includes(method)) return plain(input, init);
    const headers = new Headers((init && init.headers) || (req && req.headers) || {});
    if (!headers.has("X-API-Key") && !headers.has("Authorization") && !headers.has("X-CSRF-Token")) {
      const t = await csrfToken();
      if (t) headers.set("X-CSRF-Token", t);
    }
    return plain(input, Object.assign({}, init, {headers}));
  };
})();
