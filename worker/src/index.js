// The Cloudflare Worker in front of the wacht-admin component (a Module Worker).
//
// The component (its host-verifier build, target/host-verifier/…/wacht_admin.wasm) is transpiled by jco into
// worker/gen/ (see build.mjs); imports.js supplies its WASI imports (our own io.js, http.js, cli.js
// and stdio.js; only the insecure seed is preview2-shim's) and this file adds what a Worker needs
// around it:
//   - an instance pool: each instance serves one request at a time (JSPI-suspended instances
//     must never be re-entered), and an instance is dropped after any error or trap;
//   - only the WACHT_* string bindings reach the guest, as environment variables;
//   - an outbound allowlist: the backend API, the gateway and the frontend API origins only;
//   - a trap or instantiation failure becomes a 502 JSON answer, never an HTML error page;
//   - nothing the shim logs contains a header, a binding or a body.
import { instantiate } from "../gen/wacht_admin.js";
import { getCoreModule } from "../gen/core-modules.js";
import { serveRequest } from "./http.js";
import { componentImports } from "./imports.js";
import { hasJspi, maxInstances, poolSize, requestId, staleAfterMs, wachtVars } from "./policy.js";

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
// The bindings object of the last request and what the shim reads from it: workerd hands the
// same object to every request of an isolate, so this is worked out once, not per request.
let lastEnv = null;
let settings = null;
// Requests holding an instance. A Set of start times rather than a counter: a request the
// runtime cancels (client gone) may never reach its `finally`, so old entries are pruned.
const inFlight = new Set();

export default {
  async fetch(request, env) {
    if (!JSPI) {
      return failure(request, "internal_error", "this Workers runtime cannot run the component (no WebAssembly JSPI)");
    }
    if (env !== lastEnv) {
      const vars = wachtVars(env);
      settings = {
        vars,
        key: JSON.stringify(vars),
        stale: staleAfterMs(vars),
        max: maxInstances(env),
        pool: poolSize(env),
      };
      lastEnv = env;
    }
    const { vars, key } = settings;
    // Instances keep their parsed configuration: a changed binding set starts a fresh pool.
    if (key !== idleKey) {
      idle.length = 0;
      idleKey = key;
    }
    // Each request in flight holds an instance (about 1-2 MiB): when upstreams hang, requests
    // pile up, so past the cap they are shed (503) before the isolate runs out of memory.
    const now = Date.now();
    for (const entry of inFlight) if (now - entry.started > settings.stale) inFlight.delete(entry);
    if (inFlight.size >= settings.max) {
      return failure(request, "overloaded", "too many requests in flight, retry shortly", 503, {
        "retry-after": "1",
      });
    }
    const entry = { started: now };
    inFlight.add(entry);
    try {
      return await serve(request, vars, key, settings.pool);
    } finally {
      inFlight.delete(entry);
    }
  },
};

async function serve(request, vars, key, pool) {
  let instance = idle.pop();
  if (!instance) {
    try {
      instance = await createInstance(vars);
    } catch (e) {
      // No request data exists yet, so the error's own message is safe to log.
      console.error(`wacht-admin worker: instantiation failed: ${e?.name}: ${e?.message}`);
      return failure(request, "internal_error", "the component could not be started");
    }
  }
  let response;
  try {
    // The guest is handed no request body (GET only, see http.js): nothing is buffered.
    response = await serveRequest(request, instance.handle);
  } catch (e) {
    // A trapped instance may be in any state: it is not returned to the pool.
    console.error(`wacht-admin worker: the component failed: ${describe(e)}`);
    return failure(request, "internal_error", "the component failed while handling the request");
  }
  // Back to the pool only once the guest has returned (its response is complete by then).
  if (key === idleKey && idle.length < pool) idle.push(instance);
  return response;
}

async function createInstance(vars) {
  const exports = await instantiate(getCoreModule, componentImports(vars));
  return { handle: exports.incomingHandler.handle };
}

// As the component's own answers: JSON with the request id, never cached, never sniffed; and
// logged at error level with that id, so the answer can be traced.
function failure(request, code, message, status = 502, headers = {}) {
  const id = requestId(request.headers);
  console.error({ msg: "wacht-admin worker", request_id: id, status, error: code });
  return new Response(JSON.stringify({ error: code, message, request_id: id }), {
    status,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "x-request-id": id,
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
