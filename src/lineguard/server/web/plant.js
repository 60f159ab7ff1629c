// Plant: this station and the plant's other stations (serve --peer NAME=URL) on one screen,
// each as its /health says: a station down, degraded or with alarms waiting is seen from any
// station's screen, not only from its own. Read again every 10 s (GET /api/v1/plant).
"use strict";

LG.start(async (main) => {
  const {h, api, clear, when, plantTimes, roleAtLeast} = LG;
  const EVERY_MS = 10000;
  const LEVEL = {ok: ["v-ok", "OK"], warn: ["v-review", "needs a look"], down: ["v-ng", "DOWN"]};
  const checked = h("span", {class: "muted", id: "plant-checked"});
  const howTo = h("div", {class: "panel", id: "plant-no-peers", hidden: true});
  const table = h("div", {class: "table-wrap", id: "plant"});
  main.append(h("div", {class: "row"}, h("h1", {class: "grow"}, "Plant"), checked),
    h("p", {class: "muted"}, "Every station of the plant as its own /health says it, read by this station every "
      + "10 s: red is a station not answering or unable to judge parts, amber one that needs a look (degraded, "
      + "or alarms waiting). Each name opens that station's own pages."),
    howTo, table);

  // how long ago the station recorded its newest part, by its own clock (a peer PC's clock set
  // wrong does not move it): no colour of its own, as a line stopped may be a planned stop
  function lastPart(s) {
    const age = s.last_part_age_s;
    if (age == null) {
      // a peer of an older version does not say it: its "none" is not known to be none
      return s.this_station ? h("span", {class: "muted"}, "no part yet")
        : h("span", {class: "muted", title: s.problem ? null : "no part yet, or its /health does not say"}, "–");
    }
    const min = Math.floor(age / 60);
    const ago = min < 1 ? "under a minute ago" : min < 120 ? min + " min ago"
      : min < 2880 ? Math.floor(min / 60) + " h ago" : Math.floor(min / 1440) + " days ago";
    return h("span", {class: "last-part", title: s.last_part_at ? when(s.last_part_at) : null}, "last part " + ago);
  }

  function row(s) {
    const [cls, word] = LEVEL[s.level] || LEVEL.down;
    // a peer's page is on its own address: the link leaves this station (its own sign-in there)
    const name = h("a", {href: s.page, rel: s.this_station ? null : "noopener"}, s.name);
    const since = s.this_station ? "–"
      : s.unreachable_since ? h("span", {class: "error"}, "not answering since " + when(s.unreachable_since))
        : when(s.last_answer_at);
    // its own row is named by its line as the others by theirs, and marked (data-this-station)
    return h("tr", {dataset: {name: s.name, level: s.level, status: s.status,
                              ...(s.this_station ? {thisStation: "1"} : {})}},
      h("td", {}, h("b", {}, name), h("div", {class: "muted small"}, s.url || "(this station)")),
      h("td", {}, h("b", {class: cls}, word), h("div", {class: "muted small"}, s.status.replace(/_/g, " "))),
      h("td", {class: "plant-reasons"}, s.reasons.length
        ? s.reasons.map((r) => h("div", {class: s.level === "ok" ? null : cls}, plantTimes(r)))
        : h("span", {class: "muted"}, "nothing to say")),
      h("td", {}, s.alarms ? String(s.alarms.active) : "–"),
      h("td", {}, lastPart(s)),
      h("td", {}, since));
  }

  function show(d) {
    checked.textContent = "read at " + when(d.checked_at) + " · every 10 s";
    howTo.hidden = d.peers_configured > 0;
    clear(howTo).append(h("h2", {}, "No other stations given"),
      // the command is an engineer's (the station's start-up, then a restart): an operator was
      // told to run it and could not, so is told whom to ask
      h("p", {id: "plant-how-to-add"}, "This list shows this station alone. " + (roleAtLeast("engineer")
        ? d.how_to_add : "Ask an engineer to add the plant's other stations (serve --peer NAME=URL).")));
    clear(table).appendChild(h("table", {class: "wrap-names"},
      h("thead", {}, h("tr", {}, ["station", "state", "why", "alarms waiting", "last part", "last answer"]
        .map((t) => h("th", {}, t)))),
      h("tbody", {}, d.stations.map(row))));
  }

  async function load() {
    try {
      show(await api("/api/v1/plant"));
    } catch (err) {
      // this station itself not answering: the rows stay as last read, the error said above them
      LG.fail(err);
    } finally {
      setTimeout(load, EVERY_MS);
    }
  }
  await load();
});
