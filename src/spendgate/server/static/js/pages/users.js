// Users: top users by cost (sortable), hour-of-week heatmap, popular models, one user's detail.
import { bars } from "../charts.js";
import { bar, canvas, card, empty, fill, h, kpis, table } from "../dom.js";
import { compareDecimal, int, money, ms, percent, plot, when } from "../format.js";
import { into, periodLabel } from "./common.js";

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const RECENT = 25;

const COLUMNS = [
  { key: "user", label: "User", text: true, value: (r) => r.key ?? "" },
  { key: "team", label: "Team", text: true, value: (r) => r.team ?? "" },
  { key: "tier", label: "Tier", text: true, value: (r) => r.tier ?? "" },
  { key: "requests", label: "Requests", value: (r) => r.totals.requests, show: (r) => int(r.totals.requests) },
  { key: "tokens", label: "Tokens", value: (r) => r.totals.tokens, show: (r) => int(r.totals.tokens) },
  { key: "cost", label: "Cost", money: true, value: (r) => r.totals.cost, show: (r, c) => money(r.totals.cost, c) },
  { key: "failures", label: "Failures", value: (r) => r.totals.failures, show: (r) => int(r.totals.failures) },
  { key: "latency", label: "Avg latency", value: (r) => r.totals.avg_latency_ms ?? -1, show: (r) => ms(r.totals.avg_latency_ms) },
];

function sortRows(rows, key, dir) {
  const col = COLUMNS.find((c) => c.key === key);
  const cmp = col.money ? (a, b) => compareDecimal(col.value(a), col.value(b))
    : col.text ? (a, b) => String(col.value(a)).localeCompare(String(col.value(b)))
      : (a, b) => col.value(a) - col.value(b);
  return [...rows].sort((a, b) => (dir === "asc" ? cmp(a, b) : cmp(b, a)));
}

function topTable(ctx, body, answer, selected) {
  const known = new Map(ctx.options.users.map((u) => [u.user_id, u]));
  const rows = answer.rows.map((r) => ({ ...r, team: known.get(r.key)?.team_id, tier: known.get(r.key)?.tier }));
  let sortKey = "cost";
  let dir = "desc";
  const tbody = h("tbody");
  const heads = COLUMNS.map((c) => h("th", {
    class: `sortable${c.text ? "" : " num"}`, dataset: { sort: c.key }, text: c.label, title: `Sort by ${c.label.toLowerCase()}`,
    onclick: () => {
      dir = sortKey === c.key && dir === "desc" ? "asc" : "desc";
      sortKey = c.key;
      draw();
    },
  }));
  function draw() {
    for (const th of heads) th.className = `sortable${COLUMNS.find((c) => c.key === th.dataset.sort).text ? "" : " num"}${th.dataset.sort === sortKey ? ` sorted-${dir}` : ""}`;
    tbody.replaceChildren(...sortRows(rows, sortKey, dir).map((r) => h("tr", {
      class: `clickable${r.key === selected ? " selected" : ""}`, dataset: { user: r.key ?? "" },
      onclick: () => r.key && ctx.setParams({ user: r.key }),
    }, COLUMNS.map((c) => h("td", { class: c.text ? "" : "num", text: c.show ? c.show(r, answer.currency) : (c.value(r) || "—") })))));
  }
  draw();
  if (!rows.length) return empty(body);
  fill(body, h("div", { class: "table-wrap" }, h("table", { id: "top-users" }, h("thead", {}, h("tr", {}, heads)), tbody)));
}

function heatmap(body, answer, metric) {
  const values = metric === "cost" ? answer.cost.map((row) => row.map(plot)) : answer.requests;
  const max = Math.max(0, ...values.flat());
  const cells = [h("div"), ...Array.from({ length: 24 }, (_, hour) => h("div", { class: "hd", text: hour % 3 ? "" : String(hour) }))];
  values.forEach((row, day) => {
    cells.push(h("div", { class: "day", text: DAYS[day] }));
    row.forEach((value, hour) => {
      const cell = h("div", {
        class: "cell", dataset: { day: String(day), hour: String(hour), value: String(value) },
        title: `${DAYS[day]} ${String(hour).padStart(2, "0")}:00 UTC: ${int(answer.requests[day][hour])} requests, ${money(answer.cost[day][hour], answer.currency)}`,
      });
      if (max > 0 && value > 0) cell.style.backgroundColor = `rgba(79, 70, 229, ${(0.12 + 0.88 * (value / max)).toFixed(3)})`;
      cells.push(cell);
    });
  });
  return h("div", { class: "heatmap", id: "heatmap" }, cells);
}

function heatmapCard(ctx, el) {
  const body = card(el, { title: "Activity by hour of the week", hint: "UTC", id: "heatmap-card", width: 8 });
  return into(ctx, body, ctx.get("/analytics/heatmap", ctx.query()), (answer) => {
    let metric = ctx.params.heat === "cost" ? "cost" : "requests";
    const toggle = h("div", { class: "legend" }, "Colour by",
      ...["requests", "cost"].map((m) => h("button", {
        type: "button", class: `small${m === metric ? " primary" : ""}`, dataset: { heat: m }, text: m,
        onclick: () => {
          metric = m;
          draw();
        },
      })), h("span", { text: "· darker is busier" }));
    function draw() {
      for (const b of toggle.querySelectorAll("button")) b.classList.toggle("primary", b.dataset.heat === metric);
      fill(body, heatmap(body, answer, metric), toggle);
    }
    draw();
  });
}

function recentTable(events, currency) {
  if (!events.length) return h("p", { class: "empty", text: "No requests in the last 24 hours of the range." });
  return table([
    { key: "time", label: "Time (UTC)", render: (e) => e.timestamp.slice(5, 16).replace("T", " ") },
    { key: "model", label: "Model", render: (e) => h("span", { title: e.provider, text: e.model }) },
    { key: "in", label: "In", num: true, render: (e) => int(e.usage?.input_tokens) },
    { key: "out", label: "Out", num: true, render: (e) => int(e.usage?.output_tokens) },
    { key: "cost", label: "Cost", num: true, render: (e) => money(e.cost, e.currency || currency) },
    { key: "latency", label: "Latency", num: true, render: (e) => ms(e.latency_ms) },
    { key: "ok", label: "Result", render: (e) => (e.success ? (e.cached ? "cached" : "ok") : e.error_kind || "failed") },
  ], events, { rowAttrs: () => ({ class: "recent" }) });
}

function detail(ctx, el, userId) {
  const head = card(el, { title: `User ${userId}`, hint: "usage in the range", id: "user-detail", width: 12 });
  const limits = card(el, { title: "Limits", hint: `that apply to ${userId}`, id: "user-limits" });
  const recent = card(el, { title: "Recent requests", hint: `newest ${RECENT}`, id: "user-recent" });
  const known = ctx.options.users.find((u) => u.user_id === userId);
  const { since, until } = ctx.query();
  const recentSince = new Date(Math.max(ctx.win.since.getTime(), ctx.win.until.getTime() - 86400e3)).toISOString();
  return Promise.all([
    into(ctx, head, ctx.get(`/users/${encodeURIComponent(userId)}/usage`, { since, until }), (u) => {
      const s = u.summary;
      const box = h("div");
      kpis(box, [
        { key: "user-requests", label: "Requests", value: int(s.requests), sub: `${int(s.failures)} failed` },
        { key: "user-cost", label: "Cost", value: money(s.cost, s.currency) },
        { key: "user-tokens", label: "Tokens", value: int(s.input_tokens + s.output_tokens), sub: `${int(s.input_tokens)} in · ${int(s.output_tokens)} out` },
        { key: "user-latency", label: "Avg latency", value: ms(s.avg_latency_ms) },
        { key: "user-tier", label: "Tier · team", value: `${known?.tier ?? "—"} · ${known?.team_id ?? "—"}` },
      ]);
      fill(head, box.firstChild, u.by_model.length ? table([
        { key: "key", label: "Model", render: (r) => r.key },
        { key: "requests", label: "Requests", num: true, render: (r) => int(r.requests) },
        { key: "tokens", label: "Tokens", num: true, render: (r) => int(r.input_tokens + r.output_tokens) },
        { key: "cost", label: "Cost", num: true, render: (r) => money(r.cost, r.currency) },
      ], u.by_model) : null);
    }),
    into(ctx, limits, ctx.get("/budgets/status", { user_id: userId, team_id: known?.team_id }), (b) => {
      if (!b.limits.length) return empty(limits, "No limits apply.");
      fill(limits, table([
        { key: "limit", label: "Limit", render: (s) => `${s.limit.scope} ${periodLabel(s.limit)}${s.limit.tier ? ` (tier ${s.limit.tier})` : ""}` },
        { key: "used", label: "Spent", num: true, render: (s) => money(s.spent) },
        { key: "amount", label: "Of", num: true, render: (s) => money(s.amount) },
        { key: "util", label: "Used", render: (s) => h("div", {}, bar(s.utilization), h("span", { class: "muted", text: percent(s.utilization) })) },
      ], b.limits));
    }),
    into(ctx, recent, ctx.get("/export", { format: "json", user_id: userId, since: recentSince, until, ...ctx.filters }), (events) => {
      fill(recent, recentTable(events.slice(-RECENT).reverse(), "USD"));
    }),
  ]);
}

export async function render(ctx) {
  const { el } = ctx;
  const q = ctx.query();
  const top = card(el, { title: "Top users", hint: "by cost; click a column to sort, a row for details", id: "top-users-card", width: 12 });
  const models = card(el, { title: "Popular models", hint: "requests", id: "chart-popular", width: 4 });
  const tasks = [heatmapCard(ctx, el)];
  let selected = ctx.me.can_read_all ? ctx.params.user : ctx.me.user_id;
  const topUsers = ctx.get("/analytics/top-users", { ...q, n: 100 });
  tasks.push(
    into(ctx, models, ctx.get("/analytics/top-models", { ...q, n: 10 }), (b) => {
      if (!b.rows.length) return empty(models);
      const [wrap, cv] = canvas("tall");
      fill(models, wrap);
      bars(cv, { labels: b.rows.map((r) => r.key ?? "(none)"), values: b.rows.map((r) => r.totals.requests), label: "Requests", horizontal: true });
    }),
    into(ctx, top, topUsers, (answer) => {
      selected = selected || answer.rows[0]?.key;
      topTable(ctx, top, answer, selected);
    }),
  );
  await Promise.all(tasks);
  if (selected && ctx.current()) await detail(ctx, el, selected);
}
