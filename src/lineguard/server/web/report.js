// Shift handover report: one shift's parts and verdicts per station, its defect rate
// against the week of shifts before it, what reviewers found, what still waits, the
// defect types and the models that judged it. Printable (the browser's Print).
"use strict";

LG.start(async (main) => {
  const {h, api, clear, field, pct, num, when} = LG;
  const p = LG.params();
  const form = h("form", {class: "filters panel no-print", id: "filters"},
    field("line", h("input", {name: "line", value: p.line || "", size: 8})),
    field("product", h("input", {name: "product", value: p.product || "", size: 10})),
    h("button", {type: "submit"}, "Show"));
  const prev = h("button", {type: "button", class: "secondary", id: "prev-shift"}, "◀ Previous shift");
  const next = h("button", {type: "button", class: "secondary", id: "next-shift"}, "Next shift ▶");
  const print = h("button", {type: "button", class: "secondary", id: "print"}, "Print");
  const body = h("div", {id: "report"});
  main.append(h("div", {class: "row no-print"}, h("h1", {class: "grow"}, "Shift report"), prev, next, print), form,
    body);
  let at = p.at || "";
  // the running shift by the station's clock (the API's at=now): this device's clock, a few
  // minutes behind at a shift change, showed the shift before as if it were the running one
  const RUNNING = "now";
  // what an alarm turned out to be, in words (the report gives the key)
  // every cause an alarm may carry, the plant's own and retired ones too
  const causes = await api("/api/v1/alarms?limit=1").then((r) => r.cause_labels || r.causes || {}).catch(() => ({}));

  // a time no part was judged as the shift reads it: "35 s", "12 min 5 s", "2 h 0 min"
  // (line.handover.span says the same in the sentences)
  function span(secs) {
    const s = Math.round(secs);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min` + (s % 60 ? ` ${s % 60} s` : "");
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }
  const cell = (v) => h("td", {class: "num"}, v === null || v === undefined ? "–" : String(v));
  function table(id, head, rows) {
    // in its own scrolling box: on a phone the columns on the right stay reachable
    return h("div", {class: "table-wrap"}, h("table", {id}, h("tr", {}, head.map((x) => h("th", {}, x))), rows));
  }

  // the handover note: written by the shift for the next (operators and up); each save is
  // kept, the earlier versions listed with who and when; printed with the report
  function noteBox(r) {
    const n = r.handover_note || {history: []};
    const text = h("textarea", {id: "handover-note", rows: 4, cols: 60, maxlength: 4000}, n.note || "");
    const said = h("span", {class: "muted", id: "handover-note-said"},
      n.note ? `written by ${n.written_by || "–"} at ${when(n.written_at)}` : "no note yet");
    const save = h("button", {type: "button", id: "save-note", class: "no-print", onclick: async () => {
      try {
        await api("/api/v1/reports/shift/note", {method: "PUT",
          body: {at: r.shift.start, line: r.line || "", note: text.value}});
        await load();
        // said, and an error left from before (a refused signature) no longer reads as this save's
        LG.say(text.value.trim() ? "Handover note saved." : "Handover note taken back.");
      } catch (e) { LG.fail(e); }
    }}, "Save the note");
    const older = n.history.slice(n.note ? 1 : 0);
    // notes written for this time under other shift starts (the starts changed since): kept
    // with the shift they were written for, not lost from every report
    const others = (n.other_shifts || []).filter((o) => o.note);
    return h("div", {class: "panel", id: "handover"}, h("h2", {}, "Handover note"),
      linesNotes(r),
      h("p", {class: "pre", id: "handover-note-text"}, n.note || "–"), h("p", {}, said),
      others.length ? h("div", {id: "handover-other-shifts"}, others.map((o) => h("p", {},
        h("span", {class: "muted"}, `Written for the shift from ${when(o.shift_start)} (under other shift starts), `
          + `by ${o.written_by || "–"} at ${when(o.written_at)}: `), h("span", {class: "pre"}, o.note)))) : null,
      h("details", {class: "no-print", id: "handover-edit", open: !n.note},
        h("summary", {}, n.note ? "Change the note" : "Write the note"), text, h("div", {}, save)),
      older.length ? h("details", {id: "handover-history"}, h("summary", {}, `Earlier versions (${older.length})`),
        h("ul", {}, older.map((x) => h("li", {}, `${when(x.written_at)} ${x.written_by || "–"}: `,
          h("span", {class: "pre"}, x.note || "(taken back)"))))) : null);
  }

  // a line's report of this shift, one tap away (its note and signatures are kept with it)
  const lineLink = (r, ln) => h("a", {href: "/app/report" + LG.q({line: ln, at: r.shift.start})},
    `line ${ln}'s report`);
  const linesOf = (r) => [...new Set([...r.stations.map((s) => s.line),
    ...(r.notes_of_lines || []).map((x) => x.line), ...(r.signed_for_lines || []).map((x) => x.line)])].sort();

  // the every-line report: the notes written on each line's report, so no second, line-less
  // copy is written beside them; the box below is the every-line report's own note
  function linesNotes(r) {
    if (r.line) return null;
    const notes = r.notes_of_lines || [];
    const lines = linesOf(r);
    return h("div", {id: "lines-notes"},
      notes.map((x) => h("p", {dataset: {line: x.line}}, h("b", {}, `Line ${x.line}: `),
        h("span", {class: "pre"}, x.note),
        h("span", {class: "muted"}, ` (written by ${x.written_by || "–"} at ${when(x.written_at)}, on `),
        lineLink(r, x.line), h("span", {class: "muted"}, ")"))),
      lines.length ? h("p", {class: "muted no-print"}, "Each line's note and signatures are on its own report: ",
        lines.map((ln, i) => [i ? ", " : "", lineLink(r, ln)]), ". The note below is this every-line report's own.")
        : null);
  }

  // the report signed at the handover (POST /api/v1/reports/shift/sign): kept as it is now,
  // whatever the next shift's reviews change; a signature is printed with the report
  function signBox(r) {
    const signed = r.signed || [];
    const noteIn = h("input", {id: "sign-note", maxlength: 2000, size: 40,
      placeholder: "handed over to (B shift, Ana)", "aria-label": "note with the signature"});
    const signForm = h("form", {class: "row no-print", id: "sign-form", "data-role": "operator"}, noteIn,
      h("button", {type: "submit", id: "sign-shift"}, "Sign this shift's report"));
    LG.once(signForm, async () => {
      const got = await api("/api/v1/reports/shift/sign", {method: "POST",
        body: {at: r.shift.start, line: r.line || "", product: r.product || "", note: noteIn.value}});
      LG.say(`Signed: the report as it is now is kept as issued report ${got.issued.id}`
        + (got.issued.replaces ? `, revision ${got.issued.revision} (replaces #${got.issued.replaces})` : "") + ".");
      await load();
    });
    // a shift with no part has nothing to sign (the API refuses it): no button that can only fail
    const nothing = !r.totals.parts && !r.totals.no_verdict;
    const rows = signed.map((x) => h("li", {dataset: {issued: x.id}},
      `${x.withdrawn ? "WITHDRAWN · " : ""}signed by ${x.issued_by || "–"} at ${when(x.issued_at)}`
      + (x.note ? `: ${x.note}` : "") + ` (#${x.id}, revision ${x.revision})`
      + (x.withdrawn ? ` · withdrawn by ${x.withdrawn.by || "–"}: ${x.withdrawn.reason}` : "") + " ",
      LG.changedSinceForm(x.id, "Signed report", "secondary link"),
      // a signature made in error (the wrong shift or line) withdrawn by an engineer, kept marked
      x.withdrawn ? null : LG.withdrawForm(x.id, "signed report", async () => {
        LG.say(`Signed report ${x.id} withdrawn: it stays listed, marked so.`);
        await load();
      })));
    // the every-line report: each line's signatures of this shift, listed with a link to its report
    const ofLines = r.line ? [] : r.signed_for_lines || [];
    return h("div", {class: "panel", id: "signed"}, h("h2", {}, "Signed at the handover"),
      ofLines.length ? h("ul", {id: "signed-lines"}, ofLines.map((x) => h("li",
        {dataset: {issued: x.id, line: x.line}},
        `Line ${x.line}: ${x.withdrawn ? "WITHDRAWN · " : ""}signed by ${x.issued_by || "–"} at ${when(x.issued_at)}`
        + (x.note ? `: ${x.note}` : "") + ` (#${x.id}) · on `, lineLink(r, x.line)))) : null,
      signed.length ? h("ul", {id: "signed-list"}, rows)
        : nothing ? null : h("p", {class: "muted"},
          (r.line ? "Not signed yet" : "This every-line report is not signed yet")
          + ". Signing keeps this report as it is now, with your name: the next shift's reviews change the report, "
          + "not the one signed."),
      r.shift.ended || nothing ? null : h("p", {class: "muted no-print"}, "The shift is still running: a report "
        + "signed now leaves out the parts still to come."),
      nothing ? h("p", {class: "muted no-print", id: "sign-nothing"}, "No part in this shift: nothing to sign.")
        : signForm);
  }

  async function load() {
    const f = form.elements;
    const handover = !at;     // asked for no time: the last shift that ended
    const q = {line: f.line.value.trim(), product: f.product.value.trim(), at};
    history.replaceState(null, "", location.pathname + LG.q(q));
    let r;
    try {
      r = await api("/api/v1/reports/shift" + LG.q(q));
    } catch (e) {
      // a shift no one has worked yet (a day ahead typed): said so, with no running shift's
      // words, no note to write and nothing to sign (the API refuses those too)
      const why = e && e.status === 422 && e.body && e.body.error;
      if (!why || !why.not_started) throw e;
      notStarted(why);
      return;
    }
    at = r.shift.start;
    prev.onclick = () => { at = r.shift.previous_at; load().catch(LG.fail); };
    next.disabled = !r.shift.next_at;
    next.onclick = () => { at = r.shift.next_at; load().catch(LG.fail); };
    clear(body);
    const t = r.totals;
    // opened plain, the page shows the handover: the last shift that ended, which may be
    // empty while the running one has parts; say so, one tap from the running shift
    const which = handover && r.shift.ended && r.shift.next_at
      ? h("p", {class: "muted no-print", id: "which-shift"}, "The last shift that ended (the handover report). ",
        h("button", {type: "button", class: "link", id: "running-shift", onclick: () => {
          at = RUNNING; load().catch(LG.fail);
        }}, "Show the running shift"))
      : null;
    body.append(
      h("div", {class: "panel"},
        h("h2", {id: "shift-label"}, `Shift ${r.shift.label}` + (r.shift.ended ? "" : " (running)")), which,
        r.records_incomplete ? h("p", {class: "error", id: "records-incomplete"}, r.records_incomplete) : null,
        h("p", {class: "muted", id: "shift-times"}, `${when(r.shift.start)} to ${when(r.shift.end)} (${LG.zoneLabel()}`
          + (LG.shiftStarts().length ? `; shifts start ${LG.shiftStarts().join(", ")})` : ")")
          + (r.line ? ` · line ${r.line}` : " · every line") + (r.product ? ` · product ${r.product}` : "")),
        h("p", {id: "totals"}, h("b", {}, `${t.parts} parts`), ` · OK ${t.OK} · NG ${t.NG} · REVIEW ${t.REVIEW}`
          + ` · NG rate ${pct(t.ng_rate, 2)}`,
          // rejected by the PLC without a verdict in time: most have no record, so said apart
          t.no_verdict ? h("b", {class: "v-ng", id: "no-verdict"}, ` · ${t.no_verdict} rejected by the PLC without a `
            + "verdict in time" + (t.no_verdict_late ? ` (${t.no_verdict_late} judged later: among the parts above by `
            + "that verdict)" : " (listed below)")) : ""),
        // what an operator does about them first, then each part (the PLC's part number)
        r.no_verdict_text ? h("p", {class: "error", id: "no-verdict-text"}, r.no_verdict_text) : null,
        (r.no_verdict_parts || []).length ? h("details", {id: "no-verdict-parts", open: true},
          h("summary", {}, `Parts rejected by the PLC without a verdict (${r.no_verdict_parts.length})`),
          table("no-verdict-table", ["time", "line", "station", "PLC part number", "trigger", "why"],
            r.no_verdict_parts.map((x) => h("tr", {}, h("td", {}, when(x.triggered_at)), h("td", {}, x.line),
              h("td", {}, x.station), cell(x.part_tag), cell(x.trigger_seq),
              h("td", {}, (x.reason || "–") + (x.judged_later_id ? " (judged later)" : "")))))) : null,
        r.stations.length ? table("stations", ["line", "station", "parts", "OK", "NG", "REVIEW", "NG rate",
          "photos doubted", "PLC rejects without a verdict"],
          r.stations.map((s) => h("tr", {}, h("td", {}, s.line), h("td", {}, s.station), cell(s.parts), cell(s.OK),
            cell(s.NG), cell(s.REVIEW), cell(pct(s.ng_rate, 2)), cell(s.photo_doubted || 0), cell(s.no_verdict || 0))))
          : h("p", {class: "muted"}, "No parts in this shift.")),
      noteBox(r),
      signBox(r),
      h("div", {class: "panel", id: "stops-and-starts"}, h("h2", {}, "Station stops, starts and outages"),
        (r.stops_and_starts || []).length ? table("stops-table", ["stopped", "started again", "no part judged for",
          "what"], r.stops_and_starts.map((e) => h("tr", {dataset: {kind: e.kind}},
            h("td", {}, e.stopped_at ? when(e.stopped_at) : "–"), h("td", {}, e.started_at ? when(e.started_at) : "–"),
            cell(e.down_s === null ? null : span(e.down_s)), h("td", {}, e.text))))
          : r.runs_recorded_from ? h("p", {class: "muted", id: "runs-from"}, "No stop or start is known before "
            + `${when(r.runs_recorded_from)}, when the station's first run on record started (a new station, or one `
            + "upgraded then).")
          : h("p", {class: "muted"}, "The station ran through the shift (no stop or start recorded).")),
      h("div", {class: "panel", id: "control"}, h("h2", {}, "Defect rate against the week before"),
        r.control && r.control.centre === null
          ? h("p", {class: "muted", id: "control-text"}, `${pct(r.control.p, 2)} NG; ${r.control.text}.`)
          : r.control
          ? h("p", {class: r.control.alarms.length ? "error" : "v-ok", id: "control-text"},
            `${pct(r.control.p, 2)} NG against a centre of ${pct(r.control.centre, 2)} (limits `
            + `${pct(r.control.lcl, 2)} – ${pct(r.control.ucl, 2)}; ${r.control.text}): `
            + (r.control.alarms.length ? r.control.alarms.join("; ") : "in control."))
          : h("p", {class: "muted"}, "No parts to chart."),
        h("p", {class: r.drift.alarm ? "error" : "muted", id: "drift"},
          (r.drift.alarm ? "Scores drifted: " : "Scores: ") + r.drift.text
          + (r.drift.models_differ ? " (several models judged these parts: their scores are not comparable)" : ""))),
      h("div", {class: "panel", id: "reviews"}, h("h2", {}, "What reviewers found among this shift's parts"),
        table("review-table", ["false rejects (NG, good)", "confirmed defects (NG)", "escapes (OK, defect)",
          "at review: defect / good", "audit-sample OK parts reviewed", "NG/REVIEW not reviewed yet"],
        [h("tr", {}, cell(r.reviews.false_rejects), cell(r.reviews.confirmed_defects),
          cell(r.reviews.escapes_text ? `${r.reviews.escapes} (${r.reviews.escapes_text})` : r.reviews.escapes),
          cell(`${r.reviews.review_defect} / ${r.reviews.review_good}`), cell(r.reviews.ok_audited),
          cell(r.reviews.waiting))])),
      h("div", {class: "panel"}, h("h2", {}, "Defect types (reviewed)"),
        r.defect_types.length ? table("types", ["type", "parts", "caught NG", "at review", "escaped", "share"],
          r.defect_types.map((b) => h("tr", {}, h("td", {}, b.defect_type), cell(b.parts), cell(b.caught),
            cell(b.at_review), cell(b.escaped), cell(pct(b.share, 0))))) : h("p", {class: "muted"}, "None reviewed yet.")),
      h("div", {class: "panel"}, h("h2", {}, "Test parts (each line's verification)"),
        LG.verificationTable(r.verification, "report-verification")),
      h("div", {class: "panel", id: "report-alarms"}, h("h2", {}, "Line alarms"),
        r.alarms.length ? table("alarms", ["raised", "line", "station", "alarm", "acknowledged", "by", "cause", "note"],
          r.alarms.map((a) => h("tr", {dataset: {kind: a.kind}},
            h("td", {}, when(a.raised_at), a.from_before ? " (still active when the shift began)" : ""), h("td", {}, a.line),
            h("td", {}, a.station), h("td", {}, LG.plantTimes(a.message)),
            // as it stood when the shift ended; what came after is said apart
            // a running shift has no end yet: "not yet", not "not by the shift's end"
            h("td", {}, a.at_end && !a.at_end.acknowledged ? (r.shift.ended ? "not by the shift's end" : "not yet")
              : a.acked_at ? when(a.acked_at) : "not yet",
              a.at_end && a.at_end.escalated ? ` (escalated ${when(a.escalated_at)}`
                + (a.escalations > 1 ? `, ${a.escalations} times)` : ")") : "",
              a.later ? h("span", {class: "muted later"}, ` · later: ${a.later}`) : ""),
            h("td", {}, a.at_end && !a.at_end.acknowledged ? "–" : a.acked_by || "–"), h("td", {class: "cause"}, a.ack_cause ? causes[a.ack_cause] || a.ack_cause : "–"),
            h("td", {class: "pre"}, a.ack_note ? LG.plantTimes(a.ack_note) : "–"))))
          : h("p", {class: "muted"}, "None raised."),
        // what the acknowledged alarms turned out to be, most first
        (r.alarm_causes || []).length ? [h("h3", {}, "What the acknowledged alarms turned out to be"),
          table("alarm-causes", ["cause", "alarms"],
            r.alarm_causes.map((c) => h("tr", {dataset: {cause: c.cause}}, h("td", {}, c.label), cell(c.alarms))))]
          : null),
      h("div", {class: "panel"}, h("h2", {}, "Models that judged the parts"),
        r.models.length ? table("models", ["product", "model", "version", "parts"],
          r.models.map((m) => h("tr", {}, h("td", {}, m.product), h("td", {}, m.model_id),
            cell(m.registry_version === null ? "–" : "v" + m.registry_version), cell(num(m.parts, 0)))))
          : h("p", {class: "muted"}, "–")));
    LG.applyRoles(body);
  }

  function notStarted(why) {
    clear(body);
    const start = why.shift_start;
    prev.onclick = () => { at = new Date(Date.parse(start) - 1).toISOString(); load().catch(LG.fail); };
    next.disabled = true;
    body.append(h("div", {class: "panel", id: "not-started"},
      h("h2", {id: "shift-label"}, "This shift has not started yet"),
      h("p", {}, `It starts at ${when(start)} (${LG.zoneLabel()}): no part, note or signature can belong to it yet.`),
      h("p", {class: "muted", id: "not-started-why"}, why.message || ""),
      h("button", {type: "button", class: "link", id: "running-shift", onclick: () => {
        at = RUNNING; load().catch(LG.fail);
      }}, "Show the running shift")));
  }

  // the shift shown stays: Show picks another line or product for it, not the handover again
  form.addEventListener("submit", (e) => { e.preventDefault(); load().catch(LG.fail); });
  print.addEventListener("click", () => window.print());
  await load();
});
