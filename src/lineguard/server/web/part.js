// One part: image with heatmap and region boxes, score against the thresholds, regions,
// the model version that judged it, its review history, and a review form.
"use strict";

LG.start(async (main) => {
  const {h, svg, api, clear, num, verdictClass, inspUrl, picUrl, VIEW_PX} = LG;
  const named = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const id = Number(named);
  if (!/^[0-9]+$/.test(named) || id < 1 || id > 2 ** 31 - 1) {
    main.append(h("h1", {}, "Part"), h("p", {class: "error", id: "part-not-a-number"}, `“${named}” is not a part's `
      + "record number (the number in a part's address, /app/parts/123): find the part in the ",
    h("a", {href: "/app/gallery"}, "Gallery"), " by its part id or serial."));
    return;
  }
  let it;
  try {
    it = await api(inspUrl(id));
  } catch (err) {
    if (err.status !== 404) throw err;
    // a record number no part has (an old link, a number typed wrong, a record since deleted):
    // the main area was left blank, the reason only on the status line
    main.append(h("h1", {id: "part-not-found"}, `No part with record number ${id}`),
      h("p", {class: "error"}, "This station has no inspection with that number (a link from before its records "
        + "were cleared, or a number typed wrong): find the part in the ", h("a", {href: "/app/gallery"}, "Gallery"),
      " by its part id or serial."));
    return;
  }
  const [w, hgt] = it.image_size || [0, 0];

  // the viewer: the part, its heatmap (opacity slider) and region boxes in image pixels
  const base = it.stored.image ? h("img", {src: picUrl(id, "image", VIEW_PX), alt: "part " + it.part_id, id: "part-image"})
    : h("div", {class: "noimg"}, "the image of this part was not kept (OK parts are sampled)");
  const heat = it.stored.heatmap ? h("img", {class: "heat", src: inspUrl(id, "heatmap"), alt: "anomaly heatmap"}) : null;
  const nRegions = (it.regions || []).length;
  // a picture to a screen reader too: how many regions are marked on it
  const boxes = svg("svg", {class: "boxes", viewBox: `0 0 ${w || 1} ${hgt || 1}`, preserveAspectRatio: "none", role: "img",
    "aria-label": nRegions ? `${nRegions} defect region${nRegions === 1 ? "" : "s"} marked on the part` : "no defect regions marked"},
    (it.regions || []).map((r) => svg("rect", {x: r.box[0], y: r.box[1], width: r.box[2], height: r.box[3]})));
  // the label the overlay and the review page's picture carry ("NG 36.8 / 19.9"): the
  // page's words below name it, and its photo had none
  const told = (v) => v !== null && v !== undefined;
  const photoLabel = it.stored.image && told(it.score) && told(it.threshold)
    ? h("span", {class: "photo-label", id: "photo-label"},
      `${it.verdict} ${LG.g3(it.score)} / ${LG.g3(it.threshold)}`) : null;
  if (photoLabel) {
    // over the photo's corner, as the overlay draws it (the page's style sheet has no rule for it)
    Object.assign(photoLabel.style, {position: "absolute", left: "0", top: "0", padding: "0.2em 0.45em",
      background: "rgba(0, 0, 0, 0.7)", color: "#fff", font: "600 0.9rem/1.3 system-ui, sans-serif",
      pointerEvents: "none"});
  }
  const viewer = h("div", {class: "viewer", id: "viewer"}, base, heat, boxes, photoLabel);
  const opacity = h("input", {type: "range", min: 0, max: 100, value: 45, id: "heat-opacity"});
  const setOpacity = () => { if (heat) heat.style.opacity = String(opacity.value / 100); };
  opacity.addEventListener("input", setOpacity);
  setOpacity();
  const showBoxes = h("input", {type: "checkbox", checked: true, id: "show-boxes", onchange: (e) => { boxes.style.display = e.target.checked ? "" : "none"; }});

  const regions = (it.regions || []).length
    ? h("table", {id: "regions"}, h("tr", {}, ["#", "x, y (px)", "width × height (px)", "area (px)", "peak score", "mean score"].map((t) => h("th", {}, t))),
      it.regions.map((r, i) => h("tr", {}, h("td", {}, i + 1), h("td", {}, `${r.box[0]}, ${r.box[1]}`),
        h("td", {}, `${r.box[2]} × ${r.box[3]}`), h("td", {}, r.area_px), h("td", {}, num(r.peak_score)),
        h("td", {}, num(r.mean_score)))))
    : h("p", {class: "muted"}, "No defect regions.");

  const history = h("div", {id: "history", class: "table-wrap"});     // its note column reachable on a phone
  // the latest review's defect type changes with each review: kept to update in place
  const typeFact = h("dd", {id: "defect-type"}, it.defect_type || "–");
  const facts = h("dl", {class: "facts"},
    [["part", it.part_id], ["line / station", `${it.line} / ${it.station}`], ["product", it.product],
      ["lot", it.lot || "–"], ["serial", it.serial || "–"], ["inspected", LG.when(it.created_at)],
      ["source", it.source], ["model", `${it.model.model_version || ""} (registry v${it.model.registry_version ?? "?"}, `
        + `${String(it.model.model_id).slice(0, 12)})`]]
      .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]), h("dt", {}, "defect type"), typeFact,
    it.photo_issues && it.photo_issues.length ? [h("dt", {}, "photo"), h("dd", {id: "photo-issues", class: "v-review"},
      "unlike the good photos the model learnt from (not passed on its score): " + it.photo_issues.join("; "))] : null,
    it.test_part ? [h("dt", {}, "test part"), h("dd", {id: "test-part", class: it.test_part.right ? "v-ok" : "v-ng"},
      `${it.test_part.name}: must be ${it.test_part.expected}, got ${it.verdict}`
      + (it.test_part.right ? " (right)" : " (WRONG: the station failed its verification)"))] : null);

  // The same part id sent again with another photo (a re-inspection after rework, or a PLC or
  // scanner repeating an id) is a record of its own: the operator on one of them sees the
  // others, and is told when a newer verdict stands for the part at this station.
  const ph = it.part_history;
  const partHistory = ph && ph.total > 1 ? h("div", {id: "part-history"},
    // a test part's records are each shift's verification, none standing for another
    ph.latest_id !== it.id && !it.test_part ? h("p", {class: "warn", id: "not-latest"}, "Not this part's latest inspection at station ",
      it.station, ": ", h("a", {href: LG.partUrl(ph.latest_id)}, "inspection " + ph.latest_id), " is newer and its "
      + "verdict stands for the part. Review this one only if you mean this photo.") : null,
    h("p", {id: "inspected-times"}, `Inspected ${ph.total}${ph.total_capped ? "+" : ""} times on line ${it.line}`
      + (ph.others.length < ph.total - 1 ? ` (the ${ph.others.length} newest others listed)` : "") + ": ",
      ph.others.map((o, i) => [i ? ", " : "", h("a", {href: LG.partUrl(o.id), class: verdictClass(o.verdict)},
        `#${o.id} ${o.verdict} at ${o.station}, ${LG.when(o.created_at)}`
        + (o.review_label ? ` (reviewed ${o.review_label})` : ""))]))) : null;

  main.append(
    h("h1", {}, "Part ", it.part_id, " ", h("span", {class: "badge " + verdictClass(it.verdict), id: "verdict"}, it.verdict)),
    ...(partHistory ? [partHistory] : []),       // main.append(null) would write "null"
    h("div", {class: "row"},
      h("div", {class: "panel grow"}, viewer,
        h("p", {}, heat ? LG.field("heatmap opacity", opacity) : h("span", {class: "muted"}, "no heatmap kept"), " ",
          // the label the tap target: the 24 px box alone was small for a gloved finger
          h("label", {class: "tap-box", id: "show-boxes-label"}, showBoxes, " region boxes"), " ",
          it.stored.image ? h("a", {href: inspUrl(id, "overlay"), target: "_blank"}, "overlay as PNG") : null)),
      h("div", {class: "panel grow"},
        h("h2", {title: LG.scoreText(it, 4)}, "Score ", num(it.score, 4)),
        LG.chart.fittedScoreBar(it.score, it.threshold, it.review_threshold),
        h("p", {class: "muted"}, `NG above ${num(it.threshold, 4)}`,
          it.review_threshold !== null && it.review_threshold !== undefined
            ? `, REVIEW above ${num(it.review_threshold, 4)}` : "",
          it.margin === null || it.margin === undefined ? "" : ` · ${num(it.margin, 2)} × the NG threshold`),
        // what the number means, in the plant's words: a score is how unlike the good parts it is
        h("p", {class: "muted", id: "score-means"}, "The score says how unlike the good parts the model learnt from "
          + "this part looks (higher: less like them); above the NG threshold the part is rejected"
          + (it.review_threshold !== null && it.review_threshold !== undefined
            ? ", between the review threshold and it a person decides (REVIEW)" : "") + "."
          // the photo's own label ("NG 71.8 / 36.3") is the first score an operator sees here
          + (photoLabel ? ` The label on the photo, “${it.verdict} ${LG.g3(it.score)} / ${LG.g3(it.threshold)}”, is the verdict, `
              + "the score and the NG threshold." : "")),
        facts)),
    h("div", {class: "row"},
      h("div", {class: "panel grow"}, h("h2", {}, "Regions"), h("div", {class: "table-wrap"}, regions)),
      h("div", {class: "panel grow"}, h("h2", {}, "Review"), history, reviewForm())));

  function reviewForm() {
    const typeSel = h("select", {name: "defect_type", "aria-label": "defect type"}, h("option", {value: ""}, "defect type…"));
    // the list unread: said beside the buttons, no made-up types the station may refuse
    const typesUnread = h("p", {class: "error", id: "types-unread", hidden: true});
    LG.defectTypes(it.product).then((ts) => {
      ts.forEach((t) => typeSel.appendChild(h("option", {value: t}, t)));
      if (ts.unread) {
        typesUnread.textContent = ts.unread + ". A defect is saved without a type meanwhile.";
        typesUnread.hidden = false;
      }
    });
    const note = h("input", {name: "note", placeholder: "note (optional)", maxlength: 2000, "aria-label": "review note"});
    // an OK part found defective is an escape: where it was found (the 8D report's "how many
    // did we find before the customer?"). The station's list, line/reviews.py FOUND_BY; "audit"
    // only for a part drawn for the audit sample (the station refuses it on others)
    const foundBy = it.verdict === "OK" ? h("select", {name: "found_by", id: "found-by", "aria-label": "where the escape was found"},
      h("option", {value: ""}, "found where…"),
      [["audit", "audit sample"], ["station review", "station review"], ["next process", "next process"],
        ["customer", "customer"], ["other", "other (say in the note)"]]
        .filter(([v]) => v !== "audit" || it.audit_sample).map(([v, t]) => h("option", {value: v}, t))) : null;
    let untypedAsked = false;     // a defect without its type: asked once (the Pareto counts types)
    const askEl = h("p", {class: "ask", id: "ask", role: "alert"});
    let saving = false;
    // the review this page showed (its time, or "none"): sent with each review, so one made
    // on another screen since is refused and shown, not overwritten
    let seenReview = it.review && it.review.reviewed ? it.review.reviewed_at : "none";
    const post = async (label) => {
      if (label === "defect" && !typeSel.value && typeSel.options.length > 1 && !untypedAsked) {
        untypedAsked = true;
        const q = "Which defect? Pick its type first, or press the button again to save it without a type";
        LG.say(q, "error");
        askEl.textContent = q;        // beside the buttons: the status line may be off screen
        typeSel.focus();
        LG.settle();   // a double tap's second tap is not the "again" that saves it untyped
        return;
      }
      untypedAsked = false;
      askEl.textContent = "";
      if (saving) return;         // a double tap saves one review, not two
      saving = true;
      try {
        const now = await api(inspUrl(id, "review"), {method: "POST",
          body: {label, defect_type: label === "defect" && typeSel.value ? typeSel.value : null, note: note.value || null,
                 found_by: label === "defect" && foundBy && foundBy.value ? foundBy.value : null,
                 seen_review: seenReview}});
        seenReview = now.review.reviewed_at;
        typeFact.textContent = now.defect_type || "–";
        LG.say("review saved", "ok");
        await loadHistory();
      } catch (err) {
        const e = err && err.body && err.body.error;
        if (!(err.status === 409 && e && e.code === "review_changed")) { LG.fail(err); return; }
        // another person judged it since this page was loaded: their review is shown, and
        // the same button pressed again replaces it knowingly (it overwrote it unasked)
        seenReview = e.review ? e.review.reviewed_at : "none";
        const q = e.review ? `Reviewed meanwhile as ${e.review.label}${e.review.defect_type ? " (" + e.review.defect_type
          + ")" : ""} by ${e.review.reviewer} at ${LG.when(e.review.reviewed_at)}: press again to replace it`
          : "Its review was taken back meanwhile: press again to save yours";
        LG.say(q, "error");
        askEl.textContent = q;
        LG.settle();
        await loadHistory();
      } finally { saving = false; }
    };
    // A part sent to REVIEW for its photo (the photo check), not its score, is asked about as the
    // photo shows it, in the review queue's words: "false alarm" asked of a part the model never
    // flagged read as a question about the model. An NG part keeps its words.
    const forPhoto = it.verdict === "REVIEW" && (it.photo_issues || []).length > 0;
    return h("div", {class: "row", dataset: {role: "operator"}}, typeSel, foundBy, note,
      h("button", {type: "button", class: "good", id: "part-good", onclick: () => LG.settling() || post("good")},
        it.verdict === "OK" ? "Good" : forPhoto ? "Part is good" : "False alarm: good"),
      h("button", {type: "button", class: "danger", id: "part-defect", onclick: () => LG.settling() || post("defect")},
        it.verdict === "OK" ? "Missed defect" : forPhoto ? "Part has a defect" : "Confirm defect"), askEl, typesUnread);
  }

  async function loadHistory() {
    clear(history);
    try {
      const r = await api(inspUrl(id, "reviews"));
      if (!r.items.length) { history.appendChild(h("p", {class: "muted"}, "Not reviewed yet.")); return; }
      history.appendChild(h("table", {}, h("tr", {}, ["when", "who", "judged", "type", "found by", "verdict then", "note"].map((t) => h("th", {}, t))),
        r.items.map((x) => h("tr", {}, h("td", {}, LG.when(x.created_at)), h("td", {}, x.reviewer || "–"),
          h("td", {}, x.label === "good" ? "good" : "defect"), h("td", {}, x.defect_type || "–"),
          h("td", {class: "found-by"}, x.found_by || "–"),
          h("td", {}, x.verdict_at_review || "–"), h("td", {}, x.note || "")))));
    } catch (err) {
      if (err.status !== 404) throw err;
      // a station without review history: the latest review only
      const cur = await api(inspUrl(id));
      history.appendChild(h("p", {}, cur.review.reviewed
        ? `${cur.review.label} by ${cur.review.reviewer} at ${LG.when(cur.review.reviewed_at)}` : "Not reviewed yet."));
    }
  }
  await loadHistory();
});
