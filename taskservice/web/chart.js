// Tasks created / completed / failed per second, drawn as inline SVG (no chart library).

const SVG = "http://www.w3.org/2000/svg";
const SERIES = ["created", "completed", "failed"];
const STATUS_SERIES = { NEW: "created", COMPLETED: "completed", FAILED: "failed" };
const HEIGHT = 160;
const PAD = { left: 34, right: 8, top: 10, bottom: 22 };

// Counts per second keyed by epoch second, on the server's clock (events carry server times).
export function createThroughput(minutes) {
  return { minutes, buckets: new Map(), until: 0, skewMs: 0 };
}

function bucket(model, second) {
  let counts = model.buckets.get(second);
  if (!counts) {
    counts = { created: 0, completed: 0, failed: 0 };
    model.buckets.set(second, counts);
  }
  return counts;
}

// history: the body of GET /api/v1/stats/throughput.
export function loadHistory(model, history) {
  model.buckets.clear();
  for (const point of history.points) {
    const counts = bucket(model, Math.floor(Date.parse(point.at) / 1000));
    for (const name of SERIES) {
      counts[name] += point[name];
    }
  }
  model.until = Date.parse(history.until);
  // The window follows the server's clock, which may differ from this computer's.
  model.skewMs = model.until - Date.now();
}

// event: a stream `status` event's data.
export function countEvent(model, event) {
  const name = STATUS_SERIES[event.status];
  const at = Date.parse(event.created_at);
  // Events up to the history's end are in it already (the stream may deliver them too).
  if (!name || at <= model.until) {
    return;
  }
  bucket(model, Math.floor(at / 1000))[name] += 1;
}

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, String(value));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

// The smallest of 1, 2, 5, 10, 20, 50 ... at or above the largest count: round axis labels.
function niceMax(value) {
  let step = 1;
  for (;;) {
    for (const factor of [1, 2, 5]) {
      if (step * factor >= value) {
        return step * factor;
      }
    }
    step *= 10;
  }
}

function visibleSeconds(model) {
  const end = Math.floor((Date.now() + model.skewMs) / 1000);
  const seconds = model.minutes * 60;
  const start = end - seconds + 1;
  // Seconds older than the window are never drawn again.
  for (const second of model.buckets.keys()) {
    if (second < start) {
      model.buckets.delete(second);
    }
  }
  return { start, seconds };
}

function totals(model, start) {
  const sums = { created: 0, completed: 0, failed: 0 };
  let peak = 0;
  for (const [second, counts] of model.buckets) {
    if (second >= start) {
      for (const name of SERIES) {
        sums[name] += counts[name];
        peak = Math.max(peak, counts[name]);
      }
    }
  }
  return { sums, peak };
}

function axes(width, yMax, minutes) {
  const group = svg("g", { class: "axes" });
  const bottom = HEIGHT - PAD.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = bottom - fraction * (bottom - PAD.top);
    group.append(svg("line", { x1: PAD.left, x2: width - PAD.right, y1: y, y2: y, class: "grid" }));
    const label = fraction === 0.5 && yMax % 2 ? "" : String(yMax * fraction);
    group.append(svg("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, label));
  }
  group.append(svg("text", { x: PAD.left, y: HEIGHT - 6 }, `${minutes} min ago`));
  group.append(svg("text", { x: width - PAD.right, y: HEIGHT - 6, "text-anchor": "end" }, "now"));
  return group;
}

function seriesPath(model, name, start, seconds, width, yMax) {
  const bottom = HEIGHT - PAD.bottom;
  const xStep = (width - PAD.left - PAD.right) / Math.max(1, seconds - 1);
  const points = [];
  for (let i = 0; i < seconds; i += 1) {
    const counts = model.buckets.get(start + i);
    const value = counts ? counts[name] : 0; // seconds without events are zeros
    const x = PAD.left + i * xStep;
    const y = bottom - (value / yMax) * (bottom - PAD.top);
    points.push(`${i === 0 ? "M" : "L"}${x.toFixed(1)} ${y.toFixed(1)}`);
  }
  return svg("path", { d: points.join(""), class: `series ${name}` });
}

// Redraws into container (at its current width) and writes a text summary for screen readers.
export function render(model, container, summary) {
  const width = Math.max(280, Math.round(container.clientWidth || 600));
  const { start, seconds } = visibleSeconds(model);
  const { sums, peak } = totals(model, start);
  const yMax = niceMax(Math.max(1, peak));
  const chart = svg("svg", { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img",
    "aria-label": `Tasks per second over the last ${model.minutes} minutes, at most ${peak} per second` });
  chart.append(axes(width, yMax, model.minutes));
  for (const name of SERIES) {
    chart.append(seriesPath(model, name, start, seconds, width, yMax));
  }
  container.replaceChildren(chart);
  summary.textContent = `Last ${model.minutes} min: ${sums.created} created, ${sums.completed} completed, `
    + `${sums.failed} failed; peak ${peak}/s.`;
}
