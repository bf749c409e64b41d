// Alerts: open ones (whenever they fired) and those fired in the range, acknowledge, and each one's deliveries.
import { card, empty, fill, h, kpis, table } from "../dom.js";
import { int, when } from "../format.js";
import { into } from "./common.js";

function deliveries(ctx, body, alert) {
  return into(ctx, body, ctx.get(`/alerts/${encodeURIComponent(alert.id)}/deliveries`), (d) => {
    if (!d.deliveries.length) return empty(body, "No notifications were sent for this alert.");
    fill(body, h("p", { class: "muted", text: alert.title }), table([
      { key: "channel", label: "Channel", render: (x) => x.channel },
      { key: "event", label: "Event", render: (x) => `${x.event}${x.level ? ` (level ${x.level})` : ""}` },
      { key: "status", label: "Status", render: (x) => h("span", { class: `badge ${x.status}`, text: x.status }) },
      { key: "attempts", label: "Attempts", num: true, render: (x) => int(x.attempts) },
      { key: "sent", label: "Sent", render: (x) => when(x.sent_at) },
      { key: "error", label: "Last error", render: (x) => x.last_error || "—" },
    ], d.deliveries, { rowAttrs: (x) => ({ dataset: { delivery: String(x.id) } }) }));
  });
}

export async function render(ctx) {
  const { el } = ctx;
  const slot = h("div", { class: "kpis" }, h("div", { class: "kpi muted", text: "Loading alerts…" }));
  el.append(slot);
  const list = card(el, { title: "Alerts", hint: "open ones, and every alert fired in the range; newest first", id: "alerts", width: 12 });
  const sent = card(el, { title: "Deliveries", hint: "of the selected alert", id: "deliveries", width: 12 });
  const found = Promise.all([ctx.get("/alerts", { status: "open", limit: 200 }), ctx.get("/alerts", { since: ctx.query().since, limit: 200 })]);
  let chosen = null;
  await into(ctx, list, found, ([open, recent]) => {
    const byId = new Map([...open.alerts, ...recent.alerts].map((a) => [a.id, a]));
    const alerts = [...byId.values()].sort((a, b) => b.fired_at.localeCompare(a.fired_at));
    const count = (status) => alerts.filter((a) => a.status === status).length;
    slot.replaceWith(kpis(h("div"), [
      { key: "firing", label: "Firing", value: int(count("firing")) },
      { key: "acknowledged", label: "Acknowledged", value: int(count("acknowledged")) },
      { key: "resolved", label: "Resolved in range", value: int(count("resolved")) },
    ]));
    if (!alerts.length) {
      empty(list, "No open alerts, and none fired in this range.");
      empty(sent, "Select an alert to see its deliveries.");
      return;
    }
    chosen = alerts.find((a) => a.id === ctx.params.alert) || alerts[0];
    const ack = async (alert, button) => {
      button.disabled = true;
      button.textContent = "Acknowledging…";
      try {
        await ctx.post(`/alerts/${encodeURIComponent(alert.id)}/ack`);
        ctx.refresh();
      } catch (error) {
        button.disabled = false;
        button.textContent = "Acknowledge";
        window.alert(`Could not acknowledge: ${error.message}`);
      }
    };
    fill(list, table([
      { key: "severity", label: "Severity", render: (a) => h("span", { class: `badge ${a.severity}`, text: a.severity }) },
      { key: "title", label: "Alert", render: (a) => h("div", {}, h("strong", { text: a.title }), h("div", { class: "muted mono", text: `${a.rule} · ${a.scope}` })) },
      { key: "status", label: "Status", render: (a) => h("span", { class: `badge ${a.status}`, dataset: { status: a.status }, text: a.status }) },
      { key: "fired", label: "Fired", render: (a) => when(a.fired_at) },
      { key: "seen", label: "Last seen", render: (a) => when(a.last_seen_at) },
      { key: "n", label: "Times", num: true, render: (a) => int(a.occurrences) },
      { key: "by", label: "Handled by", render: (a) => a.acknowledged_by || a.resolved_by || "—" },
      { key: "action", label: "", render: (a) => (a.status === "firing" && ctx.me.role === "admin"
        ? h("button", { type: "button", class: "small primary", dataset: { ack: a.id }, text: "Acknowledge", onclick: (event) => { event.stopPropagation(); ack(a, event.currentTarget); } })
        : "") },
    ], alerts, {
      rowAttrs: (a) => ({ class: `clickable${a.id === chosen.id ? " selected" : ""}`, dataset: { alert: a.id }, onclick: () => ctx.setParams({ alert: a.id }) }),
    }));
  });
  if (chosen && ctx.current()) await deliveries(ctx, sent, chosen);
}
