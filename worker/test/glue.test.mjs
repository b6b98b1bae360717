// build.mjs's check that the jco glue calls only imports the shim provides (src/glue-check.js).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { checkImports } from "../src/glue-check.js";
import { componentImports } from "../src/imports.js";

const glue = `
  const { InputStream, OutputStream } = imports['wasi:io/streams'];
  const { Fields, OutgoingBody } = imports['wasi:http/types'];
  const { Error: Error$1 } = imports['wasi:io/error'];
  const { now } = imports['wasi:clocks/monotonic-clock'];
  function a() { rsc0 = Object.create(InputStream.prototype);
      const ret = rsc0.read(1n); }
  function b() { rsc0 = Object.create(InputStream.prototype);
      const ret = rsc0.frobnicate(); }
  function c() { OutgoingBody.finish(x, y); OutgoingBody.abandon(x); }
  function d() { const ret = now(); }
`;

test("a method, static function or import the shim lacks is reported", () => {
  const missing = checkImports(glue, componentImports({})).sort();
  assert.deepEqual(missing, [
    "wasi:http/types#OutgoingBody.abandon",
    "wasi:io/streams#InputStream.frobnicate",
  ]);
  const without = componentImports({});
  delete without["wasi:clocks/monotonic-clock"];
  assert.ok(checkImports(glue, without).includes("wasi:clocks/monotonic-clock#now"));
});

const generated = new URL("../gen/wacht_admin.js", import.meta.url);
test("the component's glue (worker/gen, after a build) finds everything it calls", { skip: !existsSync(generated) && "no worker/gen: run the build" }, () => {
  assert.deepEqual(checkImports(readFileSync(generated, "utf8"), componentImports({})), []);
});
