// The dashboard shell: sign-in, navigation (hash routes), range and filters, live refresh, export.
import * as api from "./api.js";
import { destroyCharts } from "./charts.js";
import { h } from "./dom.js";
import { when } from "./format.js";
import { FILTERS, filtersOf, iso, makeHash, parseHash, rangeOf, windowOf } from "./state.js";
import * as overview from "./pages/overview.js";
import * as cost from "./pages/cost.js";
import * as users from "./pages/users.js";
import * as budgets from "./pages/budgets.js";
import * as alerts from "./pages/alerts.js";
import * as recommendations from "./pages/recommendations.js";

const PAGES = [
  { id: "overview", title: "Overview", module: overview },
  { id: "cost", title: "Cost analysis", module: cost },
  { id: "users", title: "Users", module: users },
  { id: "budgets", title: "Budgets", module: budgets },
  { id: "alerts", title: "Alerts", module: alerts, readAll: true },
  { id: "recommendations", title: "Recommendations", module: recommendations },
];
const REFRESH_MS = 60_000;
const $ = (id) => document.getElementById(id);

const session = { me: null, options: { teams: [], providers: [], models: [], users: [] } };
let generation = 0;
let controller = null;
let renders = 0;
let timer = null;

function allowed(page) {
  return !page.readAll || session.me?.can_read_all;
}

function pageOf(id) {
  const page = PAGES.find((p) => p.id === id);
  return page && allowed(page) ? page : PAGES[0];
}

// -- sign-in ---------------------------------------------------------------------------------------

function showSignIn(message) {
  destroyCharts();
  clearInterval(timer);
  $("shell").hidden = true;
  $("signin").hidden = false;
  $("signin-error").hidden = !message;
  $("signin-error").textContent = message || "";
  document.body.dataset.state = "signed-out";
  $("signin-key").focus();
}

async function signIn(key) {
  const me = await api.get("/me", {}, { key });
  api.saveKey(key);
  session.me = me;
  $("signin").hidden = true;
  $("shell").hidden = false;
  $("who-role").textContent = me.role;
  $("who-name").textContent = me.user_id ? `${me.user_id}${me.team_id ? " · " + me.team_id : ""}` : me.key_id || "";
  document.body.dataset.role = me.role;
  buildNav();
  loadOptions();
  startTimer();
  if (!location.hash) history.replaceState(null, "", makeHash("overview", { range: "7d" }));
  await renderPage();
}

function signOut(message) {
  api.forgetKey();
  session.me = null;
  generation += 1;
  controller?.abort();
  $("page").replaceChildren();
  showSignIn(message);
}

// -- navigation, toolbar ---------------------------------------------------------------------------

function buildNav() {
  const { params } = parseHash();
  $("nav").replaceChildren(...PAGES.filter(allowed).map((page) =>
    h("a", { href: makeHash(page.id, params), dataset: { page: page.id }, text: page.title })));
}

function go(page, params) {
  const target = makeHash(page, params);
  if (target === location.hash) renderPage();
  else location.hash = target;
}

function setParams(changes) {
  const { page, params } = parseHash();
  go(page, { ...params, ...changes });
}

function syncToolbar(page, params, win) {
  for (const link of $("nav").querySelectorAll("a")) {
    link.classList.toggle("active", link.dataset.page === page.id);
    link.href = makeHash(link.dataset.page, params);
  }
  for (const button of $("ranges").querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset.range === win.range);
  }
  $("custom-range").hidden = win.range !== "custom" && !$("custom-range").dataset.open;
  for (const name of FILTERS) {
    const select = $(`filter-${name}`);
    const value = params[name] || "";
    if (value && ![...select.options].some((o) => o.value === value)) select.append(h("option", { value, text: value }));
    select.value = value;
  }
  const step = win.granularity === "hour" ? "hourly" : "daily";
  $("range-label").textContent = `${when(iso(win.since))} → ${when(iso(win.until))} · ${step} buckets`;
}

function fillSelect(name, values) {
  const select = $(`filter-${name}`);
  const current = select.value;
  select.replaceChildren(h("option", { value: "", text: "All" }), ...values.map((v) => h("option", { value: v, text: v })));
  if (current && !values.includes(current)) select.append(h("option", { value: current, text: current }));
  select.value = current;
}

async function loadOptions() {
  const me = session.me;
  const since = iso(new Date(Date.now() - 90 * 86400e3));
  const [teams, efficiency, userList] = await Promise.allSettled([
    me.can_read_all ? api.get("/teams") : Promise.resolve(me.team_id ? [{ team_id: me.team_id }] : []),
    api.get("/analytics/efficiency", { since }),
    me.can_read_all ? api.get("/users") : Promise.resolve(me.user_id ? [{ user_id: me.user_id, team_id: me.team_id, tier: me.tier }] : []),
  ]);
  const o = session.options;
  if (teams.status === "fulfilled") o.teams = teams.value.map((t) => t.team_id);
  if (efficiency.status === "fulfilled") {
    o.providers = [...new Set(efficiency.value.rows.map((r) => r.provider))].sort();
    o.models = [...new Set(efficiency.value.rows.map((r) => r.model))].sort();
  }
  if (userList.status === "fulfilled") o.users = userList.value;
  fillSelect("team_id", o.teams);
  fillSelect("provider", o.providers);
  fillSelect("model", o.models);
}

// -- rendering -------------------------------------------------------------------------------------

async function renderPage() {
  if (!session.me) return;
  const gen = ++generation;
  controller?.abort();
  controller = new AbortController();
  const signal = controller.signal;
  const { page: id, params } = parseHash();
  const page = pageOf(id);
  const win = windowOf(params);
  const filters = filtersOf(params);
  syncToolbar(page, params, win);
  document.body.dataset.state = "loading";
  document.body.dataset.page = page.id;
  document.body.dataset.since = iso(win.since);
  document.body.dataset.until = iso(win.until);
  document.title = `${page.title} · spendgate`;
  const started = performance.now();
  destroyCharts();
  const main = $("page");
  main.replaceChildren();
  const current = () => gen === generation;
  const ctx = {
    el: main,
    me: session.me,
    options: session.options,
    params,
    win,
    filters,
    current,
    get: (path, query = {}) => api.get(path, query, { signal }),
    post: (path, query = {}) => api.post(path, query, { signal }),
    /** The range and filters as query parameters (plus ``extra``). */
    query: (extra = {}) => ({ since: iso(win.since), until: iso(win.until), ...filters, ...extra }),
    setParams,
    refresh: () => renderPage(),
  };
  try {
    await page.module.render(ctx);
  } catch (error) {
    if (!current() || error.name === "AbortError") return;
    main.append(h("p", { class: "error card w12", text: error.message }));
  }
  if (!current()) return;
  renders += 1;
  document.body.dataset.renders = String(renders);
  document.body.dataset.renderMs = String(Math.round(performance.now() - started));
  document.body.dataset.state = "ready";
  $("updated").textContent = `Updated ${new Date().toISOString().slice(11, 19)} UTC`;
}

function startTimer() {
  clearInterval(timer);
  timer = setInterval(() => {
    const { params } = parseHash();
    if ($("live").checked && rangeOf(params) !== "custom" && !document.hidden && session.me) renderPage();
  }, REFRESH_MS);
}

// -- export ----------------------------------------------------------------------------------------

async function exportUsage(format) {
  // The window the page shows (not a new "now"), so the file holds exactly the events behind its figures.
  const { since, until } = document.body.dataset;
  const button = document.querySelector(`[data-export="${format}"]`);
  button.disabled = true;
  try {
    const name = `spendgate-usage-${since.slice(0, 10)}-${until.slice(0, 10)}.${format}`;
    await api.download("/export", { format, since, until, ...filtersOf(parseHash().params) }, name);
  } catch (error) {
    alert(`Export failed: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

// -- wiring ----------------------------------------------------------------------------------------

function localInput(date) {
  return date.toISOString().slice(0, 16);
}

function wire() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("signin-key").value.trim();
    try {
      await signIn(key);
      $("signin-key").value = "";
    } catch (error) {
      api.forgetKey();
      showSignIn(error.status === 401 ? "That key was not accepted (invalid, expired or revoked)." : error.message);
    }
  });
  $("signout").addEventListener("click", () => signOut());
  window.addEventListener("spendgate:unauthorized", (event) => {
    if (session.me) signOut(`Signed out: ${event.detail}`);
  });
  window.addEventListener("hashchange", () => renderPage());
  $("ranges").addEventListener("click", (event) => {
    const range = event.target.closest("button")?.dataset.range;
    if (!range) return;
    if (range === "custom") {
      const win = windowOf(parseHash().params);
      $("custom-since").value = localInput(win.since);
      $("custom-until").value = localInput(win.until);
      $("custom-range").dataset.open = "1";
      $("custom-range").hidden = false;
      return;
    }
    delete $("custom-range").dataset.open;
    setParams({ range, since: undefined, until: undefined });
  });
  $("custom-range").addEventListener("submit", (event) => {
    event.preventDefault();
    const since = new Date($("custom-since").value + "Z");
    const until = new Date($("custom-until").value + "Z");
    if (!(since < until)) {
      alert("The start must be before the end.");
      return;
    }
    setParams({ range: "custom", since: iso(since), until: iso(until) });
  });
  for (const name of FILTERS) {
    $(`filter-${name}`).addEventListener("change", (event) => setParams({ [name]: event.target.value || undefined }));
  }
  $("live").checked = localStorage.getItem("spendgate.live") !== "off";
  $("live").addEventListener("change", (event) => localStorage.setItem("spendgate.live", event.target.checked ? "on" : "off"));
  for (const button of document.querySelectorAll("[data-export]")) {
    button.addEventListener("click", () => exportUsage(button.dataset.export));
  }
}

async function boot() {
  wire();
  const key = api.savedKey();
  if (!key) {
    showSignIn();
    return;
  }
  try {
    await signIn(key);
  } catch (error) {
    api.forgetKey();
    showSignIn(error.status === 401 ? "Your saved key is no longer accepted: sign in again." : error.message);
  }
}

boot();
