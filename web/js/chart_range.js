// The time range of a dashboard chart and the resolution it is read in: up to 2 hours the raw readings (hub.series,
// live), up to 2 days the 1-minute rollups, beyond that the 1-hour rollups of iot.history (min, max, avg, count,
// last per bucket; see docs/iot.md). A month of hours is 720 rows: one iot.history call.
//
//   resolutionFor(43200)                         // "1h"
//   const {rows, resolution} = await loadRollups(hub, "iot.device.x", "1h", 43200);
//   figcaption.append(rangePicker(10, (minutes) => ...));
import {el} from "./ui.js";

export const RANGES = [
  {minutes: 10, text: "10 min"}, {minutes: 60, text: "1 hour"}, {minutes: 1440, text: "1 day"},
  {minutes: 10080, text: "7 days"}, {minutes: 43200, text: "30 days"}];
export const RAW_UP_TO = 120;          // minutes of raw readings at most
export const MINUTES_UP_TO = 2880;     // minutes of 1-minute rollups at most; beyond, 1-hour rollups
export const REFRESH_MS = {"1m": 30000, "1h": 300000};   // how often a rollup chart reads its rows again
const PAGE = 1000;                     // rows per iot.history call (the most the hub gives at once)
const MAX_PAGES = 20;

/** "raw", "1m" or "1h": the resolution a chart of the last `minutes` is read in. */
export function resolutionFor(minutes) {
  return minutes <= RAW_UP_TO ? "raw" : minutes <= MINUTES_UP_TO ? "1m" : "1h";
}

/**
 * Every rollup row of `source` reaching into the last `minutes`, oldest first, paging by the bucket cursor
 * (after_seq = the last row's seq); {rows, resolution (as the hub answered), pruned}.
 */
export async function loadRollups(hub, source, resolution, minutes) {
  const rows = [];
  let after = null, answered = null, pruned = false;
  for (let page = 0; page < MAX_PAGES; page++) {
    const kwargs = {resolution, minutes, limit: PAGE};
    if (after !== null) kwargs.after_seq = after;
    const answer = await hub.call("iot.history", [source], kwargs);
    if (!answer || !Array.isArray(answer.states)) {
      throw {error: "reactive.error.client", message: "iot.history answered something that is no history"};
    }
    answered = answer.resolution || "raw";
    pruned = pruned || Boolean(answer.pruned);
    rows.push(...answer.states);
    if (!answer.more || answer.states.length === 0) break;
    after = answer.states[answer.states.length - 1].seq;
  }
  return {rows, resolution: answered, pruned};
}

/** A labelled <select> of RANGES; `onChange(minutes)` when the user picks another. */
export function rangePicker(minutes, onChange) {
  const select = el("select", {class: "chart-range"});
  for (const range of RANGES) {
    const option = el("option", {value: String(range.minutes), text: range.text});
    option.selected = range.minutes === minutes;
    select.append(option);
  }
  select.addEventListener("change", () => onChange(Number(select.value)));
  return el("label", {class: "chart-range-label"}, "Range ", select);
}
