// Sending a "new …" dialog's form: the form's own checks first, then the API, whose field errors
// go next to their fields and whose sentence (naming every field) goes below the form.

import { AuthRequired, request } from "./api.js";
import { $ } from "./dom.js";

// prefix: the ids' prefix (`<prefix>-submit`, `<prefix>-error`); noun: what is created, in words;
// form: { readForm, showErrors, clearErrors }; handlers: onCreated(created), onAuthRequired().
export function submitToApi(dialog, formElement, { prefix, path, noun }, form, handlers) {
  formElement.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.clearErrors();
    const { body, errors } = form.readForm();
    if (Object.keys(errors).length) {
      form.showErrors(errors);
      return;
    }
    $(`${prefix}-submit`).disabled = true;
    try {
      const { body: created } = await request("POST", path, body);
      formElement.reset();
      dialog.close();
      handlers.onCreated(created);
    } catch (error) {
      if (error instanceof AuthRequired) {
        dialog.close();
        handlers.onAuthRequired();
        return;
      }
      form.showErrors(error.fieldErrors || {});
      $(`${prefix}-error`).textContent = `Could not create the ${noun}: ${error.message}`;
    } finally {
      $(`${prefix}-submit`).disabled = false;
    }
  });
}
