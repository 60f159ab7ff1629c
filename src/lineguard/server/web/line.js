// Line view: this shift's counters per line and station, the last parts, health;
// kept live by the station's event stream (GET /api/v1/events).
"use strict";

LG.start(async (main) => {
  const {h, api, clear, pct, num, when, timeOnly, verdictClass, partUrl, picUrl, THUMB_PX} = LG;
  const MAX_THUMBS = 24;
  const cards = new Map();   // "line\u0000station" -> {row, els}
  let summary = null;

  const head = h("div", {class: "row"}, h("h1", {class: "grow"}, "Line view"),
    h("span", {class: "live muted", id: "live"}, "connecting…"));
  // The station gone (stopped, the network down): a wall display kept showing the counters and
  // the pace as if live, a small "reconnecting…" the only sign. Said across the page, with
  // since when, and the numbers greyed until it answers again.
  const awayEl = h("div", {class: "panel station-away", id: "station-away", role: "alert", hidden: true});
  let lastAnswer = new Date(), away = false;
  function answered() {
    lastAnswer = new Date();
    if (!away) return;
    away = false;
    awayEl.hidden = true;
    main.classList.remove("stale");
  }
  function notAnswering(err) {
    // 0: no answer at all; 502-504: a proxy or the station up without its database
    if (!err || !(err.status === 0 || err.status >= 502)) return;
    if (away) return;
    away = true;
    awayEl.textContent = `Station not answering since ${timeOnly(lastAnswer.toISOString())}: the numbers below `
      + "are from then. They come back by themselves when it answers.";
    awayEl.hidden = false;
    main.classList.add("stale");
  }
  const shiftInfo = h("p", {class: "muted", id: "shift"});
  // the station's restarts and outages this shift (the summary's stops_and_starts): a restart
  // showed only while it lasted ("reconnecting…"), then nothing; the parts it did not judge
  // are the shift's to explain, so each stays said until the shift ends
  const runsEl = h("div", {class: "panel station-runs", id: "station-runs", hidden: true});
  const cardsEl = h("div", {class: "grid", id: "stations"});
  const thumbs = h("div", {class: "thumbs", id: "last-parts"});
  const models = h("div", {id: "models"});
  const health = h("div", {id: "health"});
  main.append(head, awayEl, shiftInfo, runsEl, cardsEl,
    // the photos' "NG 71.8 / 36.3" labels are scores: said once, under them
    h("div", {class: "panel"}, h("h2", {}, "Last parts"), thumbs,
      h("p", {class: "muted small", id: "score-means"}, LG.scoreMeans())),
    h("div", {class: "row"},
      h("div", {class: "panel grow"}, h("h2", {}, "Active models"), models),
      h("div", {class: "panel grow"}, h("h2", {}, "Station health: sinks, PLC, disk, backup, records"), health)));
  // each station's test parts this shift, above the cards (framed red when one failed)
  const verif = h("div", {class: "panel", id: "verification-panel"}, h("h2", {}, "Test parts this shift"));
  main.insertBefore(verif, cardsEl);
  // line alarms (a run of rejected parts, a high NG rate, photos the model cannot judge),
  // latched until acknowledged: first of all
  const alarmsHead = h("h2", {tabindex: -1, id: "alarms-head"}, "Alarm");
  const alarmsEl = h("div", {class: "panel alarm", id: "alarms-panel", hidden: true}, alarmsHead);
  main.insertBefore(alarmsEl, verif);
  // what a screen reader hears of the line: each part's verdict (politely, summed up when
  // parts come faster than it can be read) and, at once, a new alarm
  const partsSaid = h("div", {class: "sr-only", id: "parts-announce", role: "status", "aria-live": "polite"});
  const alarmSaid = h("div", {class: "sr-only", id: "alarm-announce", role: "alert", "aria-live": "assertive"});
  main.append(partsSaid, alarmSaid);
  const SAY_MS = 1500;
  let unsaid = [], sayTimer = null, saidAt = 0;
  function sayParts() {
    sayTimer = null;
    saidAt = Date.now();
    const n = unsaid.length;
    if (!n) return;
    if (n === 1) partsSaid.textContent = `Part ${unsaid[0].part_id}: ${unsaid[0].verdict}`;
    else {
      const by = {};
      for (const p of unsaid) by[p.verdict] = (by[p.verdict] || 0) + 1;
      partsSaid.textContent = `${n} parts: ` + ["NG", "REVIEW", "OK"].filter((v) => by[v]).map((v) => `${by[v]} ${v}`)
        .concat(Object.keys(by).filter((v) => !["NG", "REVIEW", "OK"].includes(v)).map((v) => `${by[v]} ${v}`)).join(", ");
    }
    unsaid = [];
  }
  function announcePart(p) {
    unsaid.push(p);
    // the first part at once; the ones after it at most every 1.5 s, in one sentence
    if (!sayTimer) sayTimer = setTimeout(sayParts, Math.max(0, SAY_MS - (Date.now() - saidAt)));
  }
  let alarmsSeen = null;      // the alarms already there when the page opened are not news
  // what an alarm may turn out to be (the station's list, the plant's own causes in it),
  // chosen on acknowledgement; read again every minute: a panel stays open for days, and
  // an engineer adds or retires causes meanwhile
  let causes = await api("/api/v1/alarms?limit=1").then((r) => r.causes || {}).catch(() => ({}));
  function causeOptions(select) {
    const chosen = select.value;
    clear(select).append(h("option", {value: ""}, "cause…"),
      ...Object.entries(causes).map(([k, label]) => h("option", {value: k}, label)));
    select.value = chosen in causes ? chosen : "";      // one retired meanwhile is no longer offered
  }
  setInterval(() => {
    api("/api/v1/alarms?limit=1").then((r) => {
      if (JSON.stringify(r.causes || {}) === JSON.stringify(causes)) return;
      causes = r.causes || {};
      for (const el of alarmItems.values()) causeOptions(el.querySelector("select[name=cause]"));
    }).catch(() => {});
  }, 60000);

  function alarmItem(a) {
    const note = h("input", {type: "text", class: "grow", maxlength: 2000, placeholder: "what was found and done",
      "aria-label": "note for alarm " + a.id});
    const cause = h("select", {name: "cause", "aria-label": "cause of alarm " + a.id});
    causeOptions(cause);
    const ack = h("button", {type: "submit", dataset: {role: "operator"}}, "Acknowledge");
    // a form: Enter in the note acknowledges, as the button does
    const actions = h("form", {class: "alarm-actions"}, cause, note, ack);
    actions.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (ack.disabled || ack.hidden) return;
      if (LG.settling()) return;    // the alarm above went a moment ago: this one slid under the finger
      // "other" says nothing by itself: the station refuses it without a note (422), said here first
      if (cause.value === "other" && !note.value.trim()) {
        LG.say(`Alarm ${a.id}: “other” needs a note: write what it was, then acknowledge.`, "error");
        note.focus();
        return;
      }
      // a disabled button loses the focus to <body>: noted, so it goes on to the next alarm
      if (actions.contains(document.activeElement)) item.dataset.hadFocus = "1";
      ack.disabled = true;
      let failed = false;
      try {
        await api(`/api/v1/alarms/${Number(a.id)}/acknowledge`,
          {method: "POST", body: {note: note.value || null, cause: cause.value || null}});
        LG.say(`Alarm ${a.id} acknowledged.`);
      } catch (err) {
        // acknowledged by someone else meanwhile (409): as good as done, the refresh takes it away
        failed = !(err && err.status === 409);
        // "acknowledged already, by anna at <UTC>": said on the plant's clock, as the page's times are
        if (err && err.message) err.message = LG.plantTimes(err.message);
        LG.fail(err);
      } finally {
        // acknowledged: the button stays off until the refresh takes the alarm away (enabled at
        // the answer, a double tap's second tap was sent and answered "acknowledged already");
        // not acknowledged: the focus back on its button; acknowledged, the flag stays till it goes
        if (failed) {
          ack.disabled = false;
          if (item.dataset.hadFocus && document.activeElement === document.body) ack.focus();
          delete item.dataset.hadFocus;
        }
        // the acknowledgement's own warning ("this may not have been saved") stays: the refresh's
        // failing for the same reason would put a vaguer one over it
        loadSummary().catch(failed ? () => {} : LG.fail);
      }
    });
    // what it is beside what to do about it: two or three alarms still leave the line's
    // counters on a 10-inch panel's screen (stacked, each took a third of it)
    const item = h("div", {class: "alarm-item", dataset: {id: a.id}, tabindex: -1},
      h("div", {class: "alarm-text"},
        h("p", {}, h("b", {}, LG.alarmKind(a.kind, true), " · line ", a.line, " · ", a.station), " since ", when(a.raised_at),
          // a reject without a verdict has no part record to link to (the message says why it came)
          a.inspection_id ? [" · ", h("a", {href: partUrl(a.inspection_id)}, "the part that raised it")] : null),
        // the message's own times (the drift alarm's "since about … UTC") on the plant's clock
        h("p", {class: "alarm-message"}, LG.plantTimes(a.message))),
      actions);
    LG.applyRoles(item);
    return item;
  }

  // one element per alarm while it is active: a note being typed survives other alarms coming and going
  const alarmItems = new Map();
  function renderAlarms(list) {
    const ids = new Set(list.map((a) => a.id));
    let lostFocus = false;
    for (const [id, el] of alarmItems) {
      if (!ids.has(id)) {
        lostFocus = lostFocus || el.contains(document.activeElement)
          || (!!el.dataset.hadFocus && document.activeElement === document.body);
        el.remove(); alarmItems.delete(id); LG.settle();
      }
    }
    const fresh = alarmsSeen ? list.filter((a) => !alarmsSeen.has(a.id)) : [];
    alarmsSeen = ids;
    if (fresh.length) {
      alarmSaid.textContent = fresh.map((a) => `Alarm: ${LG.alarmKind(a.kind, true)}, line ${a.line} ${a.station}. ${LG.plantTimes(a.message)}`)
        .join(" ");
    }
    for (const a of list) {
      if (!alarmItems.has(a.id)) {
        const el = alarmItem(a); alarmItems.set(a.id, el); alarmsEl.appendChild(el);
        LG.settle();
      }
      const el = alarmItems.get(a.id);
      // an active alarm told more (a test part's further wrong check goes on it): its text, and
      // the part its link names, follow; the element itself stays (a note being typed survives)
      const message = LG.plantTimes(a.message);
      const said = el.querySelector(".alarm-message");
      if (said.textContent !== message) {
        said.textContent = message;
        alarmSaid.textContent = `Alarm updated: ${LG.alarmKind(a.kind, true)}, line ${a.line} ${a.station}. ${message}`;
      }
      const link = el.querySelector(".alarm-text a");
      if (link && a.inspection_id) link.href = partUrl(a.inspection_id);
      const times = a.escalations > 1 ? ` (×${a.escalations})` : "";
      if (a.escalated_at && (!el.querySelector(".escalated") || el.dataset.escalations !== String(a.escalations))) {
        // left unacknowledged too long, and again each time it is escalated again
        const old = el.querySelector(".escalated");
        if (old) old.remove();
        el.dataset.escalations = String(a.escalations);
        el.querySelector("p").append(h("span", {class: "escalated"}, " · escalated ", when(a.escalated_at), times));
      }
    }
    alarmsHead.textContent = list.length === 1 ? "Alarm" : `${list.length} alarms`;
    alarmsEl.hidden = !list.length;
    // the acknowledged alarm (and the focus in it) gone: the focus to the next alarm, or to the
    // page's heading when none is left (not to the page's top, 30 Tabs back)
    if (lostFocus) {
      const next = alarmsEl.querySelector(".alarm-item");
      if (next) next.focus();
      else { const h1 = main.querySelector("h1"); h1.tabIndex = -1; h1.focus(); }
    }
    sound();
  }

  // An alarm to hear, for a line where nobody is watching the screen: two tones every 2 s
  // while any alarm is active, switched on per browser (the tablet at the line keeps it).
  // Browsers start sound only after a click on the page: the switch is one.
  const SOUND_KEY = "lg-alarm-sound";
  const AudioCtx = window.AudioContext || window.webkitAudioContext;
  let soundOn = AudioCtx !== undefined && localStorage.getItem(SOUND_KEY) === "on";
  let audio = null, beeper = null;
  const soundBtn = h("button", {type: "button", class: "secondary", id: "alarm-sound"});
  function soundLabel() {
    soundBtn.textContent = soundOn ? "Alarm sound: on" : "Alarm sound: off";
    soundBtn.setAttribute("aria-pressed", String(soundOn));
    if (!AudioCtx) { soundBtn.disabled = true; soundBtn.title = "this browser cannot play sound"; }
  }
  function beep() {
    if (!audio) return;
    const t = audio.currentTime;
    for (const [at, freq] of [[0, 880], [0.22, 660]]) {
      const osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.25, t + at);
      gain.gain.exponentialRampToValueAtTime(0.001, t + at + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(t + at);
      osc.stop(t + at + 0.2);
    }
  }
  function sound() {
    const want = soundOn && alarmItems.size > 0;
    alarmsEl.dataset.sounding = String(want);
    if (want && !beeper) {
      audio = audio || new AudioCtx();
      if (audio.state === "suspended") audio.resume().catch(() => {});
      beep();
      beeper = setInterval(beep, 2000);
    } else if (!want && beeper) {
      clearInterval(beeper);
      beeper = null;
    }
  }
  soundBtn.addEventListener("click", () => {
    soundOn = !soundOn;
    localStorage.setItem(SOUND_KEY, soundOn ? "on" : "off");
    soundLabel();
    sound();
  });
  // switched on in an earlier visit: sound starts at the first click on the page
  document.addEventListener("click", () => {
    if (audio && audio.state === "suspended") audio.resume().catch(() => {});
  });
  soundLabel();
  head.insertBefore(soundBtn, head.lastChild);

  const keyOf = (line, station) => line + "\u0000" + station;

  function counter(name, label) {
    const b = h("b", {dataset: {counter: name}}, "0");
    return [h("div", {class: "counter"}, b, h("span", {}, label)), b];
  }

  function card(line, station) {
    const k = keyOf(line, station);
    if (cards.has(k)) return cards.get(k);
    const els = {};
    const cs = [["parts", "parts"], ["ok", "OK"], ["ng", "NG"], ["review", "review"], ["defect_rate", "defect rate"]]
      .map(([n, l]) => { const [div, b] = counter(n, l); els[n] = b; return div; });
    els.ppm = h("dd", {}); els.lat = h("dd", {}); els.last = h("dd", {}); els.model = h("dd", {});
    els.noVerdict = h("dd", {dataset: {fact: "no-verdict"}});
    const el = h("section", {class: "panel station-card", dataset: {line, station}},
      h("h2", {}, h("span", {}, "Line ", line, " · ", station)),
      h("div", {class: "counters"}, cs),
      h("dl", {class: "facts"}, h("dt", {}, "throughput"), els.ppm, h("dt", {}, "latency p50 / p95"), els.lat,
        h("dt", {}, "last part"), els.last, h("dt", {}, "model"), els.model,
        // scrapped by the PLC without a verdict in time (timeouts, no image, faults): most have
        // no part record (one judged late is among the parts by that verdict)
        h("dt", {}, "PLC rejects without a verdict"), els.noVerdict));
    const entry = {row: {line, station, parts: 0, ok: 0, ng: 0, review: 0}, els, el};
    cards.set(k, entry);
    // keep the cards in line/station order
    const sorted = [...cards.values()].sort((a, b) => keyOf(a.row.line, a.row.station)
      .localeCompare(keyOf(b.row.line, b.row.station)));
    for (const c of sorted) cardsEl.appendChild(c.el);
    return entry;
  }

  function modelFor(line) {
    if (!summary) return null;
    const act = summary.models.filter((m) => m.line === line || m.line === "");
    return act.length ? act.map((m) => `${m.product} v${m.version}`).join(", ") : null;
  }

  function paint(entry) {
    const r = entry.row, e = entry.els;
    e.parts.textContent = r.parts; e.ok.textContent = r.ok; e.ng.textContent = r.ng; e.review.textContent = r.review;
    e.defect_rate.textContent = r.parts ? pct(r.ng / r.parts, 2) : "–";
    e.ppm.textContent = r.parts_per_min !== undefined ? num(r.parts_per_min, 1) + " parts/min" : "–";
    e.lat.textContent = r.latency_ms && r.latency_ms.p50 !== null
      ? `${num(r.latency_ms.p50, 0)} / ${num(r.latency_ms.p95, 0)} ms` : "–";
    e.last.textContent = timeOnly(r.last_part_at);
    e.model.textContent = modelFor(r.line) || "none active";
    e.noVerdict.textContent = String(r.no_verdict || 0);
    e.noVerdict.classList.toggle("v-ng", (r.no_verdict || 0) > 0);
  }

  const PLC_NAMES = {modbus: "Modbus", opcua: "OPC UA"};

  // One PLC link in plain words: what it is doing, a result the PLC has not acknowledged,
  // the parts rejected without a verdict lately, the answers not yet recorded. The dot is
  // red for a latched error or most recent parts rejected without a verdict, amber for any
  // of those troubles (a link timing out every part stayed green before).
  function plcPanel(p) {
    const recent = p.recent || {}, mins = num(recent.minutes || 15, 0);
    const noVerdict = (recent.timeouts || 0) + (recent.not_inspected || 0) + (recent.other_no_verdict || 0);
    const error = p.error || p.error_code;
    const unrecorded = (p.unrecorded_answers || 0) + (p.spooled_answers || 0);
    const troubles = [];
    if (p.ack_late) {   // up for a moment is the handshake; for seconds, the PLC is not reading it
      const part = p.result_part !== null && p.result_part !== undefined ? `part ${p.result_part}` : "the last part";
      troubles.push(`waiting for the PLC to acknowledge ${part}` +
        (p.result_waiting_s ? ` (for ${num(p.result_waiting_s, 0)} s)` : "") + ": no next trigger is taken until it does");
    }
    if (recent.timeouts) troubles.push(`${recent.timeouts} part(s) in the last ${mins} min got no verdict in time (timed out, answered NG)`);
    if (recent.not_inspected) troubles.push(`${recent.not_inspected} part(s) in the last ${mins} min were triggered while the station was not ready and not inspected`);
    if (recent.other_no_verdict) troubles.push(`${recent.other_no_verdict} part(s) in the last ${mins} min were answered NG without a verdict (no image or a fault)`);
    if (p.spooled_answers) troubles.push(`${p.spooled_answers} answer(s) to the PLC are not recorded yet: the database refused them, they are kept on the disk until it takes them`);
    else if (p.unrecorded_answers && p.unrecorded_oldest_s >= 2) troubles.push(`${p.unrecorded_answers} answer(s) to the PLC are not recorded yet (the oldest for ${num(p.unrecorded_oldest_s, 0)} s)`);
    const mostRejected = recent.answers && noVerdict * 2 >= recent.answers;
    const cls = error || mostRejected ? "bad" : troubles.length ? "warn" : "ok";
    const doing = error ? `error ${p.error_code}: ${p.error_message || ""}`
      : p.busy ? (p.part_in_inspection !== null && p.part_in_inspection !== undefined ? `inspecting part ${p.part_in_inspection}` : "inspecting a part")
        : p.trigger_ready ? "ready for a trigger" : p.results_valid ? "result up for the PLC" : "not ready";
    const name = PLC_NAMES[p.protocol] || p.protocol || "PLC";
    const where = [p.line ? `line ${p.line}` : "", p.port ? `:${p.port}` : ""].filter(Boolean).join(" ");
    return h("div", {class: "panel plc-link", id: "plc-" + (p.protocol || "link"), "data-state": cls},
      h("span", {class: "dot " + cls}),
      h("b", {}, `PLC (${name}${where ? " " + where : ""})`), " ", doing,
      p.recipe !== undefined && p.recipe !== null ? ` · recipe ${p.recipe}` : "",
      ` · since start ${p.triggers || 0} triggers, ${p.timeouts || 0} timed out, ${p.not_inspected || 0} not inspected`,
      troubles.length ? h("ul", {class: "plc-troubles"}, troubles.map((t) => h("li", {class: cls === "bad" ? "error" : "v-review"}, t))) : null);
  }

  // one stop, restart or outage in a sentence, on the plant's clock ("station on pc1 restarted
  // at 10:33:30: 35 s without judging parts"); a process's first start is no interruption
  const RUNS_SHOWN = 5;
  // a time no part was judged as the shift reads it: "35 s", "12 min 5 s", "2 h 0 min"
  // (line.handover.span says the same)
  function span(secs) {
    const s = Math.round(secs);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min` + (s % 60 ? ` ${s % 60} s` : "");
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }
  function runText(e) {
    const secs = span(e.down_s);
    // down since before this shift: its stop's clock time would read as today's
    if (e.before_window && e.kind === "down") {
      return `${e.process} ${e.clean ? "stopped" : "went silent"} before this shift began (${LG.when(e.stopped_at)}) `
        + `and has not started again: no part judged by it all this shift (${span(e.down_in_window_s)})`;
    }
    if (e.before_window) {
      return `${e.process} ${e.clean ? "stopped" : "went silent"} before this shift began (${LG.when(e.stopped_at)}) `
        + `and started again at ${timeOnly(e.started_at)}: no part judged by it this shift until then `
        + `(${span(e.down_in_window_s)})`;
    }
    if (e.kind === "restart") {
      return `${e.process} restarted at ${timeOnly(e.started_at)} (stopped at ${timeOnly(e.stopped_at)}): `
        + `${secs} without judging parts`;
    }
    if (e.kind === "outage") {
      return `${e.process} went silent at ${timeOnly(e.stopped_at)} (no clean stop: killed, crashed or the power went) `
        + `and started again at ${timeOnly(e.started_at)}: about ${secs} without judging parts`;
    }
    if (e.kind === "down") {
      return `${e.process} ${e.clean ? "stopped" : "went silent"} at ${timeOnly(e.stopped_at)} and has not started `
        + `again: no part judged by it since (${secs})`;
    }
    return null;
  }
  function renderRuns(list) {
    // oldest first across processes (the list comes process by process)
    const said = (list || []).slice().sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
      .map((e) => [e, runText(e)]).filter(([, t]) => t);
    runsEl.hidden = !said.length;
    if (!said.length) { clear(runsEl); return; }
    const shown = said.slice(-RUNS_SHOWN);     // the newest; the shift report lists every one
    clear(runsEl).append(h("b", {}, said.length === 1 ? "Station interrupted this shift: "
      : `Station interrupted ${said.length} times this shift${said.length > shown.length ? " (the last "
        + shown.length + ")" : ""}: `),
    h("ul", {}, shown.map(([e, t]) => h("li", {dataset: {kind: e.kind}}, t))),
    h("span", {class: "muted"}, "The shift report lists them for the handover."));
  }

  function renderSummary(s) {
    summary = s;
    clear(shiftInfo).append("Shift ", s.shift ? s.shift.label : "", " · counting since ", LG.when(s.since));
    renderRuns(s.stops_and_starts);
    const seen = new Set();
    for (const r of s.lines) {
      const entry = card(r.line, r.station);
      entry.row = Object.assign({}, r);
      seen.add(keyOf(r.line, r.station));
      paint(entry);
    }
    // a station with no part this shift (the shift changed): back to zero
    for (const [k, entry] of cards) {
      if (!seen.has(k)) {
        entry.row = {line: entry.row.line, station: entry.row.station, parts: 0, ok: 0, ng: 0, review: 0};
        paint(entry);
      }
    }
    renderAlarms(s.alarms || []);
    const vt = LG.verificationTable(s.verification || []);
    clear(verif).append(h("h2", {}, "Test parts this shift ", h("a", {href: "/app/testparts", class: "muted"}, "(all)")), vt);
    verif.classList.toggle("alarm", (s.verification || []).some((v) => v.state === "failed"));
    if (!s.lines.length && !cards.size) {
      clear(cardsEl).appendChild(h("p", {class: "muted", id: "no-parts"}, "No parts this shift yet."));
    }
    // in its own sideways-scrolling box: at 320 px the table took the page to 407 px
    clear(models).appendChild(s.models.length ? h("div", {class: "table-wrap"}, h("table", {}, h("tr", {}, h("th", {}, "product"), h("th", {}, "line"),
      h("th", {}, "version"), h("th", {}, "model"), h("th", {}, "activated")),
    s.models.map((m) => h("tr", {}, h("td", {}, m.product), h("td", {}, m.line || "every line"),
      h("td", {}, "v" + m.version), h("td", {}, m.model_version || String(m.model_id).slice(0, 12)),
      h("td", {}, LG.when(m.activated_at)))))) : h("p", {class: "muted"}, "No model is active."));
    const items = [];
    for (const sk of s.sinks) {
      const cls = sk.state === "ok" ? "ok" : sk.state === "retrying" ? "bad" : "warn";
      items.push(h("div", {class: "panel"}, h("span", {class: "dot " + cls}), h("b", {}, sk.name), " ", sk.state,
        ` · backlog ${sk.backlog}`, sk.last_error ? h("div", {class: "error"}, sk.last_error) : null));
    }
    if (!s.sinks.length) items.push(h("p", {class: "muted"}, "No sinks set (no MQTT broker or webhook)."));
    // each PLC link as the PLC sees it (the line summary's plc: one entry per link, by protocol)
    for (const link of s.plc || []) items.push(plcPanel(link));
    if (s.disk) {   // the data disk (line.disk): old parts' images make room below the floor
      const d = s.disk, gone = d.images_deleted || {};
      const deleted = Object.values(gone).reduce((a, b) => a + b, 0);
      items.push(h("div", {class: "panel", id: "disk"},
        h("span", {class: "dot " + (s.faults && s.faults.disk ? "bad" : d.free_gb < d.min_free_gb * 1.5 ? "warn" : "ok")}),
        h("b", {}, "Disk"), ` ${num(d.free_gb, 1)} GB free`,
        // said in words, not by the dot's colour only
        !(s.faults && s.faults.disk) && d.free_gb < d.min_free_gb * 1.5 ? h("b", {class: "v-review"}, " · running low") : "", d.min_free_gb ? ` · keeps ${num(d.min_free_gb, 1)} GB` : "",
        deleted ? ` · old images deleted since start: ${gone.OK || 0} OK, ${gone["NG/REVIEW"] || 0} NG/REVIEW` : ""));
    }
    if (s.backup) {   // the station's own backups (line.backup): the last that worked, or why not
      const b = s.backup, last = b.last;
      items.push(h("div", {class: "panel", id: "backup"},
        h("span", {class: "dot " + (b.error ? "bad" : last ? "ok" : "warn")}),
        h("b", {}, "Backup"), last ? ` last ${when(last.made_at)} · ${last.parts} parts` : " none yet",
        ` · to ${b.to} every ${num(b.every_h, 0)} h`,
        b.verified_at ? ` · every file read back ${when(b.verified_at)}` : ""));
    }
    if (s.records) {   // old records deleted after the plant's time (line.record_keeper), archived first
      const r = s.records, last = r.last, faults = s.faults || {};
      const images = {ng: "NG/REVIEW images", all: "every image", none: "no images"}[r.archive_images]
        || r.archive_images || "?";
      items.push(h("div", {class: "panel", id: "records"},
        h("span", {class: "dot " + (faults.records || faults.records_image ? "bad" : "ok")}),
        h("b", {}, "Records"), ` kept ${num(r.keep_days, Number.isInteger(r.keep_days) ? 0 : 1)} days`,
        r.kept_since ? ` · all from ${when(r.kept_since)}` : "",
        r.archive ? ` · archived to ${r.archive} with ${images}` : " · not archived before deletion",
        last ? ` · last run ${when(last.at)}: ${last.parts} parts, ${last.signals} PLC answers deleted`
          : " · first run 10 min after start"));
    }
    for (const [what, msg] of Object.entries(s.faults || {})) {
      items.push(h("div", {class: "panel error"}, h("span", {class: "dot bad"}), h("b", {}, what), " ", msg));
    }
    clear(health).append(h("div", {class: "health"}, items));
    // each dot's state in words for a screen reader (its colour says nothing to one)
    for (const dot of health.querySelectorAll(".dot")) {
      const state = dot.classList.contains("bad") ? "fault" : dot.classList.contains("warn") ? "warning" : "ok";
      dot.setAttribute("role", "img");
      dot.setAttribute("aria-label", state);
    }
  }

  function thumb(p) {
    const img = p.stored && p.stored.image
      // a rejected part with its defect areas marked: where it is, at a glance
      ? h("img", {src: picUrl(p.id, p.verdict === "OK" ? "image" : "overlay", THUMB_PX), alt: "part " + p.part_id,
          loading: "lazy"})
      : h("div", {class: "noimg"}, "image not kept");
    return h("a", {class: "thumb " + verdictClass(p.verdict), href: partUrl(p.id), dataset: {id: p.id},
      title: `${p.part_id} · ${p.verdict} · ${LG.scoreText(p)}`},
    img, h("div", {class: "cap"}, h("b", {class: verdictClass(p.verdict)}, p.verdict), " ", p.part_id,
      p.test_part ? h("span", {class: "muted"}, " · test part") : null));
  }

  function addThumb(p) {
    const old = thumbs.querySelector(`[data-id="${Number(p.id)}"]`);
    if (old) { old.replaceWith(thumb(p)); return; }
    thumbs.prepend(thumb(p));
    while (thumbs.children.length > MAX_THUMBS) thumbs.lastChild.remove();
  }

  // The counters are the last summary read plus the parts heard live that it did not count.
  // Whether it counted a part is told by the part's own record time against the newest part
  // the summary counted at its card (its last_part_at), both the station's record times:
  // not against the summary's `now` (taken before its read: a part recorded in between was
  // counted twice; a part recorded before it and committed after the read not at all), and
  // not by when the part's event came (it may come before or after the answer that counted
  // it). An answer older than the one shown never paints over it (two reads on their way).
  let base = new Map();        // card -> the summary's last_part_at there (µs), null: no part
  let extra = new Map();       // part id -> part counted on top of the summary shown
  let asked = 0, painted = 0;
  // a record time to the microsecond (Date keeps milliseconds: two parts in one would tie)
  function stamp(iso) {
    if (!iso) return null;
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$/.exec(iso);
    if (!m) return Date.parse(iso) * 1000;
    return Date.parse(m[1] + (m[3] || "Z")) * 1000 + Number(((m[2] || "") + "000000").slice(0, 6));
  }
  // counted by the summary shown, or not this shift's (a late event from the one before)
  function inSummary(p) {
    if (!p.created_at) return false;
    const at = stamp(p.created_at), last = base.get(keyOf(p.line, p.station));
    return (last !== undefined && last !== null && at <= last) || (!!summary && at < stamp(summary.since));
  }
  async function loadSummary() {
    const mine = ++asked;
    let s;
    try {
      s = await api("/api/v1/lines/summary");
    } catch (err) { notAnswering(err); throw err; }
    answered();
    if (mine < painted) return;          // a newer answer is on screen already
    painted = mine;
    renderSummary(s);
    base = new Map(s.lines.map((r) => [keyOf(r.line, r.station), stamp(r.last_part_at)]));
    const later = [...extra.values()].filter((p) => !inSummary(p));
    extra = new Map();
    later.forEach(count);
    if (later.length) refreshSoon();     // read again soon: the next read counts them itself
  }

  await loadSummary();
  // a PLC link's state comes with no event (a result the PLC never acknowledges, a link
  // timing out part after part): read again every 10 s while the station has one
  setInterval(() => {
    if (summary && summary.plc && summary.plc.length && !document.hidden) loadSummary().catch(() => {});
  }, 10000);
  // Parts another process recorded (a hot folder's watcher on the same data folder) come with
  // no event here: the periodic refresh and the way back from a break read the latest parts
  // too, and put the ones not shown in their place by id (the ones shown stay as they are: no
  // picture loaded again, no flicker)
  function mergeThumbs(list) {
    for (const p of list.slice().sort((a, b) => a.id - b.id)) {
      if (thumbs.querySelector(`[data-id="${Number(p.id)}"]`)) continue;
      const after = [...thumbs.children].find((el) => Number(el.dataset.id) < p.id);
      if (!after && thumbs.children.length >= MAX_THUMBS) continue;     // older than every part shown
      thumbs.insertBefore(thumb(p), after || null);
      while (thumbs.children.length > MAX_THUMBS) thumbs.lastChild.remove();
    }
  }
  async function loadRecent() {
    let recent;
    try {
      recent = await api("/api/v1/inspections" + LG.q({limit: MAX_THUMBS}));
    } catch (err) { notAnswering(err); throw err; }
    answered();
    mergeThumbs(recent.items);
  }
  await loadRecent();

  // pace and latency come from the server: refreshed soon after parts arrive, at most every 5 s
  let refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; loadSummary().catch(LG.fail); }, 5000);
  }

  const live = document.getElementById("live");
  function count(p) {
    // counted already: by the summary shown, or live (an event heard twice)
    if (extra.has(p.id) || inSummary(p)) return;
    extra.set(p.id, p);
    const entry = card(p.line, p.station);
    const r = entry.row;
    r.parts += 1;
    if (p.verdict === "OK") r.ok += 1; else if (p.verdict === "NG") r.ng += 1; else if (p.verdict === "REVIEW") r.review += 1;
    // events may come out of order: the last part stays the newest one
    if (!r.last_part_at || stamp(p.created_at) > stamp(r.last_part_at)) r.last_part_at = p.created_at;
    paint(entry);
  }

  function onInspection(p) {
    const none = document.getElementById("no-parts");
    if (none) none.remove();
    if (p.test_part) {
      loadSummary().catch(LG.fail);   // a test part: the verification changed, not the counters
    } else if (summary && p.created_at && new Date(p.created_at) >= new Date(summary.shift.end)) {
      loadSummary().catch(LG.fail);   // a new shift began: its counters start at zero
    } else {
      count(p);
    }
    addThumb(p);
    announcePart(p);
    refreshSoon();
  }

  // the counters read again on the way back from a break: what came meanwhile
  LG.liveEvents({
    inspection: (ev) => onInspection(JSON.parse(ev.data)),
    review: (ev) => {
      const p = JSON.parse(ev.data);
      if (thumbs.querySelector(`[data-id="${Number(p.id)}"]`)) addThumb(p);
    },
    alarm: () => loadSummary().catch(LG.fail),        // raised or acknowledged
    dropped: () => loadSummary().catch(LG.fail),
  }, (back) => {
    live.textContent = "● live"; live.className = "live v-ok";
    answered();
    if (back) { loadSummary().catch(LG.fail); loadRecent().catch(() => {}); }
  }, () => {
    live.textContent = "○ reconnecting…"; live.className = "live v-review";
    // a signed-out or expired session shows as an error here: check, and go to sign-in if so;
    // no answer at all: the station is away (the banner)
    api("/api/v1/session").then(answered, notAnswering);
  });
  // throughput and latency are the recent pace: refresh them now and then, with the last parts
  setInterval(() => {
    loadSummary().catch(LG.fail);
    loadRecent().catch(() => {});
  }, 30000);
});
