// Review queue: look at each REVIEW/NG part (or audit OK parts) and judge it from the
// keyboard. G good (false alarm), D defect, 1-9 defect type, J/K or arrows to move, ? keys.
"use strict";

LG.start(async (main) => {
  const {h, api, clear, num, verdictClass, inspUrl, picUrl, VIEW_PX, partUrl} = LG;
  const p = LG.params();
  let items = [], idx = 0, types = [], type = null, view = "overlay";

  const which = LG.select("queue", [["todo", "REVIEW and NG, not reviewed"], ["REVIEW", "REVIEW only"],
    ["NG", "NG only"], ["OK", "OK parts (audit for escapes)"]], p.queue || "todo");
  const lineIn = h("input", {name: "line", value: p.line || "", size: 8, placeholder: "every line"});
  const listEl = h("ul", {});
  const queue = h("div", {class: "panel queue", id: "queue"}, listEl);
  const detail = h("div", {class: "panel grow", id: "current"});
  const helpDlg = h("dialog", {id: "keys-help"}, h("h2", {}, "Keys"),
    h("table", {}, [["G", "good: a false alarm (on an OK part: confirms it good)"],
      ["D", "defect: confirm it (on an OK part: a missed defect, an escape)"],
      ["1 – 9", "pick the defect type"], ["J or →", "next part"], ["K or ←", "previous part"],
      ["O", "switch image / overlay"], ["?", "show these keys"]]
      .map(([k, t]) => h("tr", {}, h("td", {}, h("kbd", {}, k)), h("td", {}, t)))),
    h("form", {method: "dialog"}, h("button", {}, "Close")));
  main.append(h("div", {class: "row"}, h("h1", {class: "grow"}, "Review queue"),
    h("form", {class: "filters", onsubmit: (e) => { e.preventDefault(); reload().catch(LG.fail); }},
      LG.field("parts", which), LG.field("line", lineIn), h("button", {type: "submit", class: "secondary"}, "Load"),
      h("button", {type: "button", class: "secondary", onclick: () => helpDlg.showModal()}, "Keys (?)"))),
  h("div", {class: "row"}, h("div", {class: "queue-col"}, queue), detail), helpDlg);

  async function fetchList(verdict, reviewed) {
    // test parts are known already: a failed one is on the Test parts page, not a review
    const page = await api("/api/v1/inspections" + LG.q({verdict, reviewed, line: lineIn.value.trim(), limit: 200,
      test_parts: "false"}));
    return page.items;
  }

  async function reload() {
    const w = which.value;
    history.replaceState(null, "", location.pathname + LG.q({queue: w, line: lineIn.value.trim()}));
    if (w === "todo") {
      const [a, b] = await Promise.all([fetchList("REVIEW", "false"), fetchList("NG", "false")]);
      items = a.concat(b).sort((x, y) => y.id - x.id);
    } else {
      items = await fetchList(w, "false");
    }
    idx = 0;
    renderList();
    await show();
  }

  function renderList() {
    clear(listEl);
    if (!items.length) listEl.appendChild(h("li", {class: "muted"}, "Nothing to review."));
    items.forEach((it, i) => {
      listEl.appendChild(h("li", {class: (i === idx ? "current " : "") + (it.review.reviewed ? "done" : ""),
        dataset: {id: it.id}, onclick: () => { idx = i; renderList(); show().catch(LG.fail); }},
      h("b", {class: verdictClass(it.verdict)}, it.verdict), " ", it.part_id, " ",
      h("span", {class: "muted"}, num(it.score))));
    });
    const cur = listEl.children[idx];
    if (cur && cur.scrollIntoView) cur.scrollIntoView({block: "nearest"});
  }

  async function show() {
    clear(detail);
    const it = items[idx];
    if (!it) { detail.appendChild(h("p", {class: "muted"}, "The queue is empty: every part here is reviewed.")); return; }
    types = await LG.defectTypes(it.product);
    if (!types.includes(type)) type = null;
    const img = it.stored && it.stored.image
      ? h("img", {src: picUrl(it.id, view === "overlay" ? "overlay" : "image", VIEW_PX), alt: "part " + it.part_id,
          id: "part-image"})
      : h("div", {class: "noimg"}, "image not kept");
    const typeBtns = types.map((t, i) => h("button", {type: "button", class: t === type ? "on" : null,
      dataset: {type: t}, onclick: () => pickType(i)}, i < 9 ? `${i + 1} ${t}` : t));
    const note = h("input", {id: "note", placeholder: "note (optional)", size: 30});
    detail.append(
      h("h2", {}, h("a", {href: partUrl(it.id)}, it.part_id), " ",
        h("span", {class: "badge " + verdictClass(it.verdict), id: "current-verdict"}, it.verdict),
        " ", h("span", {class: "muted"}, `${idx + 1} of ${items.length}`)),
      h("div", {class: "row"},
        h("div", {class: "grow"}, h("div", {class: "viewer"}, img)),
        h("div", {class: "grow"},
          LG.chart.scoreBar(it.score, it.threshold, it.review_threshold),
          h("p", {}, `score ${num(it.score)} · ${it.line}/${it.station} · ${it.product}`,
            it.lot ? ` · lot ${it.lot}` : "", ` · ${LG.when(it.created_at)}`),
          h("p", {class: "muted", id: "review-state"}, it.review.reviewed
            ? `reviewed: ${it.review.label}${it.defect_type ? " (" + it.defect_type + ")" : ""} by ${it.review.reviewer}`
            : "not reviewed"),
          h("div", {class: "types", id: "types"}, typeBtns),
          h("p", {}, note),
          h("div", {class: "row", dataset: {role: "operator"}},
            h("button", {type: "button", class: "good", id: "btn-good", onclick: () => judge("good")},
              it.verdict === "OK" ? "Good (G)" : "False alarm: good (G)"),
            h("button", {type: "button", class: "danger", id: "btn-defect", onclick: () => judge("defect")},
              it.verdict === "OK" ? "Missed defect (D)" : "Confirm defect (D)")))));
    LG.applyRoles(detail);
  }

  function pickType(i) {
    if (i >= types.length) return;
    type = types[i] === type ? null : types[i];
    for (const b of detail.querySelectorAll(".types button")) b.classList.toggle("on", b.dataset.type === type);
  }

  let busy = false;
  async function judge(label) {
    const it = items[idx];
    if (!it || busy) return;
    busy = true;
    try {
      const note = (document.getElementById("note") || {}).value || null;
      const body = {label, defect_type: label === "defect" ? type : null, note: note || null};
      const rec = await api(inspUrl(it.id, "review"), {method: "POST", body});
      items[idx] = rec;
      type = null;   // each part gets its own type, never the last one's by accident
      LG.say(`${rec.part_id}: ${label === "good" ? "marked good" : "defect confirmed"}${body.defect_type ? " (" + body.defect_type + ")" : ""}`, "ok");
      if (idx < items.length - 1) idx += 1;
      renderList();
      await show();
    } catch (err) { LG.fail(err); } finally { busy = false; }
  }

  function move(d) {
    const n = Math.max(0, Math.min(items.length - 1, idx + d));
    if (n !== idx) { idx = n; renderList(); show().catch(LG.fail); }
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const k = e.key;
    if (k === "?") { helpDlg.open ? helpDlg.close() : helpDlg.showModal(); }
    else if (helpDlg.open) return;
    else if (k === "g" || k === "G") { if (LG.roleAtLeast("operator")) judge("good"); }
    else if (k === "d" || k === "D") { if (LG.roleAtLeast("operator")) judge("defect"); }
    else if (/^[1-9]$/.test(k)) pickType(Number(k) - 1);
    else if (k === "j" || k === "J" || k === "ArrowRight" || k === "ArrowDown") move(1);
    else if (k === "k" || k === "K" || k === "ArrowLeft" || k === "ArrowUp") move(-1);
    else if (k === "o" || k === "O") { view = view === "overlay" ? "image" : "overlay"; show().catch(LG.fail); }
    else return;
    e.preventDefault();
  });

  await reload();
});
