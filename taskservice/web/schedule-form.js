// The "New schedule" form: cron or every, the time zone, and the task each tick creates. Checks
// what it can before sending, then shows the API's answer next to each field.

import { parsePayload } from "./create.js";
import { $ } from "./dom.js";
import { submitToApi } from "./forms.js";

// API field → the form's element id (after "schedule-").
const FIELDS = { name: "name", cron: "cron", every: "every", timezone: "timezone", overlap: "overlap",
  "task.name": "task-name", "task.kind": "task-kind", "task.priority": "task-priority",
  "task.payload": "task-payload" };

function showFieldError(field, message) {
  const input = $(`schedule-${FIELDS[field]}`);
  $(`schedule-${FIELDS[field]}-error`).textContent = message;
  if (message) {
    input.setAttribute("aria-invalid", "true");
  } else {
    input.removeAttribute("aria-invalid");
  }
}

function clearErrors() {
  Object.keys(FIELDS).forEach((field) => showFieldError(field, ""));
  $("schedule-error").textContent = "";
}

function showErrors(errors) {
  for (const [field, message] of Object.entries(errors)) {
    if (field in FIELDS) {
      showFieldError(field, message);
    }
  }
  const first = Object.keys(FIELDS).find((field) => errors[field]);
  if (first) {
    $(`schedule-${FIELDS[first]}`).focus();
  }
}

function readForm() {
  const value = (id) => $(`schedule-${id}`).value.trim();
  const errors = {};
  const body = { name: value("name"), timezone: value("timezone") || "UTC", overlap: value("overlap") };
  if (!body.name) {
    errors.name = "Give the schedule a name.";
  }
  const cron = value("cron");
  const every = value("every");
  if (cron && every) {
    errors.every = "Give a cron expression or an interval, not both.";
  } else if (cron) {
    body.cron = cron;
  } else if (/^\d+$/.test(every) && Number(every) >= 1) {
    body.every = Number(every);
  } else {
    errors[every ? "every" : "cron"] = every ? "Every must be a whole number of seconds, at least 1."
      : "Give a cron expression (such as */5 * * * * or @daily) or an interval in seconds.";
  }
  const payload = parsePayload(value("task-payload"));
  if (payload.error) {
    errors["task.payload"] = payload.error;
  }
  body.task = { name: value("task-name"), kind: value("task-kind") || null, priority: value("task-priority"),
    payload: payload.value };
  if (!body.task.name) {
    errors["task.name"] = "Give the task a name.";
  }
  return { body, errors };
}

// handlers: onCreated(schedule), onAuthRequired().
export function createScheduleForm(handlers) {
  const dialog = $("schedule-create");
  const form = $("schedule-form");

  $("new-schedule").addEventListener("click", () => {
    clearErrors();
    // The browser's own zone is the likeliest one meant.
    if ($("schedule-timezone").value === "UTC") {
      $("schedule-timezone").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    }
    dialog.showModal();
    $("schedule-name").focus();
  });

  submitToApi(dialog, form, { prefix: "schedule", path: "/api/v1/schedules/", noun: "schedule" },
    { readForm, showErrors, clearErrors }, handlers);
}
