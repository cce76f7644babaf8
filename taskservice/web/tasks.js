// The task table: filters, pages (newest first, as the API lists them), live status changes.

import { get } from "./api.js";
import { $, coalesce, debounce, el, formatShortTime, statusBadge } from "./dom.js";

const PAGE_SIZE = 20;
export const CANCELLABLE = new Set(["NEW", "PENDING", "IN_PROGRESS"]);
export const RETRYABLE = new Set(["FAILED", "CANCELLED"]);

function listUrl(filters, page) {
  const query = new URLSearchParams({ page: String(page), page_size: String(PAGE_SIZE) });
  for (const name of ["status", "priority", "search"]) {
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

function taskRow(task, handlers) {
  const open = el("button", { type: "button", className: "link", onclick: () => handlers.onOpen(task.id) },
    task.name);
  const row = el("tr", { dataset: { id: task.id } },
    el("td", { className: "name", dataset: { label: "Name" } }, open),
    el("td", { className: "status", dataset: { label: "Status" } }, statusBadge(task.status)),
    el("td", { dataset: { label: "Priority" } }, task.priority),
    el("td", { className: "kind", dataset: { label: "Kind" } }, task.kind),
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

// handlers: onOpen(id), onCancel(task), onRetry(task), onError(error).
export function createTaskTable(handlers) {
  const view = { filters: { status: "", priority: "", search: "" }, page: 1, total: 0, totalExact: true,
    tasks: new Map() };
  const body = $("tasks").tBodies[0];

  function render(result) {
    view.total = result.total;
    view.totalExact = result.total_exact;
    view.tasks = new Map(result.items.map((task) => [task.id, task]));
    body.replaceChildren(...result.items.map((task) => taskRow(task, handlers)));
    $("tasks-empty").hidden = result.items.length > 0;
    $("page-info").textContent = pageInfo(view);
    $("prev-page").disabled = view.page <= 1;
    $("next-page").disabled = view.page * PAGE_SIZE >= view.total && view.totalExact;
  }

  async function refresh() {
    try {
      render(await get(listUrl(view.filters, view.page)));
    } catch (error) {
      handlers.onError(error);
    }
  }
  // Bursts of events (a batch of new tasks) become one request, and a steady flow one every 300 ms.
  const refreshSoon = coalesce(refresh, 300);

  function readFilters() {
    const fields = $("filters").elements;
    view.filters = { status: fields.status.value, priority: fields.priority.value,
      search: fields.search.value.trim() };
    view.page = 1;
    refresh();
  }

  $("filters").addEventListener("change", readFilters);
  $("filters").elements.search.addEventListener("input", debounce(readFilters, 300));
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

  // A task's new state (from an action's answer): its row in place, without a reload.
  function showTask(task) {
    const row = body.querySelector(`tr[data-id="${CSS.escape(task.id)}"]`);
    if (row) {
      view.tasks.set(task.id, task);
      const replacement = taskRow(task, handlers);
      replacement.classList.add("changed");
      row.replaceWith(replacement);
    }
  }

  // A stream `status` event: update the visible row, or reload the page when the change
  // adds a row to it (a new task on page 1) or takes one out of it (it left the status filter).
  function applyEvent(event) {
    const task = view.tasks.get(event.task_id);
    const { status, priority } = view.filters;
    if (task) {
      showTask({ ...task, status: event.status, attempts: Math.max(task.attempts, event.attempt) });
      if (status && event.status !== status) {
        refreshSoon();
      }
      return;
    }
    const fits = (!status || status === event.status) && (!priority || priority === event.priority);
    // Page 1 holds the newest tasks, so a new task can only appear there; a task entering the status
    // filter may belong on any page. Search terms cannot be checked here: the event has no name.
    if (fits && (event.from_status === null ? view.page === 1 : Boolean(status))) {
      refreshSoon();
    }
  }

  return { refresh, refreshSoon, applyEvent, showTask, view };
}
