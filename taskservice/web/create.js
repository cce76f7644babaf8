// The "New task" form: checks what it can before sending, then shows the API's answer in words.

import { $ } from "./dom.js";
import { submitToApi } from "./forms.js";

const FIELDS = ["name", "description", "priority", "kind", "payload"];

function showFieldError(field, message) {
  const input = $(`create-${field}`);
  $(`create-${field}-error`).textContent = message;
  if (message) {
    input.setAttribute("aria-invalid", "true");
  } else {
    input.removeAttribute("aria-invalid");
  }
}

function clearErrors() {
  FIELDS.forEach((field) => showFieldError(field, ""));
  $("create-error").textContent = "";
}

// The payload must be a JSON object: say exactly what is wrong while the user is still here.
export function parsePayload(text) {
  let value;
  try {
    value = JSON.parse(text || "{}");
  } catch (error) {
    return { error: `Payload is not valid JSON: ${error.message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { error: 'Payload must be a JSON object, such as {"seconds": 5}.' };
  }
  return { value };
}

function readForm() {
  const value = (field) => $(`create-${field}`).value.trim();
  const errors = {};
  const name = value("name");
  if (!name) {
    errors.name = "Give the task a name.";
  }
  const payload = parsePayload(value("payload"));
  if (payload.error) {
    errors.payload = payload.error;
  }
  const body = { name, description: value("description") || null, priority: value("priority"),
    kind: value("kind") || null, payload: payload.value };
  return { body, errors };
}

function showErrors(errors) {
  for (const [field, message] of Object.entries(errors)) {
    if (FIELDS.includes(field)) {
      showFieldError(field, message);
    }
  }
  const first = FIELDS.find((field) => errors[field]);
  if (first) {
    $(`create-${first}`).focus();
  }
}

// handlers: onCreated(task), onAuthRequired().
export function createTaskForm(handlers) {
  const dialog = $("create");
  const form = $("create-form");

  $("new-task").addEventListener("click", () => {
    clearErrors();
    dialog.showModal();
    $("create-name").focus();
  });

  submitToApi(dialog, form, { prefix: "create", path: "/api/v1/tasks/", noun: "task" },
    { readForm, showErrors, clearErrors }, handlers);
}
