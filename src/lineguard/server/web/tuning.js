// Threshold tuning: scores of reviewed good and defect parts, and what a threshold would
// do to them (false rejects, escapes, review load), worked out here as the slider moves;
// saving makes a new model version with the chosen thresholds (engineers). A false-reject
// target typed in asks the station for the threshold that holds it on the audit sample's good
// parts (the parts reviewed good are mostly the model's false alarms) and moves the slider there.
"use strict";

LG.start(async (main) => {
  const {h, api, clear, field, pct, num} = LG;
  const p = LG.params();
  let models = (await api("/api/v1/models")).items;
  const products = [...new Set(models.map((m) => m.product))].sort();
  const prodSel = LG.select("product", products.length ? products : [["", "no models"]], p.product || products[0]);
  const lineIn = h("input", {name: "line", value: p.line || "", size: 8, placeholder: "every line"});
  const verSel = h("select", {name: "version"});
  const form = h("form", {class: "filters panel"}, field("product", prodSel), field("line", lineIn),
    field("version", verSel), h("button", {type: "submit"}, "Load"));
  const body = h("div", {id: "tuning"});
  main.append(h("h1", {}, "Threshold tuning"), form, body);

  // A version is a line's (after `serve --line L1`, every one is) or every line's, and two lines
  // each have their own v3: an option is the version and its line, and loading sends both (the
  // version alone was looked up among every line's models: "no model version 3").
  const key = (m) => m.line ? `${m.version}|${m.line}` : String(m.version);
  function fillVersions() {
    // the version chosen stays chosen when the list is read again; from the address, the
    // version on the line given (or the only one with that number)
    let keep = verSel.value;
    if (!keep && p.version) {
      const same = models.filter((m) => m.product === prodSel.value && String(m.version) === String(p.version));
      const hit = same.find((m) => (m.line || "") === (p.line || "")) || (same.length === 1 ? same[0] : null);
      keep = hit ? key(hit) : "";
    }
    clear(verSel).appendChild(h("option", {value: ""}, "active"));
    models.filter((m) => m.product === prodSel.value).forEach((m) => verSel.appendChild(
      h("option", {value: key(m), selected: key(m) === keep, dataset: {version: m.version, line: m.line || ""}},
        `v${m.version}${m.active ? " (active)" : ""}${m.line ? " · " + m.line : ""}`)));
  }
  // the version chosen (null: the active one) and its line ("": a model every line shares)
  function chosenVersion() {
    const o = verSel.selectedOptions[0];
    return o && o.value ? {version: o.dataset.version, line: o.dataset.line} : null;
  }
  prodSel.addEventListener("change", fillVersions);
  fillVersions();

  // Each list's parts as the station judges them: above the NG threshold NG (strictly: a part at
  // the threshold is OK), above the review threshold REVIEW, else OK; but a part the photo check
  // doubted (photo_review: too dark, blurred...) is REVIEW whatever its score, at any threshold.
  // Counted by score, 5 dark photos among 170 parts read as a review load of 3 where the line had 8.
  function judged(vals, doubted) {
    const photo = new Set(doubted || []);
    const scored = vals.filter((_, i) => !photo.has(i));
    const share = (k) => vals.length ? k / vals.length : null;
    return {n: vals.length, photo: photo.size,
      ng: (T) => share(scored.filter((v) => v > T).length),
      ok: (R) => share(scored.filter((v) => v <= R).length),
      review: (T, R) => share(scored.filter((v) => v > R && v <= T).length + photo.size)};
  }

  async function load() {
    if (!prodSel.value) { clear(body).appendChild(h("p", {class: "muted"}, "No model yet: upload or train one.")); return; }
    const v = chosenVersion();
    // a line's version is tuned on its line's parts: its line goes with it (and shows in the field)
    if (v && v.line) lineIn.value = v.line;
    const q = {line: lineIn.value.trim(), version: v ? v.version : ""};
    history.replaceState(null, "", location.pathname + LG.q({product: prodSel.value, ...q}));
    let t;
    try {
      t = await api("/api/v1/models/" + encodeURIComponent(prodSel.value) + "/tuning" + LG.q(q));
    } catch (err) {
      clear(body);      // refused (a line with no parts): not the last line's scores and Save as if for this one
      throw err;
    }
    render(t);
  }

  function render(t) {
    clear(body);
    const all = t.good_scores.concat(t.defect_scores, t.recent_scores, [t.threshold]);
    const photo = t.photo_review || {};
    const good = judged(t.good_scores, photo.good), defects = judged(t.defect_scores, photo.defect);
    const recent = judged(t.recent_scores, photo.recent);
    // widened when a target's threshold lies beyond these parts' scores (audit parts are not all listed)
    let lo = Math.min(...all), hi = Math.max(...all);
    const step = (hi - lo) / 1000 || 0.001;
    // named outright: inside a label with an <output>, the sliders' names came out empty
    const thr = h("input", {type: "range", id: "threshold", min: lo, max: hi + step, step, value: t.threshold,
      "aria-label": "NG threshold"});
    const useBand = h("input", {type: "checkbox", id: "use-band", checked: t.review_threshold !== null && t.review_threshold !== undefined});
    const rev = h("input", {type: "range", id: "review-threshold", min: lo, max: hi + step, step, "aria-label": "review threshold",
      value: t.review_threshold ?? t.threshold});
    const thrOut = h("output", {id: "threshold-value"}), revOut = h("output", {id: "review-value"});
    const chart = h("div", {id: "histogram"});
    const stat = (id, label) => { const b = h("b", {id}); return [h("div", {class: "rate"}, b, h("span", {}, label)), b]; };
    const [frDiv, fr] = stat("false-rejects", "false rejects: reviewed-good parts judged NG");
    // with a band, the good parts held for a look as well: counted apart, as the API does
    const goodToReview = h("span", {id: "good-to-review"});
    frDiv.appendChild(goodToReview);
    const [esDiv, es] = stat("escapes", "escapes: reviewed defects judged OK");
    const [rvDiv, rv] = stat("review-load", "review load: recent parts sent to REVIEW");
    if (recent.photo) {
      rvDiv.appendChild(h("span", {id: "photo-review"}, ` · ${recent.photo} of ${recent.n} by the photo check `
        + "(too dark, blurred...), whatever their score"));
    }
    // every recent part at the threshold shown; the promise below leaves out reviewed defects
    const [ngDiv, ng] = stat("ng-rate", "NG rate on recent parts at the threshold shown, defects included"
      + (recent.photo ? "; the photo check's REVIEW parts are not NG" : ""));
    const target = h("input", {id: "frr-target", name: "frr-target", inputmode: "decimal", size: 6, placeholder: "0.5",
      autocomplete: "off"});
    const targetForm = h("form", {class: "filters", id: "target-form"},
      field("false-reject target, % of good parts", target), h("button", {type: "submit"}, "Set NG threshold"));
    const targetOut = h("div", {id: "target-result"});
    const note = h("input", {name: "note", placeholder: "why (saved with the version)", size: 40});
    const save = h("button", {type: "button", id: "save", dataset: {role: "engineer"}}, "Save as a new version");
    // why the review band the box asks for is not there (its threshold at or above the NG one)
    const bandWrong = h("p", {class: "error", id: "band-wrong", hidden: true});

    // A range input snaps its value to min + k * step: until a slider is moved, its
    // threshold is the version's own, exactly (saving untouched must change nothing).
    const bandBefore = t.review_threshold ?? null;
    let thrMoved = false, revMoved = false;
    // the threshold a target set, exactly (the slider would snap it to its steps), and the target
    // (a share) it was set from, saved with it so the version keeps the target's promise; null once
    // the NG threshold is moved by hand. The review band is not the target's: moving it keeps both.
    let targetT = null, targetRate = null;
    function targetLeft() {
      if (targetT === null) return;
      targetT = targetRate = null;
      clear(targetOut).appendChild(h("p", {class: "muted", id: "target-moved"}, "Moved by hand since: the "
        + "NG threshold is the slider's, not the target's, and carries no promise. Set the target again to go "
        + "back to it."));
    }
    thr.addEventListener("input", () => { thrMoved = true; targetLeft(); });
    rev.addEventListener("input", () => { revMoved = true; });
    let savedAs = null;      // [T, R] last saved from this page: saved twice, two versions
    // {T, R (null: no band), R0 (the review slider's), wrong (why the band ticked is not there)}
    function chosen() {
      const T = targetT !== null ? targetT : thrMoved ? Number(thr.value) : t.threshold;
      const R0 = revMoved ? Number(rev.value) : (bandBefore ?? t.threshold);
      if (!useBand.checked) return {T, R: null, R0, wrong: null};
      if (R0 < T) return {T, R: R0, R0, wrong: null};
      // Said, and not saved: the page showed "no review band" with the box ticked, and saved a
      // version without the band (the API refuses these values, saying why)
      return {T, R: null, R0, wrong: `The review threshold (${num(R0, 4)}) is at or above the NG threshold `
        + `(${num(T, 4)}): there is no review band. Lower the review threshold below the NG threshold, or untick `
        + `"review band" to save without one.`};
    }

    function update() {
      const {T, R, R0, wrong} = chosen();
      rev.disabled = !useBand.checked;
      bandWrong.textContent = wrong || "";
      bandWrong.hidden = !wrong;
      save.disabled = Boolean(wrong) || (T === t.threshold && R === bandBefore)
        || (savedAs && T === savedAs[0] && R === savedAs[1]);
      save.title = wrong ? "the review threshold must be below the NG threshold, or untick the review band"
        : save.disabled ? "move a threshold first: this is the version's own" : "";
      thrOut.textContent = num(T, 4);
      revOut.textContent = !useBand.checked ? "no review band" : num(R0, 4) + (wrong ? " (not below the NG threshold)" : "");
      thr.setAttribute("aria-valuetext", thrOut.textContent);      // the threshold, not the slider's raw step
      rev.setAttribute("aria-valuetext", revOut.textContent);
      // a false reject: a good part judged NG (scrapped); one in the band is held for a look
      fr.textContent = pct(good.ng(T), 2);
      goodToReview.textContent = R === null && !good.photo ? "" : ` · ${pct(good.review(T, R ?? T), 2)} sent to REVIEW`;
      es.textContent = pct(defects.ok(R ?? T), 2);
      rv.textContent = pct(recent.review(T, R ?? T), 2);
      ng.textContent = pct(recent.ng(T), 2);
      // drawn at its box's width: scaled down from 900 units, its text was 4 px high on a phone
      LG.chart.fit(clear(chart), (width) => LG.chart.histogram([
        {name: `reviewed good (${t.good_scores.length})`, values: t.good_scores, color: "#17703c", cls: "good"},
        {name: `reviewed defect (${t.defect_scores.length})`, values: t.defect_scores, color: "#c62828", cls: "defect"}],
      {width, min: lo, max: hi, vlines: [{x: T, color: "#c62828", label: "NG", cls: "thr"},
        R === null ? null : {x: R, color: "#8f5600", label: "review", cls: "rev"}].filter(Boolean)}));
    }
    for (const el of [thr, rev, useBand]) el.addEventListener("input", update);
    useBand.addEventListener("change", update);

    targetForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      // "0.5", "0.5 %" or "0,5": a percentage, as the label says
      const typed = target.value.trim().replace(/%$/, "").trim().replace(",", ".");
      const value = Number(typed);
      if (!typed || !Number.isFinite(value) || value <= 0 || value >= 50) {
        clear(targetOut).appendChild(h("p", {class: "error"}, "Type the target as a percentage of good parts "
          + "judged NG, above 0 and below 50: 0.5 for 0.5 %."));
        return;
      }
      let r;
      try {
        r = await api("/api/v1/models/" + encodeURIComponent(t.product) + "/tuning/target"
          + LG.q({line: t.parts_line || "", version: t.version, false_reject_rate: value / 100}));
      } catch (err) {
        // too few parts for it (or the station away): said here, the thresholds stay as they were;
        // a share typed in the % box (0.005 for 0.5 %) asked for 0.005 % and "19999 good parts"
        const meant = String(Number((value * 100).toPrecision(6)));
        const share = value < 0.1 ? ` You typed ${typed} %: for ${meant} %, type ${meant}.` : "";
        clear(targetOut).appendChild(h("p", {class: "error", id: "target-refused"}, err.message + share));
        return;
      }
      targetT = r.threshold;
      targetRate = r.false_reject_rate;
      // the band goes back to the version's own, as the station counted the escapes with it; none
      // where the new threshold lies at or below it (band_removed: said below, the box unticked)
      revMoved = false;
      useBand.checked = r.review_threshold !== null && r.review_threshold !== undefined;
      rev.value = bandBefore ?? t.threshold;
      lo = Math.min(lo, targetT); hi = Math.max(hi, targetT);
      for (const el of [thr, rev]) { el.min = lo; el.max = hi + step; }
      thr.value = targetT;
      update();
      clear(targetOut).append(...targetLines(r, value));
    });

    save.addEventListener("click", async () => {
      const {T, R} = chosen();
      // the target the threshold was set from: the station works it out again and, when it sets this
      // threshold, the version keeps its promise (a threshold saved from a target had none)
      const fromTarget = targetT !== null
        ? {false_reject_rate: targetRate, parts_line: t.parts_line || ""} : {};
      save.disabled = true;       // a double click makes one version
      try {
        // expected_active: the version active when this page was loaded; one activated since (a
        // retrain) is refused (409), not quietly undone by a version carrying the model it replaced
        const mv = await api("/api/v1/models/" + encodeURIComponent(t.product) + "/threshold", {method: "POST",
          body: {line: t.line ?? lineIn.value.trim(), version: t.version, threshold: T, review_threshold: R,
            note: note.value || null, expected_active: t.active_version ?? 0, ...fromTarget}});
        LG.say(`saved as version ${mv.version} (not active yet: activate it on the Models page)`
          + (fromTarget.false_reject_rate ? `, with the ${+(fromTarget.false_reject_rate * 100).toPrecision(4)} % `
            + "false-reject target's promise" : "")
          + (mv.not_active ? `. Note: ${mv.not_active}.` : "")
          + (mv.warning ? `. Warning: ${mv.warning}.` : ""), mv.not_active || mv.warning ? "error" : "ok");
        savedAs = [T, R];
        // the new version in the list, to look at it here before activating it
        api("/api/v1/models").then((r) => { models = r.items; fillVersions(); }).catch(() => {});
        update();
      } catch (err) {
        const code = err && err.body && err.body.error && err.body.error.code;
        if (err && err.status === 409 && code === "active_changed") {
          // another version became active while this page stood open: show what is active now
          // (the thresholds chosen here were for the model it replaced)
          const said = err.message.replace(/ Reload the Tuning page and tune the version active now.*$/, "");
          try {
            models = (await api("/api/v1/models")).items;      // "(active)" in the version list moved too
            fillVersions();
            await load();
          } catch (_e) { /* the message below says what happened */ }
          LG.say(`${said} The page was reloaded`
            + (verSel.value ? "" : " and shows the version active now") + ": choose the thresholds again.", "error");
          return;
        }
        LG.fail(err); update();
      }
    });

    body.append(
      h("p", {class: "muted", id: "tuning-scope"}, `${t.product} v${t.version}${t.line ? " on " + t.line : ""}`
        // a model every line shares: the thresholds saved judge every line, whichever line's parts are shown
        + (!t.line && t.parts_line ? ` (every line's model; parts of line ${t.parts_line} only: `
          + "thresholds saved here judge every line)" : "") + ": "
        + `${t.good_scores.length} reviewed good, ${t.defect_scores.length} reviewed defect, ${t.recent_scores.length} recent parts. `
        + `Now: NG above ${num(t.threshold, 4)}`
        + (t.review_threshold !== null && t.review_threshold !== undefined ? `, REVIEW above ${num(t.review_threshold, 4)}` : "")),
      h("div", {class: "panel"}, chart,
        field(h("span", {}, "NG threshold ", thrOut), thr),
        h("label", {}, useBand, " review band (parts between the two thresholds go to a person)"),
        field(h("span", {}, "review threshold ", revOut), rev), bandWrong, targetForm, targetOut),
      h("div", {class: "rates", id: "rates"}, frDiv, esDiv, rvDiv, ngDiv),
      h("div", {class: "panel row", dataset: {role: "engineer"}}, note, save));
    // a version other than the active one: saved thresholds go with its model, not the one judging now
    if (t.not_active) body.prepend(h("p", {class: "error", id: "not-active"}, t.not_active + "."));
    const promise = promiseLines(t.promise);
    if (promise) body.insertBefore(promise, body.lastChild);
    if (!t.good_scores.length && !t.defect_scores.length) {
      body.prepend(h("p", {class: "error"}, "No reviewed parts for this model yet: review some on the Review page first."));
    }
    update();
    LG.applyRoles(body);
  }

  // What a target's threshold rests on: how many good parts, its bound, the unreviewed parts
  // left out and the reviewed defects it would pass.
  function targetLines(r, typed) {
    const esc = r.escapes;
    const out = [h("p", {id: "target-set"}, `NG above ${num(r.threshold, 4)} for at most ${typed} % false rejects, `
      + `measured on ${r.good_parts} ${r.measured_on}: ${r.above} of them above it. On average at most `
      + `${pct(r.guaranteed_false_reject_rate, 2)} of such good parts are judged NG; this threshold's own rate is at `
      + `most ${pct(r.false_reject_rate_upper_95, 2)} with ${Math.round(r.confidence * 100)} % confidence.`)];
    if (r.band_removed) {
      // the version's band lies at or above the new NG threshold: gone, and the box unticked, said so
      out.push(h("p", {class: "error", id: "target-band-removed"}, `The review threshold `
        + `(${num(r.version_review_threshold, 4)}) is at or above the new NG threshold (${num(r.threshold, 4)}): `
        + `the review band is removed. To keep one, tick "review band" and lower the review threshold below the `
        + "NG threshold."));
    }
    if (r.unreviewed_not_ok) {
      // counted as good: the side that keeps the promise (left out, the threshold fell below them)
      out.push(h("p", {class: "error", id: "target-unreviewed"}, `${r.unreviewed_not_ok} part(s) of the audit sample `
        + `judged NG or REVIEW are not reviewed and are counted among the good parts (${r.unreviewed_not_ok_above} `
        + `above this threshold), so the target holds even if they are good; if they are defects the threshold is `
        + `higher than it needs to be. Review them.`));
    }
    out.push(h("p", {id: "target-escapes"}, esc.n
      ? `Expected escapes: ${esc.k} of ${esc.n} reviewed defects would be judged OK (${pct(esc.rate, 1)}, `
        + `95 %: ${pct(esc.lo, 1)}-${pct(esc.hi, 1)})`
        + (r.review_threshold !== null ? `, with the review band at ${num(r.review_threshold, 4)}` : "")
        + "; defects nobody found are not counted."
      : "Expected escapes: unknown, no part is reviewed as a defect yet."));
    out.push(h("p", {class: "muted"}, "The false rejects below count the parts reviewed good: mostly the "
      + "model's false alarms, so they read higher than the line's."
      + (LG.roleAtLeast("engineer") ? " Save as a new version to judge with it." : "")));
    return out;
  }

  // Does the line keep the calibration's promise? Recent parts at the version's own thresholds.
  function promiseLines(pr) {
    if (!pr) return null;
    const ci = Math.round(pr.confidence * 100);
    // not the NG rate tile's: the version's own thresholds, and the parts reviewed as defects left out
    // (a promise about good parts); said so, or the two read as two answers to one question
    const lessDefects = (pr.reviewed_defects_left_out ? `, ${pr.reviewed_defects_left_out} reviewed as defects left out` : "")
      // REVIEW whatever their score: not NG, and not OK
      + (pr.photo_review ? `, ${pr.photo_review} sent to REVIEW by the photo check` : "");
    // a version saved from a false-reject target carries that target's promise, not training's
    const who = pr.promised_by === "target" ? `its ${+(pr.false_reject_target * 100).toPrecision(4)} % false-reject target`
      : "training";
    const line = (c, what, promised) => h("p", {class: c.above_promise ? "error" : "muted"},
      `Recent parts judged ${what} at the version's own thresholds: ${pct(c.rate, 1)} of ${c.n}${lessDefects} `
      + `(${ci} %: ${pct(c.lo, 1)}-${pct(c.hi, 1)}); `
      // as train says it: a conformal promise holds on average over good folders like the
      // training one, not for every run of parts (train: "on average <= 2.44%"; the page's
      // "at most 2.4 %" read as a bound on these very parts), to train's two decimals with a
      // last 0 dropped (2.44 %, 2.5 %, 1.0 % as the page said it before)
      + `${who} promised at most ${pct(c.promised, 2).replace(/0 %$/, " %")} of good parts on average${promised}.`
      + (c.above_promise ? " Above the promise: more defects than usual, or good parts unlike the training photos."
        + " Review recent parts to tell which; if they are good, "
        // retraining is an engineer's (Models page): an operator is told whom to tell
        + (LG.roleAtLeast("engineer") ? "retrain with them." : "tell an engineer, who retrains the model with them.")
        : ""));
    return h("div", {class: "panel", id: "promise"}, line(pr.ng, "NG", ""),
      pr.not_ok ? line(pr.not_ok, "REVIEW or NG", " (the review band's share included)") : null);
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); load().catch(LG.fail); });
  await load();
});
