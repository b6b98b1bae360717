// The Cloudflare Worker in front of the wacht-admin component (a Module Worker).
//
// The component (its host-verifier build, target/host-verifier/…/wacht_admin.wasm) is transpiled by jco into
// worker/gen/ (see build.mjs); this file supplies its WASI imports from the browser build of
// @bytecodealliance/preview2-shim and adds what a Worker needs around it:
//   - an instance pool: each instance serves one request at a time (JSPI-suspended instances
//     must never be re-entered), and an instance is dropped after any error or trap;
//   - only the WACHT_* string bindings reach the guest, as environment variables;
//   - an outbound allowlist: the backend API, the gateway and the frontend API origins only;
//   - a trap or instantiation failure becomes a 502 JSON answer, never an HTML error page;
//   - nothing the shim logs contains a header, a binding or a body.
import { instantiate } from "../gen/wacht_admin.js";
import { getCoreModule } from "../gen/core-modules.js";
import { createCli } from "@bytecodealliance/preview2-shim/cli";
import { monotonicClock, wallClock } from "@bytecodealliance/preview2-shim/clocks";
import { handleIncomingRequest, outgoingHandler, types } from "@bytecodealliance/preview2-shim/http";
import { error, outputStreamCreate, poll, streams } from "@bytecodealliance/preview2-shim/io";
import { insecureSeed } from "@bytecodealliance/preview2-shim/random";
import {
  allowedOrigins,
  hasJspi,
  maxInstances,
  poolSize,
  requestOrigin,
  staleAfterMs,
  wachtVars,
} from "./policy.js";
import { guestOutput } from "./stdio.js";
import { VerifyingKey, importKey } from "./verifier.js";

// The shim fetches with preview2-shim's `globalThis.fetch(url, init)`. Redirects are not followed:
// wasi:http hands 3xx answers to the guest, and following one could leave the allowlist.
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => realFetch(input, { ...init, redirect: "manual" });

// Without JSPI no instance can run: say so once, at start-up, and answer every request with a
// clear error instead of failing each instantiation.
const JSPI = hasJspi(WebAssembly);
if (!JSPI) {
  console.error(
    "wacht-admin worker: this runtime has no WebAssembly JSPI (Suspending/promising); every request is answered 502 internal_error",
  );
}

const idle = []; // instances ready to serve, each { handle }
let idleKey = null; // the configuration the idle instances were made with
// Requests holding an instance. A Set of start times rather than a counter: a request the
// runtime cancels (client gone) may never reach its `finally`, so old entries are pruned.
const inFlight = new Set();

export default {
  async fetch(request, env) {
    if (!JSPI) {
      return failure("internal_error", "this Workers runtime cannot run the component (no WebAssembly JSPI)");
    }
    const vars = wachtVars(env);
    // Instances keep their parsed configuration: a changed binding set starts a fresh pool.
    const key = JSON.stringify(vars);
    if (key !== idleKey) {
      idle.length = 0;
      idleKey = key;
    }
    // Each request in flight holds an instance (about 1-2 MiB): when upstreams hang, requests
    // pile up, so past the cap they are shed (503) before the isolate runs out of memory.
    const now = Date.now();
    const stale = staleAfterMs(vars);
    for (const entry of inFlight) if (now - entry.started > stale) inFlight.delete(entry);
    if (inFlight.size >= maxInstances(env)) {
      return failure("overloaded", "too many requests in flight, retry shortly", 503, {
        "retry-after": "1",
      });
    }
    const entry = { started: now };
    inFlight.add(entry);
    try {
      return await serve(request, vars, key, env);
    } finally {
      inFlight.delete(entry);
    }
  },
};

async function serve(request, vars, key, env) {
  let instance = idle.pop();
  if (!instance) {
    try {
      instance = await createInstance(vars);
    } catch (e) {
      // No request data exists yet, so the error's own message is safe to log.
      console.error(`wacht-admin worker: instantiation failed: ${e?.name}: ${e?.message}`);
      return failure("internal_error", "the component could not be started");
    }
  }
  let response;
  try {
    // The guest never reads a request body (GET only): hand it none, so nothing is buffered.
    const forGuest = request.body
      ? new Request(request.url, { method: request.method, headers: request.headers })
      : request;
    response = await handleIncomingRequest(forGuest, instance.handle);
  } catch (e) {
    // A trapped instance may be in any state: it is not returned to the pool.
    console.error(`wacht-admin worker: the component failed: ${describe(e)}`);
    return failure("internal_error", "the component failed while handling the request");
  }
  // Back to the pool only once the guest has returned (its response is complete by then).
  if (key === idleKey && idle.length < poolSize(env)) idle.push(instance);
  return response;
}

async function createInstance(vars) {
  // Each instance has its own environment and its own stdout/stderr line buffers.
  const cli = createCli({ environment: vars });
  const output = guestOutput(outputStreamCreate);
  const allowed = allowedOrigins(vars);
  const exports = await instantiate(getCoreModule, {
    "wasi:cli/environment": cli.environment,
    "wasi:cli/exit": cli.exit,
    "wasi:cli/stderr": output.stderr,
    "wasi:cli/stdin": cli.stdin,
    "wasi:cli/stdout": output.stdout,
    "wasi:cli/terminal-input": cli.terminalInput,
    "wasi:cli/terminal-output": cli.terminalOutput,
    "wasi:cli/terminal-stderr": cli.terminalStderr,
    "wasi:cli/terminal-stdin": cli.terminalStdin,
    "wasi:cli/terminal-stdout": cli.terminalStdout,
    "wasi:clocks/monotonic-clock": monotonicClock,
    "wasi:clocks/wall-clock": wallClock,
    "wasi:http/outgoing-handler": {
      handle(request, options) {
        if (!allowed.has(requestOrigin(request))) throw { tag: "HTTP-request-denied" };
        return outgoingHandler.handle(request, options);
      },
    },
    "wasi:http/types": types,
    "wasi:io/error": error,
    "wasi:io/poll": poll,
    "wasi:io/streams": streams,
    "wasi:random/insecure-seed": insecureSeed,
    // Session-token signatures: WebCrypto, natively (verifier.js).
    "wacht:admin/verifier": { VerifyingKey, importKey },
  });
  return { handle: exports.incomingHandler.handle };
}

// As the component's own answers: JSON, never cached, never sniffed.
function failure(code, message, status = 502, headers = {}) {
  return new Response(JSON.stringify({ error: code, message }), {
    status,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      ...headers,
    },
  });
}

// Errors are described by kind only (a Wasm trap's message is a fixed text such as
// "unreachable"): no value that could carry a credential reaches the log.
function describe(e) {
  const wasm = [WebAssembly.RuntimeError, WebAssembly.CompileError, WebAssembly.LinkError];
  if (wasm.some((kind) => e instanceof kind)) {
    return `${e.name}: ${e.message}`;
  }
  return e?.constructor?.name ?? typeof e;
}
