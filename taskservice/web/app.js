// The dashboard's entry point: the API key, the overview, the live stream, and the actions that
// tie the task table, the task dialog, the create form and the schedules together.

import { ApiError, AuthRequired, authHeaders, forgetKey, get, request, storedKey, storeKey } from "./api.js";
import { countEvent, createThroughput, loadHistory, render as renderChart } from "./chart.js";
import { createTaskForm } from "./create.js";
import { createDetail } from "./detail.js";
import { $, coalesce, el, formatCount, formatDuration, formatShortTime, statusBadge } from "./dom.js";
import { createScheduleForm } from "./schedule-form.js";
import { createScheduleTable } from "./schedules.js";
import { openStream } from "./sse.js";
import { createTaskTable } from "./tasks.js";

const STATUSES = ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED"];
const PRIORITIES = ["LOW", "MEDIUM", "HIGH"];
const CHART_MINUTES = 5;
// Backlog and queue depth change without task events: poll them (the stats call is cheap).
const STATS_POLL_MS = 5000;
// Schedules fire without a task event of their own until their task changes: poll their next runs.
const SCHEDULES_POLL_MS = 5000;
const NOTICE_MS = 8000;

const page = {
  stream: null,
  timers: [],
  throughput: createThroughput(CHART_MINUTES),
  connectedBefore: false,
  historyError: "",
  noticeTimer: null,
};

// --- Messages --------------------------------------------------------------------------------

function notify(message, isError = false) {
  const box = $("notice");
  box.textContent = message;
  box.dataset.kind = isError ? "error" : "ok";
  box.setAttribute("role", isError ? "alert" : "status");
  box.hidden = false;
  clearTimeout(page.noticeTimer);
  // Errors stay until the next message: they may need reading twice.
  if (!isError) {
    page.noticeTimer = setTimeout(() => {
      box.hidden = true;
    }, NOTICE_MS);
  }
}

function showError(error) {
  if (error instanceof AuthRequired) {
    keyRejected();
    return;
  }
  notify(error instanceof ApiError ? error.message : `Unexpected error: ${error.message}`, true);
}

// --- Overview --------------------------------------------------------------------------------

function renderCounts(counts) {
  const rows = STATUSES.map((status) => {
    const byPriority = counts[status] || {};
    const all = PRIORITIES.reduce((sum, priority) => sum + (byPriority[priority] || 0), 0);
    return el("tr", {},
      el("th", { scope: "row" }, statusBadge(status)),
      ...PRIORITIES.map((priority) => el("td", {}, formatCount(byPriority[priority] || 0))),
      el("td", { className: "all" }, formatCount(all)));
  });
  $("counts").tBodies[0].replaceChildren(...rows);
}

function renderStats(stats) {
  renderCounts(stats.counts);
  $("stat-total").textContent = formatCount(stats.total);
  $("stat-backlog").textContent = formatCount(stats.outbox_backlog);
  $("stat-backlog-age").textContent = stats.outbox_backlog > 0
    ? `oldest due ${formatDuration(stats.outbox_oldest_due_age_seconds * 1000)} ago` : "nothing waiting";
  const queue = $("stat-queue");
  queue.textContent = stats.queue_depth === null ? "broker unreachable" : formatCount(stats.queue_depth);
  queue.classList.toggle("warn", stats.queue_depth === null);
}

async function refreshStats() {
  try {
    renderStats(await get("/api/v1/stats"));
  } catch (error) {
    showError(error);
  }
}

async function refreshThroughput() {
  try {
    loadHistory(page.throughput, await get(`/api/v1/stats/throughput?minutes=${CHART_MINUTES}`));
  } catch (error) {
    if (error instanceof AuthRequired) {
      showError(error);
      return;
    }
    // The chart still counts live events; say why the older history is missing.
    page.historyError = `Earlier history unavailable: ${error.message}`;
    drawChart();
    return;
  }
  page.historyError = "";
  drawChart();
}

function drawChart() {
  renderChart(page.throughput, $("chart"), $("chart-summary"));
  if (page.historyError) {
    $("chart-summary").textContent += ` ${page.historyError}`;
  }
}

// --- Live stream -----------------------------------------------------------------------------

const LIVE_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", stopped: "Not live" };

function showLiveState(state, seconds) {
  const box = $("live");
  box.dataset.state = state;
  $("live-text").textContent = state === "reconnecting" && seconds
    ? `Reconnecting in ${seconds} s…` : LIVE_TEXT[state];
}

function onStreamEvent(views, event) {
  if (event.type === "status") {
    const change = JSON.parse(event.data);
    views.table.applyEvent(change);
    views.schedules.refreshSoon();
    countEvent(page.throughput, change);
    statsSoon();
    if (views.detail.isShowing(change.task_id)) {
      views.detail.reloadSoon();
    }
  } else if (event.type === "progress") {
    const report = JSON.parse(event.data);
    views.table.applyProgress(report);
    views.detail.showProgress(report);
  } else if (event.type === "reset") {
    // The server could not replay what we missed: everything on screen may be stale.
    reloadAll(views);
  } else if (event.type === "ready") {
    const ready = JSON.parse(event.data);
    // A new connection that did not resume may have missed changes since the last one.
    if (page.connectedBefore && !ready.resumed) {
      reloadAll(views);
    }
    page.connectedBefore = true;
  }
}

const statsSoon = coalesce(refreshStats, 1000);

function startStream(views) {
  page.stream = openStream("/api/v1/tasks/stream", {
    headers: authHeaders,
    onEvent: (event) => onStreamEvent(views, event),
    onState: showLiveState,
    onAuthRequired: keyRejected,
  });
}

// --- Start, stop, key ------------------------------------------------------------------------

async function reloadAll(views) {
  await Promise.all([refreshStats(), views.table.refresh(), refreshThroughput(), views.detail.reload(),
    views.schedules.refresh()]);
}

function stop() {
  page.stream?.close();
  page.stream = null;
  page.timers.forEach(clearInterval);
  page.timers = [];
  page.connectedBefore = false;
}

async function start(views) {
  stop();
  try {
    // One call first: with API_KEYS set and no key yet, it answers 401 and the key form appears.
    renderStats(await get("/api/v1/stats"));
  } catch (error) {
    showError(error);
    return;
  }
  $("auth").hidden = true;
  $("content").hidden = false;
  $("forget-key").hidden = !storedKey();
  startStream(views);
  page.timers.push(setInterval(refreshStats, STATS_POLL_MS), setInterval(drawChart, 1000),
    setInterval(views.schedules.refresh, SCHEDULES_POLL_MS));
  await Promise.all([views.table.refresh(), refreshThroughput(), views.schedules.refresh()]);
}

// Stops everything and shows the key form (with a message when there is something to explain).
function askForKey(message = "") {
  stop();
  forgetKey();
  showLiveState("stopped");
  $("content").hidden = true;
  $("forget-key").hidden = true;
  document.querySelectorAll("dialog[open]").forEach((dialog) => dialog.close());
  $("auth").hidden = false;
  $("auth-error").textContent = message;
  $("auth-key").focus();
}

// A 401: with no key yet the form explains itself; a key we sent was refused.
function keyRejected() {
  askForKey(storedKey() ? "That API key was not accepted. Enter a valid key." : "");
}

// --- Actions ---------------------------------------------------------------------------------

// Shown where the user is: in the task dialog if it is open, else as a page notice.
function report(views, message, isError) {
  if ($("detail").open) {
    views.detail.say(message, isError);
  } else {
    notify(message, isError);
  }
}

async function act(views, task, method, path, describe) {
  try {
    const { status, body } = await request(method, path);
    views.table.showTask(body);
    await views.detail.reload();
    report(views, describe(status, body), false);
  } catch (error) {
    if (error instanceof AuthRequired) {
      showError(error);
    } else {
      report(views, `Could not ${method === "DELETE" ? "cancel" : "retry"} “${task.name}”: ${error.message}`, true);
    }
  }
}

function cancelTask(views, task) {
  return act(views, task, "DELETE", `/api/v1/tasks/${encodeURIComponent(task.id)}`, (status) => (status === 202
    ? `Cancellation of “${task.name}” requested: the worker will stop it.`
    : `“${task.name}” is cancelled.`));
}

function retryTask(views, task) {
  return act(views, task, "POST", `/api/v1/tasks/${encodeURIComponent(task.id)}/retry`,
    (status, body) => `“${task.name}” will run again (now ${body.status}).`);
}

// --- Wiring ----------------------------------------------------------------------------------

function main() {
  const views = {};
  const actions = {
    onCancel: (task) => cancelTask(views, task),
    onRetry: (task) => retryTask(views, task),
    onError: showError,
  };
  views.table = createTaskTable({ ...actions, onOpen: (id) => views.detail.open(id) });
  views.detail = createDetail(actions);
  views.schedules = createScheduleTable({
    onOpenTask: (id) => views.detail.open(id),
    onTaskCreated: () => views.table.refreshSoon(),
    onNotify: notify,
    onError: showError,
  });
  createScheduleForm({
    onCreated: (schedule) => {
      const next = schedule.next_run_at ? formatShortTime(schedule.next_run_at) : "none (disabled)";
      notify(`Created schedule “${schedule.name}”: next run ${next}.`);
      views.schedules.refresh();
    },
    onAuthRequired: keyRejected,
  });
  createTaskForm({
    onCreated: (task) => {
      notify(`Created “${task.name}” (${task.status}).`);
      views.table.refresh();
    },
    onAuthRequired: keyRejected,
  });

  $("auth-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("auth-key").value.trim();
    if (!key) {
      $("auth-error").textContent = "Enter the API key.";
      return;
    }
    storeKey(key);
    $("auth-key").value = "";
    $("auth-error").textContent = "";
    await start(views);
  });
  $("forget-key").addEventListener("click", () => askForKey());
  document.querySelectorAll("[data-close]").forEach((button) => {
    button.addEventListener("click", () => button.closest("dialog").close());
  });
  window.addEventListener("resize", coalesce(drawChart, 200));
  start(views);
}

main();
