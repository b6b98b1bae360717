// The guest's stdout and stderr on Workers: console.log, one call per complete line.
//
// Every wasi:cli get-stdout / get-stderr call returns a stream of its own over the instance's
// one line buffer, as WASI means it: the handle is the guest's to drop. preview2-shim's
// createCli hands out one shared stream instead, and the first handle the guest drops closes it
// for good: a guest that takes a handle per write would log its first line and nothing after.
export function guestOutput(createStream) {
  const out = lines();
  const err = lines();
  return {
    stdout: { getStdout: () => createStream(out) },
    stderr: { getStderr: () => createStream(err) },
  };
}

// One console call per complete line. (The stock console stream also emits on every flush, and
// Rust's stderr flushes each write: a line would arrive in pieces.) No `drop`: the buffer
// outlives any one handle.
export function lines() {
  const decoder = new TextDecoder();
  let pending = "";
  return {
    write(bytes) {
      pending += decoder.decode(bytes, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0 || pending.length > 8192) {
        const end = newline >= 0 ? newline : 8192;
        logLine(pending.slice(0, end).replace(/\r$/, ""));
        pending = pending.slice(end + (newline >= 0 ? 1 : 0));
      }
    },
    blockingFlush() {},
  };
}

// The first words of the line an instance writes once when its configuration is invalid.
export const CONFIG_ERROR = "wacht-admin configuration error:";
const configErrors = new Set();

// How a guest line reaches Workers Logs: a JSON access line as an object (so its fields are
// indexed, not one string), at "error" level for a 5xx; a text line as it is, at "error" level for
// a 5xx. A configuration error is logged once per isolate (every instance of a pool would repeat
// it); the requests it fails still log their 500 access lines.
export function logLine(line) {
  if (line.startsWith(CONFIG_ERROR)) {
    if (!configErrors.has(line)) {
      configErrors.add(line);
      console.error(line);
    }
    return;
  }
  if (line.startsWith("{")) {
    let event = null;
    try {
      event = JSON.parse(line);
    } catch {
      // Not JSON after all: logged as text below.
    }
    if (event !== null && typeof event === "object") {
      (event.status >= 500 ? console.error : console.log)(event);
      return;
    }
  }
  (/ status=5\d\d /.test(line) ? console.error : console.log)(line);
}
