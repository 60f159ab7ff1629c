// Charts drawn as SVG by hand: a plant PC has no internet to fetch a chart library from,
// and these few shapes (lines, steps, bars, markers) need no more than this.
"use strict";

LG.chart = (() => {
  const {svg} = LG;
  const PAD = {l: 48, r: 12, t: 12, b: 34};
  // the width a chart is drawn at unless told (its viewBox): scaled to its box from there
  const WIDTH = 900;
  // a character of the charts' 11 px text, guessed (the text is not measured before it is
  // on screen): a digit is about 6.2 units wide, a letter up to 7
  const CH = 6.8;
  // app.css's --review: dark enough to read on white (the amber #d98a00 read 2.8:1)
  const REVIEW_INK = "#8f5600";

  function frame(width, height, yMin, yMax, n, opts = {}) {
    const pad = Object.assign({}, PAD, opts.pad || {});
    const w = width - pad.l - pad.r, hgt = height - pad.t - pad.b;
    const span = (yMax - yMin) || 1;
    const y = (v) => pad.t + hgt - ((v - yMin) / span) * hgt;
    const x = opts.x || ((i) => pad.l + (n <= 1 ? w / 2 : (i / (n - 1)) * w));
    const root = svg("svg", {class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": opts.label || "chart"});
    const axis = svg("g", {class: "axis"});
    for (let k = 0; k <= 4; k++) {
      const v = yMin + (span * k) / 4;
      axis.appendChild(svg("line", {x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), stroke: "#e3e8ee"}));
      axis.appendChild(svg("text", {x: pad.l - 4, y: y(v) + 4, "text-anchor": "end"},
        opts.yFmt ? opts.yFmt(v) : fmt(v)));
    }
    root.appendChild(axis);
    return {root, x, y, pad, w, h: hgt, width, height};
  }

  // a chart drawn narrower than its own width (a phone): lower too, but not below 3/4 of its
  // height, or the plot between its labels would be a strip
  function tall(height, width) {
    return Math.round(height * Math.max(0.75, Math.min(1, width / WIDTH)));
  }

  // whether a label's box ({l, r, t, b}, its width guessed) would cover one of those drawn
  const covers = (drawn, b) => drawn.some((o) => o.l < b.r && b.l < o.r && o.t < b.b && b.t < o.b);

  function fmt(v) {
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2);
    return v.toPrecision(2);
  }

  function xLabels(f, labels, every) {
    const g = svg("g", {class: "xlabels"});
    // a label centred on a point at the chart's edge ran past it and was cut (the last
    // subgroup's time at 1024 px): near an edge it is drawn from the edge inwards. Its
    // width is guessed (the text is not measured before it is on screen), a digit at 11 px
    // being about 6.2 units wide.
    const place = (i) => {
      const text = shorten(labels[i]), X = f.x(i), half = text.length * CH / 2;
      const anchor = X + half > f.width - 2 ? "end" : X - half < 2 ? "start" : "middle";
      const at = anchor === "end" ? Math.min(X, f.width - 2) : anchor === "start" ? Math.max(X, 2) : X;
      const lo = anchor === "end" ? at - 2 * half : anchor === "start" ? at : at - half;
      return {text, anchor, at, lo, hi: lo + 2 * half};
    };
    // every step-th label, the step the least that leaves a gap between any two drawn (the
    // last two of 7 hourly subgroups at 1024 px read "2026-12-05 22:002026-12-05 23:00")
    const GAP = 8;
    const fits = (step) => {
      let end = -Infinity;
      for (let i = 0; i < labels.length; i += step) {
        const p = place(i);
        if (p.lo < end + GAP) return false;
        end = p.hi;
      }
      return true;
    };
    let step = every || Math.max(1, Math.ceil(labels.length / 10));
    while (!every && step < labels.length && !fits(step)) step++;
    for (let i = 0; i < labels.length; i += step) {
      const p = place(i);
      g.appendChild(svg("text", {x: p.at, y: f.height - f.pad.b + 14, "text-anchor": p.anchor}, p.text));
    }
    f.root.appendChild(g);
  }

  function shorten(s) {
    s = String(s ?? "");
    return s.length > 16 ? s.slice(0, 15) + "…" : s;
  }

  function path(f, values, attrs, step) {
    let d = "";
    values.forEach((v, i) => {
      if (v === null || v === undefined || isNaN(v)) return;
      const X = f.x(i), Y = f.y(v);
      if (step) {
        // a limit that changes with each subgroup: flat across the subgroup's width
        // (the first and last subgroups' halves kept to the plot: they ran under the y-axis labels)
        const half = (f.x(1) - f.x(0)) / 2 || 10;
        const x0 = Math.max(f.pad.l, X - half), x1 = Math.min(f.width - f.pad.r, X + half);
        d += `${d ? "L" : "M"}${x0},${Y}L${x1},${Y}`;
      } else {
        d += `${d ? "L" : "M"}${X},${Y}`;
      }
    });
    return svg("path", Object.assign({d, fill: "none", "stroke-width": 1.6}, attrs));
  }

  // p-chart: points, centre line, per-subgroup limits, rule hits in red with their numbers
  function pchart(data, opts = {}) {
    const pts = data.points || [];
    const vals = pts.flatMap((p) => [p.p, p.ucl, p.lcl]).filter((v) => v !== null && v !== undefined);
    // a rate goes no higher than 100 %: the axis stops there (it read 110.0 %) unless a limit
    // drawn on it is above (a UCL the station did not clip)
    const top = Math.max(data.centre || 0, ...vals, 0.001);
    const yMax = top > 1 ? top * 1.05 : Math.min(1, top * 1.1);
    const width = opts.width || WIDTH;
    const f = frame(width, opts.height || tall(300, width), 0, yMax, pts.length,
      {label: "p-chart", yFmt: (v) => (100 * v).toFixed(v < 0.01 ? 2 : 1) + "%"});
    xLabels(f, pts.map((p) => p.label));
    if (data.centre !== null && data.centre !== undefined) {
      f.root.appendChild(svg("line", {class: "centre", x1: f.pad.l, x2: f.width - f.pad.r, y1: f.y(data.centre),
        y2: f.y(data.centre), stroke: "#1d4f91", "stroke-width": 1.2}));
    }
    f.root.appendChild(path(f, pts.map((p) => p.ucl), {class: "ucl", stroke: "#c62828", "stroke-dasharray": "5 3"}, true));
    f.root.appendChild(path(f, pts.map((p) => p.lcl), {class: "lcl", stroke: "#c62828", "stroke-dasharray": "5 3"}, true));
    f.root.appendChild(path(f, pts.map((p) => p.p), {class: "p", stroke: "#333"}));
    const ruled = [];      // the boxes of the rule numbers drawn
    pts.forEach((p, i) => {
      if (p.p === null || p.p === undefined) return;
      const alarm = (p.rules || []).length > 0;
      const c = svg("circle", {class: alarm ? "point alarm" : "point", cx: f.x(i), cy: f.y(p.p), r: alarm ? 5 : 3.5,
        fill: alarm ? "#c62828" : "#333"});
      c.appendChild(svg("title", {}, `${p.label}: ${p.ng ?? p.defects} NG parts of ${p.n} = ${(100 * p.p).toFixed(2)}%` +
        (alarm ? ` (rule ${p.rules.join(", ")})` : "")));
      f.root.appendChild(c);
      // its rules' numbers over it, unless they would cover a neighbour's (a phone's chart
      // of many subgroups): then in the point's title and the list under the chart only
      const said = alarm ? p.rules.join(",") : "", half = (said.length * CH) / 2, ry = f.y(p.p) - 8;
      const box = {l: f.x(i) - half, r: f.x(i) + half, t: ry - 10, b: ry + 2};
      if (alarm && !covers(ruled, box)) {
        ruled.push(box);
        f.root.appendChild(svg("text", {class: "rule", x: f.x(i), y: ry, "text-anchor": "middle",
          fill: "#c62828"}, said));
      }
    });
    return f.root;
  }

  // several lines over the same subgroups (score drift: mean, median, p95)
  function lines(labels, series, opts = {}) {
    const vals = series.flatMap((s) => s.values).concat(opts.hlines ? opts.hlines.map((l) => l.y) : [])
      .filter((v) => v !== null && v !== undefined && !isNaN(v));
    const lo = Math.min(...vals, 0), hi = Math.max(...vals, 1e-9);
    const width = opts.width || WIDTH;
    const f = frame(width, opts.height || tall(260, width), lo, hi + (hi - lo) * 0.08, labels.length,
      {label: opts.label || "chart"});
    xLabels(f, labels);
    for (const l of opts.hlines || []) {
      f.root.appendChild(svg("line", {x1: f.pad.l, x2: f.width - f.pad.r, y1: f.y(l.y), y2: f.y(l.y),
        stroke: l.color || "#888", "stroke-dasharray": "4 3"}));
    }
    for (const s of series) {
      f.root.appendChild(path(f, s.values, {stroke: s.color, class: s.cls || null}));
      // each value a dot too: a line of one subgroup (a shift's first hour) draws nothing
      s.values.forEach((v, i) => {
        if (v === null || v === undefined || isNaN(v)) return;
        f.root.appendChild(svg("circle", {class: "dot" + (s.cls ? " " + s.cls : ""), cx: f.x(i), cy: f.y(v), r: 2.5,
          fill: s.color}));
      });
    }
    (opts.marks || []).forEach((i) => {
      const s = series[0];
      if (s && s.values[i] !== null && s.values[i] !== undefined) {
        f.root.appendChild(svg("circle", {class: "alarm", cx: f.x(i), cy: f.y(s.values[i]), r: 6, fill: "none",
          stroke: "#c62828", "stroke-width": 2}));
      }
    });
    // a dashed line with a name (the baseline's mean) is in the legend too: unnamed, it was a line no one could read
    legend(f, series.concat((opts.hlines || []).filter((l) => l.name).map((l) => ({name: l.name, color: l.color || "#888"}))));
    return f.root;
  }

  // the series' names in a row under the chart; one that would run past the chart's right
  // edge starts a row of its own under it, the chart taller by that row (on a phone the
  // Pareto's three ran out of the picture)
  function legend(f, series) {
    // 2 units lower than the chart's foot: 12 under the labels of its x axis, the rows
    // touched (11 px text is 13 high)
    let x = f.pad.l, y = f.height + 2;
    for (const s of series) {
      const wide = 14 + 7 * String(s.name).length;
      if (x > f.pad.l && x + wide > f.width - 2) { x = f.pad.l; y += 14; }
      f.root.appendChild(svg("rect", {x, y: y - 12, width: 10, height: 4, fill: s.color}));
      f.root.appendChild(svg("text", {x: x + 14, y: y - 8}, s.name));
      x += 10 + wide;
    }
    f.root.setAttribute("viewBox", `0 0 ${f.width} ${y}`);
  }

  // overlaid histograms on shared bins, with vertical threshold lines
  function histogram(series, opts = {}) {
    const all = series.flatMap((s) => s.values);
    let lo = opts.min ?? Math.min(...all), hi = opts.max ?? Math.max(...all);
    if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
    if (hi <= lo) hi = lo + 1e-6;
    const nb = opts.bins || 30;
    const bw = (hi - lo) / nb;
    const counts = series.map((s) => {
      const c = new Array(nb).fill(0);
      for (const v of s.values) c[Math.min(nb - 1, Math.max(0, Math.floor((v - lo) / bw)))]++;
      // as a share of the series, so 20 defects show beside 2000 good parts
      return c.map((k) => (s.values.length ? k / s.values.length : 0));
    });
    // a share: the scale ends at 100 % (every part of a series in one bin read "105%" at the top)
    const yMax = Math.min(1 / 1.05, Math.max(...counts.flat(), 0.01));
    const width = opts.width || 900, height = opts.height || 260;
    const scaleX = (v) => PAD.l + ((v - lo) / (hi - lo)) * (width - PAD.l - PAD.r);
    // as many decimals as the scale needs: 0-1 % in whole percent read "1%, 1%, 1%, 0%"
    const dp = yMax * 105 < 2 ? 2 : yMax * 105 < 10 ? 1 : 0;
    const f = frame(width, height, 0, yMax * 1.05, nb, {x: scaleX, label: "score histogram",
      yFmt: (v) => (100 * v).toFixed(dp) + "%"});
    series.forEach((s, si) => {
      counts[si].forEach((c, b) => {
        if (!c) return;
        f.root.appendChild(svg("rect", {class: "bar " + (s.cls || ""), x: scaleX(lo + b * bw) + 1, y: f.y(c),
          width: Math.max(1, scaleX(lo + bw) - scaleX(lo) - 2), height: f.y(0) - f.y(c), fill: s.color,
          "fill-opacity": 0.55}));
      });
    });
    for (let k = 0; k <= 5; k++) {
      const v = lo + ((hi - lo) * k) / 5;
      // the ends drawn inside the chart, not cut at its edges
      f.root.appendChild(svg("text", {x: scaleX(v), y: height - PAD.b + 14,
        "text-anchor": k === 0 ? "start" : k === 5 ? "end" : "middle"}, fmt(v)));
    }
    const vl = svg("g", {class: "vlines"});
    let row = 0;
    for (const l of opts.vlines || []) {
      if (l.x === null || l.x === undefined) continue;
      const X = scaleX(Math.min(hi, Math.max(lo, l.x)));
      vl.appendChild(svg("line", {class: l.cls || null, x1: X, x2: X, y1: PAD.t, y2: height - PAD.b, stroke: l.color,
        "stroke-width": 2}));
      // one line of text each (two thresholds close together read "reviewNG"), kept inside at the right
      const right = X > width - PAD.r - 60;
      vl.appendChild(svg("text", {x: right ? X - 3 : X + 3, y: PAD.t + 10 + 12 * row++, fill: l.color,
        "text-anchor": right ? "end" : "start"}, l.label || ""));
    }
    f.root.appendChild(vl);
    legend(f, series);
    return f.root;
  }

  // one score against the thresholds: OK | REVIEW | NG zones and a marker
  const SCOREBAR_WIDTH = 420;
  function scoreBar(score, threshold, review, opts = {}) {
    const width = opts.width || SCOREBAR_WIDTH, height = 46;
    const hi = Math.max(score, threshold) * 1.35 || 1;
    const X = (v) => 8 + (Math.max(0, Math.min(hi, v)) / hi) * (width - 16);
    const root = svg("svg", {class: "chart scorebar", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `score ${fmt(score)} against threshold ${fmt(threshold)}`});
    const ok = review ?? threshold;
    root.appendChild(svg("rect", {x: X(0), y: 10, width: X(ok) - X(0), height: 14, fill: "#cfead9"}));
    if (review !== null && review !== undefined) {
      root.appendChild(svg("rect", {x: X(review), y: 10, width: X(threshold) - X(review), height: 14, fill: "#fbe3b3"}));
    }
    root.appendChild(svg("rect", {x: X(threshold), y: 10, width: X(hi) - X(threshold), height: 14, fill: "#f6c9c9"}));
    root.appendChild(svg("line", {x1: X(threshold), x2: X(threshold), y1: 6, y2: 28, stroke: "#c62828", "stroke-width": 2}));
    // The two labels never overlap (a narrow band put "review 19.20" over "NG 19.92"): each
    // label's width is estimated (11 px text: under 7 units a character); when centred on its
    // line the NG label would meet the review label, each goes to its own side of its line,
    // and where that leaves the bar the review label goes on a second row under it.
    const NG = "NG " + fmt(threshold), REV = "review " + fmt(review), CH = 7, GAP = 4;
    const wN = NG.length * CH, xT = X(threshold);
    let ngAt = Math.min(width - wN / 2, Math.max(wN / 2, xT)), ngAnchor = "middle", revY = 40, revAnchor = "end";
    let revAt = review !== null && review !== undefined ? X(review) : null;
    if (revAt !== null) {
      const wR = REV.length * CH;
      if (revAt + GAP > ngAt - wN / 2 || revAt - wR < 0) {
        if (xT + GAP + wN <= width && revAt - GAP - wR >= 0) {
          ngAt = xT + GAP; ngAnchor = "start"; revAt -= GAP;
        } else {
          revY = 54; revAnchor = "middle"; revAt = Math.min(width - wR / 2, Math.max(wR / 2, revAt));
          root.setAttribute("viewBox", `0 0 ${width} ${height + 12}`);
        }
      }
    }
    root.appendChild(svg("text", {x: ngAt, y: 40, "text-anchor": ngAnchor, fill: "#c62828", class: "ng-label"}, NG));
    if (revAt !== null) {
      root.appendChild(svg("line", {x1: X(review), x2: X(review), y1: 6, y2: 28, stroke: REVIEW_INK, "stroke-width": 2}));
      root.appendChild(svg("text", {x: revAt, y: revY, "text-anchor": revAnchor, fill: REVIEW_INK, class: "review-label"}, REV));
    }
    root.appendChild(svg("path", {class: "score", d: `M${X(score)},4l-5,-4h10z M${X(score)},4V30`, stroke: "#1b2430",
      fill: "#1b2430", "stroke-width": 2}));
    return root;
  }

  // a rate with its confidence interval, on 0..max: opts.max, one scale for the rates shown
  // together (each drawn on its own, 8.95 % sat at 83 % of its bar beside 46.67 % at 53 %),
  // its ends labelled so the bar reads as a scale
  function interval(r, opts = {}) {
    const width = opts.width || 360, height = 42;
    const max = opts.max || Math.max(r.hi || 0, r.rate || 0, 0.01) * 1.2;
    const X = (v) => 6 + (Math.min(v, max) / max) * (width - 12);
    const root = svg("svg", {class: "chart interval", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `rate with confidence interval, on a scale of 0 to ${scalePct(max)}`,
      "data-scale-max": String(max)});
    root.appendChild(svg("line", {x1: X(0), x2: X(max), y1: 15, y2: 15, stroke: "#e3e8ee", "stroke-width": 8}));
    if (r.lo !== null && r.lo !== undefined && r.hi !== null && r.hi !== undefined) {
      root.appendChild(svg("line", {x1: X(r.lo), x2: X(r.hi), y1: 15, y2: 15, stroke: "#1d4f91", "stroke-width": 8}));
    }
    if (r.rate !== null && r.rate !== undefined) {
      root.appendChild(svg("circle", {cx: X(r.rate), cy: 15, r: 6, fill: "#fff", stroke: "#1b2430", "stroke-width": 2}));
    }
    root.appendChild(svg("text", {x: X(0), y: 38, "text-anchor": "start", fill: "#5b6573", class: "scale-label"},
      "0 %"));
    root.appendChild(svg("text", {x: X(max), y: 38, "text-anchor": "end", fill: "#5b6573", class: "scale-label"},
      scalePct(max)));
    return root;
  }
  // a scale's end as a share: 2 digits at most ("12 %", "0.6 %", "0.06 %")
  function scalePct(v) {
    const p = v * 100;
    return `${p >= 10 ? p.toFixed(0) : p >= 1 ? p.toFixed(1) : p.toPrecision(1)} %`;
  }
  // the one scale for several rates: the widest interval's end (or rate), and a fifth more
  function intervalScale(rates) {
    return Math.max(0.01, ...rates.filter(Boolean).map((r) => Math.max(r.hi || 0, r.rate || 0))) * 1.2;
  }

  // Pareto: reviewed defects by type, biggest first, each bar split by how the model
  // judged them (caught NG / caught at review / escaped), the running share as a line
  // on the right-hand scale with the 80 % mark
  function pareto(allBars, opts = {}) {
    const width = opts.width || WIDTH;
    const pad = {r: 44};
    // the tail of many small types drawn as one bar (the CSV keeps every type); on a narrow
    // chart fewer, each bar's slot wide enough for its name turned upright (14 units)
    const most = opts.most || Math.max(3, Math.min(15, Math.floor((width - PAD.l - pad.r) / 14) - 1));
    let bars = allBars;
    if (allBars.length > most + 1) {
      const rest = allBars.slice(most);
      const sum = (k) => rest.reduce((a, b) => a + b[k], 0);
      bars = allBars.slice(0, most).concat([{defect_type: `${rest.length} other types`, parts: sum("parts"),
        caught: sum("caught"), at_review: sum("at_review"), escaped: sum("escaped"), cumulative: 1}]);
    }
    const n = bars.length, top = Math.max(1, ...bars.map((b) => b.parts));
    const slot = (width - PAD.l - pad.r) / Math.max(1, n);
    const xMid = (i) => PAD.l + slot * (i + 0.5);
    const barW = Math.min(slot * 0.7, 90);
    // the types' names side by side under their bars where they fit; where they would run
    // into each other (a phone's chart, many types) each is turned upright under its bar,
    // the chart taller by the longest name (the plot keeps its height)
    const names = bars.map((b) => shorten(b.defect_type));
    const longest = Math.max(0, ...names.map((t) => t.length)) * CH;
    const upright = longest + 8 > slot;
    if (upright) pad.b = 26 + longest;        // the legend's row under them
    const height = (opts.height || tall(280, width)) + (upright ? pad.b - PAD.b : 0);
    // a whole number of parts at each of the axis' 4 steps: "0, 1, 1, 2, 2" read as a rounding error
    const yTop = Math.ceil((top * 1.05) / 4) * 4;
    const f = frame(width, height, 0, yTop, n, {x: xMid, pad, label: "defect types, Pareto",
      yFmt: (v) => v.toFixed(0)});
    const counted = [];     // the boxes of the counts drawn over the bars
    const kinds = [["caught", "#c62828", "judged NG"], ["at_review", REVIEW_INK, "judged REVIEW"],
      ["escaped", "#6b2fa3", "judged OK (escaped)"]];
    bars.forEach((b, i) => {
      let base = 0;
      const g = svg("g", {class: "pareto-bar", "data-type": b.defect_type});
      for (const [key, color] of kinds) {
        if (!b[key]) continue;
        g.appendChild(svg("rect", {class: key, x: xMid(i) - barW / 2, width: barW, y: f.y(base + b[key]),
          height: f.y(base) - f.y(base + b[key]), fill: color, "fill-opacity": 0.8}));
        base += b[key];
      }
      // the count over its bar, kept over the plot (at a narrow chart's ends it ran into the
      // axes' numbers), unless it would cover a neighbour's (wide counts of a narrow chart's
      // equal bars): then in the bar's title, and the CSV, only
      const count = String(b.parts), cy = f.y(b.parts) - 3, half = (count.length * CH) / 2;
      const cx = Math.min(f.width - f.pad.r - half - 1, Math.max(f.pad.l + half + 1, xMid(i)));
      const box = {l: cx - half, r: cx + half, t: cy - 10, b: cy + 2};
      g.appendChild(svg("title", {}, `${b.defect_type}: ${b.parts}`));
      if (!covers(counted, box)) {
        counted.push(box);
        g.appendChild(svg("text", {x: cx, y: cy, "text-anchor": "middle"}, count));
      }
      f.root.appendChild(g);
    });
    if (!upright) xLabels(f, names, 1);
    else {
      // read from the bottom up, ending just under the bar
      const xl = svg("g", {class: "xlabels"});
      names.forEach((t, i) => {
        const X = xMid(i) + 4, Y = f.height - f.pad.b + 6;
        xl.appendChild(svg("text", {x: X, y: Y, "text-anchor": "end", transform: `rotate(-90 ${X} ${Y})`}, t));
      });
      f.root.appendChild(xl);
    }
    const yc = (c) => f.y(c * top * 1.05);        // the running share on 0..100 % of the same height
    const right = width - pad.r;
    for (const c of [0, 0.5, 0.8, 1]) {
      f.root.appendChild(svg("text", {x: right + 4, y: yc(c) + 4}, (100 * c).toFixed(0) + "%"));
    }
    f.root.appendChild(svg("line", {x1: PAD.l, x2: right, y1: yc(0.8), y2: yc(0.8), stroke: "#8a94a3",
      "stroke-dasharray": "4 3"}));
    let d = "";
    bars.forEach((b, i) => { d += `${d ? "L" : "M"}${xMid(i)},${yc(b.cumulative)}`; });
    f.root.appendChild(svg("path", {class: "cumulative", d, fill: "none", stroke: "#1b2430", "stroke-width": 1.6}));
    bars.forEach((b, i) => f.root.appendChild(svg("circle", {cx: xMid(i), cy: yc(b.cumulative), r: 2.5,
      fill: "#1b2430"})));
    legend(f, kinds.map(([, color, name]) => ({name, color})));
    return f.root;
  }

  // where on the part defect regions are: a grid of cells over a picture of the part,
  // each as dark as its share of the busiest cell
  function defectMap(data, imageUrl, opts = {}) {
    // a photo far from square still gets a map one can see (at most 8:1 either way)
    const aspect = Math.min(8, Math.max(0.125, data.aspect || 1));
    const width = opts.width || 640, height = Math.round(width / aspect);
    const cw = width / data.columns, ch = height / data.rows;
    const top = Math.max(1, ...data.counts.flat());
    const root = svg("svg", {class: "chart defect-map", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `defect regions on the part: ${data.regions} regions`});
    if (imageUrl) {
      root.appendChild(svg("image", {href: imageUrl, x: 0, y: 0, width, height, preserveAspectRatio: "none",
        opacity: 0.75}));
    } else {
      root.appendChild(svg("rect", {x: 0, y: 0, width, height, fill: "#eef1f5"}));
    }
    data.counts.forEach((row, r) => row.forEach((k, c) => {
      if (!k) return;
      const cell = svg("rect", {class: "cell", x: c * cw, y: r * ch, width: cw, height: ch, fill: "#c62828",
        "fill-opacity": (0.15 + 0.7 * k / top).toFixed(3), "data-count": k});
      cell.appendChild(svg("title", {}, `${k} region(s)`));
      root.appendChild(cell);
    }));
    root.appendChild(svg("rect", {x: 0.5, y: 0.5, width: width - 1, height: height - 1, fill: "none",
      stroke: "#8a94a3"}));
    return root;
  }

  // A chart drawn for the box it is shown in (appended to it here): at its own width where
  // the box is wider, scaled up as before; where the box is narrower (a phone's 343 px), at
  // the box's width, so its text stays 11 px and its labels are spaced for that width
  // (scaled down from 900 units, the axes' text was 4 px high). Drawn again when the box's
  // width changes (a phone turned, a window resized). draw(width) returns the chart.
  function fit(parent, draw) {
    const box = parent.appendChild(document.createElement("div"));
    box.className = "chart-box";
    let drawn = null;
    const place = () => {
      const w = Math.floor(box.clientWidth);
      const width = w > 0 ? Math.min(WIDTH, w) : WIDTH;
      if (width === drawn) return;
      drawn = width;
      box.replaceChildren(draw(width));
    };
    place();
    if (window.ResizeObserver) {
      const watch = new ResizeObserver(() => {
        if (!box.isConnected) { watch.disconnect(); return; }     // the page drew it again
        place();
      });
      watch.observe(box);
    }
    return box;
  }

  // The score bar in a box of its own, drawn at that box's width up to its 420 units (its
  // CSS caps it at 480 px): scaled down from 420 units on a phone, its bar was 9 px high and
  // its labels 8 px
  function fittedScoreBar(score, threshold, review) {
    const holder = document.createElement("div");
    fit(holder, (width) => scoreBar(score, threshold, review, {width: Math.min(SCOREBAR_WIDTH, width)}));
    return holder;
  }

  return {pchart, lines, histogram, scoreBar, fittedScoreBar, interval, intervalScale, pareto, defectMap, fit};
})();
