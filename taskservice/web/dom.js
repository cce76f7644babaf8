// Building elements and formatting values. Task data only ever goes in as text (textContent),
// never as HTML, so a task named "<img onerror=…>" shows as those characters.

export const $ = (id) => document.getElementById(id);

// el("td", {className: "x", dataset: {label: "Name"}}, "text", childNode, ...)
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name in node) {
      node[name] = value;
    } else {
      node.setAttribute(name, value);
    }
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function statusBadge(status) {
  return el("span", { className: "badge", dataset: { status } }, status.replace("_", " "));
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

export function formatTime(iso) {
  return iso ? dateTime.format(new Date(iso)) : "—";
}

// Today's times without the date: the table's column stays narrow.
export function formatShortTime(iso) {
  const date = new Date(iso);
  return date.toDateString() === new Date().toDateString() ? timeOnly.format(date) : dateTime.format(date);
}

export function formatDuration(ms) {
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  const seconds = ms / 1000;
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export function formatCount(n) {
  return n === null || n === undefined ? "—" : n.toLocaleString();
}

// Calls fn once, `ms` after the last of a burst of calls (a burst of events, a user typing).
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// Calls fn `ms` after the first of a burst of calls, once for the whole burst: unlike debounce, a
// steady stream of calls still gets fn called every `ms`.
export function coalesce(fn, ms) {
  let timer = null;
  return () => {
    if (timer === null) {
      timer = setTimeout(() => {
        timer = null;
        fn();
      }, ms);
    }
  };
}
