// Change log: who changed what on the station, newest first (models, thresholds, defect
// types, test parts, keys, users), filtered, and as CSV for an audit. Read only.
"use strict";

LG.start(async (main) => {
  const {h, api, clear, field, select, when} = LG;
  const p = LG.params();
  if (!LG.roleAtLeast("engineer")) {
    // opened by its address: the page said nothing but the API's refusal in the status line
    main.append(h("h1", {}, "Change log"), h("p", {class: "error", id: "changes-role"}, "The change log is an "
      + "engineer's page: sign in as an engineer or admin to read who changed what."));
    return;
  }
  const first = await api("/api/v1/change-log" + LG.q({limit: 1}));
  const families = [...new Set(Object.keys(first.actions).map((a) => a.split(".")[0]))];
  const form = h("form", {class: "filters panel", id: "filters"},
    LG.timeField("from", "since", p.since), LG.timeField("until", "until", p.until), LG.zoneNote(),
    field("who", h("input", {name: "actor", value: p.actor || "", size: 12})),
    field("what", select("action", [["", "any"], ...families.map((f) => [f, f + " (all)"]),
      ...Object.entries(first.actions).map(([a, text]) => [a, text])], p.action)),
    field("changed (contains)", h("input", {name: "subject", value: p.subject || "", size: 14})),
    h("button", {type: "submit"}, "Show"));
  const csv = h("a", {class: "button secondary", id: "changes-csv"}, "CSV");
  const table = h("div", {class: "table-wrap", id: "changes"});
  const more = h("button", {type: "button", class: "secondary", hidden: true}, "Older changes");
  main.append(h("div", {class: "row"}, h("h1", {class: "grow"}, "Change log"), csv),
    // every family of the log's actions (line/audit.py ACTIONS) named: the list said models to
    // users only, and an engineer looking for who changed an alarm rule did not look here
    h("p", {class: "muted", id: "changes-what"}, "Every change to the station's settings: its models (thresholds "
      + "too) and reference photos, defect types, test parts, alarm rules and alarm causes, keys, users and "
      + "sign-in lock-outs lifted, reports issued, signed or withdrawn, records deleted, and the settings each "
      + "station process started with. Written with the change itself; nothing here can be edited."),
    form, table, h("p", {}, more));

  function filters() {
    const f = form.elements;
    return {since: LG.localToIso(f.since.value), until: LG.localToIso(f.until.value), actor: f.actor.value.trim(),
      action: f.action.value, subject: f.subject.value.trim()};
  }

  // details as "key: value" lines; a change's before and after side by side. A
  // process's start also keeps every setting it ran with: folded, what changed shows
  function details(d) {
    return Object.entries(d || {}).map(([k, v]) => {
      const text = typeof v === "object" ? JSON.stringify(v) : String(v);
      if (k === "settings") {
        return h("details", {class: "settings"}, h("summary", {class: "muted"}, "all settings"),
          Object.entries(v || {}).map(([name, x]) => h("div", {}, h("span", {class: "muted"}, name + ": "),
            x === null ? "–" : (typeof x === "object" ? JSON.stringify(x) : String(x)))));
      }
      return h("div", {}, h("span", {class: "muted"}, k + ": "), text);
    });
  }

  let cursor = null, body = null, loading = false;
  async function load(reset) {
    if (loading) return;   // a double click must not add a page twice
    loading = true;
    try { await loadPage(reset); } finally { loading = false; }
  }

  async function loadPage(reset) {
    const f = filters();
    if (reset) {
      cursor = null;
      history.replaceState(null, "", location.pathname + LG.q(f));
      csv.href = "/api/v1/change-log/export" + LG.q(f);
      body = h("tbody", {});
      clear(table).appendChild(h("table", {}, h("thead", {}, h("tr", {},
        ["when", "who", "what", "changed", "details"].map((t) => h("th", {}, t)))), body));
    }
    const page = await api("/api/v1/change-log" + LG.q(Object.assign({}, f, {limit: 100, cursor})));
    for (const e of page.items) {
      body.appendChild(h("tr", {dataset: {action: e.action}}, h("td", {}, when(e.at)), h("td", {}, e.actor || "–"),
        h("td", {title: e.action}, e.what), h("td", {}, e.subject), h("td", {}, details(e.details))));
    }
    if (reset && !page.items.length) clear(table).appendChild(h("p", {class: "muted"}, "No changes match."));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }

  // refused (from after until): no list of other filters, and no CSV link to the refused request
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load(true).catch((err) => { clear(table); more.hidden = true; csv.removeAttribute("href"); LG.fail(err); });
  });
  more.addEventListener("click", () => load(false).catch(LG.fail));
  await load(true);
});
