// Defect gallery: parts by line, station, product, lot, time, verdict, defect type, reviewed,
// photo doubted; the same parts as a spreadsheet; one part found by its id or serial.
"use strict";

LG.start(async (main) => {
  const {h, api, clear, field, select, num, verdictClass, partUrl, picUrl, THUMB_PX} = LG;
  const p = LG.params();
  if (!("verdict" in p)) p.verdict = "NG";   // a defect gallery opens on the rejects
  // in any case, as the API reads it: verdict=ng (a link typed by hand) showed every verdict,
  // the select reading "any", with no word; an unknown one is said, not passed over
  const verdictAsked = String(p.verdict).trim();
  p.verdict = verdictAsked.toUpperCase();
  if (p.verdict === "ANY") p.verdict = "";    // "any" kept in the address: an empty value is left out of it
  if (p.verdict && !["NG", "OK", "REVIEW"].includes(p.verdict)) {
    LG.say(`verdict '${verdictAsked}' is not OK, NG or REVIEW: showing every verdict (choose one under verdict `
      + "and Show).", "error");
    p.verdict = "";
  }

  const form = h("form", {class: "filters panel", id: "filters"},
    field("line", h("input", {name: "line", value: p.line || "", size: 8, list: "lines"})),
    field("station", h("input", {name: "station", value: p.station || "", size: 8})),
    field("product", h("input", {name: "product", value: p.product || "", size: 10, list: "products"})),
    field("lot", h("input", {name: "lot", value: p.lot || "", size: 10})),
    LG.timeField("from", "since", p.since),
    LG.timeField("until", "until", p.until), LG.zoneNote(),
    field("verdict", select("verdict", [["", "any"], "NG", "REVIEW", "OK"], p.verdict)),
    field("defect type", h("input", {name: "defect_type", value: p.defect_type || "", size: 10, list: "types"})),
    field("reviewed", select("reviewed", [["", "any"], ["false", "not yet"], ["true", "reviewed"]], p.reviewed)),
    // test parts (red rabbits, known good) are checked each shift: not the line's own parts
    field("parts", select("test_parts", [["false", "the line's own"], ["true", "test parts"], ["both", "both"]],
      "test_parts" in p ? p.test_parts : "false")),
    // photos the photo check doubted (a lamp, a lens): what "check the camera" alarms are about
    field("photo", select("photo_doubted", [["", "any"], ["true", "unlike the good photos"],
      ["false", "like the good photos"]], p.photo_doubted || "")),
    h("button", {type: "submit"}, "Show"));
  // One part looked for by its id or serial (a customer's complaint, a return): every inspection
  // of it, whatever the filters say (an escape was judged OK, and the gallery opens on NG)
  const partBox = h("input", {name: "part", type: "search", value: p.part || "", size: 18, maxlength: 200,
    autocomplete: "off", spellcheck: "false", enterkeyhint: "search", id: "part-search"});
  const findForm = h("form", {class: "filters panel", id: "find-part", role: "search"},
    field("part id or serial", partBox), h("button", {type: "submit"}, "Find"));
  // the product's defect types offered as one types (the defaults with no product), and
  // followed when another product is typed: the list was the opening product's all along
  const dl = h("datalist", {id: "types"});
  let typeList = [];
  async function offerTypes(product) {
    const got = await LG.defectTypes(product);
    if (product !== form.elements.product.value.trim()) return;     // another product typed meanwhile
    typeList = got.slice();
    clear(dl).append(...typeList.map((t) => h("option", {value: t})));
  }
  await offerTypes((p.product || "").trim());
  form.elements.product.addEventListener("change", () => offerTypes(form.elements.product.value.trim()).catch(() => {}));
  // A type typed in another case than its list's ("Crack" for "crack") found nothing, where a
  // line, station or product in any case finds its parts: the list's spelling is asked for (a
  // product's list has no two types alike but for case), and shown in the field
  function typeAsListed(el) {
    const typed = el.value.trim();
    const listed = typeList.find((t) => t.toLowerCase() === typed.toLowerCase());
    if (listed && listed !== typed) el.value = listed;
    return listed || typed;
  }
  // the lines and products the records hold, suggested as one types (any case finds them)
  const names = await api("/api/v1/inspections/names").catch(() => ({lines: [], products: []}));
  const lines = h("datalist", {id: "lines"}, names.lines.map((n) => h("option", {value: n})));
  const products = h("datalist", {id: "products"}, names.products.map((n) => h("option", {value: n})));
  const grid = h("div", {class: "gallery", id: "gallery"});
  const more = h("button", {type: "button", class: "secondary", hidden: true}, "Older parts");
  const count = h("p", {class: "muted", id: "gallery-count", role: "status", "aria-live": "polite"});     // a new search's count is said
  // every part the filters match, one row each, for a spreadsheet (traceability, lot reports)
  const csv = h("a", {class: "button secondary", id: "csv-parts"}, "CSV");
  // typed cells: part ids like 000123 stay text in Excel, times are times
  const xlsx = h("a", {class: "button secondary", id: "xlsx-parts"}, "Excel (.xlsx)");
  main.append(h("div", {class: "row"}, h("h1", {class: "grow"}, "Defect gallery"), csv, xlsx), findForm, form, dl, lines, products, count,
    grid, h("p", {}, more));

  // a time from a link (a test part's window of doubt) has seconds the minute-wide field
  // cannot show: kept as given while the field still shows it
  const asGiven = (name) => (form.elements[name].value === LG.isoToLocal(p[name], LG.isEnd(name)) ? p[name] || ""
    : LG.localToIso(form.elements[name].value));

  function filters() {
    const f = form.elements;
    return {line: f.line.value.trim(), station: f.station.value.trim(), product: f.product.value.trim(),
      lot: f.lot.value.trim(), since: asGiven("since"), until: asGiven("until"),
      verdict: f.verdict.value, defect_type: typeAsListed(f.defect_type), reviewed: f.reviewed.value,
      test_parts: f.test_parts.value, photo_doubted: f.photo_doubted.value};
  }

  // "both" stays in the page's address (a reload keeps it); the API's "both" is no filter
  const forApi = (f) => Object.assign({}, f, {test_parts: f.test_parts === "both" ? "" : f.test_parts});

  let cursor = null, shown = 0, total = null;    // total: how many match, counted with the first page
  let asked = 0;     // the latest search: an earlier one answering after it adds nothing to its grid

  // Back from a part opened far down (after "Older parts"): the same parts and the same place.
  // It came back on the first 48, at the top. Kept in this history entry (the pages shown and
  // the scroll), the browser's own restoring off: it scrolled before the older pages were there.
  history.scrollRestoration = "manual";
  const backTo = history.state && history.state.gallery;
  function keepPlace() {
    try {
      history.replaceState(Object.assign({}, history.state, {gallery: {shown, y: Math.round(scrollY)}}), "");
    } catch (_e) { /* throttled by the browser: the last place kept stays */ }
  }
  let placeTimer = null;
  addEventListener("scroll", () => { clearTimeout(placeTimer); placeTimer = setTimeout(keepPlace, 150); }, {passive: true});
  grid.addEventListener("click", keepPlace, true);       // the place as the part is opened

  // A review's outcome in the words of the parts' export (line/part_records.py _OUTCOMES): a
  // good OK part was called a "false alarm" while its CSV row said "confirmed good", and an
  // escape read as a plain "defect", never as the missed defect it is
  const OUTCOME = {"NG good": "false reject", "NG defect": "confirmed defect", "OK defect": "escape (a missed defect)",
    "OK good": "confirmed good", "REVIEW good": "good at review", "REVIEW defect": "defect at review"};
  function card(it) {
    const src = it.stored && it.stored.image ? picUrl(it.id, it.verdict === "OK" ? "image" : "overlay", THUMB_PX) : null;
    const label = it.review && it.review.reviewed ? it.review.label : null;
    const review = label
      ? (OUTCOME[`${it.verdict} ${label}`] || (label === "good" ? "good" : "defect"))
        + (label === "defect" && it.defect_type ? ": " + it.defect_type : "")
      : "not reviewed";
    return h("a", {class: "thumb " + verdictClass(it.verdict), href: partUrl(it.id), dataset: {id: it.id}},
      src ? h("img", {src, alt: "part " + it.part_id, loading: "lazy"}) : h("div", {class: "noimg"}, "image not kept"),
      h("div", {class: "cap"}, h("b", {class: verdictClass(it.verdict)}, it.verdict), " ", it.part_id),
      h("div", {class: "cap muted"}, `score ${num(it.score)} · ${review}`),
      (it.photo_issues || []).length ? h("div", {class: "cap v-review photo-doubt"},
        "photo: " + it.photo_issues.join("; ")) : null,
      it.test_part ? h("div", {class: "cap " + (it.test_part.right ? "v-ok" : "v-ng")},
        `test part ${it.test_part.name}: must be ${it.test_part.expected}`) : null,
      h("div", {class: "cap muted"}, `${it.line}/${it.station}${it.lot ? " · lot " + it.lot : ""} · ${LG.when(it.created_at)}`));
  }

  // the filters (and the part looked for) in the page's address: a reload or a link shows the same
  // Show and Find are steps Back walks through (each replaced the last, and Back left the
  // gallery); the page reads its filters from the address, so a step back is built again
  let asStep = false;
  const here = () => location.pathname + location.search;
  let shownAt = here();
  function address(f, part) {
    const url = location.pathname + LG.q(Object.assign({}, f, {verdict: f.verdict || "any", part}));
    if (asStep && url !== here()) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
    asStep = false;
    shownAt = here();
  }
  // another step's filters: built again from its address (a #main skip link is no step)
  window.addEventListener("popstate", () => { if (here() !== shownAt) location.reload(); });

  async function load(reset) {
    const f = filters();
    const mine = reset ? ++asked : asked;
    if (reset) {
      cursor = null; shown = 0; clear(grid);
      count.textContent = "";        // a refused search must not leave the last one's count
      address(f);
      csv.hidden = xlsx.hidden = false;
      csv.href = "/api/v1/inspections/export" + LG.q(forApi(f));
      xlsx.href = "/api/v1/inspections/export" + LG.q(Object.assign({}, forApi(f), {format: "xlsx"}));
    }
    const first = !cursor;
    if (first && f.since && f.until && Date.parse(f.since) >= Date.parse(f.until)) {
      // the station refuses a window back to front (422); said here, where the fields are, and
      // no CSV or Excel link offered for it (it opened the station's bare JSON refusal)
      more.hidden = true;
      csv.hidden = xlsx.hidden = true;
      count.textContent = "No parts: “from” is not before “until”; swap them.";
      return;
    }
    // said while it loads: a hung station blanked the grid and the count with no word
    if (first) count.textContent = "loading…";
    else { more.disabled = true; more.textContent = "Loading older parts…"; }
    let page;
    try {
      page = await LG.whileSlow(api("/api/v1/inspections" + LG.q(Object.assign({}, forApi(f), {limit: 48, cursor,
        count: first ? "true" : undefined}))), (s) => {
        if (mine !== asked) return;
        const slow = `The station is slow to answer (${s} s so far): still loading…`;
        if (first) count.textContent = slow; else more.textContent = slow;
      });
    } catch (err) {
      if (mine === asked && first) count.textContent = "";       // not "loading…" for ever: the error says why
      throw err;
    } finally {
      more.disabled = false; more.textContent = "Older parts";
    }
    if (mine !== asked) return;
    if (first) total = page.total === null || page.total === undefined ? null
      : LG.count(page.total) + (page.total_capped ? "+" : "");
    page.items.forEach((it) => grid.appendChild(card(it)));
    shown += page.items.length;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    // nothing found: no CSV or Excel of nothing (for a line or product never seen, the export's
    // 404 opened as the station's bare JSON)
    if (first && !page.items.length) csv.hidden = xlsx.hidden = true;
    count.textContent = shown ? `${shown} of ${total ?? "?"} part(s)${cursor ? ", more below" : ""}`
      : "No parts match these filters.";
  }

  // A part id matches exactly (a re-inspected part has several inspections), and so does a
  // serial, the plant's own: asked both ways, shown together, newest first.
  async function findPart(wanted) {
    const mine = ++asked;
    cursor = null; shown = 0; clear(grid);
    more.hidden = true;
    count.textContent = "";
    address(filters(), wanted);
    csv.hidden = xlsx.hidden = true;      // they are the filters' parts, not this one's
    const one = (params) => api("/api/v1/inspections" + LG.q(Object.assign({limit: 100}, params)));
    count.textContent = `looking for “${wanted}”…`;
    // (the page comes from the station whose list it asks: its serial filter is there)
    let byId, bySerial;
    try {
      [byId, bySerial] = await LG.whileSlow(Promise.all([one({part_id: wanted}), one({serial: wanted})]), (s) => {
        if (mine === asked) count.textContent = `The station is slow to answer (${s} s so far): still looking for “${wanted}”…`;
      });
    } catch (err) {
      if (mine === asked) count.textContent = "";
      throw err;
    }
    if (mine !== asked) return;
    const found = new Map();
    for (const it of byId.items.concat(bySerial.items)) found.set(it.id, it);
    const items = [...found.values()].sort((a, b) => b.id - a.id);
    items.forEach((it) => grid.appendChild(card(it)));
    shown = items.length;
    count.textContent = !items.length ? `No part has the part id or serial “${wanted}”.`
      : `${items.length} inspection(s) of the part with part id or serial “${wanted}”, newest first${
        byId.next_cursor || bySerial.next_cursor ? " (the newest 100)" : ""}; the filters do not apply to it.`;
  }

  function search() {
    const wanted = partBox.value.trim();
    return wanted ? findPart(wanted) : load(true);
  }

  // the filters shown again: the part looked for is left
  form.addEventListener("submit", (e) => {
    e.preventDefault(); partBox.value = ""; asStep = true; load(true).catch(LG.fail);
  });
  findForm.addEventListener("submit", (e) => { e.preventDefault(); asStep = true; search().catch(LG.fail); });
  more.addEventListener("click", () => { if (!more.disabled) load(false).catch(LG.fail); });
  await search();
  if (backTo) {
    // the older pages the operator had opened, then the place they were at
    for (let n = 0; !partBox.value.trim() && cursor && shown < backTo.shown && n < 50; n++) await load(false);
    scrollTo(0, backTo.y || 0);
    keepPlace();
  }
});
