// Chart.js (vendored, window.Chart) with the dashboard's defaults. Every chart is registered so a page
// re-render destroys the previous ones. Money datasets keep the exact strings for their tooltips.
import { int, money } from "./format.js";

const charts = new Set();
export const PALETTE = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6", "#f97316", "#64748b", "#ec4899"];

function lib() {
  const Chart = window.Chart;
  if (!Chart) throw new Error("the chart library did not load");
  if (!lib.ready) {
    Chart.defaults.animation = false;
    Chart.defaults.responsive = true;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
    Chart.defaults.color = "#667085";
    Chart.defaults.borderColor = "#e3e6eb";
    Chart.defaults.plugins.legend.labels.boxWidth = 12;
    lib.ready = true;
  }
  return Chart;
}

export function destroyCharts() {
  for (const chart of charts) chart.destroy();
  charts.clear();
}

function make(canvas, config) {
  const Chart = lib();
  const chart = new Chart(canvas, config);
  charts.add(chart);
  return chart;
}

function tooltipLabel(currency) {
  return (ctx) => {
    const exact = ctx.dataset.exact?.[ctx.dataIndex];
    const value = exact !== undefined && exact !== null ? money(exact, currency) : currency ? money(ctx.raw, currency) : int(ctx.raw);
    return `${ctx.dataset.label ? ctx.dataset.label + ": " : ""}${value}`;
  };
}

/** A line (or area) chart over time buckets. series: [{label, values, exact?, dashed?, fill?}] */
export function line(canvas, { labels, series, currency, stacked = false, yTitle }) {
  return make(canvas, {
    type: "line",
    data: {
      labels,
      datasets: series.map((s, i) => ({
        label: s.label,
        data: s.values,
        exact: s.exact,
        borderColor: s.color || PALETTE[i % PALETTE.length],
        backgroundColor: (s.color || PALETTE[i % PALETTE.length]) + (s.fill ? "33" : "ff"),
        fill: s.fill ?? false,
        borderDash: s.dashed ? [6, 4] : undefined,
        borderWidth: s.hidden ? 0 : 2,
        pointRadius: labels.length > 60 ? 0 : 2,
        spanGaps: false,
        tension: 0.2,
      })),
    },
    options: {
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { display: series.length > 1 }, tooltip: { callbacks: { label: tooltipLabel(currency) } } },
      scales: {
        x: { ticks: { maxTicksLimit: 10, autoSkip: true, maxRotation: 0 } },
        y: { beginAtZero: true, stacked, title: { display: Boolean(yTitle), text: yTitle } },
      },
    },
  });
}

/** A bar chart: values (numbers) with optional exact strings for the tooltips. */
export function bars(canvas, { labels, values, exact, label, currency, horizontal = false, colors }) {
  return make(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: [{ label, data: values, exact, backgroundColor: colors || labels.map((_, i) => PALETTE[i % PALETTE.length]), borderRadius: 4 }],
    },
    options: {
      indexAxis: horizontal ? "y" : "x",
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: tooltipLabel(currency) } } },
      scales: { x: { beginAtZero: true, ticks: { autoSkip: false } }, y: { beginAtZero: true } },
    },
  });
}

export function doughnut(canvas, { labels, values, exact, currency }) {
  return make(canvas, {
    type: "doughnut",
    data: { labels, datasets: [{ data: values, exact, backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length]) }] },
    options: { plugins: { legend: { position: "right" }, tooltip: { callbacks: { label: tooltipLabel(currency) } } } },
  });
}
