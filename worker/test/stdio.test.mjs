// The shim's guest stdout/stderr (src/stdio.js) over its own output streams (src/io.js), and why
// preview2-shim's createCli (its browser build, the one Workers would run; imported by path:
// under Node the package resolves to its Node.js build) is not used.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createCli } from "../node_modules/@bytecodealliance/preview2-shim/dist/browser/cli.js";
import { OutputStream } from "../src/io.js";
import { CONFIG_ERROR, guestOutput, lines, logLine } from "../src/stdio.js";

const outputStreamCreate = (sink) => new OutputStream(sink);

const bytes = (text) => new TextEncoder().encode(text);
const dispose = Symbol.dispose || Symbol.for("dispose");

// Runs `body` with console.log captured; returns the logged lines.
function logged(body) {
  const seen = [];
  const original = console.log;
  console.log = (line) => seen.push(line);
  try {
    body();
  } finally {
    console.log = original;
  }
  return seen;
}

test("a dropped stderr handle does not close the next one", () => {
  const { stderr } = guestOutput(outputStreamCreate);
  const seen = logged(() => {
    const first = stderr.getStderr();
    first.blockingWriteAndFlush(bytes("one\n"));
    first[dispose]();
    const second = stderr.getStderr();
    second.blockingWriteAndFlush(bytes("two\n"));
    second[dispose]();
  });
  assert.deepEqual(seen, ["one", "two"]);
});

test("preview2-shim's own createCli shares one stream: why the shim does not use it", () => {
  const cli = createCli({ stderr: lines() });
  const first = cli.stderr.getStderr();
  first[dispose]();
  assert.throws(() => cli.stderr.getStderr().blockingWriteAndFlush(bytes("lost\n")));
});

test("one console.log per complete line, across writes and handles", () => {
  const { stdout } = guestOutput(outputStreamCreate);
  const seen = logged(() => {
    stdout.getStdout().blockingWriteAndFlush(bytes("hel"));
    stdout.getStdout().blockingWriteAndFlush(bytes("lo\r\nwor"));
    stdout.getStdout().blockingWriteAndFlush(bytes("ld\n"));
  });
  assert.deepEqual(seen, ["hello", "world"]);
});

test("an endless line is cut every 8192 characters", () => {
  const out = lines();
  const seen = logged(() => out.write(bytes("x".repeat(8192 * 2 + 5))));
  assert.deepEqual(
    seen.map((l) => l.length),
    [8192, 8192],
  );
});

// Runs `body` with console.log and console.error captured: [level, value] pairs.
function leveled(body) {
  const seen = [];
  const original = { log: console.log, error: console.error };
  console.log = (value) => seen.push(["log", value]);
  console.error = (value) => seen.push(["error", value]);
  try {
    body();
  } finally {
    Object.assign(console, original);
  }
  return seen;
}

test("JSON access lines reach Workers Logs as objects, 5xx at error level", () => {
  const seen = leveled(() => {
    logLine('{"msg":"wacht-admin","v":1,"status":200,"request_id":"a"}');
    logLine('{"msg":"wacht-admin","v":1,"status":502,"error":"upstream_error"}');
    logLine("{not json");
  });
  assert.deepEqual(seen, [
    ["log", { msg: "wacht-admin", v: 1, status: 200, request_id: "a" }],
    ["error", { msg: "wacht-admin", v: 1, status: 502, error: "upstream_error" }],
    ["log", "{not json"],
  ]);
});

test("text access lines: 5xx at error level, the rest as information", () => {
  const seen = leveled(() => {
    logLine("wacht-admin v=1 method=GET path=/admin/users status=200 error=- duration_ms=1.0");
    logLine("wacht-admin v=1 method=GET path=/admin/users status=503 error=upstream_unavailable duration_ms=1.0");
  });
  assert.deepEqual(
    seen.map(([level]) => level),
    ["log", "error"],
  );
});

test("a configuration error is logged once per isolate, at error level", () => {
  const line = `${CONFIG_ERROR} WACHT_CLOCK_SKEW_SECS must be a whole number between 0 and 300`;
  const seen = leveled(() => {
    logLine(line);
    logLine(line);
    logLine(`${CONFIG_ERROR} WACHT_LOG_FORMAT must be text or json`);
  });
  assert.deepEqual(seen, [
    ["error", line],
    ["error", `${CONFIG_ERROR} WACHT_LOG_FORMAT must be text or json`],
  ]);
});
