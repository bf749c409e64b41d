// Where the user is: page, time range and filters, all kept in the URL hash (#/cost?range=30d&team_id=ml),
// so a view can be bookmarked and shared (the key never is: it lives in sessionStorage).
export const RANGES = { "24h": 24 * 3600e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3, "90d": 90 * 86400e3 };
export const FILTERS = ["team_id", "provider", "model"];
const HOUR = 3600e3;
const DAY = 86400e3;

export function parseHash(hash = location.hash) {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  const params = Object.fromEntries(new URLSearchParams(query));
  return { page: path || "overview", params };
}

export function makeHash(page, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const text = query.toString();
  return `#/${page}${text ? "?" + text : ""}`;
}

export function rangeOf(params) {
  return params.range === "custom" && params.since && params.until ? "custom" : RANGES[params.range] ? params.range : "7d";
}

/** The period a render covers: [since, until) as Dates, with the time series' bucket size. */
export function windowOf(params, now = new Date()) {
  const range = rangeOf(params);
  let since;
  let until;
  if (range === "custom") {
    since = new Date(params.since);
    until = new Date(params.until);
  } else {
    until = now;
    since = new Date(now.getTime() - RANGES[range]);
  }
  const span = until - since;
  const granularity = span <= 7 * DAY ? "hour" : "day";
  return { range, since, until, granularity, live: range !== "custom" };
}

export function filtersOf(params) {
  return Object.fromEntries(FILTERS.map((name) => [name, params[name] || undefined]));
}

/** Every bucket start in [since, until) at the granularity (UTC), to draw empty buckets as zeros. */
export function buckets(since, until, granularity) {
  const step = granularity === "hour" ? HOUR : DAY;
  const out = [];
  for (let t = Math.floor(since.getTime() / step) * step; t < until.getTime(); t += step) out.push(new Date(t));
  return out;
}

export function iso(date) {
  return date.toISOString();
}
