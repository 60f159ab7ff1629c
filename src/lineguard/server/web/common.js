// Shared by every page: building the DOM safely, calling the API with the session,
// the navigation bar and role checks. Data never goes through innerHTML: part ids,
// lots and notes are typed in by people and machines, so everything is text nodes.
"use strict";

const LG = (() => {
  const ROLES = ["operator", "engineer", "admin"];
  // the alarm kinds in the plant's words, one list for every page; the plant view's
  // (routers/plant.py ALARM_WORDS) says them the same, and a test holds the two together
  const ALARM_KIND = Object.freeze({ng_run: "rejected parts in a row", ng_rate: "high NG rate",
    photo: "check the camera", no_verdict: "parts rejected without a verdict", test_part: "test part judged wrong",
    drift: "part scores drifting"});
  // a kind this page does not know (a newer station's) said by its code
  const alarmKind = (kind, capital) => {
    const w = ALARM_KIND[kind] || kind;
    return capital ? w.charAt(0).toUpperCase() + w.slice(1) : w;
  };
  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
  let me = null;

  // h("div", {class: "x", onclick: fn}, "text", child) -> element; strings become text
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = String(v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "value" && "value" in el) el.value = v;
      else if (k === "checked" || k === "disabled" || k === "selected") el[k] = !!v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function q(params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== null && v !== undefined && v !== "") u.set(k, v);
    }
    const s = u.toString();
    return s ? "?" + s : "";
  }

  class ApiError extends Error {
    constructor(status, message, body) { super(message); this.status = status; this.body = body; }
  }

  // why: "expired" when a page signed in is refused later (the session's time ran out, or it
  // was signed out elsewhere): the sign-in page says so, not a wall display dropped to a form
  // with no word of what happened
  // Once: a line view's summary and parts reads refused together each sent it, and the second
  // navigation aborted the first (a wall display's sign-in page loaded twice)
  let leaving = false;
  const LOST_KEY = "lineguard-not-saved";
  // lost: what a change refused for it was ("B-17: defect (scratch)"), said on the sign-in
  // page: a review pressed after the session ran out went nowhere, and after signing in the
  // part was back in the queue with no word that the review was not saved
  // kept in this tab's sessionStorage, not the address: a link anyone sends could otherwise
  // put words of its own in the sign-in page's alert
  function toSignIn(why, lost) {
    // on the sign-in page already (a read fired there, signed out): sent to itself, it lost
    // the reason it was showing ("its key was revoked") for none
    if (leaving || location.pathname === "/app/signin") return;
    leaving = true;
    const here = location.pathname + location.search;
    try {
      if (lost) sessionStorage.setItem(LOST_KEY, String(lost).slice(0, 200));
    } catch (_e) { /* storage off: the session's end is said without it */ }
    // signed in with a key or as a user: the sign-in page names what can end that one
    location.assign("/app/signin" + q({next: here, why, as: why && me ? me.kind : undefined}));
  }
  // the sign-in page's note of a change refused for the ended session, read once
  function takeLost() {
    try {
      const lost = sessionStorage.getItem(LOST_KEY);
      sessionStorage.removeItem(LOST_KEY);
      return lost;
    } catch (_e) { return null; }
  }

  // fetch JSON with the session cookie; unsafe methods carry the CSRF token
  async function api(path, opts = {}) {
    const method = (opts.method || "GET").toUpperCase();
    const headers = {Accept: "application/json"};
    let body = opts.body;
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    if (UNSAFE.has(method) && me && me.csrf_token) headers["X-CSRF-Token"] = me.csrf_token;
    let r;
    try {
      r = await fetch(path, {method, headers, body, credentials: "same-origin"});
      if (r.status === 403 && headers["X-CSRF-Token"] && !opts.csrfRetried) {
        // A sign-in since (another tab of this browser) replaced the cookie, and with it the
        // CSRF token: every change from this page was refused 403 until a reload. The
        // current token is asked for and the change sent once more with it, when the same
        // person is signed in; a 403 for the role is asked again and refused again.
        const now = await fetch("/api/v1/session", {headers: {Accept: "application/json"},
          credentials: "same-origin"});
        const fresh = now.ok ? await now.json() : null;
        if (fresh && fresh.csrf_token && fresh.csrf_token !== headers["X-CSRF-Token"]) {
          if (fresh.name !== me.name || fresh.kind !== me.kind) {
            throw new ApiError(403, `This browser is now signed in as ${fresh.name} (in another tab or window), `
              + `not ${me.name}: nothing was changed. Reload the page to go on as ${fresh.name}.`, null);
          }
          me = Object.assign({}, me, fresh);
          return await api(path, Object.assign({}, opts, {csrfRetried: true}));
        }
      }
    } catch (_e) {
      if (_e instanceof ApiError) throw _e;
      // the browser's own words ("Failed to fetch") say nothing a person can act on
      offline = true;
      // a change may have reached the station with only its answer lost (Wi-Fi dropping):
      // said until read, not taken away by the next answer (see say)
      changeLost = UNSAFE.has(method);
      throw new ApiError(0, UNSAFE.has(method)
        ? "The station did not answer (network or station down): this may not have been saved. Look once it "
          + "answers again, then do it again if it is not there."
        : "The station did not answer (network or station down): reload or try again once it answers.");
    }
    if (offline) {
      // back: the message about it goes (a later error stays)
      offline = false;
      const el = document.getElementById("status");
      if (el && el.dataset.offline === "1") { el.textContent = ""; el.className = ""; delete el.dataset.offline; }
    }
    if (r.status === 401 && !opts.noRedirect) {
      toSignIn(me ? "expired" : undefined,
        UNSAFE.has(method) ? opts.lost || "your last change (it reached the station after its sign-in ended)" : null);
      throw new ApiError(401, "signed out: sign in again");
    }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_e) { data = text; }
    // 503: the station is up but cannot serve now (its database away): like no answer, its
    // message goes by itself at the next answer (a wall display sends no form to clear it)
    if (r.status === 503) { offline = true; changeLost = false; }
    if (!r.ok) {
      const msg = (data && data.error && data.error.message) || (data && data.detail) || r.statusText;
      throw new ApiError(r.status, typeof msg === "string" ? msg : JSON.stringify(msg), data);
    }
    return data;
  }

  // A request the station is slow to answer (hung, overloaded, a Wi-Fi link half there):
  // ``fn(seconds)`` is called each second once it has waited ``after`` s, until it answers or
  // fails. A tap on a hung station showed nothing at all: no "saving", the same part, a
  // second tap silently dropped. Counted in timer ticks, not Date.now(): a page whose clock
  // stands still (a test's) still counts.
  function whileSlow(pending, fn, after = 3) {
    let s = 0;
    const timer = setInterval(() => { s += 1; if (s >= after) fn(s); }, 1000);
    const stop = () => clearInterval(timer);
    pending.then(stop, stop);
    return pending;
  }

  // The station's live events (GET /api/v1/events) with ``on`` {event: handler}; ``opened``
  // is told whether the stream comes back after a break, ``broke`` of each break. The
  // browser reconnects a stream that broke by itself, but gives up for good on an answer
  // other than 200 (a 503 while the database was away): a wall display then stayed
  // "reconnecting…" for ever. Such a stream is opened again here, 2 s and up to 30 s apart.
  function liveEvents(on, opened = () => {}, broke = () => {}) {
    let retryMs = 2000, down = false;
    (function connect() {
      const es = new EventSource("/api/v1/events");
      es.addEventListener("open", () => { retryMs = 2000; opened(down); down = false; });
      es.addEventListener("error", () => {
        down = true;
        broke();
        if (es.readyState === EventSource.CLOSED) {
          es.close();
          setTimeout(connect, retryMs);
          retryMs = Math.min(30000, retryMs * 2);
        }
      });
      for (const [name, fn] of Object.entries(on)) es.addEventListener(name, fn);
    })();
  }

  function roleAtLeast(role) {
    return !!me && ROLES.indexOf(me.role) >= ROLES.indexOf(role);
  }

  // the status line under the header: what happened, or what went wrong and what to do
  // offline: the last request got no answer or a 503; changeLost: that request was a change
  let statusTimer = null, offline = false, changeLost = false;
  function say(msg, kind = "info") {
    const el = document.getElementById("status");
    if (!el) return;
    el.className = kind;
    el.textContent = msg;
    delete el.dataset.notTaken;     // a tap not taken is said once, after what was said before it
    // a read's "did not answer" and a 503's words go by themselves once the station answers
    // again; a change's "may not have been saved" stays to be read (a page's refresh answered
    // took it away at once)
    if (offline && kind === "error" && !changeLost) el.dataset.offline = "1";
    else delete el.dataset.offline;
    if (kind === "error") changeLost = false;
    clearTimeout(statusTimer);
    if (kind !== "error") statusTimer = setTimeout(() => { el.textContent = ""; el.className = ""; delete el.dataset.notTaken; }, 6000);
  }

  // An error stays on screen until read; a new try (any form sent) takes it away, so it
  // never stands beside the answer to a later, good request.
  document.addEventListener("submit", () => {
    const el = document.getElementById("status");
    if (el && el.className === "error") { el.textContent = ""; el.className = ""; }
  }, true);

  // A touch panel's double tap lands its second tap on whatever moved under the finger:
  // the next part to review, the next alarm. What moves things calls settle(); an action
  // guarded with settling() is not taken in the moment after.
  const SETTLE_MS = 600;
  let settledAt = 0;
  const settle = () => { settledAt = Date.now(); };
  // true (and said, so a tap that does nothing is not a mystery) in the moment after a change.
  // What the status line said stays: a double tap's first tap was taken ("Alarm 1
  // acknowledged."), and "tap again" alone told the operator it was lost, so the next alarm
  // was acknowledged unread. An error stays as it is, to be read.
  const NOT_TAKEN = "What is on screen just changed: look, then tap again.";
  function settling() {
    if (Date.now() - settledAt >= SETTLE_MS) return false;
    const el = document.getElementById("status");
    if (!el || el.className === "error" || el.dataset.notTaken) return true;
    const before = el.textContent.trim();
    say(before ? `${before} Your next tap was not taken: what is on screen had just changed. Look, then tap again.`
      : NOT_TAKEN, el.className === "ok" ? "ok" : "info");
    el.dataset.notTaken = "1";
    return true;
  }

  // A form's action taken once, however often it is tapped: its submit button is
  // disabled until the answer (a double click made two keys, one of them never shown), and
  // for a moment after it (a quick station answered between a double click's two clicks:
  // the second made another key, unnamed, the form having been emptied).
  function once(form, fn) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const btn = form.querySelector("button[type=submit]");
      if (btn && btn.disabled) return;
      if (btn) btn.disabled = true;
      try { await fn(e); } catch (err) { fail(err); } finally {
        if (btn) setTimeout(() => { btn.disabled = false; }, SETTLE_MS);
      }
    });
  }

  function fail(err) {
    if (err && err.status === 401) return;
    say(String((err && err.message) || err), "error");
  }

  const NAV = [["/app/", "Line", "operator"], ["/app/gallery", "Gallery", "operator"],
    ["/app/review", "Review", "operator"], ["/app/spc", "SPC", "operator"], ["/app/report", "Shift report", "operator"],
    ["/app/tuning", "Tuning", "operator"], ["/app/models", "Models", "operator"],
    ["/app/testparts", "Test parts", "operator"], ["/app/alarms", "Alarms", "operator"],
    // the plant's other stations (serve --peer): an engineer's, who looks after several lines;
    // the page and its API are an operator's too (a line's tablet keeps its menu on one row)
    ["/app/plant", "Plant", "engineer"], ["/app/changes", "Change log", "engineer"],
    ["/app/admin", "Admin", "admin"]];

  function renderNav() {
    const nav = clear(document.getElementById("nav"));
    const page = document.body.dataset.page;
    const current = {line: "/app/", part: "/app/gallery"}[page] || "/app/" + page;
    for (const [href, label, role] of NAV) {
      if (!roleAtLeast(role)) continue;
      nav.appendChild(h("a", {href, class: href === current ? "current" : null}, label));
    }
    const who = clear(document.getElementById("who"));
    // a user's name leads to their password; a key has none to change
    const name = me.kind === "user" ? h("a", {href: "/app/account", title: "change your password"}, me.name) : me.name;
    who.appendChild(h("span", {class: "me", title: "signed in"}, name, " ", h("span", {class: "role"}, me.role)));
    who.appendChild(h("button", {class: "link", type: "button", onclick: signOut}, "Sign out"));
    // the menu is one row scrolled sideways where it does not fit (a phone; an engineer's at
    // 1024 px): the page the person is on in sight. Measured with the name beside it, which
    // takes the menu's room at 1024 px (measured before, Admin was out of sight)
    const on = nav.querySelector(".current");
    if (on && nav.scrollWidth > nav.clientWidth) {
      nav.scrollLeft = on.getBoundingClientRect().left - nav.getBoundingClientRect().left
        - (nav.clientWidth - on.offsetWidth) / 2;
    }
    navArrows();
  }

  // A menu scrolled sideways showed no sign of it (a phone hides the scrollbar): Models, Test
  // parts and Alarms were off the screen with nothing to say they were there. An arrow at each
  // edge with more beyond it says so, and a tap on it brings the rest into sight.
  let arrowsWired = false;
  function navArrows() {
    const nav = document.getElementById("nav");
    const left = document.getElementById("nav-left"), right = document.getElementById("nav-right");
    if (!nav || !left || !right) return;
    const update = () => {
      const more = nav.scrollWidth - nav.clientWidth;
      left.hidden = nav.hidden || !(nav.scrollLeft > 2);
      right.hidden = nav.hidden || !(nav.scrollLeft < more - 2);
    };
    if (!arrowsWired) {
      arrowsWired = true;
      const by = (dir) => () => nav.scrollBy({left: dir * Math.max(80, nav.clientWidth * 0.7), behavior: "smooth"});
      left.addEventListener("click", by(-1));
      right.addEventListener("click", by(1));
      nav.addEventListener("scroll", update, {passive: true});
      window.addEventListener("resize", update);
    }
    update();
  }

  async function signOut() {
    try { await api("/api/v1/session", {method: "DELETE", noRedirect: true}); } catch (_e) { /* gone anyway */ }
    location.assign("/app/signin");
  }

  // hide what the signed-in role may not do (the API checks again)
  function applyRoles(root = document) {
    for (const el of root.querySelectorAll("[data-role]")) {
      el.hidden = !roleAtLeast(el.dataset.role);
    }
  }

  // run a page: sign-in first, then its own code with the session
  function start(fn) {
    document.addEventListener("DOMContentLoaded", async () => {
      try {
        me = await api("/api/v1/session", {noRedirect: true});
      } catch (err) {
        if (err.status === 401) { toSignIn(); return; }
        clear(document.getElementById("main")).appendChild(
          h("p", {class: "error"}, "Cannot reach the station: " + err.message));
        return;
      }
      renderNav();
      const main = clear(document.getElementById("main"));
      try {
        await fn(main, me);
        applyRoles(main);
      } catch (err) { fail(err); }
    });
  }

  // -- formatting ------------------------------------------------------------------
  const pct = (x, d = 1) => (x === null || x === undefined || isNaN(x)) ? "–" : (100 * x).toFixed(d) + " %";
  const num = (x, d = 3) => (x === null || x === undefined || isNaN(x)) ? "–" : Number(x).toFixed(d);
  // a count with thousands separators, written as the pages' English writes its decimals
  // (toFixed's point): the browser's own locale gave "1.234 parts" beside "3.5 %" on a German PC
  const count = (x) => Number(x).toLocaleString("en-US");
  // A part's score beside the limit it was judged by: a bare "score 71.760" (or the photo's
  // "NG 71.8 / 36.3") said nothing to an operator. "score 71.760 (NG above 36.354: 1.97×)".
  function scoreText(it, d = 3) {
    const t = it.threshold;
    if (t === null || t === undefined || isNaN(t)) return `score ${num(it.score, d)}`;
    const times = t > 0 && it.score !== null && it.score !== undefined ? `: ${num(it.score / t, 2)}×` : "";
    return `score ${num(it.score, d)} (NG above ${num(t, d)}${times})`;
  }
  // what a score is, once per page, and the photo's label with it: ``it`` a part shown beside
  // it (its own label quoted, as the overlay writes it: 3 significant digits), or none
  const g3 = (x) => String(Number(Number(x).toPrecision(3)));
  function scoreMeans(it) {
    const label = it && it.score !== null && it.score !== undefined && it.threshold !== null
      && it.threshold !== undefined ? `${it.verdict} ${g3(it.score)} / ${g3(it.threshold)}` : "NG 71.8 / 36.3";
    return "A part's score says how unlike the good parts the model learnt from it looks (higher: less like "
      + "them); above the NG threshold the part is rejected. The label on a part's photo, e.g. "
      + `“${label}”, is its verdict, its score and the NG threshold.`;
  }
  // A time as the plant's clock shows it: every page shows and reads times in the plant's
  // zone (the session answer's), never the browser's, so an office PC, a remote laptop or a
  // tablet left on UTC see the shifts the plant works. One form on every page, whatever the
  // browser's language: year-month-day and a 24 h clock ("2026-12-06 22:15:03"). The
  // browser's own form wrote 12/6/2026, 10:15:03 PM, which a Berlin plant reads as 12 June,
  // beside the shift's "2026-12-06 S3".
  const p2 = (n, w = 2) => String(n).padStart(w, "0");
  function when(iso) {
    if (!iso) return "–";
    const t = new Date(iso);
    if (isNaN(t)) return String(iso);
    const [y, mo, d, hh, mi, ss] = wall(t.getTime());
    return `${p2(y, 4)}-${p2(mo)}-${p2(d)} ${p2(hh)}:${p2(mi)}:${p2(ss)}`;
  }
  function timeOnly(iso) {
    if (!iso) return "–";
    const t = new Date(iso);
    if (isNaN(t)) return String(iso);
    const [, , , hh, mi, ss] = wall(t.getTime());
    return `${p2(hh)}:${p2(mi)}:${p2(ss)}`;
  }
  // a station message's UTC times ("… at 2026-12-05T21:17:49.336910Z") on the plant's clock
  const ISO_UTC = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})/g;
  // and the minute-long form an alarm's own words use ("since about 2026-12-06 19:03 UTC", a
  // note's "[2026-12-06 06:40 UTC, who]"): on a Chicago line view it read 19:03 beside the
  // alarm's "since 13:03:58"
  const MINUTE_UTC = /\b(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}) UTC\b/g;
  const plantTimes = (text) => String(text).replace(ISO_UTC, (iso) => when(iso))
    .replace(MINUTE_UTC, (all, d, hm) => {
      const t = when(`${d}T${hm}:00Z`);
      return /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:00$/.test(t) ? t.slice(0, 16) : all;    // to the minute, as said
    });
  const verdictClass = (v) => "v-" + String(v || "").toLowerCase();
  const partUrl = (id) => "/app/parts/" + encodeURIComponent(id);
  const inspUrl = (id, what) => "/api/v1/inspections/" + encodeURIComponent(id) + (what ? "/" + what : "");
  // a picture for a screen: a camera's photo drawn at its full 5-12 megapixels costs the
  // station seconds and the browser megabytes; thumbnails and viewers ask for what they show
  const picUrl = (id, what, maxSide) => inspUrl(id, what) + "?max_side=" + maxSide;
  const THUMB_PX = 320, VIEW_PX = 1600;

  // -- the plant's clock ---------------------------------------------------------------
  // The session answer's timezone: an IANA name (Europe/Berlin), or "+01:00" where the
  // station has no zone set and counts by its PC's UTC offset. A fixed offset is shown as
  // UTC moved by it; a zone this browser does not know leaves its own (and says so).
  const OFFSET = /^([+-])(\d{2}):(\d{2})$/;
  let clock = null;
  function plantClock() {
    const z = (me && me.timezone) || "";
    if (clock && clock.name === z) return clock;
    const m = OFFSET.exec(z);
    let zone, shift = 0, label;
    if (m) {
      shift = (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) * 60000;
      zone = "UTC";
      label = shift ? `UTC${z} (the station PC's)` : "UTC";
    } else {
      try {
        if (z) { new Intl.DateTimeFormat("en-US", {timeZone: z}); zone = z; }
      } catch (_e) { zone = undefined; }
      label = zone || "this browser's time zone";
    }
    const fmt = new Intl.DateTimeFormat("en-US", {timeZone: zone, hourCycle: "h23", year: "numeric",
      month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric"});
    clock = {name: z, zone, shift, label, fmt, shiftStarts: (me && me.shift_starts) || []};
    return clock;
  }

  // ms since 1970 of a wall time read as UTC (years before 100 too)
  function utcMs(y, mo, d, hh, mi, ss) {
    const t = new Date(0);
    t.setUTCFullYear(y, mo - 1, d);
    t.setUTCHours(hh, mi, ss, 0);
    return t.getTime();
  }
  // the plant's wall clock at an instant: [year, month, day, hour, minute, second]
  function wall(ms) {
    const c = plantClock(), o = {};
    for (const part of c.fmt.formatToParts(new Date(ms + c.shift))) o[part.type] = part.value;
    return [Number(o.year), Number(o.month), Number(o.day), Number(o.hour) % 24, Number(o.minute), Number(o.second)];
  }
  // the plant's last whole month in plant days, ["2026-11-01", "2026-11-30"]: the period
  // report's window without from/until (line.period_report.window), said before it is issued
  function lastWholeMonth(ms = Date.now()) {
    const [y, mo] = wall(ms);
    const py = mo === 1 ? y - 1 : y, pm = mo === 1 ? 12 : mo - 1;
    const pad = (n) => String(n).padStart(2, "0");
    return [`${py}-${pad(pm)}-01`, `${py}-${pad(pm)}-${pad(new Date(Date.UTC(py, pm, 0)).getUTCDate())}`];
  }
  // the plant's UTC offset (ms) at an instant
  const offsetAt = (ms) => utcMs(...wall(ms)) - Math.floor(ms / 1000) * 1000;

  // <input type=datetime-local> value (the plant's wall time) <-> ISO UTC for the API
  const LOCAL = /^(\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?$/;
  function localToIso(v) {
    if (!v) return "";
    const m = LOCAL.exec(v);
    if (!m) { const t = new Date(v); return isNaN(t) ? "" : t.toISOString(); }
    const w = utcMs(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] || 0));
    const frac = m[7] ? Math.round(Number(m[7]) * 1000) : 0;
    // the offsets around that wall time (a day either side holds any daylight-saving change)
    const day = 864e5, before = offsetAt(w - day);
    const fits = [...new Set([before, offsetAt(w), offsetAt(w + day)])].map((o) => w - o)
      .filter((t) => offsetAt(t) === w - t);
    // clocks turned back: the wall time happens twice, read as the first; clocks turned
    // forward: it never happens, read by the offset before the change (as the station does)
    const t = fits.length ? Math.min(...fits) : w - before;
    return new Date(t + frac).toISOString();
  }
  // A day alone (an address's since=2026-11-01) is the plant's day, as the API reads it: a
  // start at its 00:00 on the plant's clock, an end (``end``: an until, exclusive) at the
  // 00:00 after it. new Date() read it as UTC midnight: 01:00 in Berlin, and the SPC page's
  // until=2026-11-30 lost the 30th.
  function isoToLocal(iso, end = false) {
    if (!iso) return "";
    const day = /^(\d{4,})-(\d{2})-(\d{2})$/.exec(iso);
    if (day) {
      const d = new Date(Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3]) + (end ? 1 : 0)));
      if (!isNaN(d)) return d.toISOString().slice(0, 10) + "T00:00";
    }
    const t = new Date(iso);
    if (isNaN(t)) return "";
    const [y, mo, d, hh, mi] = wall(t.getTime());
    const p = (n, w = 2) => String(n).padStart(w, "0");
    return `${p(y, 4)}-${p(mo)}-${p(d)}T${p(hh)}:${p(mi)}`;
  }
  // which zone the times are in, said where they are typed and beside a shift's times
  const zoneLabel = () => plantClock().label;
  const shiftStarts = () => plantClock().shiftStarts;
  function zoneNote() {
    return h("span", {class: "muted zone-note", title: "every time on these pages is the plant's clock"},
      "times in " + zoneLabel());
  }

  // A time typed on the plant's clock (<input type=datetime-local>, whose picker a touch panel
  // needs): the browser draws the field in its own language's form (an English browser on a
  // Berlin line: "12/06/2026, 10:00 PM", read there as 12 June), so what it holds is said
  // under it as every page writes times
  // a field named until (baseline_until) is a window's exclusive end
  const isEnd = (name) => /until$/.test(name);
  function timeField(label, name, iso) {
    const echo = h("span", {class: "time-echo", id: "time-echo-" + name});
    const input = h("input", {name, type: "datetime-local", value: isoToLocal(iso, isEnd(name)),
      "aria-describedby": echo.id});
    const show = () => {
      const m = LOCAL.exec(input.value);
      echo.textContent = m ? `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}` : "";
    };
    input.addEventListener("input", show);
    input.addEventListener("change", show);
    show();
    return h("label", {class: "field"}, h("span", {}, label), input, echo);
  }

  function field(label, input) {
    return h("label", {class: "field"}, h("span", {}, label), input);
  }

  function select(name, options, value) {
    const s = h("select", {name});
    for (const o of options) {
      const [v, text] = Array.isArray(o) ? o : [o, o === "" ? "any" : o];
      s.appendChild(h("option", {value: v, selected: String(v) === String(value ?? "")}, text));
    }
    return s;
  }

  function params() { return Object.fromEntries(new URLSearchParams(location.search)); }

  // A product's defect types as the station has them, read again when a minute old: an
  // engineer changes them on the Models page while review screens stay open all shift, and a
  // list kept as first read offered types the station then refused (422). A request that
  // fails gives the list last read, or else an empty list whose `unread` says it could not be
  // read (the caller shows that): the six defaults put in its place offered types the product
  // may not take. Empty, not an error: a caller that only lists them (the gallery's hints)
  // goes on. No product (the gallery across products): the defaults, what a product without
  // its own list offers.
  const DEFAULT_DEFECT_TYPES = ["scratch", "crack", "dent", "stain", "contamination", "other"];
  const DEFECT_TYPES_FRESH_MS = 60000;
  const defectTypeLists = new Map();     // product -> {at, list} as read, or {pending} while read
  function defectTypes(product) {
    if (!product) return Promise.resolve(DEFAULT_DEFECT_TYPES.slice());
    const had = defectTypeLists.get(product);
    if (had && had.pending) return had.pending;
    if (had && Date.now() - had.at < DEFECT_TYPES_FRESH_MS) return Promise.resolve(had.list);
    const pending = api("/api/v1/products/" + encodeURIComponent(product) + "/defect-types").then((d) => {
      defectTypeLists.set(product, {at: Date.now(), list: d.defect_types});
      return d.defect_types;
    }, (err) => {
      if (had) { defectTypeLists.set(product, had); return had.list; }   // read again on the next ask
      defectTypeLists.delete(product);
      return Object.assign([], {unread: `${product}'s defect types could not be read (${err.message}); `
        + "reload the page to try again"});
    });
    defectTypeLists.set(product, {pending});
    return pending;
  }
  // a list the station gave in another answer (a review refused with the product's list, a
  // list just saved): the one offered from now on, without a read of its own
  function defectTypesGiven(product, list) {
    if (product && Array.isArray(list)) defectTypeLists.set(product, {at: Date.now(), list});
  }

  // -- test parts: each line's verification in a shift (GET /api/v1/verification) ----
  const STATE_TEXT = {passed: "passed", failed: "FAILED", incomplete: "in progress", due: "due"};
  const STATE_CLASS = {passed: "v-ok", failed: "v-ng", incomplete: "v-review", due: "v-review"};

  // the gallery of the station's own parts a wrong check puts in doubt (its exact times:
  // the gallery keeps them while its time fields are left as they are)
  function doubtUrl(v, f) {
    return "/app/gallery" + q({line: v.line, station: v.station, product: v.product, verdict: f.doubt.verdict,
      test_parts: "false", since: f.doubt.since || "", until: f.doubt.until || ""});
  }

  // an issued report (a period report sent, a shift report signed) withdrawn with a reason,
  // engineers only (the API checks again); ``done`` after, with the words to say
  function withdrawForm(id, what, done) {
    const reason = h("input", {name: "reason", maxlength: 2000, size: 18, required: true,
      placeholder: "why (sent for the wrong line)", "aria-label": `why ${what} ${id} is withdrawn`});
    const f = h("form", {class: "inline withdraw no-print", "data-role": "engineer"}, " ", reason,
      h("button", {type: "submit", class: "secondary", "data-withdraw": id}, "Withdraw"));
    once(f, async () => {
      await api(`/api/v1/reports/issued/${id}/withdraw`, {method: "POST", body: {reason: reason.value}});
      await done();
    });
    return f;
  }

  // what differs now from an issued report (reviews and parts recorded since), said in the
  // status line: "Issued report 7: ...", "Signed report 9: ..."
  function changedSinceForm(id, what, buttonClass = "secondary") {
    const f = h("form", {class: "inline no-print"}, h("button", {type: "submit", class: buttonClass, "data-issued": id},
      "changed since?"));
    once(f, async () => {
      say(`${what} ${id}: ` + (await api(`/api/v1/reports/issued/${id}`)).changed_text + ".");
    });
    return f;
  }

  const onTestParts = () => location.pathname === "/app/testparts";

  function verificationTable(lines, id = "verification") {
    if (!lines.length) {
      // registering test parts is an engineer's: an operator is told whom to ask, not sent to a
      // page whose form they do not get
      return h("p", {class: "muted", id}, "No line ran a product with test parts in this shift "
        // on the Test parts page itself the form is below, not on "the Test parts page"
        + (roleAtLeast("engineer") ? (onTestParts() ? "(register them below)." : "(register them on the Test parts page).")
          : `(an engineer registers them on ${onTestParts() ? "this page" : "the Test parts page"}: ask one if this `
            + "line should have them)."));
    }
    // names are the plant's serials, up to 200 characters with no space: wrapped, never widening the
    // page; on a phone the table scrolls in its own box
    const table = h("div", {class: "table-wrap"}, h("table", {id, class: "wrap-names"}, h("tr", {}, ["line", "station", "product", "state", "test parts", ""]
      .map((t) => h("th", {}, t))),
    lines.map((v) => h("tr", {dataset: {line: v.line, station: v.station, product: v.product, state: v.state}},
      h("td", {}, v.line), h("td", {}, v.station), h("td", {}, v.product),
      h("td", {}, h("b", {class: STATE_CLASS[v.state] || ""}, STATE_TEXT[v.state] || v.state)),
      h("td", {}, v.test_parts.map((t) => h("div", {class: t.right === false ? "error" : t.right ? "v-ok" : "muted"},
        t.right === null ? "○ " : t.right ? "✓ " : "✗ ", h("b", {class: "tp-name"}, t.name),
        // what it must be now where its check was against another requirement ("must be NG · got NG"
        // read as a pass beside "put it through again")
        ` must be ${t.before_change ? t.expect : (t.expected || t.expect)}`,
        t.verdict ? ` · got ${t.verdict} at ${when(t.checked_at)}` : " · not seen yet",
        t.verdict && !t.this_shift ? " (before this shift)" : "",
        // right then, but the station judges otherwise since (a model made active, another camera)
        t.before_change ? " (before the change: put it through again)" : ""))),
      h("td", {},
        v.state === "passed" ? `at ${timeOnly(v.passed_at)} · ${v.parts_before_verification} part(s) made before` :
          v.passed_before_failure_at ? `passed at ${timeOnly(v.passed_before_failure_at)}, then a wrong check · `
            + `${v.parts_before_verification} part(s) made before it passed`
          : `${v.parts_before_verification} part(s) made this shift without a passed verification`,
        v.failures.map((f) => h("div", {class: f.cleared_at ? "muted" : "error"},
          h("b", {class: "tp-name"}, f.name), ` got ${f.verdict}, must be ${f.expected} (${when(f.at)})`,
          f.cleared_at ? ` · right again ${when(f.cleared_at)}` : "", " · ",
          h("a", {href: doubtUrl(v, f)}, `${f.doubt.parts} ${f.doubt.verdict} part(s) in doubt`),
          ` (${f.doubt.what}) since ${f.last_right_at ? "it was last right, " : "it was registered, "}`
          + when(f.doubt.since))))))));
    // why a line is due again (a model made active, another camera) and what to do, under the
    // table at the panel's width: in the row's last cell a phone squeezed it to a word a line,
    // past the screen's edge
    const reasons = lines.filter((v) => v.reason).map((v) => h("p", {class: "v-review verification-reason",
      dataset: {line: v.line, station: v.station, product: v.product}},
    h("b", {}, `${v.line} · ${v.station} (${v.product}): `), plantTimes(v.reason)));
    return reasons.length ? h("div", {}, table, ...reasons) : table;
  }

  return {h, svg, clear, q, api, whileSlow, ALARM_KIND, alarmKind, liveEvents, verificationTable, ApiError, say, fail, start, applyRoles, roleAtLeast, pct, num, count, scoreText, scoreMeans, g3, when, timeOnly, plantTimes,
    verdictClass, partUrl, inspUrl, picUrl, THUMB_PX, VIEW_PX, localToIso, isoToLocal, isEnd, takeLost, timeField, zoneLabel, zoneNote, shiftStarts,
    field, select, params, defectTypes, defectTypesGiven, get defaultDefectTypes() { return DEFAULT_DEFECT_TYPES.slice(); },
    lastWholeMonth, changedSinceForm, withdrawForm, settle, settling, SETTLE_MS, once, get me() { return me; }};
})();
