// Tiny DOM helpers: h() builds elements (no innerHTML, no inline style attributes: the page's CSP forbids them).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A card in the page grid; returns its body. ``width``: 3, 4, 6 (default), 8 or 12 columns. */
export function card(parent, { title, hint, id, width = 6 }) {
  const body = h("div", { class: "body loading", text: "Loading…" });
  const el = h("section", { class: `card w${width}`, id }, h("h2", {}, title, hint ? h("span", { class: "hint", text: hint }) : null), body);
  parent.append(el);
  return body;
}

export function fill(body, ...children) {
  body.classList.remove("loading");
  body.replaceChildren(...children.flat());
}

export function failed(body, error) {
  fill(body, h("p", { class: "error", text: error?.message || String(error) }));
}

export function empty(body, message = "No data in this range.") {
  fill(body, h("p", { class: "empty", text: message }));
}

export function canvas(cls = "") {
  const c = h("canvas");
  return [h("div", { class: `chart ${cls}` }, c), c];
}

export function kpis(parent, items) {
  const row = h("div", { class: "kpis" });
  for (const { key, label, value, sub } of items) {
    row.append(h("div", { class: "kpi", dataset: { kpi: key } }, h("div", { class: "label", text: label }),
      h("div", { class: "value", text: value }), sub ? h("div", { class: "sub", text: sub }) : null));
  }
  parent.append(row);
  return row;
}

export function table(columns, rows, { rowAttrs } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : "", text: c.label, dataset: { col: c.key } })));
  const body = rows.map((row) => h("tr", rowAttrs ? rowAttrs(row) : {},
    columns.map((c) => {
      const v = c.render ? c.render(row) : row[c.key];
      return h("td", { class: c.num ? "num" : "" }, v instanceof Node ? v : String(v ?? "—"));
    })));
  return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

/** A utilisation bar (fraction 0..1+, a number). */
export function bar(fraction) {
  const f = Math.max(0, Number(fraction) || 0);
  const inner = h("span");
  inner.style.width = `${Math.min(100, f * 100).toFixed(1)}%`;
  return h("div", { class: `bar${f >= 1 ? " over" : f >= 0.8 ? " warn" : ""}`, title: `${(f * 100).toFixed(1)} %` }, inner);
}
