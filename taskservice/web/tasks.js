// The task table: filters, pages (newest first, as the API lists them), live status changes and
// progress bars.

import { get } from "./api.js";
import { $, coalesce, debounce, el, formatShortTime, statusBadge } from "./dom.js";

const PAGE_SIZE = 20;
const RECENT_EVENTS = 2000;
export const CANCELLABLE = new Set(["NEW", "PENDING", "IN_PROGRESS"]);
export const RETRYABLE = new Set(["FAILED", "CANCELLED"]);

function listUrl(filters, page) {
  const query = new URLSearchParams({ page: String(page), page_size: String(PAGE_SIZE) });
  for (const name of ["status", "priority", "queue", "search"]) {
    if (filters[name]) {
      query.set(name, filters[name]);
    }
  }
  return `/api/v1/tasks/?${query}`;
}

function actionButtons(task, handlers) {
  const cell = el("td", { className: "actions", dataset: { label: "Actions" } });
  // Named for the task, so a screen reader's list of buttons says which task each acts on.
  if (CANCELLABLE.has(task.status)) {
    cell.append(el("button", { type: "button", className: "danger small", "aria-label": `Cancel ${task.name}`,
      onclick: () => handlers.onCancel(task) }, "Cancel"));
  }
  if (RETRYABLE.has(task.status)) {
    cell.append(el("button", { type: "button", className: "small", "aria-label": `Retry ${task.name}`,
      onclick: () => handlers.onRetry(task) }, "Retry"));
  }
  return cell;
}

// A handler's latest progress report: a bar with its percentage and message.
export function progressBar(progress) {
  const percent = `${Math.round(progress.fraction * 100)}%`;
  const text = progress.message ? `${percent} · ${progress.message}` : percent;
  return el("div", { className: "progress", title: text },
    el("progress", { max: 1, value: progress.fraction, "aria-label": `Progress ${text}` }),
    el("span", { className: "progress-text" }, text));
}

// The status badge, with the progress bar while an attempt runs and has reported.
function statusCell(task) {
  const running = task.status === "IN_PROGRESS" && task.progress;
  return [statusBadge(task.status), running ? progressBar(task.progress) : null];
}

// The task with a stream `progress` event applied, if the report is for its current attempt and newer.
export function withProgress(task, event) {
  const known = task.progress;
  if (event.attempt < task.attempts || task.status !== "IN_PROGRESS"
    || (known && Date.parse(known.updated_at) > Date.parse(event.progress.updated_at))) {
    return task;
  }
  return { ...task, progress: event.progress };
}

function taskRow(task, handlers) {
  const open = el("button", { type: "button", className: "link", onclick: () => handlers.onOpen(task.id) },
    task.name);
  const row = el("tr", { dataset: { id: task.id } },
    el("td", { className: "name", dataset: { label: "Name" } }, open),
    el("td", { className: "status", dataset: { label: "Status" } }, ...statusCell(task)),
    el("td", { dataset: { label: "Priority" } }, task.priority),
    el("td", { className: "kind", dataset: { label: "Kind" } }, task.kind),
    el("td", { className: "queue", dataset: { label: "Queue" } }, task.queue),
    el("td", { className: "attempts", dataset: { label: "Attempts" } }, `${task.attempts}/${task.max_attempts}`),
    el("td", { dataset: { label: "Created" } },
      el("time", { dateTime: task.created_at, title: task.created_at }, formatShortTime(task.created_at))),
    actionButtons(task, handlers));
  // A click anywhere on the row opens the task too; the keyboard path is the name's button.
  row.addEventListener("click", (event) => {
    if (!event.target.closest("button")) {
      handlers.onOpen(task.id);
    }
  });
  return row;
}

function pageInfo(view) {
  const pages = Math.max(1, Math.ceil(view.total / PAGE_SIZE));
  const total = view.totalExact ? `${view.total}` : `more than ${view.total}`;
  return `Page ${view.page} of ${view.totalExact ? pages : `${pages}+`} · ${total} tasks`;
}

// The task with a stream event applied, if the event is newer than what the task says.
function withEvent(task, event) {
  if (!event || Date.parse(event.created_at) < Date.parse(task.updated_at)) {
    return task;
  }
  // A new attempt starts without progress (the server clears it when the attempt is claimed).
  const progress = event.status === "IN_PROGRESS" && event.attempt > task.attempts ? null : task.progress;
  return { ...task, status: event.status, attempts: Math.max(task.attempts, event.attempt),
    updated_at: event.created_at, progress };
}

// Rows are rebuilt on live changes: keyboard focus stays on the same button of the same task.
function focusedButton(body) {
  const active = document.activeElement;
  const row = body.contains(active) ? active.closest("tr") : null;
  return row ? { id: row.dataset.id, label: active.getAttribute("aria-label") } : null;
}

function restoreFocus(body, saved) {
  const row = saved && body.querySelector(`tr[data-id="${CSS.escape(saved.id)}"]`);
  if (row) {
    const buttons = [...row.querySelectorAll("button")];
    (buttons.find((button) => button.getAttribute("aria-label") === saved.label) || buttons[0]).focus();
  }
}

// handlers: onOpen(id), onCancel(task), onRetry(task), onError(error).
export function createTaskTable(handlers) {
  const view = { filters: { status: "", priority: "", queue: "", search: "" }, page: 1, total: 0, totalExact: true,
    tasks: new Map() };
  // The newest event of recently changed tasks: a page requested before an event may arrive after it.
  const recent = new Map();
  const body = $("tasks").tBodies[0];

  // False for an event older than one already seen: the stream sends events in commit order, which
  // for one task is the order of its event ids (each change waits for the task's row lock).
  function remember(event) {
    const known = recent.get(event.task_id);
    if (known && known.id > event.id) {
      return false;
    }
    recent.delete(event.task_id); // re-inserted last: the Map's order is oldest change first
    recent.set(event.task_id, event);
    if (recent.size > RECENT_EVENTS) {
      recent.delete(recent.keys().next().value);
    }
    return true;
  }

  function render(result) {
    const items = result.items.map((task) => withEvent(task, recent.get(task.id)));
    view.total = result.total;
    view.totalExact = result.total_exact;
    view.tasks = new Map(items.map((task) => [task.id, task]));
    const focused = focusedButton(body);
    body.replaceChildren(...items.map((task) => taskRow(task, handlers)));
    restoreFocus(body, focused);
    $("tasks-empty").hidden = result.items.length > 0;
    $("page-info").textContent = pageInfo(view);
    $("prev-page").disabled = view.page <= 1;
    $("next-page").disabled = view.page * PAGE_SIZE >= view.total && view.totalExact;
  }

  let requested = 0;
  async function refresh() {
    // Answers can overtake each other (a filter change during a live refresh): only the last counts.
    const ticket = ++requested;
    try {
      const result = await get(listUrl(view.filters, view.page));
      if (ticket === requested) {
        render(result);
      }
    } catch (error) {
      handlers.onError(error);
    }
  }
  // Bursts of events (a batch of new tasks) become one request, and a steady flow one every 300 ms.
  const refreshSoon = coalesce(refresh, 300);

  function readFilters() {
    const fields = $("filters").elements;
    view.filters = { status: fields.status.value, priority: fields.priority.value,
      // A name the API would refuse (422) filters nothing until it is fixed; the field shows it invalid.
      queue: fields.queue.validity.valid ? fields.queue.value.trim() : "", search: fields.search.value.trim() };
    view.page = 1;
    refresh();
  }

  $("filters").addEventListener("change", readFilters);
  $("filters").elements.search.addEventListener("input", debounce(readFilters, 300));
  $("filters").elements.queue.addEventListener("input", debounce(readFilters, 300));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    readFilters();
  });
  $("prev-page").addEventListener("click", () => {
    view.page = Math.max(1, view.page - 1);
    refresh();
  });
  $("next-page").addEventListener("click", () => {
    view.page += 1;
    refresh();
  });

  // A task's new state (an action's answer, a stream event): its row in place, without a reload.
  // An action's answer can arrive after the stream's news of a later change (a cancelled task's
  // 202 after the worker's CANCELLED): the older state is not shown.
  function showTask(task) {
    const known = view.tasks.get(task.id);
    const row = body.querySelector(`tr[data-id="${CSS.escape(task.id)}"]`);
    if (row && Date.parse(task.updated_at) >= Date.parse(known.updated_at)) {
      view.tasks.set(task.id, task);
      const replacement = taskRow(task, handlers);
      replacement.classList.add("changed");
      const focused = focusedButton(body);
      row.replaceWith(replacement);
      restoreFocus(body, focused);
    }
  }

  // A stream `status` event: update the visible row, or reload the page when the change
  // adds a row to it (a new task on page 1) or takes one out of it (it left the status filter).
  function applyEvent(event) {
    if (!remember(event)) {
      return;
    }
    const task = view.tasks.get(event.task_id);
    const { status, priority, queue } = view.filters;
    if (task) {
      showTask(withEvent(task, event));
      if (status && event.status !== status) {
        refreshSoon();
      }
      return;
    }
    const fits = (!status || status === event.status) && (!priority || priority === event.priority)
      && (!queue || queue === event.queue);
    // Page 1 holds the newest tasks, so a new task can only appear there; a task entering the status
    // filter may belong on any page. Search terms cannot be checked here: the event has no name.
    if (fits && (event.from_status === null ? view.page === 1 : Boolean(status))) {
      refreshSoon();
    }
  }

  // A stream `progress` event: the visible row's bar moves in place (no highlight: it comes often).
  function applyProgress(event) {
    const task = view.tasks.get(event.task_id);
    const cell = body.querySelector(`tr[data-id="${CSS.escape(event.task_id)}"] td.status`);
    if (!task || !cell) {
      return;
    }
    const updated = withProgress(task, event);
    if (updated !== task) {
      view.tasks.set(task.id, updated);
      cell.replaceChildren(...statusCell(updated).filter(Boolean));
    }
  }

  return { refresh, refreshSoon, applyEvent, applyProgress, showTask, view };
}
