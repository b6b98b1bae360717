// wasi:cli for the Worker, except stdout/stderr (stdio.js): the guest's environment (its WACHT_*
// bindings), an empty stdin, no terminal, and exit as an error. Our own rather than
// preview2-shim's createCli: its streams are preview2-shim's classes, and jco's glue accepts only
// instances of the stream classes the Worker passes (io.js).
import { InputStream } from "./io.js";

class TerminalInput {}
class TerminalOutput {}

// A guest calling exit cannot answer: the shim turns this into a 502 and drops the instance.
export class ComponentExit extends Error {
  constructor() {
    super("the component called wasi:cli/exit");
  }
}

export function cli(environment) {
  const env = Object.entries(environment);
  return {
    "wasi:cli/environment": {
      getEnvironment: () => env.map(([k, v]) => [k, v]),
      getArguments: () => [],
      initialCwd: () => undefined,
    },
    "wasi:cli/exit": {
      exit() {
        throw new ComponentExit();
      },
    },
    "wasi:cli/stdin": { getStdin: () => new InputStream() },
    "wasi:cli/terminal-input": { TerminalInput },
    "wasi:cli/terminal-output": { TerminalOutput },
    "wasi:cli/terminal-stderr": { getTerminalStderr: () => undefined },
    "wasi:cli/terminal-stdin": { getTerminalStdin: () => undefined },
    "wasi:cli/terminal-stdout": { getTerminalStdout: () => undefined },
  };
}
