// SPC: the defect rate's p-chart with its limits and rule alarms, the score drift,
// the false-reject and escape rates (of the NG, and of the OK, parts reviewed), and the
// reviewed defects by type (Pareto); CSV of every chart. Times in the plant's zone.
"use strict";

LG.start(async (main) => {
  const {h, api, clear, field, select, pct} = LG;
  const p = LG.params();
  const form = h("form", {class: "filters panel", id: "filters"},
    field("line", h("input", {name: "line", value: p.line || "", size: 8})),
    field("station", h("input", {name: "station", value: p.station || "", size: 8})),
    field("product", h("input", {name: "product", value: p.product || "", size: 10})),
    field("subgroup", select("by", [["hour", "hour"], ["shift", "shift"], ["day", "day"], ["lot", "lot"]], p.by || "hour")),
    LG.timeField("from", "since", p.since),
    LG.timeField("until", "until", p.until),
    // the p-chart's centre (and the drift's baseline) from a reference window, a good month
    // say, instead of the window drawn, which holds any excursion it shows
    LG.timeField("baseline from", "baseline_since", p.baseline_since),
    LG.timeField("baseline until", "baseline_until", p.baseline_until), LG.zoneNote(),
    h("button", {type: "submit"}, "Show"));
  // an until is where the window stops, that minute not in it (14:00: a shift's end); but
  // a time at :59 (23:59, the picker's end of a day) is the last minute wanted: it is
  // taken in whole, or the day's last minute of parts was left out
  for (const name of ["until", "baseline_until"]) {
    form.elements[name].title = "up to this time, not including it; a time at :59 (23:59) takes in that whole minute";
  }
  const pEl = h("div", {id: "p-chart"}), alarms = h("div", {id: "alarms"});
  const sEl = h("div", {id: "scores"}), rEl = h("div", {id: "review-rates"});
  const csvP = h("a", {class: "button secondary", id: "csv-p"}, "p-chart CSV");
  const csvS = h("a", {class: "button secondary", id: "csv-scores"}, "scores CSV");
  const paretoEl = h("div", {id: "pareto"});
  const csvPareto = h("a", {class: "button secondary", id: "csv-pareto"}, "Pareto CSV");
  // the period's report for the customer (GET /api/v1/reports/period): the filters' window, or
  // without from/until the last whole month
  const monthXlsx = h("a", {class: "button secondary", id: "xlsx-month"}, "Period report (Excel: days, weeks, alarms, test parts, models)");
  // a period's report as sent to the customer (POST /api/v1/reports/period/issue): kept as
  // it is now, whatever later reviews change; engineers issue, everyone reads the list
  const issueNote = h("input", {id: "issue-note", maxlength: 2000, size: 40,
    placeholder: "where it went (sent to ACME, 8D 114)", "aria-label": "note for the issued report"});
  const issueForm = h("form", {class: "row", id: "issue-form", "data-role": "engineer"}, issueNote,
    h("button", {type: "submit", class: "secondary", id: "issue-month"}, "Issue this period report"));
  const issuedEl = h("div", {id: "issued-reports"});
  // the window Issue would keep, said before it is pressed: without from/until the last whole
  // month, which on a station started this month holds nothing (an engineer read "nothing to
  // issue" beside a chart of parts)
  const issueWindow = h("p", {class: "muted", id: "issue-window", "data-role": "engineer"});
  const mapEl = h("div", {id: "defect-map"});
  const mapWhich = select("which", [["ng", "parts judged NG"], ["defects", "parts reviewed as defects"]], p.which || "ng");
  mapWhich.setAttribute("aria-label", "which parts to map");     // beside its heading, not in a label
  main.append(h("h1", {}, "Statistical process control"), form,
    h("div", {class: "panel"}, h("div", {class: "row"}, h("h2", {class: "grow"}, "Defect rate (p-chart, NG share)"), csvP, monthXlsx), pEl, alarms),
    h("div", {class: "panel"}, h("div", {class: "row"}, h("h2", {class: "grow"}, "Score drift"), csvS), sEl),
    h("div", {class: "panel"}, h("h2", {}, "From reviewed parts (95 % confidence)"), rEl),
    h("div", {class: "panel"}, h("div", {class: "row"}, h("h2", {class: "grow"}, "Defect types (Pareto of reviewed defects)"),
      csvPareto), paretoEl),
    h("div", {class: "panel"}, h("div", {class: "row"}, h("h2", {class: "grow"}, "Where on the part"), mapWhich), mapEl),
    h("div", {class: "panel"}, h("h2", {}, "Issued period reports"),
      issueForm, issueWindow,
      h("p", {class: "muted", "data-role": "engineer"}, "Issuing keeps the period report of the window shown "
        + "(its line, station, product; without from/until the last whole month) as it is now, with your name and "
        + "the note: the report sent stays readable after later reviews change the counts."), issuedEl));
  LG.applyRoles(main);

  // the window a panel covers, from its answer: the p-chart and drift default to the window
  // of their subgroup (48 hours by hour) beside panels of 30 days, and "In control" under a
  // chart of two days read as the month's
  const covers = (id, a) => h("p", {class: "muted window", id}, a && a.since
    ? `window: ${LG.when(a.since)} to ${LG.when(a.until)}` : "");

  // as typed: the page's own address, which fills the fields again
  function typed() {
    const f = form.elements;
    return {line: f.line.value.trim(), station: f.station.value.trim(), product: f.product.value.trim(),
      by: f.by.value, since: LG.localToIso(f.since.value), until: LG.localToIso(f.until.value),
      baseline_since: LG.localToIso(f.baseline_since.value), baseline_until: LG.localToIso(f.baseline_until.value)};
  }
  // an until picked at :59 on the minute, as the API reads it: the next minute's start
  function endOfMinute(local, iso) {
    if (!iso || !/^\d{4,}-\d{2}-\d{2}T\d{2}:59$/.test(local)) return iso;
    return new Date(Date.parse(iso) + 60000).toISOString();
  }
  // what the API is asked: without since, the charts by day and the one-window panels cover
  // the API's default, 30 whole plant days through now
  function filters() {
    const f = form.elements, t = typed();
    return Object.assign(t, {until: endOfMinute(f.until.value, t.until),
      baseline_until: endOfMinute(f.baseline_until.value, t.baseline_until)});
  }

  // the window and scope of the charts on screen: what "Issue" issues, not fields typed since
  let shown = null;

  async function load() {
    const f = filters();
    // the rates and the Pareto have no subgroups: one window (30 whole plant days unless
    // from/until say), and no baseline
    const whole = {line: f.line, station: f.station, product: f.product, since: f.since, until: f.until};
    let pc, sc, rr, pa;
    try {
      [pc, sc, rr, pa] = await Promise.all([
        api("/api/v1/spc/p-chart" + LG.q(f)),
        api("/api/v1/spc/scores" + LG.q(f)),
        api("/api/v1/spc/review-rates" + LG.q(whole)),
        api("/api/v1/spc/pareto" + LG.q(whole)),
        loadMap(whole)]);
    } catch (err) {
      // refused (from after until, say): no charts of the filters before stay beside the
      // error as if they were these, and no CSV link points at the refused request
      for (const el of [pEl, alarms, sEl, rEl, paretoEl, mapEl]) clear(el);
      for (const a of [csvP, csvS, csvPareto, monthXlsx]) a.removeAttribute("href");
      shown = null;
      throw err;
    }
    history.replaceState(null, "", location.pathname + LG.q(typed()));
    shown = whole;
    const [first, last] = LG.lastWholeMonth();
    issueWindow.textContent = !whole.since && !whole.until
      ? `Issue keeps the last whole month, ${first} to ${last} (plant days); set from/until and Show for another window.`
      : whole.since && whole.until ? `Issue keeps ${LG.when(whole.since)} to ${LG.when(whole.until)} (the filters' window).`
      : "Issue keeps the filters' window (without since: from the first of until's month; without until: to today's "
        + "00:00).";
    // a month issued before it ended read as the whole month (the report says it too)
    if (whole.until && Date.parse(whole.until) > Date.now()) {
      issueWindow.textContent += " The window has not ended: a report issued now leaves out the parts still to come.";
    }
    csvP.href = "/api/v1/spc/p-chart" + LG.q(Object.assign({}, f, {format: "csv"}));
    csvS.href = "/api/v1/spc/scores" + LG.q(Object.assign({}, f, {format: "csv"}));
    csvPareto.href = "/api/v1/spc/pareto" + LG.q(Object.assign({}, whole, {format: "csv"}));
    monthXlsx.href = "/api/v1/reports/period" + LG.q(Object.assign({}, whole, {format: "xlsx"}));

    clear(pEl); clear(alarms);
    pEl.appendChild(covers("p-chart-window", pc));
    if (!pc.points.length) {
      pEl.appendChild(h("p", {class: "muted"}, f.by === "lot" ? "No part in this period was sent with a lot: "
        + "choose another subgroup, or send parts with their lot." : "No parts in this period."));
    } else {
      // each chart drawn for its box: on a phone at the phone's width, its text readable
      LG.chart.fit(pEl, (width) => LG.chart.pchart(pc, {width}));
      // the limits in the plant's words first ("0.135% chance on a stable line" read as a
      // statistician's note), the engineer's number after them
      // "ng": NG verdicts, a false reject included: not the Pareto's reviewed defects
      const ng = pc.ng !== undefined ? pc.ng : pc.defects, base = pc.baseline || {};
      pEl.appendChild(h("p", {id: "p-chart-ng"}, `NG parts: ${LG.count(ng)} of ${LG.count(pc.parts)} `
        + "parts judged (NG verdicts, false rejects included; the reviewed defects are in the Pareto below)"));
      pEl.appendChild(h("p", {class: "muted", id: "p-chart-baseline"}, base.from === "baseline_since/until"
        ? `centre from the baseline ${LG.when(base.since)} to ${LG.when(base.until)}: `
          + `${base.ng} NG parts of ${base.parts}`
        : "centre from this window itself: an excursion in it raises its own centre and limits "
          + "(baseline from/until above set a reference window)"));
      pEl.appendChild(h("p", {class: "muted", id: "limits-mean"}, `centre ${pct(pc.centre, 2)} · limits: on a stable `
        + "line a point lands above the upper limit by chance less than once in 740 points (0.135 %; the same below "
        + "the lower one; set for each subgroup's size), so a point outside them has a cause to look for · "
        + `${pc.points.length} subgroups by ${pc.by}`));
    }
    if (pc.without_lot) {
      // a chart by lot leaves out the parts sent with none: said, not silently missing
      pEl.appendChild(h("p", {class: "muted", id: "without-lot"}, `${LG.count(pc.without_lot)} part(s) in this `
        + "period were sent with no lot and are not on this chart."));
    }
    alarms.appendChild(pc.alarms.length
      ? h("table", {id: "alarm-list"}, h("tr", {}, h("th", {}, "subgroup"), h("th", {}, "rule"), h("th", {}, "what")),
        pc.alarms.map((a) => h("tr", {class: "alarm"}, h("td", {}, a.label), h("td", {}, a.rule), h("td", {}, a.text))))
      // nothing to judge is not "in control": too few subgroups say nothing either way
      : pc.points.length < 2 ? h("p", {class: "muted", id: "alarm-list"}, pc.points.length
        ? "One subgroup only: too few to judge whether the line is in control." : "Nothing to judge.")
        : h("p", {class: "v-ok", id: "alarm-list"}, `In control from ${LG.when(pc.since)} to ${LG.when(pc.until)}: `
          + "no rule alarms."));

    clear(sEl);
    sEl.appendChild(covers("scores-window", sc));
    if (!sc.points.length) sEl.appendChild(h("p", {class: "muted"}, "No scores in this period."));
    else {
      const labels = sc.points.map((x) => x.label);
      const hl = [];
      if (sc.baseline && sc.baseline.mean !== undefined && sc.baseline.mean !== null) {
        hl.push({y: sc.baseline.mean, color: "#1d4f91", name: "baseline mean (dashed)"});
      }
      // the axis is the model's score (no unit): said in the series' names
      LG.chart.fit(sEl, (width) => LG.chart.lines(labels, [
        {name: "mean score", values: sc.points.map((x) => x.mean), color: "#1d4f91"},
        {name: "median score", values: sc.points.map((x) => x.median), color: "#17703c"},
        {name: "95th percentile score", values: sc.points.map((x) => x.p95), color: "#8f5600"}],
      {width, label: "score drift", hlines: hl,
        marks: sc.drift && sc.drift.alarm && sc.drift.index !== null ? [sc.drift.index] : []}));
    }
    // no subgroup compared with the baseline yet: nothing is known, so not said in green
    const compared = sc.points.some((x) => x.z !== null && x.z !== undefined);
    sEl.appendChild(h("p", {id: "drift", class: sc.drift && sc.drift.alarm ? "error" : compared ? "v-ok" : "muted"},
      sc.drift && sc.drift.alarm ? `Drift: ${sc.drift.text}` : (sc.drift && sc.drift.text) || "No drift seen."));

    // first the share of good parts scrapped: good parts judged NG / good parts made (what
    // the plant manager, training's --frr and the Tuning page call the false-reject rate;
    // line/spc.py review_rates' good_scrapped). Then rates of the parts reviewed with one
    // verdict: of the NG parts reviewed, how many were good (9 % of rejected parts can be
    // 0.3 % of good parts); of the OK parts reviewed, how many were defects.
    clear(rEl);
    const n0 = (x) => LG.count(Math.round(x));
    const gs = rr.good_scrapped || {};
    let gsText;
    if (gs.rate === null || gs.rate === undefined) {
      gsText = gs.ng_not_reviewed ? `none of the ${gs.ng_parts} NG parts reviewed yet: review them (the Review queue `
        + "lists them) to know how many were good" : "no parts made in this window";
    } else if (gs.estimate) {
      // NG parts left unreviewed: the good share of those reviewed stands for all of them
      gsText = `about ${n0(gs.k)} of ${n0(gs.n)} good parts were rejected as NG: about ${pct(gs.rate, 2)}. An estimate: `
        + `${gs.ng_not_reviewed} of ${gs.ng_parts} NG parts are not reviewed; ${gs.ng_reviewed_good} of the `
        + `${gs.ng_reviewed} reviewed were good, taken as the share of all of them. Review every NG part for the exact count.`;
    } else {
      gsText = `${gs.k} of ${LG.count(gs.n)} good parts were rejected as NG: ${pct(gs.rate, 2)} (${pct(gs.lo, 2)} – `
        + `${pct(gs.hi, 2)}) · good parts: every part made less those reviewed as defects`
        + (gs.ng_parts ? " · every NG part reviewed" : "");
    }
    // the PLC's rejects without a verdict in time: those judged late are counted, those
    // never judged cannot be (no record) and are said apart
    if (gs.rejected_late_good) {
      gsText += ` · ${gs.rejected_late_good} of them judged OK or REVIEW after their inspection window, when the PLC `
        + "had already rejected them";
    }
    if (gs.rejected_never_judged) {
      gsText += ` · not counted: ${gs.rejected_never_judged} part(s) the PLC rejected without a verdict and never `
        + "judged, whether good unknown" + (gs.rate_if_never_judged_good != null
        ? ` (were all of them good: ${pct(gs.rate_if_never_judged_good, 2)})` : "");
    }
    if (gs.counted_since && rr.since && gs.counted_since !== rr.since) {
      // older records are not all kept: counting them would overstate the share
      gsText += ` · counted from ${LG.when(gs.counted_since)}, the oldest records kept`;
    }
    // one scale for the four rates: each on its own drew 8.95 % longer than 46.67 % beside it
    const scale = LG.chart.intervalScale([gs.rate !== null && gs.rate !== undefined ? gs : null,
      ...["false_reject", "escape_audit", "escape"].map((k) => (rr[k] && rr[k].n ? rr[k] : null))]);
    rEl.appendChild(h("div", {class: "row", dataset: {rate: "good_scrapped"}}, h("div", {class: "grow"},
      h("b", {}, "Good parts scrapped"), h("div", {}, gsText)),
    h("div", {class: "grow"}, gs.rate !== null && gs.rate !== undefined ? LG.chart.interval(gs, {max: scale}) : null)));
    for (const [key, title, counted, none] of [
      ["false_reject", "Rejected parts reviewed good (share of NG parts, not of good parts)",
        (r) => `${r.k} of ${r.n} NG parts reviewed were called good`, "no NG part reviewed yet"],
      // the audit sample was drawn before the verdict: its reviewed OK parts estimate the
      // escape rate; OK parts a person picked because they looked odd overstate it
      ["escape_audit", "Defective share of passed parts (audit sample)",
        (r) => `${r.k} of ${r.n} OK parts of the audit sample reviewed were called defects`,
        `no OK part of the audit sample reviewed yet (${(rr.audit_sample || {}).ok_parts || 0} in this window: `
        + "the Review queue lists them)"],
      ["escape", "Passed parts reviewed as defects, any",
        (r) => `${r.k} of ${r.n} OK parts reviewed were called defects (those picked by hand too: overstated `
          + "when they were picked for looking odd)",
        "no OK part reviewed yet (OK parts are reviewed by audit)"]]) {
      const r = rr[key] || {};
      rEl.appendChild(h("div", {class: "row", dataset: {rate: key}}, h("div", {class: "grow"}, h("b", {}, title),
        h("div", {}, r.n ? `${counted(r)}: ${pct(r.rate, 2)} (${pct(r.lo, 2)} – ${pct(r.hi, 2)})` : none)),
      h("div", {class: "grow"}, r.n ? LG.chart.interval(r, {max: scale}) : null)));
      if (key === "escape_audit" && r.needed) rEl.appendChild(auditNeeded(r, rr.confidence));
    }
    const band = rr.review_band || {};
    rEl.appendChild(h("p", {class: "muted", id: "review-band"}, "REVIEW-band parts are in neither rate: "
      + `${band.good || 0} reviewed good, ${band.defect || 0} reviewed as defects. Each of these rates is of the parts `
      + "reviewed with that verdict, not of all parts made; the share of good parts scrapped is the first line."));

    rEl.appendChild(covers("review-rates-window", rr));

    clear(paretoEl);
    if (!pa.bars.length) paretoEl.appendChild(h("p", {class: "muted"}, "No reviewed defects in this window."));
    else LG.chart.fit(paretoEl, (width) => LG.chart.pareto(pa.bars, {width}));
    paretoEl.appendChild(h("p", {class: "muted", id: "pareto-note"}, `${pa.defects} reviewed defect(s)`
      + (pa.not_reviewed ? ` · ${pa.not_reviewed} NG/REVIEW part(s) not reviewed yet, their types unknown` : "")
      + ` · ${LG.when(pa.since)} to ${LG.when(pa.until)}`));
  }

  // what a claim to a customer takes ("under 1000 ppm shipped defective, at 95 %"): the
  // audited OK parts that state it (line/spc.py review_rates' escape_audit), how many more,
  // and at the station's audit rate about how many parts made that is
  function auditNeeded(r, confidence) {
    const target = `${pct(r.target, 1)} (${LG.count(Math.round(r.target * 1e6))} ppm)`;
    const conf = pct(confidence || 0.95, 0);
    if (!r.more_needed) {
      return h("p", {class: "v-ok", id: "audit-needed"}, `Enough audited parts: at most ${pct(r.upper_bound, 3)} of `
        + `passed parts defective (${conf} confidence), under ${target}.`);
    }
    let text = !r.n ? "No audited OK part reviewed yet. "
      : r.k ? `${r.k} defect(s) found in ${LG.count(r.n)} audited OK parts: at most ${pct(r.upper_bound, 2)} of `
        + `passed parts defective (${conf} confidence). `
        : `Now: at most ${pct(r.upper_bound, 2)} of passed parts defective (${conf} confidence; ${LG.count(r.n)} `
          + "audited OK parts, none defective). ";
    text += `To state under ${target} at ${conf} confidence, ${LG.count(r.needed)} audited OK parts must be `
      + `reviewed with ${r.k ? "no more" : "no"} defect found: ${LG.count(r.more_needed)} more.`;
    if (r.waiting) text += ` ${LG.count(r.waiting)} OK part(s) of the audit sample in this window wait for review `
      + "(the Review queue's audit list).";
    if (!r.audit_sample_rate) {
      text += " This station draws no audit sample: set audit_sample_rate (serve --audit-sample-rate 0.02) to start one.";
    } else if (r.parts_to_make === 0) {
      text += " Reviewing those is enough.";
    } else if (r.parts_to_make == null) {
      // no OK part in this window to tell how many parts pass: the share is not guessed
      text += ` The audit sample takes ${pct(r.audit_sample_rate, 1)} of the OK parts made; this window has no OK `
        + "part to tell how many parts that is.";
    } else {
      text += ` At the audit rate of ${pct(r.audit_sample_rate, 1)} that is about ${LG.count(r.parts_to_make)} `
        + "more parts made; a higher rate gets there sooner (station setting audit_sample_rate: serve "
        + "--audit-sample-rate).";
    }
    return h("p", {class: "muted", id: "audit-needed"}, text);
  }

  async function loadMap(whole) {
    const dm = await api("/api/v1/spc/defect-map" + LG.q(Object.assign({}, whole, {which: mapWhich.value})));
    clear(mapEl);
    mapEl.appendChild(covers("defect-map-window", dm));
    if (!dm.regions) {
      mapEl.appendChild(h("p", {class: "muted"}, "No defect regions in this window."));
      return;
    }
    mapEl.appendChild(LG.chart.defectMap(dm, dm.backdrop ? LG.picUrl(dm.backdrop, "image", 640) : null));
    mapEl.appendChild(h("p", {class: "muted", id: "defect-map-note"}, `${dm.regions} region(s) of `
      + `${dm.parts_with_regions} of the newest ${dm.parts} part(s); each cell as dark as its share of the busiest`
      + " · one product at a time reads best (parts framed alike)"));
  }

  // 20 at a time, newest first; older ones a tap away (the list stopped at the last 20, and a
  // report issued two years ago, asked for in an audit, could not be found on the page)
  const ISSUED_PAGE = 20;
  async function loadIssued() {
    const page = (before) => api("/api/v1/reports/issued" + LG.q({limit: ISSUED_PAGE, kind: "period", before}));
    const first = await page();
    clear(issuedEl);
    if (!first.issued.length) {
      issuedEl.appendChild(h("p", {class: "muted"}, "No period report issued yet."));
      return;
    }
    const row = (r) => h("tr", {class: r.withdrawn ? "withdrawn" : "", dataset: {issued: r.id}},
      h("td", {}, `${LG.when(r.since)} to ${LG.when(r.until)}`), h("td", {}, r.line || "every line"),
      h("td", {}, r.product || "every product"), h("td", {}, r.issued_by || "–"), h("td", {}, LG.when(r.issued_at)),
      h("td", {}, r.note), h("td", {class: "issued-state"}, issuedState(r)),
      h("td", {}, h("a", {href: `/api/v1/reports/issued/${r.id}?format=xlsx`}, "Excel"), " ",
        LG.changedSinceForm(r.id, "Issued report"),
        r.withdrawn ? "" : withdrawForm(r)));
    const body = h("tbody", {}, ...first.issued.map(row));
    let next = first.next_before;
    const older = h("button", {type: "button", class: "secondary no-print", id: "issued-older", hidden: !next,
      onclick: async () => {
        older.disabled = true;
        try {
          const more = await page(next);
          for (const r of more.issued) body.appendChild(row(r));
          LG.applyRoles(body);
          next = more.next_before;
          older.hidden = !next;
        } catch (e) { LG.fail(e); } finally { older.disabled = false; }
      }}, `Show ${ISSUED_PAGE} older`);
    issuedEl.appendChild(h("div", {class: "table-wrap"}, h("table", {id: "issued-table"},
      h("thead", {}, h("tr", {}, ...["window", "line", "product", "issued by", "issued at", "note", "revision",
        "as issued"].map((t) => h("th", {}, t)))), body)));
    issuedEl.appendChild(older);
    LG.applyRoles(issuedEl);
  }

  // which copy this is: a corrected report issued for the same window is its next revision;
  // a withdrawn one says who withdrew it and why
  function issuedState(r) {
    const parts = [`#${r.id}, revision ${r.revision}`];
    if (r.replaces) parts.push(`replaces #${r.replaces}`);
    if (r.replaced_by) parts.push(`replaced by #${r.replaced_by}`);
    // the revision to send, where the one after this was withdrawn too (or replaced again)
    if (r.replaced_by && r.standing !== undefined && r.standing !== r.replaced_by) {
      parts.push(r.standing === null ? "no revision stands (all withdrawn)" : r.standing === r.id
        ? "this one stands (those after it withdrawn)" : `#${r.standing} stands`);
    }
    const out = [h("span", {}, parts.join(" · "))];
    if (r.withdrawn) {
      out.push(h("br"), h("strong", {class: "error"}, "WITHDRAWN"),
        ` ${LG.when(r.withdrawn.at)} by ${r.withdrawn.by || "–"}: ${r.withdrawn.reason}`);
    }
    return out;
  }

  // a report sent in error is withdrawn with a reason (engineers; kept and readable, marked)
  const withdrawForm = (r) => LG.withdrawForm(r.id, "issued report", async () => {
    LG.say(`Issued report ${r.id} withdrawn: it stays in the list and its workbook says so.`);
    await loadIssued();
  });

  // one report a tap (LG.once: a double tap issued it twice). Sent as the window's first
  // revision: a window issued already (a second tap after the answer: it issued a revision 2
  // without the note, replacing the one sent with it) is refused, and a new revision is
  // issued only when the engineer says so, with the note in the field kept until then
  LG.once(issueForm, async () => {
    if (!shown) throw new Error("No charts shown: press Show first; the report issued is of the window shown.");
    const send = (revision) => api("/api/v1/reports/period/issue" + LG.q(shown),
      {method: "POST", body: {note: issueNote.value, revision}});
    let got;
    try {
      got = await send(1);
    } catch (err) {
      const said = err && err.status === 409 && err.body && err.body.error;
      if (!said || !said.replaces) throw err;
      // the last one issued withdrawn: "replacing #2" read as if #2 still stood. The new
      // revision follows the withdrawn one (its header's "replaces"); the one standing now
      // is not replaced in that chain, it stops being the newest: said as the data has it
      const replacing = !said.withdrawn ? `replacing #${said.replaces}`
        : said.stands ? `it follows withdrawn #${said.replaces}; #${said.stands}, the one that stands now, `
          + "would no longer be the newest"
          : `#${said.replaces} was withdrawn and no report of this window stands: this follows it and replaces `
          + "none that stands";
      if (!confirm(`${said.message}.\n\nIssue revision ${said.revision}? (${replacing})`
        + (issueNote.value.trim() ? "" : " Its note is empty."))) {
        LG.say(said.withdrawn && !said.stands ? "Not issued: no report stands for this window (every one issued "
          + "was withdrawn)." : `Not issued: report #${said.stands || said.replaces} stands for this window.`);
        return;
      }
      got = await send(said.revision);
    }
    issueNote.value = "";
    LG.say(`Period report issued: ${LG.when(got.issued.since)} to ${LG.when(got.issued.until)}`
      + (got.issued.line ? `, line ${got.issued.line}` : "")
      + (got.issued.replaces ? `; revision ${got.issued.revision}, replaces #${got.issued.replaces}` : "") + ".");
    await loadIssued();
  });

  form.addEventListener("submit", (e) => { e.preventDefault(); load().catch(LG.fail); });
  mapWhich.addEventListener("change", () => {
    const f = filters();
    loadMap({line: f.line, station: f.station, product: f.product, since: f.since, until: f.until}).catch(LG.fail);
  });
  await Promise.all([load(), loadIssued()]);
});
