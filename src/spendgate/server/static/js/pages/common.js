// What several pages share: filling a card from a request, time series on a full bucket grid, limit statuses.
import { failed } from "../dom.js";
import { buckets } from "../state.js";
import { bucketLabel, compareDecimal } from "../format.js";

/** Await ``promise`` and ``draw(data)`` into ``body``; an error is shown in the card, never thrown. */
export async function into(ctx, body, promise, draw) {
  try {
    const data = await promise;
    if (ctx.current()) draw(data);
  } catch (error) {
    if (ctx.current() && error.name !== "AbortError") failed(body, error);
  }
}

/** A time series (``/analytics/timeseries``) on every bucket of the window: labels and a value per bucket. */
export function grid(ctx, series, pick, missing = 0) {
  const byStart = new Map(series.points.map((p) => [Date.parse(p.bucket_start), p.stats]));
  const starts = buckets(ctx.win.since, ctx.win.until, series.granularity);
  return {
    labels: starts.map((d) => bucketLabel(d, series.granularity)),
    values: starts.map((d) => (byStart.has(d.getTime()) ? pick(byStart.get(d.getTime())) : missing)),
  };
}

const DIMS = { user: "user_id", team: "team_id", key: "api_key_id", provider: "provider", model: "model" };

/** The budget-status query of a limit's scope (``team:web/provider:openai`` -> team_id, provider), or null
 * when the scope has no concrete id (a per-user template) or a dimension the status route does not take. */
export function scopeParams(scope) {
  if (scope === "global") return {};
  const params = {};
  for (const part of scope.split("/")) {
    const at = part.indexOf(":");
    const name = DIMS[part.slice(0, at)];
    if (at < 0 || !name) return null;
    params[name] = part.slice(at + 1);
  }
  return params;
}

/** Status (and optionally forecast run-out) of each stored limit: one request per distinct scope, in parallel. */
export async function limitStatuses(ctx, limits, { forecast = false } = {}) {
  const scopes = new Map();
  for (const limit of limits) {
    const params = scopeParams(limit.scope);
    if (params) scopes.set(JSON.stringify(params), params);
  }
  const statuses = new Map();
  const runOuts = new Map();
  await Promise.all([...scopes.values()].map(async (params) => {
    const [status, outlook] = await Promise.all([
      ctx.get("/budgets/status", params),
      forecast ? ctx.get("/usage/forecast", params) : null,
    ]);
    for (const item of status.limits) statuses.set(item.limit.id, item);
    for (const item of outlook?.limits ?? []) runOuts.set(item.limit.id, item);
  }));
  return { statuses, runOuts };
}

/** What the caller's own budgets look like (members: their user and team). */
export async function ownStatuses(ctx, { forecast = false } = {}) {
  const params = ctx.me.team_id ? { team_id: ctx.me.team_id } : {};
  const [status, outlook] = await Promise.all([
    ctx.get("/budgets/status", params),
    forecast ? ctx.get("/usage/forecast", params) : null,
  ]);
  return {
    limits: status.limits.map((s) => s.limit),
    statuses: new Map(status.limits.map((s) => [s.limit.id, s])),
    runOuts: new Map((outlook?.limits ?? []).map((r) => [r.limit.id, r])),
  };
}

export const byAmountDesc = (a, b) => compareDecimal(b.amount, a.amount);

export function periodLabel(limit) {
  return limit.rolling_seconds ? `rolling ${limit.rolling_seconds} s` : `per ${limit.period}`;
}
