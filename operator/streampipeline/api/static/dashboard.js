// The dashboard: polls the service's own JSON endpoints and redraws the charts.
// Everything it shows comes from /api/v1/metrics/timeseries, /api/v1/status and
// /api/v1/datasets/*, so a person sees exactly what a script would read.
"use strict";
const REFRESH_MS = 2000;
const fmt = new Intl.NumberFormat("en-US");
const charts = {};

function make(id, type, options) {
  const ctx = document.getElementById(id);
  charts[id] = new Chart(ctx, {
    type,
    data: { labels: [], datasets: [] },
    options: Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, options || {}),
  });
  return charts[id];
}

function setData(id, labels, datasets) {
  const c = charts[id];
  c.data.labels = labels;
  c.data.datasets = datasets;
  c.update("none");
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

function time(t) {
  return new Date(t * 1000).toLocaleTimeString();
}

async function refreshTimeseries() {
  const ts = await getJSON("/api/v1/metrics/timeseries");
  const s = ts.samples;
  const labels = s.map((p) => time(p.t));
  setData("chart-rates", labels, [
    { label: "produced / s", data: s.map((p) => p.produced_per_s), borderColor: "#1565c0", pointRadius: 0 },
    { label: "processed / s", data: s.map((p) => p.processed_per_s), borderColor: "#2e7d32", pointRadius: 0 },
  ]);
  setData("chart-lag", labels, [
    { label: "lag", data: s.map((p) => p.lag), borderColor: "#ef6c00", backgroundColor: "#ef6c0033", fill: true, pointRadius: 0 },
  ]);
}

async function refreshStatus() {
  const st = await getJSON("/api/v1/status");
  document.getElementById("pipeline").textContent = st.pipeline;
  const k = document.getElementById("kafka");
  k.textContent = "Kafka: " + (st.kafka.reachable ? "up" : "down");
  k.className = "badge " + (st.kafka.reachable ? "ok" : "down");
  const produced = Object.values(st.topics).reduce((a, t) => a + (t ? t.end_offset_total : 0), 0);
  const p = st.processor || { processed: {}, quarantined: {}, last_batch: null };
  const processed = Object.values(p.processed).reduce((a, b) => a + b, 0);
  const lag = Object.values(st.lag).reduce((a, b) => a + b, 0);
  const q = p.quarantined;
  document.getElementById("produced").textContent = fmt.format(produced);
  document.getElementById("processed").textContent = fmt.format(processed);
  document.getElementById("lag").textContent = fmt.format(lag);
  document.getElementById("quarantined").textContent = fmt.format(Object.values(q).reduce((a, b) => a + b, 0));
  document.getElementById("batch").textContent = p.last_batch === null ? "–" : p.last_batch;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  const reasons = Object.keys(q).sort();
  setData("chart-quarantine", reasons, [{ label: "records", data: reasons.map((r) => q[r]), backgroundColor: "#c62828" }]);
}

async function refreshAggregates() {
  const cat = await getJSON("/api/v1/datasets/by_category?limit=100");
  const rows = cat.rows.slice().sort((a, b) => Number(b.total_amount) - Number(a.total_amount));
  setData("chart-category", rows.map((r) => r.category), [
    { label: "total amount", data: rows.map((r) => Number(r.total_amount)), backgroundColor: "#1565c0" },
  ]);
  const city = await getJSON("/api/v1/datasets/by_city?limit=1000");
  const cities = city.rows.slice().sort((a, b) => b.transaction_count - a.transaction_count).slice(0, 12);
  setData("chart-city", cities.map((r) => r.city), [
    { label: "transactions", data: cities.map((r) => r.transaction_count), backgroundColor: "#6a1b9a" },
  ]);
  const per = await getJSON("/api/v1/datasets/by_period_state_age_band?limit=1000");
  const top = per.rows.slice().sort((a, b) => b.transaction_count - a.transaction_count).slice(0, 15);
  setData(
    "chart-period",
    top.map((r) => `${r.year}-${String(r.month).padStart(2, "0")} ${r.state} ${r.age_band}`),
    [{ label: "transactions", data: top.map((r) => r.transaction_count), backgroundColor: "#00838f" }],
  );
}

async function refresh() {
  const jobs = [refreshTimeseries(), refreshStatus(), refreshAggregates()];
  const results = await Promise.allSettled(jobs);
  const failed = results.filter((r) => r.status === "rejected");
  document.body.dataset.errors = String(failed.length);
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}

function init() {
  const line = { scales: { y: { beginAtZero: true } } };
  make("chart-rates", "line", line);
  make("chart-lag", "line", line);
  make("chart-quarantine", "bar", { indexAxis: "y", plugins: { legend: { display: false } } });
  make("chart-category", "bar", { plugins: { legend: { display: false } } });
  make("chart-city", "bar", { indexAxis: "y", plugins: { legend: { display: false } } });
  make("chart-period", "bar", { plugins: { legend: { display: false } } });
  window.streampipelineCharts = charts; // for the browser test: what each chart holds
  refresh();
  setInterval(refresh, REFRESH_MS);
}

init();
