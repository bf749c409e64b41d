// Cost analysis: trend, month-end projection with its band, breakdowns, cost per 1,000 tokens, cache savings.
import { bars, line } from "../charts.js";
import { canvas, card, empty, fill, h, kpis, table } from "../dom.js";
import { int, money, percent, plot } from "../format.js";
import { grid, into } from "./common.js";

const DAY = 86400e3;

function breakdownCard(ctx, el, by, title) {
  const body = card(el, { title, hint: "cost", id: `breakdown-${by}` });
  return into(ctx, body, ctx.get("/analytics/breakdown", ctx.query({ by, top: 12 })), (b) => {
    if (!b.rows.length) return empty(body);
    const total = b.rows.reduce((sum, r) => sum + plot(r.totals.cost), 0);
    const [wrap, cv] = canvas("short");
    fill(body, wrap, table([
      { key: "key", label: by, render: (r) => r.key ?? "(none)" },
      { key: "requests", label: "Requests", num: true, render: (r) => int(r.totals.requests) },
      { key: "tokens", label: "Tokens", num: true, render: (r) => int(r.totals.tokens) },
      { key: "cost", label: "Cost", num: true, render: (r) => money(r.totals.cost, b.currency) },
      // tags overlap (an event has several), so their shares would not add up
      by === "tag" ? null : { key: "share", label: "Share", num: true, render: (r) => percent(total ? plot(r.totals.cost) / total : 0) },
    ].filter(Boolean), b.rows));
    bars(cv, { labels: b.rows.map((r) => r.key ?? "(none)"), values: b.rows.map((r) => plot(r.totals.cost)),
      exact: b.rows.map((r) => r.totals.cost), currency: b.currency, label: "Cost", horizontal: true });
  });
}

function projectionChart(body, forecast, daily) {
  const start = new Date(forecast.month_start);
  const end = new Date(forecast.month_end);
  const days = Math.round((end - start) / DAY);
  const today = Math.min(days - 1, Math.floor((new Date(forecast.as_of) - start) / DAY));
  const perDay = new Map(daily.points.map((p) => [Math.round((Date.parse(p.bucket_start) - start) / DAY), plot(p.stats.sum)]));
  const labels = [];
  const actual = [];
  let running = 0;
  for (let d = 0; d < days; d += 1) {
    labels.push(new Date(start.getTime() + d * DAY).toISOString().slice(5, 10));
    running += perDay.get(d) ?? 0;
    actual.push(d <= today ? running : null);
  }
  const mtd = plot(forecast.month_to_date_cost);
  const toward = (target) => labels.map((_, d) => (d < today ? null : mtd + ((plot(target) - mtd) * (d - today)) / Math.max(1, days - 1 - today)));
  const [wrap, cv] = canvas("tall");
  fill(body, wrap);
  line(cv, {
    labels,
    currency: forecast.currency,
    series: [
      { label: "Month to date", values: actual, color: "#4f46e5" },
      { label: "Projection", values: toward(forecast.projected_cost), dashed: true, color: "#10b981" },
      { label: `Upper (${percent(forecast.confidence, 0)})`, values: toward(forecast.upper), color: "#10b981", fill: "+1", hidden: true },
      { label: "Lower", values: toward(forecast.lower), color: "#10b981", hidden: true },
    ],
  });
}

export async function render(ctx) {
  const { el, win } = ctx;
  const q = ctx.query();
  const slot = h("div", { class: "kpis" }, h("div", { class: "kpi muted", text: "Loading totals…" }));
  el.append(slot);
  const trend = card(el, { title: "Cost trend", hint: win.granularity === "hour" ? "per hour" : "per day", id: "chart-trend" });
  const projection = card(el, { title: "Month-end projection", hint: "this UTC month, cumulative", id: "chart-projection" });
  const now = new Date();
  const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const summary = ctx.get("/analytics/summary", q);
  const forecast = ctx.get("/usage/forecast", ctx.filters);
  const daily = ctx.get("/analytics/timeseries", { ...ctx.filters, metric: "cost", granularity: "day", since: monthStart.toISOString(), until: now.toISOString() });
  const tasks = [
    into(ctx, slot, Promise.all([summary, forecast]), ([s, f]) => {
      const t = s.totals;
      slot.replaceWith(kpis(h("div"), [
        { key: "cost", label: "Cost in range", value: money(t.cost, s.currency), sub: `${int(t.requests)} requests` },
        { key: "avg", label: "Average per request", value: money(s.cost.avg, s.currency) },
        { key: "mtd", label: "Month to date", value: money(f.month_to_date_cost, f.currency), sub: `${money(f.daily_rate, f.currency)} / day lately` },
        { key: "projected", label: "Projected month end", value: money(f.projected_cost, f.currency), sub: `${percent(f.confidence, 0)} band ${money(f.lower, f.currency)} – ${money(f.upper, f.currency)}` },
        { key: "savings", label: "Cache savings", value: money(t.cache_savings ?? "0", s.currency), sub: `${int(t.cached_requests)} cached responses · ${int(t.cache_read_tokens)} cache-read tokens` },
      ]));
    }),
    into(ctx, trend, ctx.get("/analytics/timeseries", { ...q, metric: "cost", granularity: win.granularity }), (s) => {
      const g = grid(ctx, s, (st) => st.sum, "0");
      const [wrap, cv] = canvas("tall");
      fill(trend, wrap);
      line(cv, { labels: g.labels, currency: s.currency, series: [{ label: "Cost", values: g.values.map(plot), exact: g.values, fill: true, color: "#10b981" }] });
    }),
    into(ctx, projection, Promise.all([forecast, daily]), ([f, d]) => projectionChart(projection, f, d)),
    breakdownCard(ctx, el, "provider", "By provider"),
    breakdownCard(ctx, el, "model", "By model"),
    breakdownCard(ctx, el, "team", "By team"),
    breakdownCard(ctx, el, "tag", "By tag"),
  ];
  const efficiency = card(el, { title: "Cost per 1,000 tokens", hint: "per model", id: "efficiency" });
  const cache = card(el, { title: "Cache savings", hint: "per model", id: "cache-savings" });
  tasks.push(
    into(ctx, efficiency, ctx.get("/analytics/efficiency", q), (e) => {
      if (!e.rows.length) return empty(efficiency);
      const [wrap, cv] = canvas("short");
      fill(efficiency, wrap, table([
        { key: "model", label: "Model", render: (r) => `${r.provider} / ${r.model}` },
        { key: "tokens", label: "Tokens", num: true, render: (r) => int(r.tokens) },
        { key: "cost", label: "Cost", num: true, render: (r) => money(r.cost, e.currency) },
        { key: "per1k", label: "Per 1k tokens", num: true, render: (r) => money(r.cost_per_1k_tokens, e.currency) },
      ], e.rows));
      bars(cv, { labels: e.rows.map((r) => r.model), values: e.rows.map((r) => plot(r.cost_per_1k_tokens)),
        exact: e.rows.map((r) => r.cost_per_1k_tokens), currency: e.currency, label: "Per 1k tokens" });
    }),
    into(ctx, cache, ctx.get("/analytics/breakdown", ctx.query({ by: "model" })), (b) => {
      const rows = b.rows.filter((r) => r.totals.cached_requests || r.totals.cache_read_tokens);
      if (!rows.length) return empty(cache, "No cached responses or cache reads in this range.");
      const [wrap, cv] = canvas("short");
      fill(cache, wrap, table([
        { key: "key", label: "Model", render: (r) => r.key ?? "(none)" },
        { key: "cached", label: "Cached responses", num: true, render: (r) => int(r.totals.cached_requests) },
        { key: "reads", label: "Cache-read tokens", num: true, render: (r) => int(r.totals.cache_read_tokens) },
        { key: "savings", label: "Saved", num: true, render: (r) => money(r.totals.cache_savings ?? "0", b.currency) },
      ], rows));
      bars(cv, { labels: rows.map((r) => r.key), values: rows.map((r) => plot(r.totals.cache_savings ?? "0")),
        exact: rows.map((r) => r.totals.cache_savings ?? "0"), currency: b.currency, label: "Saved", colors: rows.map(() => "#10b981") });
    }),
  );
  await Promise.all(tasks);
}
