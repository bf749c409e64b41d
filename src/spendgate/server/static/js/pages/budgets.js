// Budgets: every limit's utilization and projected run-out, reservations in flight, tier policies.
import { bar, card, empty, failed, fill, h, kpis, table } from "../dom.js";
import { addDecimal, compareDecimal, int, money, percent, when } from "../format.js";
import { into, limitStatuses, ownStatuses, periodLabel } from "./common.js";

async function load(ctx) {
  if (!ctx.me.can_read_all) return ownStatuses(ctx, { forecast: true });
  const limits = await ctx.get("/limits");
  return { limits, ...(await limitStatuses(ctx, limits, { forecast: true })) };
}

function runOut(item) {
  if (!item) return "—";
  if (!item.runs_out_at) return "not at this rate";
  return `${when(item.runs_out_at)}${item.runs_out_before_reset ? " (before reset)" : ""}`;
}

function limitsTable(data) {
  const rows = data.limits.map((limit) => ({ limit, status: data.statuses.get(limit.id), out: data.runOuts.get(limit.id) }));
  return table([
    { key: "id", label: "Limit", render: (r) => h("span", { class: "mono", text: r.limit.id }) },
    { key: "scope", label: "Scope", render: (r) => `${r.limit.scope}${r.limit.tier ? ` (tier ${r.limit.tier})` : ""}` },
    { key: "period", label: "Period", render: (r) => periodLabel(r.limit) },
    { key: "level", label: "Level", render: (r) => r.limit.level },
    { key: "amount", label: "Amount", num: true, render: (r) => (r.limit.metric === "cost" ? money(r.status?.amount ?? r.limit.amount) : `${r.status?.amount ?? r.limit.amount} ${r.limit.metric}`) },
    { key: "spent", label: "Spent", num: true, render: (r) => (r.status ? money(r.status.spent) : "—") },
    { key: "reserved", label: "Reserved", num: true, render: (r) => (r.status ? money(r.status.reserved) : "—") },
    { key: "util", label: "Utilization", render: (r) => (r.status ? h("div", {}, bar(r.status.utilization), h("span", { class: "muted", text: percent(r.status.utilization) })) : h("span", { class: "muted", text: "per-id template" })) },
    { key: "resets", label: "Resets", render: (r) => when(r.status?.resets_at) },
    { key: "runout", label: "Projected run-out", render: (r) => runOut(r.out) },
  ], rows, { rowAttrs: (r) => ({ dataset: { limit: r.limit.id } }) });
}

function tiersTable(ctx) {
  const counts = new Map();
  for (const u of ctx.options.users) counts.set(u.tier ?? ctx.me.default_tier, (counts.get(u.tier ?? ctx.me.default_tier) ?? 0) + 1);
  return table([
    { key: "name", label: "Tier", render: (t) => h("strong", { text: `${t.name}${t.name === ctx.me.default_tier ? " (default)" : ""}` }) },
    { key: "users", label: "Users", num: true, render: (t) => (ctx.me.can_read_all ? int(counts.get(t.name) ?? 0) : "—") },
    { key: "warning", label: "Warn at", num: true, render: (t) => percent(t.warning, 0) },
    { key: "throttle", label: "Throttle at", num: true, render: (t) => percent(t.throttle, 0) },
    { key: "downgrade", label: "Downgrade at", num: true, render: (t) => percent(t.downgrade, 0) },
    { key: "hard", label: "Hard limit", num: true, render: (t) => percent(t.hard_limit, 0) },
    { key: "grace", label: "Grace", num: true, render: (t) => t.grace_period },
    { key: "overage", label: "Max overage", num: true, render: (t) => money(t.max_overage) },
    { key: "limits", label: "Default limits per user", render: (t) => t.limits.map((l) => (l.metric === "cost" ? `${money(l.amount)} / ${l.period}` : `${l.amount} ${l.metric} / ${l.period}`)).join(" · ") || "—" },
  ], ctx.me.tiers, { rowAttrs: (t) => ({ dataset: { tier: t.name } }) });
}

export async function render(ctx) {
  const { el } = ctx;
  const slot = h("div", { class: "kpis" }, h("div", { class: "kpi muted", text: "Loading limits…" }));
  el.append(slot);
  const all = card(el, { title: "Limits", hint: "in their current window", id: "limits", width: 12 });
  const flight = card(el, { title: "Reservations in flight", hint: "worst-case cost held by calls not yet settled", id: "reservations", width: 12 });
  const tiers = card(el, { title: "Tier policies", hint: "adaptive limits by tier", id: "tiers", width: 12 });
  fill(tiers, tiersTable(ctx));
  const loaded = load(ctx);
  loaded.catch((error) => {
    if (ctx.current() && error.name !== "AbortError") for (const body of [slot, flight]) failed(body, error);
  });
  await into(ctx, all, loaded, (data) => {
    const statuses = [...data.statuses.values()].filter((s) => data.limits.some((l) => l.id === s.limit.id));
    const held = statuses.filter((s) => compareDecimal(s.reserved, "0") > 0);
    const hot = statuses.filter((s) => Number(s.utilization) >= 0.8);
    const outs = [...data.runOuts.values()].filter((r) => r.runs_out_at && r.runs_out_before_reset).sort((a, b) => a.runs_out_at.localeCompare(b.runs_out_at));
    slot.replaceWith(kpis(h("div"), [
      { key: "limits", label: "Limits", value: int(data.limits.length) },
      { key: "hot", label: "At 80 % or more", value: int(hot.length) },
      { key: "reserved", label: "Largest reservation hold", value: held.length ? money(held.map((s) => s.reserved).sort(compareDecimal).at(-1)) : money("0"), sub: `held against ${int(held.length)} limit${held.length === 1 ? "" : "s"}` },
      { key: "runout", label: "First run-out", value: outs.length ? when(outs[0].runs_out_at) : "none before reset", sub: outs.length ? outs[0].limit.id : "" },
    ]));
    if (!data.limits.length) empty(all, "No limits are set.");
    else fill(all, limitsTable(data));
    if (!held.length) empty(flight, "No reservations are held right now.");
    else {
      fill(flight, table([
        { key: "limit", label: "Limit", render: (s) => `${s.limit.id} (${s.limit.scope})` },
        { key: "reserved", label: "Reserved", num: true, render: (s) => money(s.reserved) },
        { key: "spent", label: "Spent", num: true, render: (s) => money(s.spent) },
        { key: "both", label: "Spent + reserved", num: true, render: (s) => money(addDecimal(s.spent, s.reserved)) },
      ], held), h("p", { class: "muted", text: "A hold lasts until its call settles or is released, or its TTL lapses." }));
    }
  });
}
