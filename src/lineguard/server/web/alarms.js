// Line alarms over a period: how many, of which kind, at which station, what they turned
// out to be (most first), how long they waited for someone, and each alarm with who saw
// to it. What stops the line, for the weekly review.
"use strict";

LG.start(async (main) => {
  const {h, api, clear, field, select, num, when, partUrl} = LG;
  const p = LG.params();
  const first = await api("/api/v1/alarms" + LG.q({limit: 1}));
  // causes: those to choose from now; labels: every one an alarm may carry (retired ones too)
  let causes = first.causes || {}, labels = first.cause_labels || causes;
  // the last seven days unless the address says otherwise; kept out of the address, so a
  // reload or a shared link shows the seven days before then, not a frozen window
  const defaultSince = "since" in p ? null : new Date(Date.now() - 7 * 24 * 3600 * 1000).toISOString();
  if (defaultSince) p.since = defaultSince;
  const causeChoices = () => [["", "any"], ...Object.entries(labels), ["none", "not given"]];
  let causeFilter = select("cause", causeChoices(), p.cause);
  const form = h("form", {class: "filters panel", id: "filters"},
    LG.timeField("from", "since", p.since),
    LG.timeField("until", "until", p.until), LG.zoneNote(),
    field("line", h("input", {name: "line", value: p.line || "", size: 8})),
    field("station", h("input", {name: "station", value: p.station || "", size: 8})),
    field("alarm", select("kind", [["", "any"], ...Object.entries(LG.ALARM_KIND)], p.kind)),
    field("cause", causeFilter),
    field("state", select("active", [["", "any"], ["true", "active"], ["false", "acknowledged"]], p.active)),
    h("button", {type: "submit"}, "Show"));
  const facts = h("div", {class: "panel", id: "alarm-summary"});
  const scope = h("p", {class: "muted"}, "Counted over the period, line and station; the list below follows every filter.");
  const table = h("div", {class: "table-wrap", id: "alarm-list"});
  const more = h("button", {type: "button", class: "secondary", hidden: true}, "Older alarms");
  // every alarm the filters match, one row each, for a spreadsheet
  const csv = h("a", {class: "button secondary", id: "alarms-csv"}, "CSV");
  // the plant's own causes beside the built-in ones (added and retired by an engineer)
  const causesEl = h("div", {class: "table-wrap", id: "alarm-causes"});
  const causeForm = h("form", {class: "filters", id: "alarm-cause-form", dataset: {role: "engineer"}},
    field("new cause", h("input", {name: "label", required: true, maxlength: 100, size: 28,
      placeholder: "e.g. coil change"})),
    h("button", {type: "submit"}, "Add"));
  // when parts raise an alarm: the defaults and each station's own rules (set by an engineer)
  const rulesEl = h("div", {class: "table-wrap", id: "alarm-rules"});
  const ruleIn = (name, attrs) => h("input", Object.assign({name, type: "number", placeholder: "default"}, attrs));
  const rulesForm = h("form", {class: "filters", id: "alarm-rules-form", dataset: {role: "engineer"}},
    field("line", h("input", {name: "line", required: true, size: 8})),
    field("station", h("input", {name: "station", required: true, size: 8})),
    field("parts in a row not passed", ruleIn("ng_run", {min: 0, max: 10000, step: 1})),
    field("NG rate (share, 0.1 = 10%)", ruleIn("ng_rate", {min: 0, max: 1, step: "any"})),
    field("of the last … parts", ruleIn("window", {min: 10, max: 100000, step: 1})),
    field("doubted photos (of the last 2N-1)", ruleIn("photo_run", {min: 0, max: 10000, step: 1})),
    field("PLC rejects without a verdict in a row", ruleIn("no_verdict_run", {min: 0, max: 10000, step: 1})),
    field("escalate after (min)", ruleIn("escalate_min", {min: 0, max: 1440, step: "any"})),
    field("then again every (min)", ruleIn("escalate_again_min", {min: 0, max: 1440, step: "any"})),
    // score drift: groups of this many parts against the model's first 5 groups at the station
    field("score drift: groups of … parts", ruleIn("drift_parts", {min: 0, max: 10000, step: 1})),
    h("button", {type: "submit"}, "Save"));
  main.append(h("div", {class: "row"}, h("h1", {class: "grow"}, "Line alarms"), csv),
    h("p", {class: "muted"}, "Alarms raised in the period: what they were, what they turned out to be, and how long "
      + "each waited for someone. Acknowledge active ones on the line view."), form, facts, scope, table,
    h("p", {}, more),
    h("div", {class: "panel"}, h("h2", {}, "Alarm rules"),
      h("p", {class: "muted"}, "Every station follows the defaults unless it has rules of its own (in bold; the "
        + "rest follow the defaults). 0 turns a rule off. A station is counted by new rules from its next part, "
        + "its latest parts counted afresh. Score drift compares each group of parts with the first parts the "
        + "model judged at the station."), rulesEl, rulesForm),
    h("div", {class: "panel"}, h("h2", {}, "Causes"),
      h("p", {class: "muted"}, "What an alarm may turn out to be, chosen when it is acknowledged, with the number a PLC "
        + "acknowledges it by. Add the plant's own; a retired one is no longer offered, and alarms that had it keep it."),
      causesEl, causeForm));

  const asGiven = (name) => (form.elements[name].value === LG.isoToLocal(p[name], LG.isEnd(name)) ? p[name] || ""
    : LG.localToIso(form.elements[name].value));

  function filters() {
    const f = form.elements;
    return {since: asGiven("since"), until: asGiven("until"), line: f.line.value.trim(),
      station: f.station.value.trim(), kind: f.kind.value, cause: f.cause.value, active: f.active.value};
  }

  function counts(id, head, rows) {
    return h("table", {id}, h("tr", {}, head.map((x) => h("th", {}, x))), rows);
  }

  function renderSummary(s) {
    clear(facts);
    const w = s.minutes_to_acknowledge;
    facts.append(h("h2", {}, `${s.alarms} alarm(s) in the period`),
      h("p", {}, `${s.active} still active`,
        s.oldest_active_waiting_min === null ? "" : ` (the oldest waiting ${num(s.oldest_active_waiting_min, 0)} min)`,
        ` · ${s.escalated} escalated · minutes to acknowledge: median `,
        h("b", {id: "mtta"}, w.median === null ? "–" : num(w.median, 1)), ", mean ", w.mean === null ? "–" : num(w.mean, 1),
        ", longest ", w.longest === null ? "–" : num(w.longest, 1)));
    if (!s.alarms) return;
    facts.append(h("div", {class: "row"},
      h("div", {class: "grow"}, h("h3", {}, "What they turned out to be"),
        s.by_cause.length ? counts("by-cause", ["cause", "alarms"], s.by_cause.map((c) =>
          h("tr", {dataset: {cause: c.cause}}, h("td", {}, c.label), h("td", {}, c.alarms))))
          : h("p", {class: "muted"}, "None acknowledged yet.")),
      h("div", {class: "grow"}, h("h3", {}, "Alarm"), counts("by-kind", ["alarm", "alarms"], s.by_kind.map((k) =>
        h("tr", {dataset: {kind: k.kind}}, h("td", {}, LG.alarmKind(k.kind)), h("td", {}, k.alarms))))),
      h("div", {class: "grow"}, h("h3", {}, "Station"), counts("by-station", ["line", "station", "alarms"],
        s.by_station.map((x) => h("tr", {}, h("td", {}, x.line), h("td", {}, x.station), h("td", {}, x.alarms)))))));
  }

  async function loadSummary(f) {
    renderSummary(await api("/api/v1/alarms/summary" + LG.q({since: f.since, until: f.until, line: f.line,
      station: f.station})));
  }

  let before = null, body = null, shown = null;   // shown: the filters of the list on the page
  async function load(reset) {
    if (reset) shown = filters();
    const f = shown;     // older alarms of the list shown, not of a form changed since
    if (reset) {
      before = null;
      history.replaceState(null, "", location.pathname + LG.q(Object.assign({}, f,
        f.since === defaultSince ? {since: ""} : {})));
      csv.href = "/api/v1/alarms/export" + LG.q(f);
      await loadSummary(f);
      body = h("tbody", {});
      clear(table).appendChild(h("table", {}, h("thead", {}, h("tr", {},
        ["raised", "line", "station", "alarm", "part", "acknowledged", "by", "cause", "note"].map((t) => h("th", {}, t)))),
        body));
    }
    const page = await api("/api/v1/alarms" + LG.q(Object.assign({}, f, {limit: 100, before_id: before})));
    for (const a of page.items) {
      const causeCell = h("td", {class: "cause"}), noteCell = h("td", {class: "note"});
      showCause(a, causeCell, noteCell);
      body.appendChild(h("tr", {dataset: {id: a.id, kind: a.kind}},
        h("td", {}, when(a.raised_at)), h("td", {}, a.line), h("td", {}, a.station),
        // what the station said, behind the alarm's name: a hover tooltip only, a phone or a
        // tablet could not read it; a disclosure opens by a tap and by the keyboard (the
        // tooltip kept: a mouse reads it without a click)
        h("td", {class: "alarm", title: LG.plantTimes(a.message)}, h("details", {class: "alarm-said"},
          h("summary", {}, LG.alarmKind(a.kind),
            a.escalated_at ? " · escalated" + (a.escalations > 1 ? ` ×${a.escalations}` : "") : ""),
          h("p", {class: "alarm-message"}, LG.plantTimes(a.message)))),
        h("td", {}, a.inspection_id ? h("a", {href: partUrl(a.inspection_id)}, "#" + a.inspection_id)
          : `PLC answer ${a.signal_id === null ? "–" : "#" + a.signal_id}`),
        h("td", {}, a.acked_at ? when(a.acked_at) : h("b", {class: "v-ng"}, "active")),
        h("td", {}, a.acked_by || "–"), causeCell, noteCell));
    }
    if (reset && !page.items.length) clear(table).appendChild(h("p", {class: "muted"}, "No alarms match."));
    before = page.next_before_id;
    more.hidden = !before;
  }

  // An acknowledged alarm's cause, found later (maintenance, the supplier's answer): set
  // or changed here, with a note; the station keeps each change in the note.
  function showCause(a, causeCell, noteCell) {
    clear(noteCell).appendChild(a.ack_note ? h("span", {class: "pre"}, LG.plantTimes(a.ack_note)) : document.createTextNode("–"));
    clear(causeCell).append(a.ack_cause ? labels[a.ack_cause] || a.ack_cause : (a.acked_at ? "not given" : "–"));
    if (!a.acked_at) return;        // active: acknowledged (with its cause) on the line view
    causeCell.append(" ", h("button", {type: "button", class: "link", "aria-label": `cause of alarm ${a.id}`,
      onclick: () => editCause(a, causeCell, noteCell)}, a.ack_cause ? "change" : "say what it was"));
  }

  // Whether an alarm's note has words a person wrote: the station adds a line of its own
  // for each cause changed here ("[2026-03-02 10:15 UTC, anna] cause material -> tooling"),
  // which says nothing about what an "other" was. A line with more after it ("; hose off")
  // counts, as does a note given at acknowledging.
  const STATION_LINE = /^\[[^\]]* UTC, [^\]]*\] cause .* -> [^;]*$/;
  function hasOwnNote(a) {
    return (a.ack_note || "").split("\n").some((line) => line.trim() && !STATION_LINE.test(line.trim()));
  }

  function editCause(a, causeCell, noteCell) {
    const pick = select("ack_cause", [["", "choose…"], ...Object.entries(causes)], a.ack_cause || "");
    pick.setAttribute("aria-label", `what alarm ${a.id} turned out to be`);
    const note = h("input", {name: "note", size: 24, maxlength: 2000, placeholder: "what was found (optional)",
      "aria-label": `note for alarm ${a.id}`});
    // what is missing, said under the field it is missing from before anything is sent (as
    // the line view's Acknowledge does); the station's refusal came only after Save, in the
    // status line at the top of the page. Read out as the field's description when it takes
    // the focus (the status line is announced already).
    const why = h("span", {class: "field-why error", id: `cause-why-${Number(a.id)}`});
    const form = h("form", {class: "inline"}, pick, " ", note, " ", h("button", {type: "submit"}, "Save"), " ",
      h("button", {type: "button", class: "link", onclick: () => showCause(a, causeCell, noteCell)}, "Cancel"), why);
    const needsNote = () => pick.value === "other" && pick.value !== (a.ack_cause || "") && !hasOwnNote(a);
    const ask = (field, text) => {
      for (const el of [pick, note]) { el.removeAttribute("aria-invalid"); el.removeAttribute("aria-describedby"); }
      why.textContent = text || "";
      if (!text) return;
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", why.id);
      LG.say(`Alarm ${a.id}: ${text}`, "error");
      field.focus();
    };
    // "other" needs a note: said as it is chosen, in the placeholder where the note goes
    pick.addEventListener("change", () => {
      note.placeholder = needsNote() ? "what it was (needed for “other”)" : "what was found (optional)";
      if (why.textContent) ask(null, "");
    });
    note.addEventListener("input", () => { if (why.textContent && note.value.trim()) ask(null, ""); });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const written = note.value.trim();      // spaces only are no note: nothing of them is sent
      if ((!pick.value || pick.value === (a.ack_cause || "")) && !written) {
        ask(pick, "choose what it turned out to be, or write a note");
        return;
      }
      // "other" says nothing by itself: the station refuses it without a note (422), said here first
      if (needsNote() && !written) {
        ask(note, "“other” needs a note: write what it was, then save.");
        return;
      }
      ask(null, "");
      const btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      try {
        // the cause only when changed here: a note added to a page loaded before someone
        // else changed the cause must not put the old one back
        const out = await api(`/api/v1/alarms/${Number(a.id)}`, {method: "PATCH",
          body: {cause: pick.value && pick.value !== (a.ack_cause || "") ? pick.value : null,
            note: written || null}});
        Object.assign(a, {ack_cause: out.ack_cause, ack_note: out.ack_note});
        showCause(a, causeCell, noteCell);
        LG.say(`alarm ${a.id}: saved`, "ok");
        await loadSummary(shown);       // "what they turned out to be" counts it now
      } catch (err) { LG.fail(err); btn.disabled = false; }
    });
    clear(causeCell).appendChild(form);
    pick.focus();
  }

  const SETTINGS = ["ng_run", "ng_rate", "window", "photo_run", "no_verdict_run", "escalate_min", "escalate_again_min",
    "drift_parts"];
  function ruleCells(r, own) {
    const cell = (k, text) => h("td", {dataset: {setting: k}}, own && k in own ? h("b", {}, text) : text);
    return [cell("ng_run", r.ng_run ? String(r.ng_run) : "off"),
      cell("ng_rate", r.ng_rate ? `${num(r.ng_rate * 100, 1)}% (${r.rate_limit} NG)` : "off"),
      cell("window", String(r.window)), cell("photo_run", r.photo_run ? String(r.photo_run) : "off"),
      cell("no_verdict_run", r.no_verdict_run ? String(r.no_verdict_run) : "off"),
      cell("escalate_min", r.escalate_min ? `${num(r.escalate_min, 1)} min` : "never"),
      cell("escalate_again_min", r.escalate_min && r.escalate_again_min ? `every ${num(r.escalate_again_min, 1)} min`
        : "–"),
      // an older station's answer has no drift_parts: shown as "–", not "off"
      // the numbers said: "20 parts (after 100)" did not say what either was
      cell("drift_parts", r.drift_parts
        ? `groups of ${r.drift_parts} parts, against the first ${r.drift_baseline_parts}`
        : r.drift_parts === 0 ? "off" : "–")];
  }

  async function loadRules() {
    const r = await api("/api/v1/alarms/rules");
    const rows = [h("tr", {dataset: {station: ""}}, h("td", {colspan: 2}, h("i", {}, "default: every other station")),
      ruleCells(r.defaults, null), h("td", {}, "serve --alarm-*"), h("td", {}))];
    for (const x of r.stations) {
      rows.push(h("tr", {dataset: {line: x.line, station: x.station}}, h("td", {}, x.line), h("td", {}, x.station),
        ruleCells(x.rules, x.problem ? null : x.own),     // out of range: the defaults count, none in bold
        h("td", {title: x.problem || ""}, x.problem ? h("b", {class: "v-ng"}, "out of range: defaults used")
          : [when(x.updated_at), x.updated_by ? " by " + x.updated_by : ""]),
        h("td", {}, h("button", {type: "button", class: "secondary", dataset: {role: "engineer"},
          onclick: () => edit(x)}, "Edit"), " ",
        h("button", {type: "button", class: "danger", dataset: {role: "engineer"}, onclick: () => clearRules(x)},
          "Defaults"))));
    }
    clear(rulesEl).appendChild(h("table", {}, h("tr", {}, ["line", "station", "in a row", "NG rate", "of the last",
      "photos doubted", "no verdict", "escalate", "again", "score drift", "set", ""].map((t) => h("th", {}, t))), rows));
    LG.applyRoles(rulesEl);
  }

  function edit(x) {
    const f = rulesForm.elements;
    f.line.value = x.line;
    f.station.value = x.station;
    for (const k of SETTINGS) f[k].value = k in x.own ? x.own[k] : "";
    f.ng_run.focus();
  }

  async function clearRules(x) {
    if (!confirm(`Put station ${x.station} of line ${x.line} back on the default alarm rules?`)) return;
    try {
      await api("/api/v1/alarms/rules" + LG.q({line: x.line, station: x.station}), {method: "DELETE"});
      LG.say(`Station ${x.station}: default alarm rules`, "ok");
      await loadRules();
    } catch (err) { LG.fail(err); }
  }

  rulesForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = rulesForm.elements;
    const body = {line: f.line.value.trim(), station: f.station.value.trim()};
    for (const k of SETTINGS) body[k] = f[k].value === "" ? null : Number(f[k].value);
    try {
      const out = await api("/api/v1/alarms/rules", {method: "PUT", body});
      LG.say(Object.keys(out.own).length ? `Station ${out.station}: its own alarm rules saved`
        : `Station ${out.station}: default alarm rules`, "ok");
      rulesForm.reset();
      await loadRules();
    } catch (err) { LG.fail(err); }
  });

  async function loadCauses() {
    // the table from the list; what is offered and every label as the station makes them
    const [r, now] = await Promise.all([api("/api/v1/alarm-causes"), api("/api/v1/alarms?limit=1")]);
    causes = now.causes || {};
    labels = now.cause_labels || causes;
    // the filter offers a cause added (or a retired one's new name) at once, its choice kept
    const fresh = select("cause", causeChoices(), causeFilter.value);
    causeFilter.replaceWith(fresh);
    causeFilter = fresh;
    clear(causesEl).appendChild(h("table", {}, h("tr", {}, ["PLC number", "cause", "key", "added", ""]
      .map((t) => h("th", {}, t))), r.items.map((c) => h("tr", {dataset: {cause: c.key}, class: c.retired ? "muted" : ""},
      h("td", {}, c.retired ? "–" : String(c.code)), h("td", {}, c.label, c.retired ? " (retired)" : ""), h("td", {}, c.key),
      h("td", {}, c.built_in ? "built in" : [when(c.added_at), c.added_by ? " by " + c.added_by : ""]),
      h("td", {}, c.built_in || c.retired ? "" : h("button", {type: "button", class: "danger", dataset: {role: "engineer"},
        onclick: () => retireCause(c)}, "Retire"))))));
    LG.applyRoles(causesEl);
  }

  async function retireCause(c) {
    if (!confirm(`Retire the cause "${c.label}"? It is no longer offered; alarms that had it keep it, and its PLC `
      + `number ${c.code} is not given to another.`)) return;
    try {
      await api("/api/v1/alarm-causes" + LG.q({key: c.key}), {method: "DELETE"});
      LG.say(`Cause "${c.label}" retired`, "ok");
      await loadCauses();
    } catch (err) { LG.fail(err); }
  }

  LG.once(causeForm, async () => {
    const out = await api("/api/v1/alarm-causes", {method: "POST", body: {label: causeForm.elements.label.value}});
    LG.say(`Cause "${out.label}" added: PLC number ${out.code}`, "ok");
    causeForm.reset();
    await loadCauses();
  });

  // refused (from after until): no counts and list of other filters, no CSV link to the refused request
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load(true).catch((err) => {
      clear(facts); clear(table); more.hidden = true; csv.removeAttribute("href"); LG.fail(err);
    });
  });
  more.addEventListener("click", () => load(false).catch(LG.fail));
  await Promise.all([load(true), loadRules(), loadCauses()]);
});
