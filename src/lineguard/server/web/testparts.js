// Test parts: parts of known verdict (red rabbits the station must reject, good parts it
// must pass, limit samples it must send to review) put through the line each shift; this
// shift's verification per line, and each product's registered test parts.
"use strict";

LG.start(async (main) => {
  const {h, api, clear, field, select, when} = LG;
  const p = LG.params();
  const verif = h("div", {id: "verification-now"});
  const shiftLabel = h("h2", {}, "This shift");
  const models = (await api("/api/v1/models")).items;
  const products = [...new Set(models.map((m) => m.product))].sort();
  const productIn = h("input", {name: "product", value: p.product || products[0] || "", size: 12, list: "products",
    required: true});
  const listEl = h("div", {class: "table-wrap", id: "test-parts"});
  const addForm = h("form", {class: "filters", id: "add-test-part", dataset: {role: "engineer"}},
    field("name (the serial or part id it is sent with)", h("input", {name: "name", required: true, size: 14,
      maxlength: 200, autocomplete: "off"})),
    field("must be", select("expect", [["NG", "NG (a defect: must be rejected)"], ["OK", "OK (a good part)"],
      ["REVIEW", "REVIEW (a limit sample)"]], "NG")),
    field("what it is", h("input", {name: "description", size: 28, maxlength: 2000,
      placeholder: "e.g. crack 0.3 mm, left edge"})),
    h("button", {type: "submit"}, "Register"));
  main.append(h("h1", {}, "Test parts"),
    h("p", {class: "muted"}, "Put each test part through the line at the start of every shift, as any part "
      + "(camera, lamp, model and reject gate are all tested). A part sent with a test part's name as its serial "
      + "or part id is checked against the verdict it must get; its verdict still goes to the PLC, its image "
      + "is kept, and it is left out of the shift's counts, SPC, tuning and retraining."),
    h("div", {class: "panel", id: "this-shift"}, shiftLabel, verif),
    h("div", {class: "panel"}, h("h2", {}, "Registered test parts"),
      h("form", {class: "filters", onsubmit: (e) => { e.preventDefault(); loadList().catch(LG.fail); }},
        field("product", productIn), h("button", {type: "submit", class: "secondary"}, "Show")),
      h("datalist", {id: "products"}, products.map((x) => h("option", {value: x}))),
      listEl, addForm,
      // the form above is an engineer's: an operator is told who registers them, not left
      // looking for a form that is not there
      LG.roleAtLeast("engineer") ? null : h("p", {class: "muted", id: "who-registers"},
        "Test parts are registered by an engineer: ask one to add a part or change what it must be.")));

  const base = () => "/api/v1/products/" + encodeURIComponent(productIn.value.trim()) + "/test-parts";

  async function loadShift() {
    const v = await api("/api/v1/verification");
    shiftLabel.textContent = "This shift: " + v.shift.label;
    clear(verif).appendChild(LG.verificationTable(v.lines));
  }

  let registered = [];
  async function loadList() {
    if (!productIn.value.trim()) { clear(listEl); registered = []; return; }
    history.replaceState(null, "", location.pathname + LG.q({product: productIn.value.trim()}));
    const items = registered = (await api(base())).items;
    clear(listEl).appendChild(items.length
      ? h("table", {class: "wrap-names"}, h("tr", {}, ["name", "must be", "what it is", "registered", ""]
        .map((t) => h("th", {}, t))),
        items.map((t) => h("tr", {dataset: {testPart: t.name}}, h("td", {}, h("b", {class: "tp-name"}, t.name)),
          h("td", {}, h("span", {class: "badge " + LG.verdictClass(t.expect)}, t.expect)),
          h("td", {}, t.description || "–"), h("td", {}, when(t.created_at), t.created_by ? " by " + t.created_by : ""),
          h("td", {}, h("button", {type: "button", class: "danger", dataset: {role: "engineer"},
            onclick: () => retire(t)}, "Retire")))))
      : h("p", {class: "muted"}, `Product ${productIn.value.trim()} has no test parts yet.`));
    LG.applyRoles(listEl);
  }

  async function retire(t) {
    if (!confirm(`Retire test part ${t.name}? Its past checks keep its name.`)) return;
    try {
      await api(base() + LG.q({name: t.name}), {method: "DELETE"});
      LG.say(`${t.name} retired`, "ok");
      await Promise.all([loadList(), loadShift()]);
    } catch (err) { LG.fail(err); }
  }

  // one registration per press: a double click sent two (two change-log entries)
  LG.once(addForm, async () => {
    const f = addForm.elements;
    // the same name again changes that test part: a red rabbit made to pass is asked first
    const same = registered.find((t) => t.name === f.name.value.trim());
    if (same && same.expect !== f.expect.value && !confirm(`${same.name} is registered already and must be `
      + `${same.expect}. Change it to must be ${f.expect.value}? The station then checks it the other way.`)) return;
    const t = await api(base(), {method: "POST", body: {name: f.name.value.trim(), expect: f.expect.value,
      description: f.description.value.trim() || null}});
    LG.say(`${t.name} registered: must be ${t.expect}`, "ok");
    addForm.reset();
    await Promise.all([loadList(), loadShift()]);
  });

  await Promise.all([loadShift(), loadList()]);
});
