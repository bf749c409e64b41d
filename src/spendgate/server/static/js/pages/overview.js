// Overview: volume, cost, tokens and latency over time; providers and models; active users; largest budgets.
import { bars, doughnut, line } from "../charts.js";
import { bar, canvas, card, empty, fill, h, kpis } from "../dom.js";
import { addDecimal, int, money, ms, percent, plot } from "../format.js";
import { byAmountDesc, grid, into, limitStatuses, ownStatuses, periodLabel } from "./common.js";

function summaryKpis(ctx, slot, s) {
  const t = s.totals;
  const users = ctx.options.users.length;
  slot.replaceWith(kpis(h("div"), [
    { key: "requests", label: "Requests", value: int(t.requests), sub: `${int(t.failures)} failed (${percent(t.requests ? t.failures / t.requests : 0)})` },
    { key: "cost", label: "Cost", value: money(t.cost, s.currency), sub: `avg ${money(s.cost.avg, s.currency)} / request` },
    { key: "tokens", label: "Tokens", value: int(t.tokens), sub: `${int(t.input_tokens)} in · ${int(t.output_tokens)} out` },
    { key: "latency", label: "Latency p50", value: ms(s.latency.p50), sub: `p95 ${ms(s.latency.p95)}` },
    { key: "users", label: "Active users", value: int(s.unique_users), sub: `${ctx.me.can_read_all && users ? `of ${int(users)} users · ` : ""}${int(s.sessions)} sessions` },
    { key: "models", label: "Models", value: int(s.models), sub: `${int(s.providers)} providers` },
  ]));
}

async function largestBudgets(ctx) {
  if (ctx.me.can_read_all) {
    const limits = (await ctx.get("/limits")).filter((l) => l.metric === "cost" && l.enabled).sort(byAmountDesc).slice(0, 5);
    const { statuses } = await limitStatuses(ctx, limits);
    return limits.map((limit) => ({ limit, status: statuses.get(limit.id) }));
  }
  const own = await ownStatuses(ctx);
  return own.limits.filter((l) => l.metric === "cost" && l.period !== "request").sort(byAmountDesc).slice(0, 5)
    .map((limit) => ({ limit, status: own.statuses.get(limit.id) }));
}

function drawBudgets(body, rows) {
  if (!rows.length) return empty(body, "No cost limits are set.");
  fill(body, rows.map(({ limit, status }) => {
    const used = status ? addDecimal(status.spent, status.reserved) : null;
    return h("div", { class: "budget-row", dataset: { limit: limit.id } },
      h("div", {}, h("strong", { text: limit.scope }), " ", h("span", { class: "muted", text: periodLabel(limit) })),
      h("div", { class: "num" }, status ? `${money(used)} of ${money(status.amount)}` : money(limit.amount)),
      status ? bar(status.utilization) : h("div", { class: "muted", text: "status not available for this scope" }));
  }));
}

export async function render(ctx) {
  const { el, win } = ctx;
  const q = ctx.query();
  const slot = h("div", { class: "kpis" }, h("div", { class: "kpi muted", text: "Loading totals…" }));
  el.append(slot);
  const step = win.granularity === "hour" ? "per hour" : "per day";
  const c = {
    requests: card(el, { title: "Requests", hint: step, id: "chart-requests" }),
    cost: card(el, { title: "Cost", hint: step, id: "chart-cost" }),
    tokens: card(el, { title: "Tokens", hint: step, id: "chart-tokens" }),
    latency: card(el, { title: "Latency", hint: `p50 and p95 ${step}`, id: "chart-latency" }),
    providers: card(el, { title: "Providers", hint: "share of cost", id: "chart-providers", width: 4 }),
    models: card(el, { title: "Models", hint: "requests", id: "chart-models", width: 4 }),
    budgets: card(el, { title: "Largest budgets", hint: "spent + reserved of the limit", id: "budgets", width: 4 }),
  };
  const series = (metric) => ctx.get("/analytics/timeseries", { ...q, metric, granularity: win.granularity });
  const chart = (body, draw) => (data) => {
    const [wrap, cv] = canvas();
    fill(body, wrap);
    draw(cv, data);
  };
  await Promise.all([
    into(ctx, slot, ctx.get("/analytics/summary", q), (s) => summaryKpis(ctx, slot, s)),
    into(ctx, c.requests, series("requests"), chart(c.requests, (cv, s) => {
      const g = grid(ctx, s, (st) => st.count);
      line(cv, { labels: g.labels, series: [{ label: "Requests", values: g.values, fill: true }] });
    })),
    into(ctx, c.cost, series("cost"), chart(c.cost, (cv, s) => {
      const g = grid(ctx, s, (st) => st.sum, "0");
      line(cv, { labels: g.labels, currency: s.currency, series: [{ label: "Cost", values: g.values.map(plot), exact: g.values, fill: true, color: "#10b981" }] });
    })),
    into(ctx, c.tokens, series("tokens"), chart(c.tokens, (cv, s) => {
      const g = grid(ctx, s, (st) => st.sum);
      line(cv, { labels: g.labels, series: [{ label: "Tokens", values: g.values, fill: true, color: "#0ea5e9" }] });
    })),
    into(ctx, c.latency, series("latency"), chart(c.latency, (cv, s) => {
      const p50 = grid(ctx, s, (st) => st.p50, null);
      const p95 = grid(ctx, s, (st) => st.p95, null);
      line(cv, { labels: p50.labels, yTitle: "ms", series: [{ label: "p50", values: p50.values }, { label: "p95", values: p95.values, color: "#f59e0b" }] });
    })),
    into(ctx, c.providers, ctx.get("/analytics/breakdown", { ...q, by: "provider" }), (b) => {
      if (!b.rows.length) return empty(c.providers);
      chart(c.providers, (cv) => doughnut(cv, {
        labels: b.rows.map((r) => r.key ?? "(none)"), values: b.rows.map((r) => plot(r.totals.cost)),
        exact: b.rows.map((r) => r.totals.cost), currency: b.currency,
      }))(b);
    }),
    into(ctx, c.models, ctx.get("/analytics/top-models", { ...q, n: 8 }), (b) => {
      if (!b.rows.length) return empty(c.models);
      chart(c.models, (cv) => bars(cv, {
        labels: b.rows.map((r) => r.key ?? "(none)"), values: b.rows.map((r) => r.totals.requests), label: "Requests", horizontal: true,
      }))(b);
    }),
    into(ctx, c.budgets, largestBudgets(ctx), (rows) => drawBudgets(c.budgets, rows)),
  ]);
}
