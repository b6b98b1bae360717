// A V8 CPU profile of one Worker in a running workerd, summarised by self time: where a request's
// CPU goes in the jco glue, preview2-shim and the shim. For profiling by hand, never in benches
// (the inspector slows every request).
//
//   WACHT_WORKERD_INSPECT=127.0.0.1:9229 WACHT_BENCH_SECS=8 \
//     cargo test --test all workers::bench_pool_vs_instance_per_request -- --ignored --nocapture --exact &
//   node scripts/worker-profile.mjs 127.0.0.1:9229 pool 3 5
//
// Arguments: inspector address, a substring of the worker's name, seconds to wait, seconds to
// record. Needs Node 22 (global WebSocket): worker/node_modules/.bin/node.
const [addr = "127.0.0.1:9229", name = "pool", wait = "3", record = "5"] = process.argv.slice(2);
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

async function targets() {
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(`http://${addr}/json/list`);
      return await res.json();
    } catch {
      await sleep(0.1);
    }
  }
  throw new Error(`no inspector at ${addr}`);
}

const list = await targets();
const target = list.find((t) => `${t.title} ${t.id} ${t.url}`.includes(name)) ?? list[0];
if (!target) throw new Error("no worker to profile");
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((ok, fail) => {
  ws.onopen = ok;
  ws.onerror = fail;
});
let id = 0;
const pending = new Map();
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id && pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  }
};
const call = (method, params = {}) =>
  new Promise((ok) => {
    id += 1;
    pending.set(id, ok);
    ws.send(JSON.stringify({ id, method, params }));
  });

await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 50 });
await sleep(Number(wait));
await call("Profiler.start");
await sleep(Number(record));
const { result } = await call("Profiler.stop");
ws.close();

const { nodes, samples, timeDeltas } = result.profile;
const byId = new Map(nodes.map((n) => [n.id, n]));
const self = new Map();
samples.forEach((nodeId, i) => self.set(nodeId, (self.get(nodeId) ?? 0) + (timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fns = new Map();
const files = new Map();
for (const [nodeId, us] of self) {
  const f = byId.get(nodeId).callFrame;
  const file = (f.url || "(native)").split("/").pop();
  const key = `${f.functionName || "(anonymous)"}  ${file}:${f.lineNumber + 1}`;
  fns.set(key, (fns.get(key) ?? 0) + us);
  files.set(file, (files.get(file) ?? 0) + us);
}
const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
console.log(`${target.title}: ${(total / 1e3).toFixed(0)} ms sampled over ${record} s`);
console.log("\nself time by script:");
for (const [k, us] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${pct(us)}  ${k}`);
console.log("\nself time by function:");
for (const [k, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`  ${pct(us)}  ${k}`);
