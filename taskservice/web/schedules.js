// The schedule table: each schedule's timing, next and last run, the last task's outcome, and the
// actions (run now, enable or disable, delete). Refreshed on a timer and when tasks change.

import { get, request } from "./api.js";
import { $, coalesce, el, formatShortTime, statusBadge } from "./dom.js";

const PAGE_SIZE = 20;

function listUrl(page) {
  return `/api/v1/schedules/?${new URLSearchParams({ page: String(page), page_size: String(PAGE_SIZE) })}`;
}

const scheduleUrl = (schedule) => `/api/v1/schedules/${encodeURIComponent(schedule.id)}`;

export function describeTiming(schedule) {
  if (schedule.every !== null) {
    return `every ${schedule.every.toLocaleString()} s`;
  }
  return schedule.timezone === "UTC" ? schedule.cron : `${schedule.cron} (${schedule.timezone})`;
}

function time(iso) {
  return iso ? el("time", { dateTime: iso, title: iso }, formatShortTime(iso)) : "—";
}

function actionButtons(schedule, handlers) {
  const cell = el("td", { className: "actions", dataset: { label: "Actions" } });
  // Named for the schedule, so a screen reader's list of buttons says which schedule each acts on.
  cell.append(
    el("button", { type: "button", className: "small", "aria-label": `Run ${schedule.name} now`,
      onclick: () => handlers.onRun(schedule) }, "Run now"),
    el("button", { type: "button", className: "secondary small",
      "aria-label": `${schedule.enabled ? "Disable" : "Enable"} ${schedule.name}`,
      onclick: () => handlers.onToggle(schedule) }, schedule.enabled ? "Disable" : "Enable"),
    el("button", { type: "button", className: "danger small", "aria-label": `Delete ${schedule.name}`,
      onclick: () => handlers.onDelete(schedule) }, "Delete"));
  return cell;
}

function outcome(schedule, handlers) {
  if (!schedule.last_task_id) {
    return "—";
  }
  if (!schedule.last_task_status) {
    return "deleted";
  }
  // The badge opens the task it reports on.
  return el("button", { type: "button", className: "link", "aria-label": `Last task of ${schedule.name}: `
    + `${schedule.last_task_status}`, onclick: () => handlers.onOpenTask(schedule.last_task_id) },
  statusBadge(schedule.last_task_status));
}

function scheduleRow(schedule, handlers) {
  return el("tr", { dataset: { id: schedule.id, enabled: String(schedule.enabled) } },
    el("td", { className: "name", dataset: { label: "Name" } }, schedule.name),
    el("td", { className: "timing", dataset: { label: "Repeats" } }, describeTiming(schedule)),
    el("td", { className: "next", dataset: { label: "Next run" } },
      schedule.enabled ? time(schedule.next_run_at) : "disabled"),
    el("td", { className: "last", dataset: { label: "Last run" } }, time(schedule.last_run_at)),
    el("td", { className: "outcome", dataset: { label: "Last outcome" } }, outcome(schedule, handlers)),
    actionButtons(schedule, handlers));
}

// handlers: onOpenTask(id), onTaskCreated(task), onNotify(message, isError), onError(error).
export function createScheduleTable(handlers) {
  const view = { page: 1, total: 0 };
  const body = $("schedules").tBodies[0];

  function render(result) {
    view.total = result.total;
    // Rows are rebuilt: keyboard focus stays on the same button of the same schedule.
    const active = document.activeElement;
    const focusedRow = body.contains(active) ? active.closest("tr") : null;
    const saved = focusedRow && { id: focusedRow.dataset.id, label: active.getAttribute("aria-label") };
    body.replaceChildren(...result.items.map((schedule) => scheduleRow(schedule, actions)));
    const row = saved && body.querySelector(`tr[data-id="${CSS.escape(saved.id)}"]`);
    if (row) {
      const buttons = [...row.querySelectorAll("button")];
      const same = buttons.find((button) => button.getAttribute("aria-label") === saved.label);
      // Enable and Disable swap names: the toggle keeps the focus.
      (same || buttons.find((button) => /^(Enable|Disable) /.test(button.getAttribute("aria-label")))
        || buttons[0]).focus();
    }
    $("schedules-empty").hidden = result.items.length > 0;
    const pages = Math.max(1, Math.ceil(view.total / PAGE_SIZE));
    $("schedules-info").textContent = `Page ${view.page} of ${pages} · ${view.total} schedules`;
    $("schedules-prev").disabled = view.page <= 1;
    $("schedules-next").disabled = view.page * PAGE_SIZE >= view.total;
  }

  let requested = 0;
  async function refresh() {
    const ticket = ++requested;
    try {
      const result = await get(listUrl(view.page));
      if (ticket === requested) {
        render(result);
      }
    } catch (error) {
      handlers.onError(error);
    }
  }

  async function act(schedule, method, path, body, describe) {
    try {
      const answer = await request(method, path, body);
      handlers.onNotify(describe(answer.body), false);
      return answer.body;
    } catch (error) {
      if (error.status === undefined) {
        handlers.onError(error);
      } else {
        handlers.onNotify(`Could not change “${schedule.name}”: ${error.message}`, true);
      }
      return null;
    } finally {
      refresh();
    }
  }

  const actions = {
    onOpenTask: handlers.onOpenTask,
    onRun: async (schedule) => {
      const task = await act(schedule, "POST", `${scheduleUrl(schedule)}/run`, undefined,
        (created) => `Started “${schedule.name}” now: task “${created.name}” (${created.status}).`);
      if (task) {
        handlers.onTaskCreated(task);
      }
    },
    onToggle: (schedule) => act(schedule, "PATCH", scheduleUrl(schedule), { enabled: !schedule.enabled },
      (changed) => (changed.enabled
        ? `“${schedule.name}” is enabled: next run ${formatShortTime(changed.next_run_at)}.`
        : `“${schedule.name}” is disabled.`)),
    onDelete: (schedule) => act(schedule, "DELETE", scheduleUrl(schedule), undefined,
      () => `“${schedule.name}” is deleted; the tasks it created stay.`),
  };

  $("schedules-prev").addEventListener("click", () => {
    view.page = Math.max(1, view.page - 1);
    refresh();
  });
  $("schedules-next").addEventListener("click", () => {
    view.page += 1;
    refresh();
  });

  // Task changes move a schedule's last outcome: one refresh for a burst of them.
  return { refresh, refreshSoon: coalesce(refresh, 1000), view };
}
