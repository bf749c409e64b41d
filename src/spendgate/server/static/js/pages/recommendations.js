// Recommendations: the optimizer's list for the range and filters, each with its savings on actual traffic.
import { card, empty, fill, h, kpis } from "../dom.js";
import { int, money, percent } from "../format.js";
import { into } from "./common.js";

const FLOORS = [["", "server default"], ["0", "any amount"], ["1", "1"], ["5", "5"], ["50", "50"]];

function item(rec) {
  return h("article", { class: "rec", dataset: { rec: rec.recommendation_id, type: rec.optimization_type } },
    h("h3", {}, h("span", { class: `badge ${rec.priority}`, text: rec.priority }), rec.title, h("span", { class: "muted mono", text: rec.optimization_type })),
    h("div", { class: "savings" }, `Saves ${money(rec.potential_savings, rec.currency)}`, h("span", { class: "muted", text: ` (${rec.potential_savings_percentage} % of the affected cost)` })),
    h("div", { class: "facts" },
      h("span", { text: `${int(rec.affected_requests)} requests affected` }),
      h("span", { text: `affected cost ${money(rec.affected_cost, rec.currency)}` }),
      h("span", { text: `effort: ${rec.implementation_effort}` }),
      h("span", { text: `quality impact: ${rec.quality_impact}` }),
      h("span", { text: `confidence ${percent(rec.confidence_score, 0)}` })),
    h("p", { text: rec.description }),
    rec.action_items.length ? h("ul", {}, rec.action_items.map((a) => h("li", { text: a }))) : null);
}

export async function render(ctx) {
  const { el } = ctx;
  const floor = ctx.params.min_savings ?? "";
  const slot = h("div", { class: "kpis" }, h("div", { class: "kpi muted", text: "Analysing the range…" }));
  el.append(slot);
  const body = card(el, { title: "Recommendations", hint: "savings overlap: do not add them up", id: "recommendations", width: 12 });
  const picker = h("select", { id: "min-savings", onchange: (e) => ctx.setParams({ min_savings: e.target.value || undefined }) },
    FLOORS.map(([value, label]) => h("option", { value, text: `Savings at least: ${label}` })));
  picker.value = floor;
  await into(ctx, body, ctx.get("/recommendations", ctx.query({ min_savings: floor })), (r) => {
    const best = r.recommendations[0];
    slot.replaceWith(kpis(h("div"), [
      { key: "analysed", label: "Requests analysed", value: int(r.requests), sub: `cost ${money(r.cost, r.currency)}` },
      { key: "count", label: "Recommendations", value: int(r.recommendations.length), sub: `${int(r.withheld)} below the floors` },
      { key: "best", label: "Largest saving", value: best ? money(best.potential_savings, best.currency) : "—", sub: best ? best.title : "" },
    ]));
    const list = r.recommendations.length ? r.recommendations.map(item)
      : [h("p", { class: "empty", text: "Nothing to recommend above the floors for this range: lower the savings floor to see smaller ones." })];
    fill(body, h("div", { class: "legend" }, picker), ...list);
  });
}
