// The dashboard: clock, shared counter, serial and OData values, the greeting, and for every IoT source a live
// chart of its last minutes (hub.series) with a text summary, plus the list of sources from iot.sources. Each chart
// has a range picker: longer ranges are drawn from iot.history's 1-minute or 1-hour rollups (chart_range.js).
import {startAlarms} from "./alarms.js";
import {createChart, numeric, rangeText, readingsText} from "./chart.js";
import {REFRESH_MS, loadRollups, rangePicker, resolutionFor} from "./chart_range.js";
import {bindState, el, startPage} from "./ui.js";

const $ = (id) => document.getElementById(id);
const greeting = $("greeting");
let profile = null;

function greet(user) {
  const name = (profile && (profile.first_name || profile.username)) || (user && (user.first_name || user.username)) || "";
  greeting.textContent = name ? `Hello ${name}` : "Hello";
}

const hub = startPage({
  onUser: (user) => {
    profile = null;
    $("admin-link").hidden = user.role !== "admin";
    greet(user);
  },
});
// Offline (connecting, waiting to reconnect): what needs the hub is disabled, what the hub last said is "unknown"
hub.onStatus((status) => {
  const online = status.state === "online";
  document.body.dataset.online = String(online);
  $("click").disabled = !online;
  $("click").title = online ? "" : "Needs the hub: waiting to reconnect";
  if (!online) $("click-error").textContent = "";
});

bindState(hub, "time.tic", "time.get", $("clock"));
bindState(hub, "counter.changed", "counter.get", $("count"));
bindState(hub, "iot.serial.reader", "iot.serial.get", $("serial"));
bindState(hub, "iot.odata.value", "iot.odata.get", $("odata"));
// the profile (end-to-end encrypted when the hub has E2E_ENCRYPTION on): a refused one shows in its panel and
// the greeting falls back to the name from the login, never to an older profile
function describeProfile(state) {
  const value = state.value;
  if (!value || typeof value !== "object") return "no profile on this hub yet";
  const name = [value.first_name, value.last_name].filter(Boolean).join(" ") || value.username || "";
  return value.email ? `${name} · ${value.email}` : name;
}

bindState(hub, "users.changed", "users.me", $("profile"), describeProfile, {
  onValue: (state) => {
    profile = state.value && typeof state.value === "object" ? state.value : null;
    greet(hub.status.user);
  },
  onUnavailable: () => {
    profile = null;
    greet(hub.status.user);
  },
});

$("click").addEventListener("click", async () => {
  $("click-error").textContent = "";
  try {
    await hub.call("counter.click", [], {n: 1});
  } catch (err) {
    $("click-error").textContent = err.error === "wamp.error.no_such_procedure"
      ? "The counter is unavailable." : `Click failed: ${err.message}`;
  }
});

// ---- IoT charts and the source list ---------------------------------------

const WINDOW_MINUTES = 10;
const SOURCES_EVERY = 10000;     // ms between iot.sources refreshes while online
const cards = new Map();         // source -> chart card (see sourceCard)
let sourcesTimer = null;
startAlarms(hub, {minutes: WINDOW_MINUTES});   // the alarm banner above the panels, marks on the charts

function sourceName(source) {
  if (source.source.startsWith("iot.device.")) return source.source.slice("iot.device.".length);
  return {serial: "Serial sensor", odata: "OData value"}[source.kind] || source.source;
}

function clockTime(ms) {
  return typeof ms === "number" ? new Date(ms).toLocaleTimeString([], {hour12: false}) : "never";
}

function ago(ms, now = Date.now()) {
  if (typeof ms !== "number") return "never";
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return clockTime(ms);
}

// One figure per source: heading, stale badge (text, not only colour), the SVG chart and a text summary.
function sourceCard(source) {
  const title = el("h3", {text: sourceName(source)});
  const badge = el("p", {class: "stale-badge", hidden: true});
  const summary = el("p", {class: "chart-summary"}, "loading…");
  const note = el("p", {class: "chart-note note"});
  const figure = el("figure", {class: "chart-card", "data-source": source.source, "data-kind": source.kind,
                               "data-stale": "false", "data-count": "0", "data-range": String(WINDOW_MINUTES),
                               "data-resolution": "raw"});
  const caption = el("figcaption", {}, title, badge);
  figure.append(caption);
  const chart = createChart(figure, {minutes: WINDOW_MINUTES, label: sourceName(source)});
  figure.append(summary, note);
  const card = {figure, chart, badge, summary, note, info: source, infoAt: Date.now(), freshAt: 0, points: [],
                stale: null, frame: null, minutes: WINDOW_MINUTES, resolution: "raw", rows: [], series: null,
                refresh: null, loads: 0};
  caption.append(rangePicker(WINDOW_MINUTES, (minutes) => setRange(card, minutes)));
  watchRaw(card);
  return card;
}

// The range shown: raw readings live from hub.series, or the rollup rows of iot.history read again now and then.
function setRange(card, minutes) {
  card.minutes = minutes;
  card.chart.setMinutes(minutes);
  card.figure.dataset.range = String(minutes);
  if (card.series) card.series.stop();
  card.series = null;
  clearInterval(card.refresh);
  card.refresh = null;
  card.points = [];
  card.rows = [];
  const resolution = resolutionFor(minutes);
  if (resolution === "raw") {
    watchRaw(card);
  } else {
    loadRange(card);
    card.refresh = setInterval(() => loadRange(card), REFRESH_MS[resolution]);
  }
  schedule(card);
}

async function loadRange(card) {
  const minutes = card.minutes, resolution = resolutionFor(minutes), load = ++card.loads;
  card.figure.dataset.loading = "true";
  try {
    const answer = await loadRollups(hub, card.info.source, resolution, minutes);
    if (load !== card.loads || card.minutes !== minutes) return;   // another range was picked meanwhile
    card.rows = answer.rows;
    card.resolution = answer.resolution;
    card.note.textContent = answer.pruned ? "Older periods of this range are no longer kept." : "";
    markOnce(`hub:rollups:${card.info.source}:${minutes}`);
  } catch (err) {
    if (load === card.loads) card.note.textContent = `The ${rangeText(minutes)} cannot be shown: ${err.message}`;
  } finally {
    if (load === card.loads) delete card.figure.dataset.loading;
  }
  schedule(card);
}

function watchRaw(card) {
  const source = card.info;
  const note = card.note;
  card.resolution = "raw";
  card.series = hub.series(source.source, {
    minutes: card.minutes,
    onChange: (points, change) => {
      if (points.length) markOnce(`hub:series-points:${source.source}`);
      card.points = points;
      note.textContent = "";
      if (!change.reset && change.added.some((point) => point.stale !== true)) card.freshAt = Date.now();
      schedule(card);
    },
    onError: (error) => {
      // the history or the live events cannot be had (not on this hub, not allowed): say so beside the chart
      note.textContent = error.error === "wamp.error.no_such_procedure"
        ? "No history on this hub: live readings only." : `Not all readings can be shown: ${error.message}`;
    },
  });
}

function schedule(card) {
  if (card.frame !== null) return;
  card.frame = requestAnimationFrame(() => { card.frame = null; render(card); });
}

// Stale: the newest reading says so, or iot.sources says the source is not live and nothing fresh came since.
function isStale(card) {
  const latest = card.points[card.points.length - 1];
  if (latest && latest.stale === true) return true;
  return card.info.live === false && card.freshAt <= card.infoAt;
}

// performance marks for benchmarks (bench/iot_chart.py): the first time each step happens on this page
const marked = new Set();
function markOnce(name) {
  if (marked.has(name) || !globalThis.performance?.mark) return;
  marked.add(name);
  performance.mark(name);
}

function render(card) {
  const rollups = card.resolution !== "raw";
  const {count, min, max, latest} = rollups ? card.chart.draw(card.rows, {band: true}) : card.chart.draw(card.points);
  if (count > 0) markOnce(`hub:chart-drawn:${card.info.source}`);
  card.figure.dataset.resolution = card.resolution;
  card.figure.dataset.count = String(count);
  card.figure.dataset.lastSeq = latest ? String(latest.seq) : "";
  const stale = isStale(card);
  card.figure.dataset.stale = String(stale);
  const lastSeen = latest ? (rollups ? latest.last_ts : latest.ts) : card.info.last_seen;
  card.badge.hidden = !stale;
  card.badge.textContent = `Stale: no fresh reading since ${clockTime(lastSeen)}`;
  if (card.stale !== null && card.stale !== stale) {
    $("iot-announce").textContent = `${sourceName(card.info)} is ${stale ? "stale" : "live again"}.`;
  }
  card.stale = stale;
  const range = rangeText(card.minutes);
  const readings = rollups ? card.rows.reduce((total, row) => total + (row.count || 0), 0) : count;
  const per = {"1m": "minute", "1h": "hour"}[card.resolution];
  card.summary.textContent = count === 0
    ? `No readings in the last ${range}.`
    : rollups
      ? `Latest ${latest.last} at ${clockTime(latest.last_ts)}; min ${min}, max ${max} over ${readingsText(readings)} in the last ${range} (average per ${per}).`
      : `Latest ${numeric(latest)} at ${clockTime(latest.ts)}; min ${min}, max ${max} over ${readingsText(count)} in the last ${range}.`;
}

let shownSources = [];   // the last iot.sources answer, shown again as "unknown" while the hub is offline

// The source table; `known` false (the hub is offline): no source's state is known, last seen as a clock time.
function renderSources(sources, known = true) {
  shownSources = sources;
  const rows = sources.map((source) => {
    const state = source.live ? "Online" : "Offline";
    const live = known ? String(Boolean(source.live)) : "unknown";
    return el("tr", {"data-source": source.source, "data-live": live},
      el("th", {scope: "row", text: sourceName(source)}),
      el("td", {text: source.kind}),
      el("td", {text: known ? ago(source.last_seen) : clockTime(source.last_seen),
                title: clockTime(source.last_seen)}),
      known ? el("td", {class: source.live ? "live" : "offline", text: source.live ? state : `${state} (stale)`})
            : el("td", {class: "unknown", text: "Unknown (hub offline)"}));
  });
  $("sources").tBodies[0].replaceChildren(...rows);
  if (known) $("sources").dataset.loaded = "true";
  $("sources").dataset.state = known ? "known" : "unknown";
}

async function loadSources() {
  let sources;
  try {
    sources = await hub.call("iot.sources");
  } catch (err) {
    $("iot-note").textContent = err.error === "wamp.error.no_such_procedure"
      ? "History is not on this hub." : err.error === "reactive.error.offline" ? "" : `Sources unavailable: ${err.message}`;
    return;
  }
  if (!Array.isArray(sources)) return;
  markOnce("hub:sources");
  $("iot-note").textContent = sources.length ? "" : "No IoT source has reported yet.";
  const now = Date.now();
  for (const source of sources) {
    if (!source || typeof source.source !== "string") continue;
    let card = cards.get(source.source);
    if (!card) {
      card = sourceCard(source);
      cards.set(source.source, card);
      $("charts").append(card.figure);
    }
    card.info = source;
    card.infoAt = now;
    schedule(card);
  }
  // an answer that arrives after the hub went away is shown as unknown
  renderSources(sources, hub.status.state === "online");
}

hub.onStatus((status) => {
  if (status.state === "online") {
    markOnce("hub:online");
    loadSources();
    for (const card of cards.values()) if (card.refresh !== null) loadRange(card);   // rollup ranges read again
    if (sourcesTimer === null) sourcesTimer = setInterval(loadSources, SOURCES_EVERY);
  } else {
    renderSources(shownSources, false);
    if (sourcesTimer !== null && status.state === "signed_out") {
      clearInterval(sourcesTimer);
      sourcesTimer = null;
    }
  }
});
// the window slides on even when nothing arrives
setInterval(() => {
  for (const card of cards.values()) {
    if (card.series) card.points = card.series.points();
    schedule(card);
  }
}, 5000);

hub.connect();
