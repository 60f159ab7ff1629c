// Models: every version with its thresholds, detector, training set and measured rates;
// retrain (from confirmed-good parts and/or the random audit sample), run a candidate in
// shadow, compare it with the active one, activate, roll back.
"use strict";

LG.start(async (main) => {
  const {h, api, clear, field, pct, num} = LG;
  const p = LG.params();
  const filt = h("form", {class: "filters panel"},
    field("product", h("input", {name: "product", value: p.product || "", size: 10, placeholder: "every product"})),
    field("line", h("input", {name: "line", value: p.line || "", size: 8, placeholder: "every line"})),
    h("button", {type: "submit"}, "Show"));
  const table = h("div", {class: "table-wrap", id: "versions"});
  const compareEl = h("div", {id: "compare"});
  const trainEl = h("div", {class: "panel", dataset: {role: "engineer"}, id: "retrain"});
  const jobsEl = h("div", {class: "table-wrap", id: "jobs"});
  // what an activation, rollback or shadow change is doing while the station works on it:
  // an activation first tries the version on the latest parts (seconds), and a page that
  // showed nothing meanwhile was taken for one that had not heard the tap
  const workingEl = h("p", {class: "working", id: "model-working", role: "status", hidden: true});
  // what the last activation or rollback changed beyond the version itself (a shadow now
  // compared with another version, or ended; versions a rollback passed, their file broken):
  // kept on screen until the next change, where the status line's 6 s were too short to read it
  const noteEl = h("p", {class: "warn", id: "change-note", hidden: true});
  // a model file made elsewhere (a .lgm bundle, an exported .onnx), uploaded from the page:
  // it took curl and an API key before (POST /api/v1/models, an engineer's)
  const uploadEl = h("div", {class: "panel", dataset: {role: "engineer"}, id: "upload"});
  // a product's reference photos, each seen: the page said how many a retrain learns, not
  // which, so after a camera change nobody could tell whether the old camera's were still there
  const refsEl = h("div", {class: "panel", id: "reference-photos"});
  // a product's defect types, an engineer's to set: built for engineers only (defectTypesPanel)
  const typesEl = LG.roleAtLeast("engineer") ? h("div", {class: "panel", dataset: {role: "engineer"}, id: "defect-types"})
    : null;
  const typesAsked = location.hash === "#defect-types";    // read before load() writes the address again
  // main.append(null) writes "null": an operator's page has no types panel
  main.append(h("h1", {}, "Models"), filt, h("div", {class: "panel"}, workingEl, noteEl, table), compareEl,
    ...(typesEl ? [typesEl] : []), uploadEl, trainEl, refsEl);

  const lineOf = (m) => m.line || "";
  const enc = encodeURIComponent;
  let shown = [];          // the versions on screen: what an activation or rollback is sent against
  let showActive = async () => {};    // Retrain's line on what "as the active version" keeps
  let showRefs = async () => {};      // the reference photos panel, again (one added or removed)
  const NOT_DONE = {};     // an action the engineer called off at its second question

  // One change at a time: while the station works on one, every version's buttons wait
  // (a second tap would race the first) and what it is doing is said.
  let working = false;
  function busy(doing) {
    workingEl.textContent = doing || "";
    workingEl.hidden = !doing;
    for (const b of main.querySelectorAll("#versions button, #compare button")) b.disabled = !!doing;
    if (doing) LG.say(doing, "info");
  }

  async function act(label, fn, doing) {
    if (working) return null;
    working = true;
    busy(doing || "Working…");
    noteEl.hidden = true;
    try {
      const out = await fn();
      if (out === NOT_DONE) { LG.say("nothing changed", "info"); return null; }
      busy(null);
      LG.say(label + (out && out.version ? `: version ${out.version}` : ""), "ok");
      if (out && out.warning) { noteEl.textContent = out.warning; noteEl.hidden = false; }
      await load();
      return out;
    } catch (err) {
      busy(null);
      LG.fail(err);
      // another engineer changed the active version meanwhile: show what is active now
      if (err && err.status === 409) load().catch(() => {});
      return null;
    } finally {
      working = false;
      busy(null);
    }
  }
  const trying = (m) => `Trying v${m.version} on the latest good parts and reviewed defects before it judges the `
    + "line…";

  // the version active for exactly this product and line on screen (0: none), sent along so
  // the station refuses the change when someone else changed it since (409 active_changed)
  function activeNow(m) {
    const live = shown.find((x) => x.active && x.product === m.product && lineOf(x) === lineOf(m));
    return live ? live.version : 0;
  }

  // The station tries the version on the product's latest good parts first, and on the latest
  // parts reviewed as defects; when it rejects most good ones (a model of another product) or
  // passes most defects (a threshold set too high) it says so and changes nothing: the engineer
  // reads why and may still go ahead (the change log records it as forced).
  // refused: an upload's own refusal to activate the version it registered (the same 409s),
  // whose answer says which version was active then
  async function activate(m, refused = null) {
    const url = `/api/v1/models/${enc(m.product)}/activate`;
    const said = refused && refused.body && refused.body.error;
    const body = {line: lineOf(m), version: m.version,
      expected_active: said ? said.active_version || 0 : activeNow(m)};
    let out;
    try {
      if (refused) throw refused;
      out = await api(url, {method: "POST", body});
    } catch (err) {
      const e = err && err.body && err.body.error;
      if (!(err.status === 409 && e && ["rejects_good_parts", "passes_reviewed_defects"].includes(e.code))) throw err;
      // the API's own way round ("force": true) is this question here; its separator goes with it
      // (a "," left behind read "...Models page),." before the question)
      const why = e.message.replace(/[;,]? or activate it anyway with "force": true\.?$/, "");
      if (!sure(`${why}.\n\nActivate v${m.version} anyway? It judges every part from now on; the change log `
        + "records the activation as forced.")) return NOT_DONE;
      busy(`Activating v${m.version} anyway…`);
      out = await api(url, {method: "POST", body: {...body, force: true}});
    }
    clear(compareEl);      // its Activate button and "active vX" are out of date now
    return out;
  }

  async function rollback(m) {
    const out = await api(`/api/v1/models/${enc(m.product)}/rollback`,
      {method: "POST", body: {line: lineOf(m), expected_active: m.version}});
    clear(compareEl);
    return out;
  }

  // the model judging the line changes on one tap: asked first (a touch panel is easily mis-tapped)
  const sure = (question) => window.confirm(question);
  const activating = (m) => `Activate ${m.product} v${m.version}${m.line ? " on line " + m.line : ""}? It judges every `
    + "part from now on (Roll back returns to the one active now).";

  // a version that learned from far fewer good parts than the active one (19 beside 120):
  // its threshold rests on a handful of scores
  function fewImages(m, items) {
    if (m.active || !m.train_images) return false;
    const live = items.find((x) => x.active && x.product === m.product && lineOf(x) === lineOf(m));
    return !!(live && live.train_images && m.train_images < live.train_images / 2);
  }

  // A rate with its count and exact 95 % interval: "40.0 % (4 of 10; 95 %: 12.2 % – 73.8 %)".
  // A shadow's is weighted by the line's verdicts (people picked what to review by the active
  // version's verdict, so "k of n" would read it wrong): said so, with its wider interval;
  // none at all where some kind of its parts was never reviewed.
  const ci = (r) => !r.weighted_by ? `${pct(r.rate, 1)} (${r.k} of ${r.n}; 95 %: ${pct(r.lo, 1)} – ${pct(r.hi, 1)})`
    : r.rate === null || r.rate === undefined
      ? `not estimated: some of these parts are of a verdict of the line none of which was reviewed (95 %: `
        + `${pct(r.lo, 1)} – ${pct(r.hi, 1)} whatever they are)`
      : `${pct(r.rate, 1)} (weighted by the line's verdicts, from ${r.k} of ${r.n} reviewed; 95 %: ${pct(r.lo, 1)} – `
        + `${pct(r.hi, 1)})`;

  // The random audit sample's parts (drawn by the photo's hash before any verdict) are the
  // only reviews that say how a version does on the line: shown first. "judged, reviewed"
  // beside them, so a rate on 3 reviewed parts is read as the guess it is.
  function sampleRates(s, id) {
    if (!s || !s.judged) return null;
    const passed = s.defects_passed ? `defects passed (of the defects reviewed, judged OK): ${ci(s.defects_passed)}`
      : s.reviewed ? "defects passed: not said (the sample's parts the line passed and those it flagged were reviewed "
        + "in different shares: review the audit list)" : null;
    return h("div", {class: "sample-rates", dataset: {rates: "sample"}, id: id || null,
      title: "the random audit sample: parts drawn before any verdict, whatever the model said; the rates people "
        + "measured on those alone say how this version does on the line"},
    h("b", {}, `audit sample: ${s.judged} judged, ${s.reviewed} reviewed`),
    s.reviewed ? [h("div", {}, !s.escape.n ? "escapes: no OK part of the sample reviewed"
      : s.escape.weighted_by ? `escapes (defects among its OK parts, weighted by the line's verdicts: it judged in `
        + `shadow): ${ci(s.escape)}` : `escapes (defects among its OK parts reviewed): ${ci(s.escape)}`),
    passed ? h("div", {}, passed) : null]
      : h("div", {class: "muted"}, "none reviewed yet: the Review queue's audit list holds them"));
  }

  // Counts, not rates: people review the rejected parts far more than the passed ones, so
  // "FR 100 % (2)" read as a model rejecting every good part when two false alarms had
  // been marked good, and "escapes 3.5 %" hid a version passing 43 % of the defects. The
  // line's rates are on the SPC page; the version's are the audit sample's above these.
  function rates(m) {
    const r = m.rates;
    const sample = sampleRates(m.sample_rates);
    if (!r && !sample) return "–";
    return h("div", {}, sample, r ? h("div", {class: sample ? "muted" : null, dataset: {rates: "reviewed"},
      title: "every part people reviewed: the rejected ones far more than the passed ones, so escapes are "
        + "mostly missing here; counts of reviews, not the version's rates"},
    `of the parts people reviewed (mostly flagged ones): reviewed good: ${r.n_good} `
      + `(${r.n_good ? Math.round(r.false_reject_rate * r.n_good) : 0} judged NG) · reviewed defect: ${r.n_defect} `
      + `(${r.n_defect ? Math.round(r.escape_rate * r.n_defect) : 0} judged OK)`) : null);
  }

  async function load() {
    const f = {product: filt.elements.product.value.trim(), line: filt.elements.line.value.trim()};
    history.replaceState(null, "", location.pathname + LG.q(f));
    const items = (await api("/api/v1/models" + LG.q(f))).items;
    shown = items;
    clear(table);
    if (!items.length) {
      table.appendChild(h("p", {class: "muted"}, f.product || f.line ? "No model version matches this product and line "
        + "(the names are exact: clear the filter to see every version)." : "No model versions yet."));
    }
    else table.appendChild(h("table", {},
      h("tr", {}, ["product", "line", "version", "state", "NG threshold", "review", "detector", "trained on", "rates of its parts",
        "made", ""].map((t) => h("th", {}, t))),
      items.map((m) => {
        const state = m.state || (m.active ? "active" : "inactive");
        const acts = h("td", {dataset: {role: "engineer"}});
        // a version whose file cannot be loaded is not offered to activate or shadow: the
        // station refuses it (409), and the engineer learned it only then
        if (m.file_problem && state !== "active") {
          acts.append(h("span", {class: "muted", dataset: {what: "cannot-activate"}, title: "upload the same model "
            + "file again (it writes the file back for this version), or restore it from a backup"},
          "cannot be activated: its file is unusable"), " ");
        } else if (state !== "active") {
          acts.append(h("button", {type: "button", class: "secondary", dataset: {act: "activate"},
            onclick: () => sure(activating(m)) && act("activated", () => activate(m), trying(m))}, "Activate"), " ");
        }
        // a copy of the version's file (a version trained or tuned here exists nowhere else): it
        // took curl and an engineer's key. The station names it (cell-v3.lgm, cell-L1-v3.onnx);
        // not offered where the file is unusable (the browser would save the refusal as the model)
        if (!m.file_problem) {
          acts.append(h("a", {href: `/api/v1/models/${enc(m.product)}/versions/${m.version}/file` + LG.q({line: m.line || ""}),
            download: true, dataset: {act: "download"}, title: "save a copy of this version's model file (to upload "
              + "again after a restore from a backup without it, or onto another station)"}, "Download file"), " ");
        }
        if (state === "inactive" && !m.file_problem) {
          // one shadow per product and line: starting one ends the one running, asked first
          const running = items.find((x) => x.product === m.product && lineOf(x) === lineOf(m) && x.state === "shadow");
          acts.append(h("button", {type: "button", class: "secondary", dataset: {act: "shadow"},
            onclick: () => (!running || sure(`v${running.version} runs in shadow now; stop it and run v${m.version} `
              + "in shadow instead? What v" + running.version + " judged so far stays for the comparison."))
              && act("running in shadow", () => api(`/api/v1/models/${enc(m.product)}/shadow`,
                {method: "POST", body: {line: lineOf(m), version: m.version}}), `Starting v${m.version} in shadow…`)},
          "Shadow"), " ");
        }
        if (state === "shadow") {
          acts.append(h("button", {type: "button", class: "secondary", dataset: {act: "unshadow"},
            onclick: () => act("shadow stopped", () => api(`/api/v1/models/${enc(m.product)}/shadow` + LG.q({line: lineOf(m)}),
              {method: "DELETE"}), `Stopping v${m.version}'s shadow…`)}, "Stop shadow"), " ");
        }
        // a line's first own model rolls back to the product's model of every line, which judged
        // the line's parts before it: "Roll back to v1" read as the line's own v1
        const toEvery = state === "active" && !!m.line && m.rollback_to_line === "";
        const backTo = toEvery ? `the model of every line (v${m.rollback_to})` : `v${m.rollback_to}`;
        if (state === "active" && m.rollback_to) {
          acts.append(h("button", {type: "button", class: "danger", dataset: {act: "rollback"},
            onclick: () => sure(toEvery
              ? `Roll ${m.product} on line ${m.line} back from v${m.version} to ${backTo}, which judged its parts `
                + `before? Line ${m.line}'s own versions stay, none active; ${m.product} v${m.rollback_to} of every line `
                + "judges its parts from now on."
              : `Roll ${m.product} ${m.line ? "on line " + m.line : "(every line)"} back from v${m.version} `
                + `to v${m.rollback_to}, the version active before it? v${m.rollback_to} judges every part from now on.`)
              && act(toEvery ? `rolled back: line ${m.line} is judged by the model of every line again` : "rolled back",
                () => rollback(m), `Rolling back to ${backTo}…`)}, `Roll back to ${backTo}`), " ");
        } else if (state === "active") {
          acts.append(h("span", {class: "muted", title: "it replaced no earlier model, or each earlier one was rolled "
            + "back: activate another version by its number instead"}, "nothing to roll back to"));
        } else {
          acts.append(h("button", {type: "button", class: "link", dataset: {act: "compare"},
            onclick: () => compare(m).catch(LG.fail)}, "Compare"));
        }
        return h("tr", {dataset: {product: m.product, version: m.version, state}},
          h("td", {}, m.product), h("td", {}, m.line || "every line"), h("td", {}, "v" + m.version),
          h("td", {}, h("span", {class: "badge state-" + state}, state),
            m.file_problem ? h("div", {class: "badge state-few", dataset: {what: "file-problem"},
              title: m.active ? "it judges parts from the copy loaded in memory; a restart of the station cannot load "
                + "it: upload the same model file again, or activate another version"
                : "upload the same model file again (it writes the file back for this version), or restore it from "
                + "a backup"}, `file unusable: ${m.file_problem}`) : null),
          h("td", {}, num(m.threshold, 4)), h("td", {}, m.review_threshold === null || m.review_threshold === undefined ? "–" : num(m.review_threshold, 4)),
          h("td", {}, m.detector || "–", m.features ? h("div", {class: "muted"}, m.features) : null,
            // an fp32 and an int8 export of one model have the same features and model_version
            m.precision || m.runtime ? h("div", {class: "muted", dataset: {what: "precision"},
              title: "what its scores are computed in, and what runs it (torch: a .lgm; onnxruntime or openvino: an "
                + "exported .onnx); its thresholds fit those scores"}, [m.precision, m.runtime].filter(Boolean).join(" · ")) : null,
            m.same_file_as ? h("div", {class: "badge state-few", dataset: {what: "same-file"},
              title: `the very same model file as v${m.same_file_as} (model id ${m.model_id}): not a new model`},
            `same file as v${m.same_file_as}`) : null),
          h("td", {}, m.train_images !== null && m.train_images !== undefined ? `${m.train_images} images` : "–",
            fewImages(m, items) ? h("span", {class: "badge state-few", title: "far fewer good parts than the version "
              + "active now learned from: its threshold rests on few parts; compare it in shadow before activating"},
            "few parts") : null,
            m.trained_from ? h("div", {class: "muted"}, m.trained_from) : null),
          h("td", {}, rates(m)),
          h("td", {}, LG.when(m.uploaded_at), h("div", {class: "muted"}, m.uploaded_by || "", m.note ? " · " + m.note : "")),
          acts);
      })));
    // each cell named by its column, for a phone, where the rows are cards (app.css): the
    // table was 762 px a row there, and Activate / Roll back a sideways scroll away
    const heads = [...table.querySelectorAll("th")].map((th) => th.textContent);
    for (const tr of table.querySelectorAll("tr")) {
      [...tr.querySelectorAll("td")].forEach((td, i) => { if (heads[i]) td.dataset.label = heads[i]; });
    }
    LG.applyRoles(table);
    renderTrain(items);
    showActive().catch(() => {});      // an activation or a new version changes what a retrain keeps
  }

  async function compare(m) {
    const c = await api(`/api/v1/models/${enc(m.product)}/compare` + LG.q({line: lineOf(m), candidate: m.version}));
    const rr = c.reviewed || {};
    const ss = c.sample || {};
    const row = (name, r) => h("tr", {}, h("td", {}, name), h("td", {}, r ? pct(r.false_reject_rate, 2) : "–"),
      h("td", {}, r ? pct(r.escape_rate, 2) : "–"), h("td", {}, r ? `${r.n_good} good, ${r.n_defect} defect` : "no reviewed parts"));
    const sampleRow = (name, s) => h("tr", {}, h("td", {}, name),
      h("td", {}, s && s.escape.n ? ci(s.escape) : "–"), h("td", {}, s && s.defects_passed ? ci(s.defects_passed) : "–"),
      h("td", {}, s ? `${s.judged} judged, ${s.reviewed} reviewed` : "no part of the sample"));
    // the shadow drops parts when it falls behind (a busy hour): a comparison on half the
    // line's parts must say so. Only while it ran (the change log's starts and stops): the
    // time it was stopped on purpose is no fault of it
    const runs = (c.shadow_runs || []).length;
    // the live model changed while it ran (an activation, a rollback): the numbers here are
    // beside the version live now only, and the parts judged beside another are said, not mixed in
    const others = (c.other_baselines || []).filter((o) => o.parts);
    const otherNote = others.length ? h("p", {class: "muted", id: "compare-other-baselines"},
      `Only the parts v${c.active ? c.active.version : "?"}, active now, judged are counted here. v${c.candidate.version} `
      + "was also compared in shadow with " + others.map((o) => `v${o.version}${o.line ? " of line " + o.line : ""} `
      + `(${o.parts} part${o.parts === 1 ? "" : "s"})`).join(", ") + ", active while it ran: those are left out, "
      + "and count again while that version is active.") : null;
    const dropped = c.not_compared ? h("p", {class: "warn", id: "not-compared-parts"},
      `v${c.candidate.version} judged ${c.parts} of the ${c.parts + c.not_compared} parts made while it ran in `
      + `shadow${runs > 1 ? ` (${runs} runs; the time between them left out)` : ""} (${pct(c.compared_share, 0)}): `
      + `${c.not_compared} were left uncompared (it fell behind or failed on them, mostly in the busiest `
      + "stretches), so the numbers below are of the parts it kept up with.") : null;
    // people picked which parts to review by the active version's verdict: the candidate's
    // plain counts would overstate its escapes (its reviewed OK parts are rich in the ones
    // the active version flagged)
    const weighted = ss.candidate && (ss.candidate.escape.weighted_by || ss.candidate.false_reject.weighted_by)
      ? h("p", {class: "muted", id: "compare-weighted"}, `v${c.candidate.version}'s rates are weighted by the active `
        + "version's verdicts: people picked which parts to review by what it said (everything it flagged, a share "
        + "of what it passed), so each kind of part counts for its share of the sample, not of the reviews.") : null;
    clear(compareEl).appendChild(h("div", {class: "panel", id: "compare-view"},
      h("h2", {}, `Compare: active v${c.active ? c.active.version : "?"} vs candidate v${c.candidate.version}`),
      h("div", {class: "rates"},
        h("div", {class: "rate"}, h("b", {id: "agreement"}, c.parts ? pct(c.agreement, 1) : "–"), h("span", {}, "agreement on the same parts")),
        h("div", {class: "rate"}, h("b", {id: "compared-parts"}, c.parts), h("span", {}, "parts judged by both")),
        h("div", {class: "rate"}, h("b", {id: "uncompared-parts"}, c.not_compared || 0),
          h("span", {}, "parts left uncompared while it ran (the shadow fell behind)"))),
      dropped, otherNote,
      ss.active || ss.candidate ? [h("h3", {}, "On the random audit sample (parts drawn before any verdict)"),
        h("table", {id: "compare-sample"}, h("tr", {}, ["", "escapes (of OK parts reviewed)", "defects passed",
          "measured on"].map((t) => h("th", {}, t))),
        sampleRow(`active v${c.active ? c.active.version : "?"}`, ss.active),
        sampleRow(`candidate v${c.candidate.version}`, ss.candidate)), weighted] : null,
      h("h3", {}, "Of the parts people reviewed (mostly the flagged ones: escapes read low)"),
      h("table", {id: "compare-reviewed"}, h("tr", {}, ["", "false rejects", "escapes", "measured on"].map((t) => h("th", {}, t))),
        row(`active v${c.active ? c.active.version : "?"}`, rr.active), row(`candidate v${c.candidate.version}`, rr.candidate)),
      (c.disagreements || []).length ? h("div", {}, h("h2", {}, "Parts they judge differently"),
        h("table", {}, h("tr", {}, ["part", "active", "candidate", "reviewed as"].map((t) => h("th", {}, t))),
          c.disagreements.slice(0, 50).map((d) => h("tr", {},
            h("td", {}, h("a", {href: LG.partUrl(d.inspection_id)}, d.part_id || "#" + d.inspection_id)),
            h("td", {}, `${d.active_verdict} ${num(d.active_score)}`), h("td", {}, `${d.candidate_verdict} ${num(d.candidate_score)}`),
            h("td", {}, d.review_label || "–"))))) : c.parts ? h("p", {class: "muted"}, "No disagreements.") : null,
      c.parts ? h("p", {dataset: {role: "engineer"}}, activateButton(m, c, "", activating(m)))
        // nothing to compare: "no disagreements" and an Activate button beside 0 parts read as a go-ahead
        : h("div", {id: "not-compared"}, h("p", {class: "warn"}, `v${c.candidate.version} has judged no part beside the `
            + "active version yet, so nothing here says how it would do on this line. Run it in shadow for a shift "
            + "(it judges every part, signals nothing), then compare again."),
          h("p", {dataset: {role: "engineer"}}, m.state === "shadow" ? "" : h("button", {type: "button", id: "shadow-candidate",
            onclick: async (e) => {
              const btn = e.currentTarget;
              btn.disabled = true;        // a double tap must not start it twice
              const out = await act("running in shadow", () => api(`/api/v1/models/${enc(m.product)}/shadow`,
                {method: "POST", body: {line: lineOf(m), version: m.version}}), `Starting v${m.version} in shadow…`);
              if (out) { m.state = "shadow"; await compare(m).catch(LG.fail); } else btn.disabled = false;
            }},
            `Run v${c.candidate.version} in shadow`), " ",
          activateButton(m, c, "secondary", `${activating(m)}\n\nIt has judged no part beside the active version: `
            + "nothing says how it does on this line.")))));
    LG.applyRoles(compareEl);
  }

  function activateButton(m, c, cls, question) {
    return h("button", {type: "button", id: "activate-candidate", class: cls || null,
      onclick: () => sure(question) && act("activated", () => activate(m), trying(m))},
    c.parts ? `Activate v${c.candidate.version}` : `Activate v${c.candidate.version} untried`);
  }

  const REFUSALS = ["rejects_good_parts", "passes_reviewed_defects"];
  async function upload(form, fields) {
    const fd = new FormData(form);
    for (const k of ["product", "line", "note"]) fd.set(k, fields[k].value.trim());
    if (!fd.get("note")) fd.delete("note");
    fd.set("activate", fields.activate.checked ? "true" : "false");
    try {
      let out;
      try {
        out = await api("/api/v1/models", {method: "POST", body: fd});
      } catch (err) {
        const e = err && err.body && err.body.error;
        // a product whose name is a slip of one the station knows ("tiles" beside "tile"):
        // refused as a likely typo; a new product of such a name is the engineer's to say
        if (!(err.status === 409 && e && e.did_you_mean && e.product && !REFUSALS.includes(e.code))) throw err;
        if (!sure(`${e.message}\n\nUpload it as the new product '${e.product}'?`)) return NOT_DONE;
        fd.set("new_product", "true");
        out = await api("/api/v1/models", {method: "POST", body: fd});
      }
      if (out.warning) LG.say(out.warning, "info");
      return out;
    } catch (err) {
      const e = err && err.body && err.body.error;
      if (!(err.status === 409 && e && REFUSALS.includes(e.code) && e.version)) throw err;
      // registered, only its activation refused: the activation's question, as for any version
      await load().catch(() => {});
      const out = await activate({product: fd.get("product"), line: fd.get("line") || "", version: e.version}, err);
      // not forced: the version is there all the same (inactive), and why it was refused stays said
      return out === NOT_DONE ? {version: e.version, refused: e.message} : out;
    }
  }

  function renderUpload() {
    const file = h("input", {type: "file", name: "file", accept: ".lgm,.onnx", required: true});
    const fields = {
      product: h("input", {name: "product", value: filt.elements.product.value.trim(), size: 10, required: true,
        maxlength: 100}),
      line: h("input", {name: "line", value: filt.elements.line.value.trim(), size: 8, maxlength: 100,
        placeholder: "every line"}),
      note: h("input", {name: "note", size: 30, maxlength: 2000, placeholder: "where it comes from (optional)"}),
      activate: h("input", {type: "checkbox", name: "activate", value: "true"}),
    };
    const form = h("form", {class: "filters", id: "upload-form"}, field("model file (.lgm or .onnx)", file),
      field("product", fields.product), field("line", fields.line), field("note", fields.note),
      h("label", {class: "field"}, h("span", {}, "activate"), h("span", {}, fields.activate,
        " judge parts with it now (tried first on the latest parts)")),
      h("button", {type: "submit"}, "Upload"));
    const btn = form.querySelector("button[type=submit]");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (btn.disabled) return;
      btn.disabled = true;           // a double tap uploaded the file twice: two versions
      try {
        const out = await act("uploaded", () => upload(form, fields),
          fields.activate.checked ? "Uploading, then trying it on the latest parts…" : "Uploading…");
        if (out) { file.value = ""; fields.note.value = ""; }
        if (out && out.refused) LG.say(out.refused, "error");
      } finally { btn.disabled = false; }
    });
    clear(uploadEl).append(h("h2", {}, "Upload a model"),
      h("p", {class: "muted"}, "A model file made elsewhere becomes the product's next version (inactive unless "
        + "activated here: then the station tries it on the latest good parts and reviewed defects first)."), form);
  }
  renderUpload();

  function renderTrain(items) {
    if (trainEl.firstChild) return;   // once: a reload of the table keeps what was chosen here
    const products = [...new Set(items.map((m) => m.product))];
    const prod = h("input", {name: "product", value: filt.elements.product.value.trim() || products[0] || "", size: 10, required: true});
    const line = h("input", {name: "line", value: filt.elements.line.value.trim(), size: 8});
    const source = LG.select("source", [["both", "confirmed good + audit sample"], ["confirmed", "confirmed good only"],
      ["sample", "random audit sample only"]], "both");
    // "as the active version" sends no profile: the station then trains as the version it
    // replaces was (its profile and input size, review band, false-reject target). A fixed
    // "fast" here retrained a quality product's model as a fast one, its thresholds on
    // another scale of scores, and said nothing.
    const profile = LG.select("profile", [["", "as the active version"], ["fast", "fast (224 px, ~7 ms a part)"],
      ["quality", "quality (the parts' aspect ratio; slower)"]], "");
    const status = h("span", {id: "train-status", class: "muted"});
    const activeEl = h("p", {id: "train-active", class: "muted"});
    // The photos of good parts the product's first model was trained on (on a PC): kept by the
    // station, every retrain learns them beside the stored parts reviewed good. Without them a
    // retrain learnt from a few dozen station parts, its threshold set by a false alarm.
    const reference = h("input", {type: "checkbox", name: "reference", checked: true});
    const refCount = h("p", {id: "train-reference", class: "muted"});
    const refFiles = h("input", {type: "file", name: "photo", multiple: true, accept: "image/*", id: "reference-files"});
    const refBtn = h("button", {type: "button", class: "secondary", id: "reference-add"}, "Add reference photos");
    const lookAt = h("div", {id: "look-at"});
    // The settings a retrain takes from the version it replaces, asked here when the station
    // cannot read that version's file (deleted, corrupt): it names them (settings_needed)
    // rather than guess a review band or a photo check. Without these fields the page could
    // not retrain away from a broken model, when the line needs it most.
    const needed = h("span", {id: "train-needed"});
    needed.style.display = "contents";      // its fields sit in the form's row, as the others do
    const neededWhy = h("p", {id: "train-needed-why", class: "warn", hidden: true});
    let asks = {};          // setting -> how its value is read off its field
    let activeRow = null;   // the version a retrain replaces, as listed (its record)
    const form = h("form", {class: "filters", id: "train-form"}, field("product", prod), field("line", line),
      field("learn from", source), field("profile", profile),
      h("label", {class: "field"}, h("span", {}, "reference photos"), h("span", {}, reference, " learn them too")),
      needed, h("button", {type: "submit"}, "Retrain"), status);
    const refForm = h("div", {class: "filters", id: "reference-form"},
      field("photos of good parts (as the first model learnt)", refFiles), refBtn);
    function forget() {
      clear(needed);
      asks = {};
      neededWhy.hidden = true;
      profile.required = false;
      profile.options[0].disabled = false;
    }
    function ask(err) {
      forget();
      const m = activeRow;
      const noBand = m && m.threshold !== null && m.threshold !== undefined
        && (m.review_threshold === null || m.review_threshold === undefined);
      const rate = (name, value, hint) => {
        const el = h("input", {name, type: "number", step: "any", min: name === "review_rate" ? "0" : "0.0001",
          max: "0.49", value, placeholder: hint, required: true});
        el.style.width = "7em";
        return el;
      };
      for (const k of err.settings_needed) {
        if (k === "profile") {
          // "as the active version" cannot be: a choice is needed, the one its features name first
          profile.options[0].disabled = true;
          profile.required = true;
          const looks = (m && m.features) || "";
          if (!profile.value) profile.value = /^mobilenet_v2/.test(looks) ? "quality" : /lite0/.test(looks) ? "fast" : "";
        } else if (k === "review_rate") {
          // its record says whether it had a band, not how wide: none is 0, a band is asked
          const el = rate(k, noBand ? "0" : "", "e.g. 0.05");
          needed.append(field("review band (share of good parts; 0: none)", el));
          asks[k] = () => Number(el.value);
        } else if (k === "false_reject_rate") {
          const el = rate(k, "0.01", "0.01");
          needed.append(field("false-reject target", el));
          asks[k] = () => Number(el.value);
        } else if (k === "detector") {
          const el = LG.select(k, [["patchcore", "patchcore"], ["padim", "padim"]], err.detector || "patchcore");
          needed.append(field("detector", el));
          asks[k] = () => el.value;
        } else if (k === "photo_check") {
          const el = h("input", {name: k, type: "checkbox", checked: true});
          needed.append(field("photo check", el));
          asks[k] = () => el.checked;
        }
      }
      neededWhy.textContent = `Version ${err.version} cannot be read, so a retrain cannot keep its settings: `
        + "give them here and press Retrain again (filled in: what its record says, else the station's defaults)"
        + (err.detector ? `; its detector, ${err.detector}, is kept from its record.` : ".");
      neededWhy.hidden = false;
    }
    // what the version a retrain replaces has, for the product and line typed here (the
    // line's own version first, else the product's for every line: as the station picks it)
    let asked = 0;
    // how many reference photos a retrain of the product and line typed here learns
    async function showReference(n) {
      const want = prod.value.trim(), ln = line.value.trim();
      if (!want) { refCount.textContent = ""; return; }
      const got = await api("/api/v1/reference-photos" + LG.q({product: want, line: ln, limit: 1}));
      if (n !== undefined && n !== asked) return;
      const k = got.for_training || 0;
      refCount.textContent = k ? `${k} reference photo(s) of good parts of ${want}${ln ? " (every line's and " + ln
        + "'s)" : ""}: a retrain learns them beside the stored parts, and they set its threshold with the audit sample.`
        : `No reference photos of ${want}: a retrain learns the stored parts alone. Add the photos of good parts `
          + "its first model was trained on (here, or lineguard reference add).";
    }
    refBtn.addEventListener("click", async () => {
      const files = [...refFiles.files], want = prod.value.trim();
      if (!files.length || !want || refBtn.disabled) return;
      refBtn.disabled = true;
      let added = 0, there = 0;
      const warned = [];      // each upload's warning (another size, another product): said once, not lost
      try {
        // one photo a request, as a part's: each checked as a part's upload is
        for (const [i, f] of files.entries()) {
          status.textContent = `adding reference photo ${i + 1} of ${files.length}…`;
          const fd = new FormData();
          fd.append("photo", f, f.name);
          fd.append("product", want);
          fd.append("line", line.value.trim());
          const out = await api("/api/v1/reference-photos", {method: "POST", body: fd});
          if (out.created) added++; else there++;
          if (out.warning && !warned.includes(out.warning)) warned.push(out.warning);
        }
        // the station's warning (a photo of another size than those kept: another camera?) was
        // dropped here, while the CLI and the API said it
        LG.say(`added ${added} reference photo(s)` + (there ? `, ${there} there already` : "")
          + (warned.length ? `. Look: ${warned.join(" · ")}` : ""), warned.length ? "error" : "ok");
        refFiles.value = "";
      } catch (err) {
        LG.fail(err);
        LG.say(`added ${added} of ${files.length} before the refusal`, "error");
      } finally {
        status.textContent = "";
        refBtn.disabled = false;
        showReference().catch(LG.fail);
        showRefs(want).catch(LG.fail);
      }
    });
    // fill: the form opened, or another product typed: a line left empty is filled in where the
    // product is active on one line only (its version is the one a retrain there replaces; empty,
    // the station trains a product-wide first model, "none: fast", beside it)
    let opened = false;
    showActive = async (fill = !opened) => {
      const want = prod.value.trim(), n = ++asked;
      const items = want ? (await api("/api/v1/models" + LG.q({product: want}))).items : [];
      if (n !== asked) return;           // another product typed meanwhile
      opened = true;
      const live = items.filter((x) => x.active);
      const lines = [...new Set(live.map(lineOf))];
      if (fill && !line.value.trim() && lines.length === 1 && lines[0]) line.value = lines[0];
      const ln = line.value.trim();
      showReference(n).catch(() => {});
      const m = live.find((x) => lineOf(x) === ln) || live.find((x) => lineOf(x) === "");
      activeRow = m || null;
      // the versions active on other lines, which a retrain for this line (or for none) leaves as they are
      const elsewhere = live.filter((x) => lineOf(x) !== ln).map((x) => `v${x.version} on line ${lineOf(x)}`);
      profile.options[0].textContent = m ? `as the active version (v${m.version})`
        : `as the active version (none ${ln ? "on line " + ln : "product-wide"}: fast)`;
      activeEl.textContent = !m && elsewhere.length ? `${want} has an active version on another line (`
        + `${elsewhere.join(", ")}), none ${ln ? "on line " + ln + " and none product-wide" : "product-wide"}: `
        + (ln ? `a retrain for line ${ln} trains that line's first model` : "with the line left empty, a retrain "
          + "trains a product-wide model from every line's parts, as a first model")
        + ", with the fast profile and no review band. Type the line whose version it is to retrain that one."
        : !m ? "No version is active for this product and line: a first model trains with the "
        + "fast profile and no review band."
        : `Left as the active version, a retrain keeps what v${m.version} has: `
          // its detector too (the station keeps it when none is sent): named where it is not the default
          + (m.detector && m.detector !== "patchcore" ? `the ${m.detector} detector, ` : "")
          + `${m.features || "its features"}`
          + (m.review_threshold === null || m.review_threshold === undefined ? ", no review band"
            : `, a review band (REVIEW above ${num(m.review_threshold, 4)})`)
          + ", its false-reject target. A profile chosen here trains at that profile's own input size instead.";
    };
    // the settings asked were another version's
    prod.addEventListener("change", () => { forget(); showActive(true).catch(LG.fail); });
    line.addEventListener("change", () => { forget(); showActive().catch(LG.fail); });
    const trainBtn = form.querySelector("button[type=submit]");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (trainBtn.disabled) return;
      trainBtn.disabled = true;      // a double tap started two trainings, one after the other
      const starting = "starting the training…";     // the station checks the parts first: a moment
      status.textContent = starting;
      try {
        const body = {line: line.value.trim(), source: source.value, reference: reference.checked};
        if (profile.value) body.profile = profile.value;     // else the active version's
        for (const [k, read] of Object.entries(asks)) body[k] = read();
        const job = await api(`/api/v1/models/${enc(prod.value.trim())}/train`, {method: "POST", body});
        forget();         // asked again should the next retrain still replace an unreadable version
        status.textContent = "training…";
        clear(lookAt);
        await poll(job.id, status, lookAt);
      } catch (err) {
        if (status.textContent === starting) status.textContent = "";    // not started: the error says why
        const e = err && err.status === 422 && err.body && err.body.error;
        if (e && Array.isArray(e.settings_needed)) ask(e);
        LG.fail(err);
      } finally { trainBtn.disabled = false; }
    });
    clear(trainEl).append(h("h2", {}, "Retrain"),
      h("p", {class: "muted"}, "Learns only from parts a person confirmed good and/or the random audit sample kept "
        + "regardless of verdict, never from unreviewed OK parts. The new version starts inactive: run it in shadow, "
        + "compare, then activate."), form, neededWhy, activeEl, refCount, refForm, lookAt, h("h3", {}, "Recent trainings"), jobsEl);
    resumeTraining(trainBtn, status, lookAt).catch(LG.fail);
  }

  // A reloaded page (or another engineer's) finds a training still running and follows it.
  // Retrain stays usable meanwhile: another product's training waits its turn, and a row
  // left "running" by a station process that died must not block the page.
  async function resumeTraining(trainBtn, status, lookAt) {
    const running = (await api("/api/v1/jobs" + LG.q({status: "queued,running", kind: "train", limit: 1}))).items[0];
    await loadJobs();
    if (running && !trainBtn.disabled) await poll(running.id, status, lookAt, 3000);
  }

  // the parts a finished training asked to be looked at, still there after a reload
  function lookAtLinks(j) {
    const items = ((j.result || {}).look_at || []).filter((a) => a.inspection_id);
    return items.length ? h("div", {class: "look-at-links"}, items.slice(0, 10).map((a, i) => [i ? ", " : "",
      h("a", {href: LG.partUrl(a.inspection_id)}, `#${a.inspection_id}`)])) : null;
  }

  const JOB_STATE = {queued: "waiting", running: "running", done: "done", failed: "failed",
    interrupted: "interrupted (the station stopped)"};
  async function loadJobs() {
    const jobs = (await api("/api/v1/jobs" + LG.q({limit: 5}))).items;
    clear(jobsEl).appendChild(jobs.length ? h("table", {}, h("tr", {}, ["job", "started", "product", "state", ""].map(
      (t) => h("th", {}, t))), jobs.map((j) => h("tr", {dataset: {job: j.id, status: j.status}},
      h("td", {}, j.id), h("td", {}, LG.when(j.created_at)),
      h("td", {}, `${(j.params || {}).product || "–"}${(j.params || {}).line ? " / " + j.params.line : ""}`),
      h("td", {class: j.status === "failed" ? "v-ng" : null}, JOB_STATE[j.status] || j.status,
        j.status === "running" ? ` ${Math.round((j.progress || 0) * 100)} %` : ""),
      h("td", {}, j.message || "", lookAtLinks(j)))))
      : h("p", {class: "muted"}, "No training yet."));
  }

  // What a finished training asks of the engineer: a review band it could not open (the
  // line's REVIEW parts stop coming, with no word of it), and the parts it was given that
  // scored far above the others: usually a bad part among the good ones. Reviewed as a
  // defect, a part is left out of every later retrain.
  function renderLookAt(el, result) {
    clear(el);
    const band = (result || {}).review_band;
    if (band && band.empty) {
      el.append(h("p", {class: "warn", id: "review-band-empty"}, `v${result.version}: `
        + band.note.charAt(0).toUpperCase() + band.note.slice(1)));
    }
    // the colour check off (photos of two camera settings): a greyscale or tinted part is
    // then judged on its score alone, which the engineer must hear before activating
    if (result && result.photo_colour_off) {
      el.append(h("p", {class: "warn", id: "colour-check-off"}, `v${result.version}: ${result.photo_colour_off}`));
    }
    const items = (result || {}).look_at;
    if (!items || !items.length) return;
    // an unreviewed audit-sample part far above the others is left out (most likely a
    // defect): it was titled "learned from" beside the ones the model did learn
    const out = items.filter((a) => a.left_out).length;
    // reference photos counted as such: "3 part(s)" read as three of the line's parts
    const refs = items.filter((a) => a.reference_photo_id).length;
    const parts = items.length - refs;
    const what = !refs ? `${parts} part(s)` : !parts ? `${refs} reference photo(s)`
      : `${parts} part(s) and ${refs} reference photo(s)`;
    el.append(h("h3", {}, out ? `Look at ${what} it was given (${out} left out of it)`
      : `Look at ${what} it learned from`),
      h("p", {class: "muted"}, "They scored far above the other parts it was given, or their photos were unlike "
        + "the others' (a lamp flicker, a shot out of focus: left out of the photo check; a greyscale photo among "
        + "colour ones: left out of learning the colour check). If one is bad, review it "
        + "as a defect (it is then left out of the next retrain) and retrain."),
      h("ul", {}, items.map((a) => h("li", {dataset: {leftOut: a.left_out ? "true" : "false"}}, a.inspection_id
        ? h("a", {href: LG.partUrl(a.inspection_id)}, `part #${a.inspection_id}`)
        : a.reference_photo_id ? h("a", {href: `/api/v1/reference-photos/${a.reference_photo_id}/image`},
          `reference photo #${a.reference_photo_id}`) : a.image_key,
        a.colour ? ` · colour: ${(a.photo_issues || []).join("; ")} (left out of learning the colour check)`
          // one entry a photo, with every reason it is named for (a score far above and an odd photo)
          : (a.why === "photo" ? "" : ` · score ${num(a.score)}`)
            + ((a.photo_issues || []).length ? ` · photo: ${a.photo_issues.join("; ")}` : ""),
        !a.left_out ? ""
          : (a.reasons || []).includes("photo") ? " · left out, not learnt: its photo is unlike the others' and it "
            + "scored far above them (a black frame, a lamp off)"
          : " · left out, not learnt: nobody reviewed it (most likely a defect the old version passed)"))));
  }

  async function poll(jobId, status, lookAt, everyMs = 700) {
    for (;;) {
      const j = await api(`/api/v1/jobs/${enc(jobId)}`);
      status.textContent = `${j.status} ${Math.round((j.progress || 0) * 100)} %${j.message ? " · " + j.message : ""}`;
      if (j.status !== "queued" && j.status !== "running") {
        const refused = (j.result || {}).not_activated;
        // trained and registered, only the activation refused: the version is there to shadow or force
        if (refused) LG.say(`trained version ${j.result.version}, not activated: ${refused.message}`, "error");
        else if (j.status === "done" || j.status === "succeeded") LG.say("trained a new version", "ok");
        else LG.say(`training ${j.status}: ${j.message || ""}`, "error");
        renderLookAt(lookAt, j.result);
        await Promise.all([load(), loadJobs()]);
        return;
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  // -- Reference photos ----------------------------------------------------------------
  // The photos of good parts a product's retrains learn beside its stored parts, each one seen
  // (a thumbnail, its size, its line, who added it when), oldest first, a page at a time; an
  // engineer removes one here. After a camera change the old camera's photos must go (else
  // every retrain learns both cameras and its photo check passes either): the sizes line
  // says how many of each size there are, `lineguard reference remove --size WxH` takes a
  // whole size at once.
  async function referencePhotosPanel() {
    const PAGE = 24;
    const engineer = LG.roleAtLeast("engineer");
    let offset = 0, asked = 0, total = 0;
    const prodIn = h("input", {name: "product", size: 10, maxlength: 100, required: true, placeholder: "e.g. cell"});
    const lineIn = h("input", {name: "line", size: 8, maxlength: 100, placeholder: "every line"});
    const form = h("form", {class: "filters", id: "reference-photos-form"}, field("product", prodIn),
      field("line", lineIn), h("button", {type: "submit", class: "secondary"}, "Show its photos"));
    const summary = h("p", {id: "reference-sizes"});
    const grid = h("div", {class: "gallery", id: "reference-photo-list"});
    const prev = h("button", {type: "button", class: "secondary", id: "reference-prev"}, "◀ Earlier photos");
    const next = h("button", {type: "button", class: "secondary", id: "reference-next"}, "Later photos ▶");
    const pageNote = h("span", {class: "muted", id: "reference-page"});
    const pager = h("div", {class: "row", hidden: true}, prev, " ", pageNote, " ", next);
    refsEl.append(h("h2", {}, "Reference photos"),
      h("p", {class: "muted"}, "The photos of good parts every retrain of the product learns beside its stored parts "
        + "(those of every line, and a line's own for that line's retrains), oldest first. After a camera change "
        // an operator removes nothing here (no Remove, no command line): told who does
        + (engineer ? "remove the old camera's" : "an engineer removes the old camera's")
        + ": a retrain that learns both passes the photos of either."), form, summary, grid,
      pager);

    const size = (x) => `${x.width} × ${x.height}`;
    function card(p) {
      const img = `/api/v1/reference-photos/${p.id}/image`;
      const what = `reference photo #${p.id}` + (p.filename ? ` (${p.filename})` : "");
      return h("div", {class: "thumb", dataset: {photo: p.id, size: `${p.width}x${p.height}`}},
        h("a", {href: img, target: "_blank", rel: "noopener", title: what + ": open it whole"},
          h("img", {src: img + LG.q({max_side: LG.THUMB_PX}), alt: what, loading: "lazy"})),
        h("div", {class: "cap", dataset: {what: "size"}}, h("b", {}, size(p)), " · ", p.line ? "line " + p.line : "every line"),
        h("div", {class: "cap muted", title: p.filename || ""}, p.filename || `#${p.id}`),
        // who on a line of its own: after the time, two lines cut it to "by test-…" (a phone shows no title)
        h("div", {class: "cap muted"}, `added ${LG.when(p.added_at)}`),
        p.added_by ? h("div", {class: "cap muted", title: p.added_by, dataset: {what: "added-by"}}, `by ${p.added_by}`) : "",
        h("div", {class: "cap", dataset: {role: "engineer"}}, h("button", {type: "button", class: "link",
          dataset: {act: "remove-reference"}, "aria-label": `remove ${what}`,
          onclick: (e) => remove(p, what, e.currentTarget).catch(LG.fail)}, "Remove")));
    }

    async function remove(p, what, btn) {
      if (!sure(`Remove ${what}? ${size(p)}, ${p.line ? "line " + p.line + "'s" : "every line's"}. Retrains of `
        + `${p.product} no longer learn it.`)) return;
      btn.disabled = true;         // a double tap sent a second DELETE: its 404 read as a failure
      try {
        await api(`/api/v1/reference-photos/${p.id}`, {method: "DELETE"});
      } catch (err) {
        btn.disabled = false;
        if (err.status !== 404) throw err;       // removed meanwhile on another screen: gone all the same
      }
      LG.say(`removed ${what}`, "ok");
      await show();
      showActive().catch(() => {});       // Retrain's count of the photos it learns
    }

    async function show() {
      const product = prodIn.value.trim(), line = lineIn.value.trim(), n = ++asked;
      if (!product) {
        clear(grid); pager.hidden = true;
        summary.textContent = "Type a product to see the reference photos its retrains learn.";
        summary.className = "muted";
        return;
      }
      // the page on screen stays until the next one comes, but is not to be acted on: a Remove
      // tapped meanwhile was of a page left, and a second tap on "Later photos" skipped a page
      grid.setAttribute("aria-busy", "true");
      for (const b of [...grid.querySelectorAll("button"), prev, next]) b.disabled = true;
      try {
        await showPage(product, line, n);
      } finally {
        if (n === asked) {
          grid.removeAttribute("aria-busy");
          prev.disabled = offset === 0;
          next.disabled = offset + PAGE >= total;
        }
      }
    }

    async function showPage(product, line, n) {
      let got = await api("/api/v1/reference-photos" + LG.q({product, line: line || null, limit: PAGE, offset}));
      if (n !== asked) return;            // another product asked meanwhile
      if (!got.items.length && offset && got.count) {
        // the last page's last photo removed: the page before it
        offset = Math.max(0, Math.floor((got.count - 1) / PAGE) * PAGE);
        got = await api("/api/v1/reference-photos" + LG.q({product, line: line || null, limit: PAGE, offset}));
        if (n !== asked) return;
      }
      const sizes = got.sizes || [];
      summary.className = sizes.length > 1 ? "warn" : "muted";
      summary.textContent = !got.count ? `No reference photos of ${product}${line ? " for line " + line : ""}: a retrain `
        + "learns its stored parts alone."
        : `${got.count} reference photo(s) of ${product}${line ? " for line " + line : ""}: `
          + sizes.map((x) => `${x.count} of ${size(x)}`).join(", ")
          // oldest first: the old camera's are on the first pages
          + (sizes.length > 1 ? ". Photos of more than one size: an old camera's may still be there " + (engineer
            ? `(remove them here, or all of one size at once: lineguard reference remove --product ${product} --size WxH).`
            : "(ask an engineer to remove them).") : ".");
      clear(grid).append(...got.items.map(card));
      LG.applyRoles(grid);
      total = got.count;
      pager.hidden = got.count <= PAGE;
      pageNote.textContent = got.items.length ? `photos ${offset + 1}–${offset + got.items.length} of ${got.count}` : "";
    }

    prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE); show().catch(LG.fail); });
    next.addEventListener("click", () => { offset += PAGE; show().catch(LG.fail); });
    form.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; show().catch(LG.fail); });
    // the product chosen at the top is the one shown here too
    filt.addEventListener("submit", () => {
      const want = filt.elements.product.value.trim();
      if (want && want !== prodIn.value.trim()) { prodIn.value = want; lineIn.value = ""; offset = 0; show().catch(LG.fail); }
    });
    // photos added in Retrain's panel: shown here, for that product
    showRefs = async (product) => {
      if (product && product !== prodIn.value.trim()) { prodIn.value = product; lineIn.value = ""; offset = 0; }
      await show();
    };
    const products = [...new Set(shown.map((m) => m.product))];
    prodIn.value = filt.elements.product.value.trim() || (products.length === 1 ? products[0] : "");
    await show();
  }

  // -- Defect types ---------------------------------------------------------------------
  // What reviewers of a product choose from in the review queue (the first nine on keys 1-9,
  // in this order); a review with a type not listed is refused. Every product starts with
  // the default six: a magnetic tile fails as break, blowhole, fray, uneven, and its list
  // could be set only with an API key and PUT. The station takes the whole list at once
  // (PUT .../defect-types), so the page edits a copy and saves it on Save, saying until
  // then what is not saved.
  async function defectTypesPanel() {
    const DEFAULTS = ["scratch", "crack", "dent", "stain", "contamination", "other"];
    const MAX_TYPES = 100, MAX_LEN = 100;
    const typesUrl = (name) => `/api/v1/products/${enc(name)}/defect-types`;
    let product = "", saved = [], draft = [], known = [], saving = false;
    const prodIn = h("input", {name: "product", size: 12, maxlength: 100, list: "type-products", required: true,
      placeholder: "e.g. tile"});
    const names = h("datalist", {id: "type-products"});
    const whose = h("p", {class: "muted", id: "types-whose"});
    const listEl = h("ol", {class: "types-list", id: "types-list", "aria-label": "defect types, in the review queue's order"});
    const newIn = h("input", {name: "new_type", size: 16, maxlength: MAX_LEN, placeholder: "e.g. break"});
    const why = h("p", {class: "error", id: "types-error", role: "alert"});
    const pending = h("p", {id: "types-pending", role: "status"});
    const saveBtn = h("button", {type: "button", id: "types-save", onclick: () => save().catch(LG.fail)},
      "Save defect types");
    const undoBtn = h("button", {type: "button", class: "secondary", id: "types-undo",
      onclick: () => { draft = saved.slice(); why.textContent = ""; render(); }}, "Undo changes");
    const addForm = h("form", {class: "filters", id: "types-add"}, field("add a type", newIn),
      h("button", {type: "submit", class: "secondary"}, "Add"));
    const editor = h("div", {id: "types-editor", hidden: true}, whose, listEl, addForm, why, pending,
      h("div", {class: "row"}, saveBtn, undoBtn));
    const pickForm = h("form", {class: "filters", id: "types-product"}, field("product", prodIn), names,
      h("button", {type: "submit", class: "secondary"}, "Show its types"));
    typesEl.append(h("h2", {}, "Defect types"),
      h("p", {class: "muted"}, "What reviewers of a product choose from in the review queue, in this order (the "
        + "first nine on keys 1-9); a review with a type not listed is refused. Removing or renaming a type changes "
        + "only what is offered from now on: parts already reviewed keep the type they were given (the gallery, "
        + "SPC's Pareto and the shift report still show it), and a renamed type is a new one beside them."),
      pickForm, editor);

    const same = (a, b) => a.length === b.length && a.every((t, i) => t === b[i]);
    const typed = () => draft.map((t) => t.trim());
    const dirty = () => !!product && !same(typed(), saved);

    // what Save would change, said until it is saved (a list edited and left unsaved
    // looked done, and the review queue went on refusing the new type)
    function said() {
      const now = typed();
      const added = now.filter((t) => t && !saved.includes(t));
      const gone = saved.filter((t) => !now.includes(t));
      const parts = [added.length ? "adds " + added.join(", ") : "",
        gone.length ? `removes ${gone.join(", ")} (parts already reviewed as ${gone.length > 1 ? "these keep them"
          : "it keep it"})` : "",
        !added.length && !gone.length && dirty() ? "changes the order" : ""].filter(Boolean);
      pending.textContent = dirty() ? `Not saved yet: ${parts.join("; ")}. Save to offer it in the review queue.` : "";
      pending.className = dirty() ? "warn" : "";
      saveBtn.disabled = undoBtn.disabled = !dirty() || saving;
    }

    // focusOn: [row, what] to give the keyboard's focus back to once the rows are built again
    function render(focusOn = null) {
      clear(listEl);
      draft.forEach((t, i) => {
        const n = i + 1;
        listEl.appendChild(h("li", {dataset: {type: t.trim()}},
          h("span", {class: "types-key", title: i < 9 ? `key ${n} in the review queue` : "no key: tapped only"},
            i < 9 ? String(n) : "·"),
          h("input", {value: t, size: 16, maxlength: MAX_LEN, "aria-label": `defect type ${n} (rename it here)`,
            dataset: {what: "name"}, oninput: (e) => { draft[i] = e.target.value; said(); }}),
          h("button", {type: "button", class: "secondary", dataset: {what: "up"}, "aria-label": `move type ${n} up`,
            disabled: i === 0, onclick: () => move(i, -1)}, "↑"),
          h("button", {type: "button", class: "secondary", dataset: {what: "down"}, "aria-label": `move type ${n} down`,
            disabled: i === draft.length - 1, onclick: () => move(i, 1)}, "↓"),
          h("button", {type: "button", class: "secondary", dataset: {what: "remove"}, "aria-label": `remove type ${n}`,
            onclick: () => remove(i)}, "Remove")));
      });
      said();
      if (focusOn) {
        const [row, what] = focusOn;
        const el = listEl.children[row] && listEl.children[row].querySelector(`[data-what="${what}"]`);
        (el && !el.disabled ? el : newIn).focus();
      }
    }

    function move(i, d) {
      [draft[i], draft[i + d]] = [draft[i + d], draft[i]];
      render([i + d, d < 0 ? "up" : "down"]);
    }

    function remove(i) {
      draft.splice(i, 1);
      why.textContent = "";
      render([Math.min(i, draft.length - 1), "remove"]);
    }

    // The station's own checks, said before anything is sent. Two spellings of one defect
    // ("Break", "break") split its count in the Pareto: refused here, though the API takes them.
    // what the station refuses in a name a reviewer reads (a control, invisible or bidirectional
    // character: its 422 named the type by a 0-based index and the character could not be seen)
    const UNSEEN = /[\u0000-\u001f\u007f-\u009f\u00ad\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]/;
    // two names alike but for case or the kind of space ("nb sp" and "nb\u00a0sp" look the same)
    const key = (t) => t.trim().toLowerCase().replace(/\s+/g, " ");
    function unseen(t) {
      const c = t.match(UNSEEN);
      return c ? `"${t.replace(UNSEEN, "?")}" holds a character that cannot be seen (U+${c[0].charCodeAt(0)
        .toString(16).toUpperCase().padStart(4, "0")}, marked ?): type the name again.` : null;
    }

    function problem(now) {
      if (!now.length) return "Keep at least one type (\"other\" takes what fits none of them).";
      const blank = now.findIndex((t) => !t);
      if (blank >= 0) return `Type ${blank + 1} has no name: type one, or remove it.`;
      if (now.length > MAX_TYPES) return `At most ${MAX_TYPES} types: merge rare ones into "other".`;
      const first = new Map();
      for (const t of now) {
        const hidden = unseen(t);
        if (hidden) return hidden;
        const had = first.get(key(t));
        if (had !== undefined) return `${t} is listed twice${had !== t ? ` (also as ${had})` : ""}: keep one.`;
        first.set(key(t), t);
      }
      return null;
    }

    addForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const t = newIn.value.trim();
      const twin = draft.find((x) => key(x) === key(t));
      why.textContent = !t ? "Type the defect's name first, e.g. break."
        : unseen(t) ? unseen(t)
          : twin !== undefined ? `${t} is in the list already${twin.trim() !== t ? " as " + twin.trim() : ""}.`
            : draft.length >= MAX_TYPES ? `At most ${MAX_TYPES} types: merge rare ones into "other".` : "";
      if (!why.textContent) {
        draft.push(t);
        newIn.value = "";
        render();
      }
      newIn.focus();        // the next type typed straight after
    });

    // Removed types: how many parts were reviewed as each, which keep it (the gallery finds them by it)
    async function removing(gone) {
      const counts = await Promise.all(gone.map((t) => api("/api/v1/inspections"
        + LG.q({product, defect_type: t, count: "true", limit: 1})).then((r) => r.total).catch(() => null)));
      return `Remove ${gone.join(", ")} from ${product}'s defect types? Reviewers can no longer choose `
        + `${gone.length > 1 ? "them" : "it"}.\n\nParts already reviewed keep their type: `
        + gone.map((t, i) => `${counts[i] === null || counts[i] === undefined ? "the" : counts[i]} part(s) reviewed as ${t}`)
          .join(", ") + " stay so (the gallery finds them by it).";
    }

    async function save() {
      const now = typed();
      why.textContent = problem(now) || "";
      if (why.textContent || saving) return;
      saving = true;
      said();
      // another engineer's list saved since this one was read: shown, and this one kept as left
      const changed = (current) => {
        saved = current;
        // the heading says whose list it is now (it still read "the default list")
        whose.textContent = `${product}: ` + (same(current, DEFAULTS) ? "the default list (none of its own saved yet)."
          : `its own list, ${current.length} type(s).`);
        why.textContent = `${product}'s types were changed meanwhile on another screen: now ${current.join(", ")}. `
          + "Your list is below as you left it: Save again to replace that one with it, or Undo changes to take it.";
      };
      try {
        // The station replaces the whole list: another engineer's save since this list was
        // read would be undone without a word. Read again first, so the removals asked about
        // below are those from the list as it is now ...
        const current = (await api(typesUrl(product))).defect_types;
        if (!same(current, saved)) { changed(current); return; }
        const gone = saved.filter((t) => !now.includes(t));
        if (gone.length && !sure(await removing(gone))) { LG.say("nothing changed", "info"); return; }
        // ... and send the list read with it: one saved in the moment since (or while the
        // question above was open) is refused, 409 with it, and nothing is written
        let out;
        const body = {defect_types: now, expected: saved};
        try {
          out = await api(typesUrl(product), {method: "PUT", body});
        } catch (err) {
          const e = err && err.status === 409 && err.body && err.body.error;
          if (e && e.did_you_mean && e.product) {
            // a name that is a slip of a product the station knows ("tiel" beside "tile"): its
            // list would be one no part of it uses; a new product of such a name is the engineer's to say
            if (!sure(`${e.message}\n\nSave these defect types for the new product '${e.product}'?`)) {
              LG.say("nothing changed", "info");
              return;
            }
            out = await api(typesUrl(product), {method: "PUT", body: {...body, new_product: true}});
          } else {
            if (!e || !Array.isArray(e.defect_types)) throw err;
            changed(e.defect_types);
            return;
          }
        }
        saved = out.defect_types;
        LG.defectTypesGiven(product, saved);
        draft = saved.slice();
        whose.textContent = `${product}: its own list, ${saved.length} type(s).`;
        LG.say(`${product}'s defect types saved: ${saved.join(", ")}`, "ok");
      } catch (err) {
        why.textContent = `Not saved: ${err.message}`;
        throw err;
      } finally {
        saving = false;
        render();
      }
    }

    // The list is the product's name exactly as its parts are sent: a name typed in another
    // case is shown for the stored one, and a name nothing has used yet is said to be new.
    async function showFor(name) {
      name = name.trim();
      if (!name) { editor.hidden = true; why.textContent = ""; whose.textContent = ""; return; }
      if (name === product && !editor.hidden) return;
      if (dirty() && !sure(`Your changes to ${product}'s defect types are not saved. Leave them?`)) {
        prodIn.value = product;
        return;
      }
      const match = known.find((k) => k === name) || known.find((k) => k.toLowerCase() === name.toLowerCase());
      const as = match || name;
      const got = (await api(typesUrl(as))).defect_types;
      product = as;
      prodIn.value = as;
      saved = got;
      draft = got.slice();
      whose.textContent = `${as}: ` + (same(got, DEFAULTS) ? "the default list (none of its own saved yet)."
        : `its own list, ${got.length} type(s).`)
        + (match && match !== name ? ` Shown for ${match}, as its parts are named (typed: ${name}).` : "")
        + (!match ? ` No model or part of ${as} yet: the list is kept for this name exactly as typed, and its parts `
          + "must be sent with it." : "");
      why.textContent = "";
      editor.hidden = false;
      render();
    }

    pickForm.addEventListener("submit", (e) => { e.preventDefault(); showFor(prodIn.value).catch(LG.fail); });
    // the product chosen at the top is the one shown here too
    filt.addEventListener("submit", () => {
      const want = filt.elements.product.value.trim();
      if (want) showFor(want).catch(LG.fail);
    });
    window.addEventListener("beforeunload", (e) => { if (dirty()) { e.preventDefault(); e.returnValue = ""; } });

    const fromParts = await api("/api/v1/inspections/names").then((n) => n.products).catch(() => []);
    known = [...new Set(shown.map((m) => m.product).concat(fromParts))];
    names.append(...known.map((k) => h("option", {value: k})));
    const first = filt.elements.product.value.trim() || (known.length === 1 ? known[0] : "");
    if (first) await showFor(first);
    else whose.textContent = "";
    // sent here from the review queue (a type it refused): the new type's field, ready
    if (typesAsked) {
      typesEl.scrollIntoView();
      (editor.hidden ? prodIn : newIn).focus({preventScroll: true});
    }
  }

  filt.addEventListener("submit", (e) => { e.preventDefault(); load().catch(LG.fail); });
  await load();
  await referencePhotosPanel().catch(LG.fail);      // the defect types below load all the same
  if (typesEl) await defectTypesPanel();
});
