// Server-sent events over fetch(): EventSource cannot send an Authorization header, so the stream is
// read from a fetch() body with this small parser, and reconnects are ours (with Last-Event-ID).

const MAX_DELAY_MS = 30000;
// The server sends a heartbeat every 15 s by default: this much silence means a dead connection.
const SILENCE_LIMIT_MS = 45000;

// Parses the text/event-stream format (WHATWG HTML §9.2.6) fed in arbitrary chunks;
// calls onEvent({type, data, id}) per dispatched event, onRetry(ms) for a `retry:` field.
export function createParser(onEvent, onRetry) {
  let buffer = "";
  let type = "";
  let data = [];
  let id = null;

  function dispatch() {
    if (data.length > 0) {
      onEvent({ type: type || "message", data: data.join("\n"), id });
    }
    type = "";
    data = [];
  }

  function line(text) {
    if (text === "") {
      dispatch();
      return;
    }
    if (text.startsWith(":")) {
      return; // a comment: the heartbeat
    }
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    if (field === "event") {
      type = value;
    } else if (field === "data") {
      data.push(value);
    } else if (field === "id" && !value.includes("\0")) {
      id = value;
    } else if (field === "retry" && /^\d+$/.test(value)) {
      onRetry(Number(value));
    }
  }

  return function feed(chunk) {
    buffer += chunk;
    const newline = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = newline.exec(buffer)) !== null) {
      // A chunk may end between the \r and \n of one line break: wait for the next chunk.
      if (match[0] === "\r" && match.index === buffer.length - 1) {
        break;
      }
      line(buffer.slice(start, match.index));
      start = newline.lastIndex;
    }
    buffer = buffer.slice(start);
  };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    signal.addEventListener("abort", wake, { once: true });
  });
}

// Keeps a stream open until close(): connects, reads, and after any failure waits (doubling, with
// jitter so many tabs do not reconnect in step) and resumes from the last event id it saw.
// handlers: headers() -> extra request headers, onEvent({type, data, id}), onState(state, detail),
// onAuthRequired() (a 401 ends the stream until opened again).
export function openStream(url, handlers) {
  const closed = new AbortController();
  let lastId = null;
  let baseDelay = 1000;
  let wasLive = false; // this connection got as far as an open stream

  async function readBody(response, connection) {
    const feed = createParser((event) => {
      if (event.id !== null) {
        lastId = event.id;
      }
      handlers.onEvent(event);
    }, (ms) => {
      baseDelay = ms;
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let watchdog = setTimeout(() => connection.abort(), SILENCE_LIMIT_MS);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          return;
        }
        clearTimeout(watchdog);
        watchdog = setTimeout(() => connection.abort(), SILENCE_LIMIT_MS);
        feed(value);
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  async function connectOnce() {
    const connection = new AbortController();
    // Removed when this connection ends: a long-lived tab reconnects many times.
    const abort = () => connection.abort();
    closed.signal.addEventListener("abort", abort, { once: true });
    try {
      const headers = { Accept: "text/event-stream", ...handlers.headers() };
      if (lastId !== null) {
        headers["Last-Event-ID"] = lastId;
      }
      const response = await fetch(url, { headers, signal: connection.signal, cache: "no-store" });
      if (response.status === 401) {
        return "auth";
      }
      if (!response.ok) {
        throw new Error(`The stream answered ${response.status}.`);
      }
      wasLive = true;
      handlers.onState("live");
      await readBody(response, connection);
      return "ended";
    } finally {
      closed.signal.removeEventListener("abort", abort);
    }
  }

  async function run() {
    let failures = 0;
    while (!closed.signal.aborted) {
      handlers.onState(failures === 0 ? "connecting" : "reconnecting");
      let outcome;
      wasLive = false;
      try {
        outcome = await connectOnce();
      } catch {
        outcome = "failed";
      }
      if (closed.signal.aborted) {
        return;
      }
      if (outcome === "auth") {
        handlers.onState("stopped");
        handlers.onAuthRequired();
        return;
      }
      // A stream that worked and then ended or broke (a server restart) reconnects at the base delay.
      failures = wasLive ? 1 : failures + 1;
      const delay = Math.min(MAX_DELAY_MS, baseDelay * 2 ** (failures - 1)) * (0.75 + Math.random() / 2);
      handlers.onState("reconnecting", Math.round(delay / 1000));
      await sleep(delay, closed.signal);
    }
  }

  run();
  return { close: () => closed.abort() };
}
