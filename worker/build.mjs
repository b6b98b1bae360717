// Transpiles the wacht-admin component into worker/gen/ for the Worker shim.
//
//   node worker/build.mjs [path/to/wacht_admin.wasm]     (default: the host-verifier build)
//
// Output (generated, never committed):
//   gen/wacht_admin.js          jco glue: `instantiate(getCoreModule, imports)`
//   gen/*.wasm                  the core modules (their number varies between builds)
//   gen/core-modules.js         static imports of every core module + `getCoreModule(name)`
//
// Workers cannot compile Wasm from bytes at run time, so every core module must be a static
// import that wrangler bundles as CompiledWasm; core-modules.js is generated from what jco
// emitted rather than hard-coded.
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
// jco 1.12.0, pinned on purpose. Later jco releases (1.13+, and every jco-transpile) emit glue
// for the component-model async runtime whether a component uses it or not: 337 KB minified,
// 37 KB gzip for this component, against 58 KB and 9.6 KB gzip here; the smaller glue also
// costs less CPU per request (worker/README.md has the figures).
import { transpile } from "@bytecodealliance/jco";
import { checkImports } from "./src/glue-check.js";
import { componentImports } from "./src/imports.js";

const here = dirname(fileURLToPath(import.meta.url));
// The host-verifier build: signatures are checked by WebCrypto (src/verifier.js), not in wasm.
const wasm = resolve(
  process.argv[2] ?? join(here, "../target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm"),
);
const out = join(here, "gen");
const name = "wacht_admin";
// wasm-opt level: WACHT_WORKER_OPT=s (default), z, 2, 3..., or 0 to skip it.
const level = process.env.WACHT_WORKER_OPT || "s";
const optimize = level !== "0";

// The features rustc enables by default for wasm32-wasip2 (Rust 1.95); wasm-opt must accept them.
const features = [
  "--enable-bulk-memory",
  "--enable-bulk-memory-opt",
  "--enable-call-indirect-overlong",
  "--enable-multivalue",
  "--enable-mutable-globals",
  "--enable-nontrapping-float-to-int",
  "--enable-reference-types",
  "--enable-sign-ext",
];

const VERIFIER = "wacht:admin/verifier";
const VERIFY_IMPORT_KEY = `${VERIFIER}#import-key`;
const VERIFY_METHOD = `${VERIFIER}#[method]verifying-key.verify`;

// The imports that may wait on a JS promise (JSPI), and the export that may suspend. jco's CLI
// flags --async-wasi-imports/--async-wasi-exports stand for longer lists; its library API takes
// them spelled out. Only these: jco makes an async import an async function, which suspends the
// guest on every call even when the answer is there. The shim's streams read from and write to
// memory (src/io.js), so reads, writes and flushes are plain synchronous imports; only waiting
// for an upstream answer (poll, pollable.block) and WebCrypto suspend.
const asyncImports = [
  "wasi:io/poll#poll",
  "wasi:io/poll#[method]pollable.block",
  // WebCrypto is async. jco ignores a misspelled name here without a word, and a Promise given
  // to a synchronous import reads as `true`: the glue check below is what keeps that out.
  VERIFY_IMPORT_KEY,
  VERIFY_METHOD,
];
const asyncExports = ["wasi:http/incoming-handler#handle"];

let bytes;
try {
  bytes = await readFile(wasm);
} catch {
  console.error(`worker/build.mjs: ${wasm} not found: run \`make build\` first`);
  process.exit(1);
}

const { files } = await transpile(bytes, {
  name,
  // Workers only accept precompiled modules: the glue must take them from us.
  instantiation: "async",
  // JSPI: the guest's blocking wasi calls (poll, blocking-read/write) suspend on JS promises.
  asyncMode: "jspi",
  asyncImports,
  asyncExports,
  nodejsCompat: false,
  typescript: false,
  optimize,
  optArgs: [`-O${level}`, "--strip-debug", ...features],
  // Not here: the glue is checked as jco wrote it (below); wrangler's esbuild minifies the bundle.
  minify: false,
});

const glueName = `${name}.js`;
const glue =
  typeof files[glueName] === "string" ? files[glueName] : new TextDecoder().decode(files[glueName]);
// The verifier's answers must be awaited inside a JSPI suspension: a Promise read synchronously
// is truthy, and every tampered token would pass. jco says nothing when an async-import name does
// not match, so the glue itself is checked.
for (const [what, awaited] of [
  [VERIFY_IMPORT_KEY, /await importKey\(/],
  [VERIFY_METHOD, /await [\w$]+\.verify\(/],
]) {
  if (!awaited.test(glue)) {
    throw new Error(`jco glue does not await ${what}: check asyncImports in worker/build.mjs`);
  }
}
// The glue must await exactly what may return a Promise: poll and pollable.block (when waiting)
// and the verifier. Anything else awaited would suspend for nothing; anything of these not awaited
// would hand the guest a Promise.
for (const [what, awaited] of [
  ["wasi:io/poll#poll", /await poll\(/],
  ["wasi:io/poll#[method]pollable.block", /await [\w$]+\.block\(/],
]) {
  if (!awaited.test(glue)) throw new Error(`jco glue does not await ${what}: check asyncImports`);
}
const awaitedCalls = [...glue.matchAll(/await ([\w$]+(?:\.[\w$]+)?)\(/g)].map((m) => m[1]);
const unexpected = awaitedCalls.filter((c) => !/^(poll|[\w$]+\.block|importKey|[\w$]+\.verify|incomingHandler[\w$]*)$/.test(c));
if (unexpected.length > 0) {
  throw new Error(`jco glue awaits ${unexpected.join(", ")}: only poll, block and the verifier may suspend`);
}
// Every import the glue calls must exist in src/imports.js: the shim implements wasi:io and
// wasi:http itself, and a method it lacks would only show as a trap at run time.
const missing = checkImports(glue, componentImports({}));
if (missing.length > 0) {
  throw new Error(`the glue calls imports that src/imports.js lacks: ${missing.join(", ")}`);
}
// The glue must suspend through JSPI; without it the first outgoing request would hang.
if (!glue.includes("WebAssembly.Suspending") || !glue.includes("WebAssembly.promising")) {
  throw new Error("jco glue does not use JSPI: check the async options in worker/build.mjs");
}

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const cores = [];
for (const [file, bytes] of Object.entries(files)) {
  if (file.endsWith(".d.ts")) continue;
  if (file.includes("/")) throw new Error(`unexpected nested output ${file}`);
  await writeFile(join(out, file), bytes);
  if (file.endsWith(".wasm")) cores.push(file);
}
cores.sort();

// The glue must ask for exactly the modules it emitted, and compile nothing from inline bytes.
for (const core of cores) {
  if (!glue.includes(core)) throw new Error(`glue does not reference ${core}`);
}
if (/base64|atob\(/.test(glue)) throw new Error("glue inlines a core module as base64");

const lines = [
  "// Generated by worker/build.mjs: every core module jco emitted, as a static import.",
  ...cores.map((core, i) => `import m${i} from "./${core}";`),
  `const modules = { ${cores.map((core, i) => `${JSON.stringify(core)}: m${i}`).join(", ")} };`,
  "export function getCoreModule(name) {",
  "  const m = modules[name];",
  '  if (!m) throw new Error("unknown core module " + name);',
  "  return m;",
  "}",
  "",
];
await writeFile(join(out, "core-modules.js"), lines.join("\n"));

const sizes = await Promise.all(
  [`${name}.js`, ...cores].map(async (f) => `${f} ${(await stat(join(out, f))).size} B`),
);
console.log(`worker/gen: ${sizes.join(", ")} (${optimize ? `wasm-opt -O${level}` : "wasm-opt skipped"})`);

