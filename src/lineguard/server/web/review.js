// Review queue: look at each REVIEW/NG part (or audit OK parts) and judge it from the
// keyboard. G good (false alarm), D defect, 1-9 defect type (chosen before D, or the answer
// that saves it once D asked which), J/K or arrows to move, ? keys.
"use strict";

LG.start(async (main) => {
  const {h, api, clear, num, verdictClass, inspUrl, picUrl, VIEW_PX, partUrl} = LG;
  const p = LG.params();
  let items = [], idx = 0, types = [], type = null, view = "overlay";
  // the part the chosen defect type belongs to: a type is chosen for one part, never carried
  // to the next (J past a part with a type chosen, D on the next saved it with that type unasked)
  let typeFor = null;

  const which = LG.select("queue", [["todo", "REVIEW and NG, not reviewed"], ["REVIEW", "REVIEW only"],
    // short labels: a wider list pushed the part's photo below a 1024x600 panel's screen
    ["NG", "NG only"], ["AUDIT", "OK, audit sample (escapes)"], ["OK", "OK, any (picked by hand)"]],
  p.queue || "todo");
  const lineIn = h("input", {name: "line", value: p.line || "", size: 8, placeholder: "every line"});
  // a listbox: one Tab stop, arrows move through it, Enter or Space opens the part (rows were
  // reachable by a mouse only)
  const listEl = h("ul", {role: "listbox", "aria-label": "parts to review"});
  const moreEl = h("div", {class: "more"});
  const queue = h("div", {class: "panel queue", id: "queue"}, listEl, moreEl);
  const detail = h("div", {class: "panel grow", id: "current"});
  const helpDlg = h("dialog", {id: "keys-help"}, h("h2", {}, "Keys"),
    h("table", {}, [["G", "good: a false alarm (on an OK part: confirms it good)"],
      ["D", "defect: confirm it (on an OK part: a missed defect, an escape)"],
      ["1 – 9", "pick the defect type (after D asked which defect: saves it as that type)"],
      ["J or →", "next part"], ["K or ←", "previous part"],
      ["O", "switch image / overlay"], ["?", "show these keys"]]
      .map(([k, t]) => h("tr", {}, h("td", {}, h("kbd", {}, k)), h("td", {}, t)))),
    h("form", {method: "dialog"}, h("button", {}, "Close")));
  main.append(h("div", {class: "row"}, h("h1", {class: "grow"}, "Review queue"),
    h("form", {class: "filters", onsubmit: (e) => { e.preventDefault(); reload().catch(LG.fail); }},
      LG.field("parts", which), LG.field("line", lineIn), h("button", {type: "submit", class: "secondary"}, "Load"),
      h("button", {type: "button", class: "secondary", onclick: () => helpDlg.showModal()}, "Keys (?)"))),
  h("div", {class: "row"}, h("div", {class: "queue-col"}, queue), detail), helpDlg);

  // A page at a time (newest first), the older ones loaded when the operator gets to
  // them: a queue never drops the oldest parts without saying so. REVIEW and NG are two
  // lists merged by id; only the parts down to where both are complete are shown. What
  // is asked (queue, line) is fixed at each Load: the form edited but not loaded asks nothing.
  const PAGE = Math.max(1, Math.min(1000, Number(p.page) || 200));
  let query = {verdicts: [], line: ""}, pools = {}, cursors = {}, known = new Set(), judged = new Map(), more = false;
  const mine = new Set();     // parts judged on this screen (and by nobody since): changing those asks nothing
  let loading = null, polling = false;

  async function fetchPage(verdict, before) {
    // test parts are known already: a failed one is on the Test parts page, not a review
    // the audit sample's OK parts were drawn before the verdict: their reviews are the
    // escape estimate the SPC page reports (OK parts picked because they looked odd are not)
    return api("/api/v1/inspections" + LG.q({verdict, reviewed: "false", line: query.line, limit: PAGE,
      test_parts: "false", audit_sample: query.audit ? "true" : undefined, cursor: before || undefined}));
  }

  // a part once in the queue is never added again (a page loaded twice, a poll overlapping)
  function add(v, parts, atTop) {
    const fresh = parts.filter((it) => !known.has(it.id));
    fresh.forEach((it) => known.add(it.id));
    pools[v] = atTop ? fresh.concat(pools[v]) : pools[v].concat(fresh);
    return fresh.length;
  }

  function merge() {
    const open = query.verdicts.filter((v) => cursors[v] && pools[v].length);
    // below the oldest part of a list with more to load, the other lists' parts could
    // come out of order: they wait for the next page
    const floor = open.length ? Math.max(...open.map((v) => pools[v][pools[v].length - 1].id)) : 0;
    more = query.verdicts.some((v) => cursors[v]);
    const cur = items[idx];
    items = [].concat(...query.verdicts.map((v) => pools[v])).filter((it) => it.id >= floor)
      .sort((x, y) => y.id - x.id).map((it) => judged.get(it.id) || it);
    if (cur) idx = Math.max(0, items.findIndex((it) => it.id === cur.id));
  }

  function loadOlder() {
    // one load at a time: J held down at the end asks for the next page once
    if (!loading) {
      loading = (async () => {
        const open = query.verdicts.filter((v) => cursors[v]);
        const pages = await Promise.all(open.map((v) => fetchPage(v, cursors[v])));
        open.forEach((v, i) => { add(v, pages[i].items, false); cursors[v] = pages[i].next_cursor; });
        merge();
        renderList();
      })().finally(() => { loading = null; });
    }
    return loading;
  }

  // keep: the page opened again (Back from a part's page, a reload) comes back on the part the
  // operator was on, kept in this history entry by show(); it came back on the queue's first
  // part, five parts of work to find again. A Load asked for starts at the top.
  async function reload(keep = false) {
    const back = keep && history.state && Number(history.state.reviewPart) || 0;
    const v = which.value;
    query = {verdicts: v === "todo" ? ["REVIEW", "NG"] : v === "AUDIT" ? ["OK"] : [v], audit: v === "AUDIT",
      line: lineIn.value.trim()};
    history.replaceState(back ? history.state : null, "", location.pathname + LG.q({queue: which.value, line: query.line,
      page: p.page, poll: p.poll}));
    pools = {}; cursors = {}; known = new Set(); judged = new Map(); items = []; idx = 0;
    const asked = query;
    const pages = await Promise.all(asked.verdicts.map((v) => fetchPage(v)));
    if (asked !== query) return;          // loaded again meanwhile
    asked.verdicts.forEach((v, i) => { pools[v] = []; add(v, pages[i].items, false); cursors[v] = pages[i].next_cursor; });
    merge();
    idx = 0;
    if (back) {
      // the older pages down to it loaded again, as they were when the operator left
      for (let n = 0; more && items.length && items[items.length - 1].id > back && n < 20; n++) await loadOlder();
      if (asked !== query) return;
      // judged since (no longer in the queue): the next older part, where the operator was going
      const at = items.findIndex((x) => x.id <= back);
      if (at >= 0) idx = at;
    }
    renderList();
    await show();
  }

  // the note being typed, kept by part in this tab: going to the part's own page and Back
  // lost it with the page
  const noteKey = (id) => "lineguard-review-note:" + id;
  function keptNote(id) {
    try { return sessionStorage.getItem(noteKey(id)) || ""; } catch (_e) { return ""; }
  }
  function keepNote(id, text) {
    try {
      if (text) sessionStorage.setItem(noteKey(id), text);
      else sessionStorage.removeItem(noteKey(id));
    } catch (_e) { /* storage off: the note lives as long as the page */ }
  }

  // parts judged since the queue was loaded come in on top, the current part staying
  // current; paged back to the newest part already here (more than a page may have come)
  async function newer() {
    if (polling || loading) return;
    polling = true;
    try {
      const asked = query;
      let added = 0;
      for (const v of asked.verdicts) {
        const top = (pools[v][0] || {id: 0}).id;
        let cursor, pages = 0;
        do {
          const page = await fetchPage(v, cursor);
          if (asked !== query) return;
          added += add(v, page.items.filter((it) => it.id > top), true);
          cursor = page.items.length && page.items[page.items.length - 1].id > top ? page.next_cursor : null;
        } while (cursor && ++pages < 50);
        pools[v].sort((x, y) => y.id - x.id);
      }
      if (!added) return;
      const wasEmpty = !items[idx];
      merge();
      renderList();
      // a question or an error on the status line stays until read
      const st = document.getElementById("status");
      if (!st || !["error", "info"].includes(st.className) || !st.textContent) {
        LG.say(`${added} new part${added === 1 ? "" : "s"} to review`, "ok");
      }
      if (wasEmpty) await show();
    } finally { polling = false; }
  }
  setInterval(() => {
    if (document.hidden) return;
    newer().catch(() => {});
    if (unsure.size) recheckUnsure().catch(() => {});
  }, 1000 * (Number(p.poll) || 20));

  // Live, as the line view: a part judged NG or REVIEW comes in within a second (the poll
  // above stays for parts another process recorded, a hot folder's watcher), and a part
  // reviewed on another screen shows as done here, not reviewed twice.
  const sameLine = (line) => !query.line || String(line).trim().toLowerCase() === query.line.toLowerCase();
  let soon = null;
  // A review made while the stream was down (a Wi-Fi drop, a 503), or before it first answered
  // (the page's own loading read the part before), reaches this screen no other way: the part
  // on screen is read again each time the stream opens, so a tap cannot overturn it unasked;
  // parts judged meanwhile are read too (they waited for the poll, 20 s).
  LG.liveEvents({
    inspection: (ev) => {
      const it = JSON.parse(ev.data);
      if (!query.verdicts.includes(it.verdict) || !sameLine(it.line) || it.test_part
          || (query.audit && !it.audit_sample)) return;
      if (!soon) soon = setTimeout(() => { soon = null; newer().catch(() => {}); }, 1000);   // a burst: one read
    },
    review: (ev) => heard(JSON.parse(ev.data)),
    // the sign-in ended (disabled, signed out elsewhere, a new password): as on the line view,
    // to the sign-in page (api() goes there on the 401); the queue stayed open as if signed in
    ended: () => { api("/api/v1/session").catch(() => {}); },
  }, () => {
    const it = items[idx];
    if (it) api(inspUrl(it.id)).then((rec) => { if (rec.review && rec.review.reviewed) heard(rec); }).catch(() => {});
    recheckUnsure().catch(() => {});
    newer().catch(() => {});
  }, () => { api("/api/v1/session").catch(() => {}); });     // a broken stream: still signed in?
  // Parts whose review got no answer (the station or the network down): it may or may not have
  // been saved. Marked in the list, by part, until the station answers whether it was; the
  // status line's message goes by itself at the next answer and named no part.
  const unsure = new Map();          // inspection id -> {part, label, told}
  async function recheckUnsure() {
    for (const [id, u] of [...unsure]) {
      const rec = await api(inspUrl(id));
      if (unsure.get(id) !== u) continue;     // judged again meanwhile
      if (rec.review && rec.review.reviewed) {
        unsure.delete(id);
        heard(rec);
        renderList();
        LG.say(`${rec.part_id}: its review reached the station after all (${rec.review.label} by `
          + `${rec.review.reviewer}).`, "ok");
      } else if (!u.told) {
        u.told = true;
        tell(`${rec.part_id} was not saved: judge it again (it is marked “not saved?” in the list).`, "error");
      }
    }
  }

  function heard(rec) {
    const at = items.findIndex((x) => x.id === rec.id);
    const had = judged.get(rec.id);
    if (at < 0) return;
    // reviewed here (its answer came already) and not since by anyone else: nothing new
    if (had && had.review && rec.review && had.review.reviewer === rec.review.reviewer
        && had.review.label === rec.review.label && (had.defect_type || null) === (rec.defect_type || null)) return;
    judged.set(rec.id, rec);
    mine.delete(rec.id);       // someone else's review now: changing it asks first
    items[at] = rec;
    renderList();
    const state = document.getElementById("review-state");
    if (at === idx && state) {     // the note being typed stays: only the line that says who reviewed it
      state.textContent = `reviewed on another screen: ${rec.review.label}${rec.defect_type ? " (" + rec.defect_type + ")" : ""}`
        + ` by ${rec.review.reviewer}`;
    }
  }

  // where the operator is, and how far the list is worked through (reviewed here or on
  // another screen): "11 of 34" alone never said how many were left
  const position = () => {
    const done = items.filter((it) => it.review.reviewed).length;
    return `${idx + 1} of ${items.length}${more ? "+ (older ones load at the end)" : ""} · ${done} reviewed, `
      + `${items.length - done}${more ? "+" : ""} to review`;
  };

  function pick(i) { if (i !== idx) { leaving(); idx = i; renderList(); show().catch(LG.fail); } }

  function renderList() {
    // the list is built again: the row that had the keyboard's focus gives it to the current one
    const hadFocus = listEl.contains(document.activeElement);
    clear(listEl);
    if (!items.length && !more) listEl.appendChild(h("li", {class: "muted", role: "option", "aria-disabled": "true"}, "Nothing to review."));
    items.forEach((it, i) => {
      const cur = i === idx;
      listEl.appendChild(h("li", {class: (cur ? "current " : "") + (it.review.reviewed ? "done" : ""),
        role: "option", "aria-selected": String(cur), "aria-current": cur ? "true" : null, tabindex: cur ? 0 : -1,
        dataset: {id: it.id}, onclick: () => pick(i),
        onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(i); } }},
      h("b", {class: verdictClass(it.verdict)}, it.verdict), " ", it.part_id, " ",
      // the number against its limit on pointing at it (the list stays one line a part)
      h("span", {class: "muted", title: LG.scoreText(it)}, num(it.score)),
      // a run of these in the list is the camera's, not the parts'
      (it.photo_issues || []).length ? h("span", {class: "photo-flag", title: "the photo is unlike the good photos: "
        + it.photo_issues.join("; ")}, " photo") : null,
      // what it was reviewed as, not only struck through: good and defect told apart in the list
      it.review.reviewed ? h("span", {class: "reviewed-as " + (it.review.label === "good" ? "v-ok" : "v-ng")},
        ` ${it.review.label === "good" ? "✓ good" : "✗ defect"}${it.defect_type ? " (" + it.defect_type + ")" : ""}`)
        : null,
      unsure.has(it.id) && !it.review.reviewed ? h("span", {class: "unsure", title: "its review got no answer from "
        + "the station: look once it answers"}, " not saved?") : null));
    });
    if (!listEl.querySelector("[tabindex='0']") && listEl.firstChild) listEl.firstChild.tabIndex = 0;
    clear(moreEl);
    if (more) {
      moreEl.appendChild(h("button", {type: "button", class: "secondary", id: "load-older",
        onclick: () => loadOlder().catch(LG.fail)}, "Load older parts"));
    }
    if (hadFocus && listEl.children[idx]) listEl.children[idx].focus({preventScroll: true});
    // the list scrolled to the current part, the page not: under the part (a narrow screen)
    // the list's own scrolling into view took the part's photo off the top of the screen
    const cur = listEl.children[idx];
    if (cur) {
      const box = queue.getBoundingClientRect(), at = cur.getBoundingClientRect();
      if (at.top < box.top) queue.scrollTop -= box.top - at.top;
      else if (at.bottom > box.bottom) queue.scrollTop += at.bottom - box.bottom;
    }
    const pos = document.getElementById("position");
    if (pos && items[idx]) pos.textContent = position();
  }

  // refocus: where the keyboard's focus goes once the part is shown (the part before it, and
  // the button that judged it, are gone): its heading now, its Good button once that is usable
  // guard: the part came up after a key (a verdict or J/K): G and D wait a moment after its
  // photo is there, as a tap does (a second G 150 ms after the first judged a part seen for
  // 100 ms); Good and Defect stay greyed meanwhile, so the wait is seen
  async function show(refocus = false, guard = false) {
    // focus in the part being replaced goes to the next one, not to the page's top
    refocus = refocus || detail.contains(document.activeElement);
    clear(detail);
    // the part before is gone: nothing judges this one until its photo is there
    const token = ++showing;
    shown = false;
    keyGuard = guard;
    clearTimeout(guardTimer);
    const it = items[idx];
    if (!it) {
      // The audit sample with no part drawn yet (a new station, a line that just started) said
      // "every part here is reviewed": an audit nobody did read as one done. Asked without the
      // "not reviewed" filter: none at all means none was drawn.
      const asked = query;
      const drawn = query.audit ? await api("/api/v1/inspections" + LG.q({verdict: "OK", audit_sample: "true",
        test_parts: "false", line: query.line, limit: 1})).then((r) => r.items.length > 0, () => true) : true;
      if (token !== showing || asked !== query) return;
      // a line no part has (a slip: "zzz" for L1) read as "all done" while NG parts waited
      detail.appendChild(h("p", {class: "muted", id: "queue-empty"}, !drawn
        ? `No part of the audit sample here yet${query.line ? ` on line ${query.line}` : ""}: the station draws `
          + "OK parts into it as they are made, and none has been drawn" + (query.line ? " (or no part is on a line "
          + "of that name)." : ".")
        : query.line
          ? `No part of line ${query.line} waits here: every one is reviewed, or no part is on a line of that name `
            + "(clear the line to see every line's)."
          : "The queue is empty: every part here is reviewed."));
      return;
    }
    // this history entry remembers the part: Back from its page comes back to it (reload)
    try { history.replaceState(Object.assign({}, history.state, {reviewPart: it.id}), ""); } catch (_e) {
      /* a browser throttling J held down: the part before is remembered */ }
    // the product's list, read again when a minute old (LG.defectTypes): a type an engineer adds
    // on the Models page reaches a review screen left open all shift
    types = await LG.defectTypes(it.product);
    const typesUnread = types.unread;
    if (token !== showing) return;       // another part was asked for meanwhile
    if (!types.includes(type) || typeFor !== it.id) type = null;
    const img = it.stored && it.stored.image
      ? h("img", {src: picUrl(it.id, view === "overlay" ? "overlay" : "image", VIEW_PX), alt: "part " + it.part_id,
          id: "part-image"})
      : h("div", {class: "noimg"}, "image not kept");
    // the photo arriving moves the buttons under it: a tap in that moment was aimed elsewhere,
    // and before it the part would be judged unseen, so Good and Defect wait for it (or for
    // its failing to load, said in its place: the part can still be judged from its score)
    const usable = () => {
      if (token !== showing) return;
      keyGuard = false;
      for (const b of detail.querySelectorAll("#btn-good, #btn-defect")) b.disabled = false;
      const good = document.getElementById("btn-good");
      if (good && document.activeElement === document.getElementById("part-heading") && !good.closest("[hidden]")) good.focus();
    };
    const seen = () => {
      if (token !== showing) return;
      shown = true;
      LG.settle();
      if (guard) guardTimer = setTimeout(usable, LG.SETTLE_MS);
      else usable();
    };
    if (img.tagName === "IMG") {
      img.addEventListener("load", seen, {once: true});
      img.addEventListener("error", () => {
        img.replaceWith(h("div", {class: "noimg", id: "part-image"}, "the photo could not be loaded"));
        seen();
      }, {once: true});
    }
    const typeBtns = typeButtons();
    const note = h("input", {id: "note", placeholder: "note (optional)", size: 30, maxlength: 2000, "aria-label": "note",
      value: keptNote(it.id), oninput: (e) => keepNote(it.id, e.target.value)});
    // The photo check doubted the photo (a lamp, the exposure, the focus): a part whose score
    // passed came here for its photo, not its score. Said first, in the part page's words,
    // and the question is then about the part as the photo shows it: "false alarm" asked
    // of a part the model never flagged read as a question about the model.
    const issues = it.photo_issues || [];
    const photoDoubt = issues.length ? h("div", {class: "photo-doubt-card", id: "photo-issues", role: "note"},
      h("p", {}, h("b", {}, "Photo: "), "unlike the good photos the model learnt from"
        + (it.verdict === "REVIEW" ? " (not passed on its score): " : ": ") + issues.join("; ")),
      h("p", {}, "Judge the part itself as the photo shows it. Several such photos in a row: have the camera "
        + "and the lamp looked at.")) : null;
    const goodLabel = it.verdict === "OK" ? "Good" : issues.length ? "Part is good" : "False alarm: good";
    const defectLabel = it.verdict === "OK" ? "Missed defect" : issues.length ? "Part has a defect" : "Confirm defect";
    detail.append(
      h("h2", {id: "part-heading", tabindex: -1}, h("a", {href: partUrl(it.id)}, it.part_id), " ",
        h("span", {class: "badge " + verdictClass(it.verdict), id: "current-verdict"}, it.verdict),
        " ", h("span", {class: "muted", id: "position"}, position())),
      h("div", {class: "row"},
        h("div", {class: "rq-photo"}, h("div", {class: "viewer"}, img),
          // what the keys do, for a touch panel with no keyboard
          h("div", {class: "row nav-buttons"},
            h("button", {type: "button", class: "secondary", id: "btn-prev", onclick: () => move(-1).catch(LG.fail)},
              "◀ Previous (K)"),
            h("button", {type: "button", class: "secondary", id: "btn-view", onclick: toggleView}, viewLabel()),
            h("button", {type: "button", class: "secondary", id: "btn-next", onclick: () => move(1).catch(LG.fail)},
              "Next (J) ▶"))),
        h("div", {class: "rq-facts"},
          photoDoubt,
          LG.chart.fittedScoreBar(it.score, it.threshold, it.review_threshold),
          h("p", {}, h("span", {id: "score-text", title: LG.scoreMeans(it)}, LG.scoreText(it)),
            ` · ${it.line}/${it.station} · ${it.product}`, it.lot ? ` · lot ${it.lot}` : "", ` · ${LG.when(it.created_at)}`),
          // what the score is, beside the one part shown (the queue's numbers are the same kind)
          h("p", {class: "muted small", id: "score-means"}, LG.scoreMeans(it)),
          h("p", {class: "muted", id: "review-state"}, it.review.reviewed
            ? `reviewed: ${it.review.label}${it.defect_type ? " (" + it.defect_type + ")" : ""} by ${it.review.reviewer}`
            : "not reviewed"),
          h("div", {class: "types", id: "types"}, typeBtns),
          // no list to offer: said, not six made-up types the station may refuse
          typesUnread ? h("p", {class: "error", id: "types-unread"}, typesUnread
            + ". D saves a defect without a type meanwhile.") : genericTypes(it.product),
          h("p", {}, note),
          // on a phone this bar stays at the foot of the screen: the photo fills the width above it
          h("div", {class: "judge-bar", dataset: {role: "operator"}},
            h("div", {class: "row"},
              // a tap in the moment after the part came up was meant for the one before
              h("button", {type: "button", class: "good", id: "btn-good", disabled: true,
                onclick: () => LG.settling() || judge("good")},
                goodLabel, h("span", {class: "key-hint"}, " (G)")),
              h("button", {type: "button", class: "danger", id: "btn-defect", disabled: true,
                onclick: () => LG.settling() || judge("defect")},
                defectLabel, h("span", {class: "key-hint"}, " (D)"))),
            // a question about this part, beside its buttons: the status line may be off screen
            h("p", {class: "ask", id: "ask", role: "alert"})))));
    LG.applyRoles(detail);
    if (refocus) {
      const good = document.getElementById("btn-good");
      if (good && !good.disabled && !good.closest("[hidden]")) good.focus();
      else document.getElementById("part-heading").focus();
    }
    LG.settle();          // from when the part's buttons are there (its defect types may take a moment)
    if (img.tagName !== "IMG") seen();     // no photo to wait for: the part is all on screen now
  }

  // the picture and the button only: the note being typed and the type chosen stay, and
  // Good/Defect stay usable (a new part would settle the tap guard)
  const viewLabel = () => (view === "overlay" ? "Show the photo alone (O)" : "Show the defect overlay (O)");

  function toggleView() {
    view = view === "overlay" ? "image" : "overlay";
    const it = items[idx], img = document.getElementById("part-image"), btn = document.getElementById("btn-view");
    if (it && img) img.src = picUrl(it.id, view === "overlay" ? "overlay" : "image", VIEW_PX);
    if (btn) btn.textContent = viewLabel();
  }

  // The station's six general types are what a product offers until an engineer sets its own
  // list: said, so a missing type is asked for where it is set, and by whom (an operator sees
  // the Models page but cannot change the list there)
  function genericTypes(product) {
    const general = LG.defaultDefectTypes;
    if (types.length !== general.length || types.some((t, i) => t !== general[i])) return null;
    const where = h("a", {href: "/app/models" + LG.q({product}) + "#defect-types"}, "Models page, under Defect types");
    return h("p", {class: "muted", id: "types-generic"}, `These are the station's general defect types: ${product} `
      + "has no list of its own yet. ", LG.roleAtLeast("engineer")
      ? ["Set its own on the ", where, "."]
      : ["A type missing? Ask an engineer to set the product's list (", where, ")."]);
  }

  function typeButtons() {
    return types.map((t, i) => h("button", {type: "button", class: t === type ? "on" : null,
      "aria-pressed": String(t === type),
      dataset: {type: t}, onclick: () => pickType(i, true)}, i < 9 ? `${i + 1} ${t}` : t));
  }

  // The station refused the type (422 naming the product's list): an engineer changed the list
  // since this screen read it. The list is shown as it now is and the part asks for its type
  // again; where a missing type is added is said to the person who can add it (the API's own
  // words named a PUT request). Returns whether it was that refusal.
  function typeRefused(err, it, asked) {
    const e = err && err.status === 422 && err.body && err.body.error;
    if (!e || !Array.isArray(e.defect_types) || !asked) return false;
    LG.defectTypesGiven(it.product, e.defect_types);
    types = e.defect_types;
    type = null;
    const el = document.getElementById("types");
    if (el && items[idx] === it) clear(el).append(...typeButtons());
    untypedAsked = it.id;        // a type now pressed saves it, as after "Which defect?"
    const keys = types.length === 1 ? "1" : `1-${Math.min(9, types.length)}`;
    const text = `${it.part_id} not saved: “${asked}” is no longer one of ${it.product}'s defect types (now `
      + `${types.join(", ")}). Press one of them (${keys}), or D again to save it with no type. A type missing `
      + "from the list is added by an engineer on the Models page, under Defect types.";
    LG.say(text, "error");
    const askEl = document.getElementById("ask");
    if (askEl && items[idx] === it) {
      clear(askEl).append(text.replace(/Models page, under Defect types\.$/, ""),
        h("a", {href: "/app/models" + LG.q({product: it.product}) + "#defect-types", id: "types-where"},
          "Models page, under Defect types"), ".");
      showTypes();
    }
    return true;
  }

  function markType() {
    for (const b of detail.querySelectorAll(".types button")) {
      b.classList.toggle("on", b.dataset.type === type);
      b.setAttribute("aria-pressed", String(b.dataset.type === type));     // chosen: said, not only coloured
    }
  }

  // Before D a type is chosen (pressed again: unchosen) and D saves the defect with it. Once D
  // asked "which defect?", the type is the answer: the defect is saved with it at once, as a
  // D or a G is. Only highlighting it there left the part unreviewed under the same question,
  // and a second press unchose it, so the D after saved the defect untyped.
  // tapped: a type button, not a key (a tap in the moment after the question was aimed elsewhere)
  function pickType(i, tapped = false, byKey = false) {
    if (i >= types.length) return;
    const it = items[idx];
    if (it && untypedAsked === it.id) {
      if (busy) { stillSaving(); return; }
      if (tapped && LG.settling()) return;
      type = types[i];
      typeFor = it.id;
      markType();
      judge("defect", byKey);
      return;
    }
    type = types[i] === type ? null : types[i];
    typeFor = it ? it.id : null;
    markType();
  }

  // A defect without its type feeds the Pareto nothing: the first D asks for the type (a
  // type then saves it, pickType), a second D on the same part saves it untyped (an unknown
  // kind is still a defect).
  // busy: the part id whose review is on its way to the station (one at a time)
  let busy = null, untypedAsked = null, overrideAsked = null, shown = false;
  // a tap while a review is on its way: said, not dropped in silence (a second tap on a hung
  // station looked taken, and the operator went on sure two parts were judged)
  const stillSaving = () => tell(`Still saving the last review (${busy}): wait for the station's answer, then go on.`);
  let showing = 0, keyGuard = false, guardTimer = null;
  function ask(text) {
    LG.say(text, "info");
    const el = document.getElementById("ask");
    if (el) {
      el.textContent = text;
      el.classList.remove("error");
      delete el.dataset.told;
      el.scrollIntoView({block: "nearest"});
    }
    LG.settle();     // a double tap's second tap is not the "again" that confirms
  }
  // What became of a review (saving, no answer yet, may not have been saved) said beside Good
  // and Defect as well as on the status line: on a phone scrolled down to the photo the status
  // line is above the screen, and "may not have been saved" went there unseen
  function tell(text, kind = "info") {
    LG.say(text, kind);
    const el = document.getElementById("ask");
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("error", kind === "error");
    el.dataset.told = "1";
  }
  // the saving words taken away once answered (a question asked since stays)
  function untell() {
    const el = document.getElementById("ask");
    if (el && el.dataset.told) { el.textContent = ""; el.classList.remove("error"); delete el.dataset.told; }
  }
  function failed(err) {
    if (err && err.status === 401) return;       // on its way to the sign-in page, which says it
    tell(String((err && err.message) || err), "error");
  }
  // Good and Defect marked while the part's review is on its way (a hung station showed them as
  // ready, the same part on screen, nothing said): both greyed, the one pressed saying
  // "saving…". Not disabled: a tap meanwhile is answered "still saving", not silently lost.
  function markSaving(it, label) {
    if (items[idx] !== it) return () => {};
    const btns = [...detail.querySelectorAll("#btn-good, #btn-defect")];
    const pressed = document.getElementById(label === "good" ? "btn-good" : "btn-defect");
    const note = h("span", {class: "saving-note"}, " saving…");
    for (const b of btns) { b.classList.add("saving"); b.setAttribute("aria-busy", "true"); }
    if (pressed) pressed.appendChild(note);
    return () => {
      for (const b of btns) { b.classList.remove("saving"); b.removeAttribute("aria-busy"); }
      note.remove();
    };
  }
  const SLOW_S = 3;      // seconds without an answer before the station is said to be slow
  // the defect types in sight for "which defect?": on a phone they were below the screen,
  // and the bar at its foot (the question in it) covers the last of it
  function showTypes() {
    const el = document.getElementById("types"), bar = document.querySelector(".judge-bar");
    if (!el) return;
    el.scrollIntoView({block: "nearest"});
    if (bar && getComputedStyle(bar).position === "fixed") {
      const under = el.getBoundingClientRect().bottom - bar.getBoundingClientRect().top;
      if (under > 0) window.scrollBy(0, under + 8);
    }
  }

  // byKey: G, D or a type's number (the next part then comes up guarded, see show)
  async function judge(label, byKey = false) {
    const it = items[idx];
    if (!it) return;
    if (busy) { stillSaving(); return; }
    if (!shown) { ask("The photo is still loading: look at the part first."); return; }
    if (keyGuard) {        // said on the status line only: the question beside the buttons stays
      LG.say(`${it.part_id} just came up: look at it, then press ${label === "good" ? "G" : "D"} again.`, "info");
      return;
    }
    // judged on another screen meanwhile: one tap must not overturn it (a confirmed defect
    // made good is learnt as good by the next retraining)
    if (it.review && it.review.reviewed && !mine.has(it.id) && it.review.label !== label && overrideAsked !== it.id) {
      overrideAsked = it.id;
      ask(`Already reviewed as ${it.review.label}${it.defect_type ? " (" + it.defect_type + ")" : ""} by `
        + `${it.review.reviewer}. Press again to change it to ${label}.`);
      return;
    }
    if (label === "defect" && !type && types.length && untypedAsked !== it.id) {
      untypedAsked = it.id;
      // what the next key does, exactly: the keys only reach the first nine types
      const keys = types.length === 1 ? "1" : `1-${Math.min(9, types.length)}`;
      // a touch panel has no keys: the tap first, the key beside it
      ask(`Which defect? Tap its type or press its key (${keys}) to save it as that type; Defect (D) again saves `
        + "it with no type");
      showTypes();
      return;
    }
    untypedAsked = null;
    overrideAsked = null;
    busy = it.part_id;
    // answered: the question gives way to what becomes of the review (a failed save says so itself)
    const unmark = markSaving(it, label);
    tell(`Saving ${it.part_id} (${label === "good" ? "good" : "defect"})…`);
    try {
      const note = (document.getElementById("note") || {}).value || null;
      // the review this screen showed: one that came meanwhile is refused (409), not overwritten
      const seen = it.review && it.review.reviewed ? it.review.reviewed_at : "none";
      const body = {label, defect_type: label === "defect" ? type : null, note: note || null, seen_review: seen};
      // an escape found here was found by the audit sample (its part drawn for it) or at the
      // station's own review: said, so the month report tells them from the customer's
      if (label === "defect" && it.verdict === "OK") body.found_by = it.audit_sample ? "audit" : "station review";
      let rec;
      try {
        rec = await LG.whileSlow(api(inspUrl(it.id, "review"), {method: "POST", body,
          lost: `the review of ${it.part_id} (${label}${body.defect_type ? ", " + body.defect_type : ""})`}),
        (s) => tell(`The station has not answered for ${s} s: the review of ${it.part_id} may not be saved yet. `
          + "Wait for its answer here before judging the next part; if none comes, have the station looked at."),
        SLOW_S);
      } catch (err) {
        if (typeRefused(err, it, body.defect_type)) return;
        const e = err && err.body && err.body.error;
        if (!(err.status === 409 && e && e.code === "review_changed")) throw err;
        // another screen judged it a moment before: both said "saved", and a confirmed
        // defect became good. Shown as it now is; pressing again replaces it knowingly.
        const now = e.review;
        it.review = now ? Object.assign({}, now, {reviewed: true}) : {reviewed: false};
        if (now) it.defect_type = now.defect_type;
        mine.delete(it.id);
        renderList();
        const state = document.getElementById("review-state");
        if (state && now) state.textContent = `reviewed on another screen: ${now.label}`
          + `${now.defect_type ? " (" + now.defect_type + ")" : ""} by ${now.reviewer}`;
        if (now && now.label === label && (now.defect_type || null) === (body.defect_type || null)) {
          untell();
          LG.say(`${it.part_id}: already ${label === "good" ? "marked good" : "confirmed as a defect"} by `
            + `${now.reviewer}`, "info");
          return;
        }
        overrideAsked = it.id;
        ask(now ? `Reviewed meanwhile as ${now.label}${now.defect_type ? " (" + now.defect_type + ")" : ""} by `
          + `${now.reviewer} at ${LG.when(now.reviewed_at)}. Press again to change it to ${label}.`
          : "Its review was taken back meanwhile: look at it, then press again.");
        return;
      }
      mine.add(rec.id);
      unsure.delete(rec.id);
      judged.set(rec.id, rec);
      keepNote(rec.id, "");      // saved with it: not offered again
      untell();
      // a defect on a part judged OK is an escape found, not a reject confirmed
      const said = label === "good" ? "marked good" : it.verdict === "OK" ? "missed defect recorded (an escape)"
        : "defect confirmed";
      LG.say(`${rec.part_id}: ${said}${body.defect_type ? " (" + body.defect_type + ")" : ""}`, "ok");
      // by id: the operator may have moved on while this was saved
      const at = items.findIndex((x) => x.id === rec.id);
      if (at >= 0) items[at] = rec;
      if (idx !== at) {     // moved on: the part on screen, its type and note being chosen, stay as they are
        renderList();
        return;
      }
      type = null;   // each part gets its own type, never the last one's by accident
      if (idx < items.length - 1) idx += 1;
      else if (more) { await loadOlder(); idx = Math.min(items.findIndex((x) => x.id === rec.id) + 1, items.length - 1); }
      renderList();
      await show(true, byKey);
    } catch (err) {
      if (!(err && err.status === 0)) { failed(err); return; }
      // no answer: the part named (the operator may be on the next one by the time it is read),
      // and marked in the list until the station says whether it was saved
      unsure.set(it.id, {part: it.part_id, label, told: false});
      renderList();
      tell(`${it.part_id}: “${label === "good" ? "good" : "defect"}” may not have been `
        + "saved: the station did not answer (network or station down). It is marked “not saved?” in the list "
        + "until the station answers whether it was.", "error");
    } finally { busy = null; unmark(); }
  }

  // Going to another part with a question about this one open: the part was not saved, and
  // is said so (it stayed in the queue with no word, the operator sure it was judged).
  function leaving() {
    const it = items[idx];
    if (it && (untypedAsked === it.id || overrideAsked === it.id)) {
      const what = untypedAsked === it.id ? "defect not saved (its type was asked for, none given)"
        : "review not changed (the change was not confirmed)";
      LG.say(`${it.part_id}: ${what}${it.review.reviewed ? "" : ": still not reviewed"}`, "info");
    }
    // back at it later, the question is asked again, not taken as answered
    untypedAsked = null;
    overrideAsked = null;
  }

  async function move(d, byKey = false) {
    if (d > 0 && idx >= items.length - 1 && more) await loadOlder();
    const n = Math.max(0, Math.min(items.length - 1, idx + d));
    if (n !== idx) { leaving(); idx = n; renderList(); await show(false, byKey); }
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const k = e.key;
    // arrows scroll the page unless the focus is on the queue or the part (J and K work anywhere)
    const arrow = k.startsWith("Arrow");
    if (arrow && !(queue.contains(e.target) || detail.contains(e.target)
        || (e.target === document.body && document.documentElement.scrollHeight <= innerHeight))) return;
    if (k === "?") { helpDlg.open ? helpDlg.close() : helpDlg.showModal(); }
    else if (helpDlg.open) return;
    // a key held down repeats: it judges the part in front of the operator once, not the ones after
    // pressed twice, the second press lands on the part just come up: not taken (show's guard)
    else if (k === "g" || k === "G") { if (LG.roleAtLeast("operator") && !e.repeat) judge("good", true); }
    else if (k === "d" || k === "D") { if (LG.roleAtLeast("operator") && !e.repeat) judge("defect", true); }
    // held down: the next part's type is not chosen by the repeat
    else if (/^[1-9]$/.test(k)) { if (!e.repeat) pickType(Number(k) - 1, false, true); }
    else if (k === "j" || k === "J" || k === "ArrowRight" || k === "ArrowDown") move(1, true).catch(LG.fail);
    else if (k === "k" || k === "K" || k === "ArrowLeft" || k === "ArrowUp") move(-1, true).catch(LG.fail);
    else if (k === "o" || k === "O") toggleView();
    else return;
    e.preventDefault();
  });

  await reload(true);
});
