// The alarm banner and the alarm marks on the IoT charts.
//
//   startAlarms(hub, {minutes: 10});
//
// Follows iot.alarm with hub.state("iot.alarm", "iot.alarms"): subscribe first, then iot.alarms(), again after every
// reconnect, so a page that was offline or reloaded shows every alarm still listed (raised, or cleared and not yet
// acknowledged). Each event (raised, cleared, acked, removed) reloads the list. The banner (#alarms, role=alert)
// has one item per alarm: source, condition, state, value, when; an admin gets an Acknowledge button
// (iot.alarm.ack). A raised alarm marks its source's chart: the figure gets data-alarm="raised" and the svg a
// vertical line (class chart-alarm) where it was raised (the left edge when that is before the chart's window).
import {el} from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 300;   // the chart's viewBox (chart.js)
const HEIGHT = 100;

function sourceName(source) {
  return source.startsWith("iot.device.") ? source.slice("iot.device.".length)
    : {"iot.serial.reader": "Serial sensor", "iot.odata.value": "OData value"}[source] || source;
}

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], {hour12: false});
}

export function alarmText(alarm) {
  const value = alarm.value === null || alarm.value === undefined ? "" : `, value ${alarm.value}`;
  const when = alarm.state === "raised" ? `raised at ${clockTime(alarm.raised_ts)}`
    : `raised at ${clockTime(alarm.raised_ts)}, cleared at ${clockTime(alarm.ts)}`;
  const acked = alarm.acked_by ? `; acknowledged by ${alarm.acked_by}` : "";
  return `${sourceName(alarm.source)} ${alarm.condition || ""}: ${when}${value}${acked}`;
}

export function startAlarms(hub, {minutes = 10, banner = null} = {}) {
  const box = banner || el("section", {id: "alarms", class: "alarm-banner", role: "alert", "aria-label": "Alarms",
                                       hidden: true, "data-count": "0"});
  if (!banner) {
    const panels = document.querySelector("#app .panels");
    panels.parentElement.insertBefore(box, panels);
  }
  const list = el("ul", {class: "alarm-list"});
  const note = el("p", {class: "alarm-note note"});
  box.append(el("h2", {text: "Alarms"}), list, note);
  let alarms = [];
  let loading = null;

  function render() {
    const admin = hub.status.user?.role === "admin";
    const items = alarms.map((alarm) => {
      const item = el("li", {class: "alarm", "data-source": alarm.source, "data-rule": alarm.rule,
                             "data-state": alarm.state, "data-acked": String(Boolean(alarm.acked_by))},
        el("strong", {text: alarm.state === "raised" ? "Alarm" : "Cleared"}), " ", alarmText(alarm));
      if (admin && !alarm.acked_by) {
        const button = el("button", {type: "button", class: "alarm-ack", text: "Acknowledge"});
        button.addEventListener("click", () => acknowledge(alarm, button));
        item.append(" ", button);
      }
      return item;
    });
    list.replaceChildren(...items);
    box.hidden = alarms.length === 0;
    box.dataset.count = String(alarms.length);
    markCharts();
  }

  async function acknowledge(alarm, button) {
    button.disabled = true;
    note.textContent = "";
    try {
      await hub.call("iot.alarm.ack", [alarm.source, alarm.rule]);
      await reload();
    } catch (err) {
      button.disabled = false;
      note.textContent = `Not acknowledged: ${err.message || err.error}`;
    }
  }

  async function reload() {
    if (loading) return loading;
    loading = (async () => {
      try {
        const answer = await hub.call("iot.alarms");
        if (answer && Array.isArray(answer.value)) {
          alarms = answer.value;
          render();
        }
      } catch (err) {
        if (err.error !== "reactive.error.offline") note.textContent = `Alarms unavailable: ${err.message || err.error}`;
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  // a mark per raised alarm on its source's chart (charts appear later than alarms: also redrawn on a timer)
  function markCharts() {
    const end = Date.now();
    for (const figure of document.querySelectorAll("figure.chart-card")) {
      const start = end - (Number(figure.dataset.range) || minutes) * 60000;   // the range the chart shows
      const svg = figure.querySelector("svg.chart");
      if (!svg) continue;
      for (const old of svg.querySelectorAll(".chart-alarm")) old.remove();
      const raised = alarms.filter((alarm) => alarm.source === figure.dataset.source && alarm.state === "raised");
      figure.dataset.alarm = raised.length ? "raised" : "none";
      for (const alarm of raised) {
        const x = (Math.min(Math.max(alarm.raised_ts, start), end) - start) / (end - start) * WIDTH;
        const line = document.createElementNS(SVG, "line");
        for (const [name, value] of Object.entries({class: "chart-alarm", x1: x.toFixed(1), x2: x.toFixed(1), y1: 0,
                                                     y2: HEIGHT, "vector-effect": "non-scaling-stroke",
                                                     "data-rule": alarm.rule})) {
          line.setAttribute(name, String(value));
        }
        svg.append(line);
      }
    }
  }

  // any event on iot.alarm (or the first answer, or a resync after a reconnect) reloads the list
  hub.state("iot.alarm", "iot.alarms", (state) => {
    if (Array.isArray(state.value)) {
      alarms = state.value;
      render();
    } else {
      reload();
    }
  }, (error) => {
    note.textContent = error.error === "wamp.error.no_such_procedure" ? "" : `Alarms unavailable: ${error.message || error.error}`;
  });
  setInterval(markCharts, 5000);
  return {reload, alarms: () => alarms.slice()};
}
