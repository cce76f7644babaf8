// Requests to the taskservice API: the API key (if any) and problem+json errors in words.

const KEY_STORAGE = "taskservice.apiKey";

// Session storage: the key lives as long as the tab, and is not shared with other tabs or kept on disk.
export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

export function authHeaders() {
  const key = storedKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// The server asked for a key (401): the caller shows the key form.
export class AuthRequired extends Error {}

// Any other failed request, with the API's own words and, for 422, the message of each field.
export class ApiError extends Error {
  constructor(status, detail, fieldErrors) {
    super(detail);
    this.status = status;
    this.fieldErrors = fieldErrors;
  }
}

// problem+json `errors` maps a field to a list of messages (or nested objects for nested fields).
function fieldMessages(errors) {
  const messages = {};
  for (const [field, value] of Object.entries(errors || {})) {
    messages[field] = Array.isArray(value) ? value.join(" ") : JSON.stringify(value);
  }
  return messages;
}

async function problemOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): the status line is all there is to say.
  }
  const detail = body && typeof body.detail === "string" ? body.detail
    : `The server answered ${response.status} ${response.statusText}.`;
  return new ApiError(response.status, detail, fieldMessages(body && body.errors));
}

// One API call; resolves to {status, body} or throws AuthRequired / ApiError.
export async function request(method, path, body) {
  const headers = { Accept: "application/json", ...authHeaders() };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "The server could not be reached. Check that it is running.", {});
  }
  if (response.status === 401) {
    throw new AuthRequired((await problemOf(response)).message);
  }
  if (!response.ok) {
    throw await problemOf(response);
  }
  return { status: response.status, body: await response.json() };
}

export const get = (path) => request("GET", path).then((r) => r.body);
