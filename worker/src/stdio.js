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

// One console.log per complete line. (The stock console stream also emits on every flush, and
// Rust's stderr flushes each write: a line would arrive in pieces.) The guest writes one
// access-log line per request to stderr; it is information, not an error, so it is logged at
// "log" level. No `drop`: the buffer outlives any one handle.
export function lines() {
  const decoder = new TextDecoder();
  let pending = "";
  return {
    write(bytes) {
      pending += decoder.decode(bytes, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0 || pending.length > 8192) {
        const end = newline >= 0 ? newline : 8192;
        console.log(pending.slice(0, end).replace(/\r$/, ""));
        pending = pending.slice(end + (newline >= 0 ? 1 : 0));
      }
    },
    blockingFlush() {},
  };
}
