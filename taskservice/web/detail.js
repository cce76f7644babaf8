// The task dialog: every field, payload, result or error, the history as a timeline, and the
// completion callbacks' attempts when the task has a callback_url, and links to the tasks it depends
// on and to those that depend on it.

import { get } from "./api.js";
import { $, coalesce, el, formatDuration, formatTime, statusBadge } from "./dom.js";
import { CANCELLABLE, RETRYABLE, progressBar, withProgress } from "./tasks.js";

const TIME_FIELDS = ["created_at", "run_at", "started_at", "finished_at", "updated_at", "cancel_requested_at"];

// Task ids as buttons that open that task in this dialog.
function taskLinks(ids, openTask) {
  if (!ids || ids.length === 0) {
    return "—";
  }
  return el("span", { className: "task-links" }, ...ids.map((id) =>
    el("button", { type: "button", className: "link", title: id, onclick: () => openTask(id) }, el("code", {}, id.slice(0, 8)))));
}

function fieldList(task, children, openTask) {
  const rows = [
    ["ID", el("code", {}, task.id)],
    ["Status", statusBadge(task.status)],
    ["Priority", task.priority],
    ["Kind", task.kind],
    ["Description", task.description || "—"],
    ["Attempts", `${task.attempts} of ${task.max_attempts}`],
    ["Progress", el("div", { id: "detail-progress" }, task.progress ? progressBar(task.progress) : "—")],
    ["Timeout", `${task.timeout_seconds} s`],
    ["Callback URL", task.callback_url ? el("code", {}, task.callback_url) : "—"],
    ["Depends on", taskLinks(task.depends_on, openTask)],
    ...(task.waiting_on > 0 && task.status === "NEW" ? [["Waiting on", `${task.waiting_on} parent(s)`]] : []),
    ["Dependents", taskLinks(children, openTask)],
    ...TIME_FIELDS.map((name) => [name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase()),
      task[name] ? el("time", { dateTime: task[name], title: task[name] }, formatTime(task[name])) : "—"]),
  ];
  return rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]);
}

function outcome(task) {
  if (task.error) {
    return [el("h3", {}, "Error"), el("pre", { className: "error-text" }, task.error)];
  }
  if (task.result !== null && task.result !== undefined) {
    return [el("h3", {}, "Result"), el("pre", {}, JSON.stringify(task.result, null, 2))];
  }
  return [];
}

// One step per recorded status change, with the time since the step before it.
function timeline(events) {
  return events.map((event, index) => {
    const at = Date.parse(event.created_at);
    const previous = index > 0 ? Date.parse(events[index - 1].created_at) : null;
    const transition = event.from_status ? `${event.from_status} → ${event.status}` : `created as ${event.status}`;
    return el("li", { dataset: { status: event.status } },
      el("div", { className: "step" }, statusBadge(event.status), " ",
        el("span", { className: "transition" }, transition),
        event.attempt ? el("span", { className: "sub" }, ` · attempt ${event.attempt}`) : null),
      el("div", { className: "sub" },
        el("time", { dateTime: event.created_at }, formatTime(event.created_at)),
        previous === null ? "" : ` · +${formatDuration(at - previous)} after the previous step`),
      event.error ? el("pre", { className: "error-text" }, event.error) : null);
  });
}

// Each delivery (one per time the task finished) with its attempts, oldest first.
function callbackList(callbacks) {
  if (!callbacks) {
    return [];
  }
  if (callbacks.deliveries.length === 0) {
    return [el("h3", {}, "Callbacks"), el("p", { className: "sub" }, "None yet: sent once the task finishes.")];
  }
  const items = callbacks.deliveries.map((delivery) => {
    const attempts = callbacks.items.filter((attempt) => attempt.delivery_id === delivery.id);
    return el("li", { dataset: { status: delivery.status } },
      el("div", { className: "step" }, `${delivery.task_status}: ${delivery.status}`,
        el("span", { className: "sub" }, ` · ${delivery.attempts} attempt${delivery.attempts === 1 ? "" : "s"}`)),
      el("ol", { className: "attempts" }, ...attempts.map((attempt) => el("li", {},
        el("time", { dateTime: attempt.at }, formatTime(attempt.at)),
        ` · ${attempt.status_code === null ? "no response" : `HTTP ${attempt.status_code}`}`,
        ` · ${formatDuration(attempt.duration_seconds * 1000)} · ${attempt.outcome}`,
        attempt.error ? el("pre", { className: "error-text" }, attempt.error) : null))));
  });
  return [el("h3", {}, "Callbacks"), el("ol", { className: "timeline" }, ...items)];
}

function totalTime(events) {
  if (events.length < 2) {
    return null;
  }
  const span = Date.parse(events.at(-1).created_at) - Date.parse(events[0].created_at);
  return el("li", { className: "total" }, `${formatDuration(span)} from first to last step`);
}

// handlers: onCancel(task), onRetry(task), onError(error).
export function createDetail(handlers) {
  const dialog = $("detail");
  const state = { task: null };

  function render(task, events, callbacks, children) {
    state.task = task;
    $("detail-title").textContent = task.name;
    $("detail-fields").replaceChildren(...fieldList(task, children, open));
    $("detail-payload").textContent = JSON.stringify(task.payload, null, 2);
    $("detail-outcome").replaceChildren(...outcome(task));
    $("detail-history").replaceChildren(...timeline(events), totalTime(events) || "");
    $("detail-callbacks").replaceChildren(...callbackList(callbacks));
    $("detail-cancel").hidden = !CANCELLABLE.has(task.status);
    $("detail-retry").hidden = !RETRYABLE.has(task.status);
  }

  async function load(id) {
    const path = `/api/v1/tasks/${encodeURIComponent(id)}`;
    const [task, events, dependents] = await Promise.all([get(path), get(`${path}/events`), get(`${path}/dependents`)]);
    render(task, events.items, task.callback_url ? await get(`${path}/callbacks`) : null, dependents.items);
  }

  async function open(id) {
    try {
      await load(id);
    } catch (error) {
      handlers.onError(error);
      return;
    }
    say("");
    if (!dialog.open) {
      dialog.showModal();
    }
  }

  function say(message, isError = false) {
    const box = $("detail-message");
    box.textContent = message;
    box.hidden = !message;
    box.dataset.kind = isError ? "error" : "ok";
  }

  // The open task changed (a stream event): show its new state, one reload per burst.
  const reloadSoon = coalesce(() => {
    if (dialog.open && state.task) {
      load(state.task.id).catch(handlers.onError);
    }
  }, 300);

  $("detail-cancel").addEventListener("click", () => handlers.onCancel(state.task));
  $("detail-retry").addEventListener("click", () => handlers.onRetry(state.task));
  dialog.addEventListener("close", () => {
    const id = state.task && state.task.id;
    state.task = null;
    // The dialog gives focus back to the button that opened it, unless a live update has rebuilt
    // that row meanwhile: then the row's new button takes it, so keyboard users keep their place.
    // Checked after the browser's own focus restoration, which follows the close event.
    setTimeout(() => {
      const lost = !document.activeElement || document.activeElement === document.body
        || dialog.contains(document.activeElement);
      if (!id || !lost) {
        return;
      }
      const row = document.querySelector(`#tasks tr[data-id="${CSS.escape(id)}"]`);
      row?.querySelector("button")?.focus();
    });
  });

  // A stream `progress` event for the open task: its bar moves in place, without a reload.
  function showProgress(event) {
    if (!(dialog.open && state.task && state.task.id === event.task_id)) {
      return;
    }
    const updated = withProgress(state.task, event);
    if (updated !== state.task) {
      state.task = updated;
      $("detail-progress").replaceChildren(progressBar(updated.progress));
    }
  }

  return {
    open,
    say,
    showProgress,
    isShowing: (id) => dialog.open && state.task !== null && state.task.id === id,
    reloadSoon,
    reload: () => (dialog.open && state.task ? load(state.task.id).catch(handlers.onError) : null),
  };
}
