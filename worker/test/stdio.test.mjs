// The shim's guest stdout/stderr (src/stdio.js) over its own output streams (src/io.js), and why
// preview2-shim's createCli (its browser build, the one Workers would run; imported by path:
// under Node the package resolves to its Node.js build) is not used.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createCli } from "../node_modules/@bytecodealliance/preview2-shim/dist/browser/cli.js";
import { OutputStream } from "../src/io.js";
import { guestOutput, lines } from "../src/stdio.js";

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
