// /docs "Try it out" with the page's sign-in: a signed-in browser sends its session cookie,
// and the station asks every request that changes something for the session's CSRF token
// (X-CSRF-Token), which Swagger UI does not know. Loaded before Swagger UI, this adds the
// token (asked once from GET /api/v1/session) to the station's own POST/PUT/PATCH/DELETE
// requests; a request that carries an API key, or goes elsewhere, is left as it is.
"use strict";

(function () {
  const plain = window.fetch.bind(window);
  let token = null;

  async function csrfToken() {
    if (token === null) {
      try {
        const r = await plain("/api/v1/session", {credentials: "same-origin"});
        token = r.ok ? (await r.json()).csrf_token || "" : "";
      } catch (_e) { token = ""; }
    }
    return token;
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
