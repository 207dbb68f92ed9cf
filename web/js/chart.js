// A line chart of a series' last minutes, drawn as SVG by the page (no library, no inline styles: the CSP allows
// neither; colours and strokes come from hub.css through class names).
//
//   const chart = createChart(container, {minutes: 10, label: "Serial sensor"});
//   chart.draw(points);            // [{value, seq, ts}], oldest first; non-numeric and stale states are left out;
//                                  // returns summarize(points): {count, latest, min, max} of the drawn points
//   chart.setMinutes(60 * 24);     // the time range shown (the x axis and the label)
//   chart.draw(rows, {band: true}); // rollup rows of iot.history (value = avg, min, max): the avg line over a
//                                  // min..max band (a <polygon class="chart-band">); min/max come from the band
//
// The svg holds one <polyline> whose `points` attribute has one x,y pair per numeric reading (data-count says
// how many) and has role="img" with an aria-label that says what it shows; the axis bounds are HTML beside it.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 100;
const PAD = 3;   // room above the highest and below the lowest point for the line's width

function svgEl(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// The value of a state as a number for the chart (numbers, and numeric text such as OData's "42"), else null;
// null too for a state marked stale (the source went away: it repeats the last value, it is no reading).
export function numeric(state) {
  if (!state || state.stale === true) return null;
  const value = state.value;
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" && value.trim() !== "") {
    const number = Number(value);
    return Number.isFinite(number) ? number : null;
  }
  return null;
}

export function summarize(points) {
  let count = 0, min = null, max = null, latest = null;
  for (const point of points) {
    const value = numeric(point);
    if (value === null) continue;
    count++;
    min = min === null ? value : Math.min(min, value);
    max = max === null ? value : Math.max(max, value);
    latest = point;
  }
  return {count, min, max, latest};
}

/** "1 reading", "8 readings": a count of readings as the chart and its summary say it. */
export function readingsText(count) {
  return count === 1 ? "1 reading" : `${count} readings`;
}

function label(value) {
  if (value === null) return "";
  return Math.abs(value) >= 1000 || Number.isInteger(value) ? String(Math.round(value)) : value.toPrecision(3);
}

/** "10 minutes", "1 hour", "2 days": a chart's time range as its label says it. */
export function rangeText(minutes) {
  const [count, unit] = minutes >= 2880 || (minutes >= 1440 && minutes % 1440 === 0) ? [minutes / 1440, "day"]
    : minutes >= 120 || (minutes >= 60 && minutes % 60 === 0) ? [minutes / 60, "hour"] : [minutes, "minute"];
  const rounded = Math.round(count * 10) / 10;
  return `${rounded} ${unit}${rounded === 1 ? "" : "s"}`;
}

function startText(minutes) {
  return minutes >= 2880 ? `−${Math.round(minutes / 1440)} d` : minutes >= 120 ? `−${Math.round(minutes / 60)} h`
    : `−${minutes} min`;
}

export function createChart(container, {minutes = 10, label: title = "", now = () => Date.now()} = {}) {
  // the axis labels are HTML beside the svg (its aspect ratio is not kept, text in it would be stretched)
  const box = document.createElement("div");
  box.className = "chart-box";
  const axis = (name, text = "") => {
    const node = document.createElement("span");
    node.className = name;
    node.setAttribute("aria-hidden", "true");
    node.textContent = text;
    return node;
  };
  const maxText = axis("chart-max");
  const minText = axis("chart-min");
  const times = axis("chart-time");
  const startLabel = axis("chart-start", startText(minutes));
  times.append(startLabel, axis("chart-end", "now"));
  const svg = svgEl("svg", {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img",
                            preserveAspectRatio: "none", "aria-label": `${title}: no readings yet`});
  const plot = {left: 0, right: WIDTH, top: PAD, bottom: HEIGHT - PAD};
  svg.append(svgEl("rect", {class: "chart-frame", x: 0, y: 0, width: WIDTH, height: HEIGHT,
                            "vector-effect": "non-scaling-stroke"}));
  const band = svgEl("polygon", {class: "chart-band", points: "", "data-count": 0});
  svg.append(band);
  const line = svgEl("polyline", {class: "chart-line", points: "", fill: "none",
                                  "vector-effect": "non-scaling-stroke", "data-count": 0});
  svg.append(line);
  box.append(maxText, svg, minText, times);
  container.append(box);

  function setMinutes(value) {
    minutes = value;
    startLabel.textContent = startText(minutes);
  }

  function draw(points, {band: banded = false} = {}) {
    const end = now();
    const start = end - minutes * 60000;
    const summary = summarize(points);
    const {count, latest} = summary;
    let {min, max} = summary;
    const rows = banded ? points.filter((row) => numeric(row) !== null && Number.isFinite(row.min)
                                                && Number.isFinite(row.max)) : [];
    if (rows.length) {
      min = Math.min(...rows.map((row) => row.min));
      max = Math.max(...rows.map((row) => row.max));
    }
    const low = min === null ? 0 : min;
    const high = max === null ? 1 : (max === min ? max + 1 : max);
    const span = high - low;
    const xOf = (ts) => plot.left + (Math.min(Math.max(ts, start), end) - start) / (end - start) * (plot.right - plot.left);
    const yOf = (value) => plot.bottom - (value - low) / span * (plot.bottom - plot.top);
    const xy = [];
    for (const point of points) {
      const value = numeric(point);
      if (value === null) continue;
      xy.push(`${xOf(point.ts).toFixed(1)},${yOf(value).toFixed(1)}`);
    }
    const upper = rows.map((row) => `${xOf(row.ts).toFixed(1)},${yOf(row.max).toFixed(1)}`);
    const lower = rows.map((row) => `${xOf(row.ts).toFixed(1)},${yOf(row.min).toFixed(1)}`).reverse();
    band.setAttribute("points", upper.concat(lower).join(" "));
    band.setAttribute("data-count", String(rows.length));
    line.setAttribute("points", xy.join(" "));
    line.setAttribute("data-count", String(xy.length));
    line.setAttribute("data-last-seq", latest ? String(latest.seq) : "");
    maxText.textContent = label(max);
    minText.textContent = label(min);
    const range = rangeText(minutes);
    const what = banded ? `averages of ${count === 1 ? "1 period" : `${count} periods`} with their range`
      : readingsText(count);
    svg.setAttribute("aria-label", count === 0 ? `${title}: no readings in the last ${range}`
      : `${title}: line chart of ${what} in the last ${range}, from ${label(min)} to ${label(max)}, latest ${label(numeric(latest))}`);
    return {count, min, max, latest};
  }

  return {svg, line, band, draw, setMinutes};
}
