// Every import of the component, for one instance: its own environment, stdout/stderr line
// buffers and outbound allowlist. A module of its own so that build.mjs can check the jco glue
// against it (every method the glue calls must exist here).
import { insecureSeed, random } from "@bytecodealliance/preview2-shim/random";
import { cli } from "./cli.js";
import { outgoingHandler, types } from "./http.js";
import { OutputStream, error, monotonicClock, poll, streams, wallClock } from "./io.js";
import { allowedOrigins } from "./policy.js";
import { guestOutput } from "./stdio.js";
import { VerifyingKey, importKey } from "./verifier.js";

export function componentImports(vars) {
  const output = guestOutput((sink) => new OutputStream(sink));
  return {
    ...cli(vars),
    "wasi:cli/stderr": output.stderr,
    "wasi:cli/stdout": output.stdout,
    "wasi:clocks/monotonic-clock": monotonicClock,
    "wasi:clocks/wall-clock": wallClock,
    // fetch for the allowlisted origins only (policy.js), redirects never followed.
    "wasi:http/outgoing-handler": outgoingHandler(allowedOrigins(vars)),
    "wasi:http/types": types,
    "wasi:io/error": error,
    "wasi:io/poll": poll,
    "wasi:io/streams": streams,
    "wasi:random/insecure-seed": insecureSeed,
    // Request and trace ids (crypto.getRandomValues).
    "wasi:random/random": random,
    // Session-token signatures: WebCrypto, natively (verifier.js).
    "wacht:admin/verifier": { VerifyingKey, importKey },
  };
}
