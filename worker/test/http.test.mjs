// The shim's own wasi:http and wasi:io (src/http.js, src/io.js) against real loopback HTTP
// servers, driven the way the component drives them: build the request, `handle`, wait on the
// future's pollable (with the guest's deadline beside it), `get`, then read the body stream.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { GuestResponseError, MAX_RESPONSE_BODY_BYTES, outgoingHandler, serveRequest, types } from "../src/http.js";
import { monotonicClock, poll } from "../src/io.js";

const dispose = Symbol.dispose || Symbol.for("dispose");
const bytes = (text) => new TextEncoder().encode(text);
const text = (b) => new TextDecoder().decode(b);
const MiB = 1024 * 1024;

// Every request the server saw: { path, method, headers, body, closedEarly }.
const seen = [];
let server;
let origin;
let outsider; // a second server, off the allowlist
let outsiderHits = 0;

before(async () => {
  server = createServer((req, res) => {
    const entry = { path: req.url, method: req.method, headers: req.rawHeaders, body: "", closedEarly: false };
    seen.push(entry);
    req.on("data", (c) => (entry.body += c));
    res.on("close", () => (entry.closedEarly = !res.writableFinished));
    req.on("end", () => {
      switch (req.url) {
        case "/users":
          res.writeHead(200, { "content-type": "application/json", "content-length": "11" });
          return res.end('{"data":[]}');
        case "/redirect":
          res.writeHead(302, { location: `${outsiderOrigin()}/users`, "content-length": "0" });
          return res.end();
        case "/big-declared":
          // Announces more than the cap; the shim must refuse before reading it.
          res.writeHead(200, { "content-length": String(MAX_RESPONSE_BODY_BYTES + 1) });
          return res.write("x".repeat(1024));
        case "/big-chunked": {
          res.writeHead(200, { "content-type": "application/octet-stream" });
          const chunk = Buffer.alloc(MiB, 120);
          let sent = 0;
          const push = () => {
            while (sent <= MAX_RESPONSE_BODY_BYTES / MiB) {
              sent++;
              if (!res.write(chunk)) return res.once("drain", push);
            }
            res.end();
          };
          return push();
        }
        case "/hang":
          return; // never answers
        case "/stall-body":
          // Headers and a tenth of the body, then nothing.
          res.writeHead(200, { "content-length": "100" });
          return res.write("x".repeat(10));
        case "/aged":
          // As a CDN answers from its cache; the Age line repeated, as a chain of caches might.
          res.setHeader("age", ["597", "3"]);
          res.writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=600" });
          return res.end('{"keys":[]}');
        case "/echo":
          res.writeHead(200, { "content-type": "text/plain" });
          return res.end(`${req.method} ${entry.body}`);
        default:
          res.writeHead(404);
          return res.end();
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  origin = `http://127.0.0.1:${server.address().port}`;
  outsider = createServer((req, res) => {
    outsiderHits++;
    res.end("{}");
  });
  outsider.listen(0, "127.0.0.1");
  await once(outsider, "listening");
});

after(() => {
  server.closeAllConnections();
  server.close();
  outsider.close();
});

const outsiderOrigin = () => `http://127.0.0.1:${outsider.address().port}`;
const handler = () => outgoingHandler(new Set([origin]));

function outgoing(url, { method = "get", timeoutMs } = {}) {
  const u = new URL(url);
  const headers = new types.Fields();
  headers.append("accept", bytes("application/json"));
  const request = new types.OutgoingRequest(headers);
  request.setMethod({ tag: method });
  request.setScheme({ tag: u.protocol === "https:" ? "HTTPS" : "HTTP" });
  request.setAuthority(u.host);
  request.setPathWithQuery(u.pathname + u.search);
  let options;
  if (timeoutMs !== undefined) {
    options = new types.RequestOptions();
    const ns = BigInt(timeoutMs) * 1000000n;
    options.setConnectTimeout(ns);
    options.setFirstByteTimeout(ns);
    options.setBetweenBytesTimeout(ns);
  }
  return { request, options };
}

// As the guest waits: ready() first, else poll the future beside its own deadline.
async function wait(future, deadlineMs = 5000) {
  const pollable = future.subscribe();
  if (pollable.ready()) return [0];
  const deadline = monotonicClock.subscribeDuration(BigInt(deadlineMs) * 1000000n);
  const ready = await poll.poll([pollable, deadline]);
  return [...ready];
}

// The body as the guest reads it: non-blocking reads until `closed`.
function readAll(response) {
  const stream = response.consume().stream();
  const chunks = [];
  for (;;) {
    assert.ok(stream.subscribe().ready(), "a body stream handed to the guest is always ready");
    let chunk;
    try {
      chunk = stream.read(65536n);
    } catch (e) {
      assert.deepEqual(e, { tag: "closed" });
      break;
    }
    assert.ok(chunk instanceof Uint8Array, "read answers at once, never with a Promise");
    chunks.push(text(chunk));
  }
  stream[dispose]();
  return chunks.join("");
}

test("a GET is answered from memory: status, body, then closed", async () => {
  const { request, options } = outgoing(`${origin}/users`, { timeoutMs: 2000 });
  const future = handler().handle(request, options);
  assert.deepEqual(await wait(future), [0]);
  const result = future.get();
  assert.equal(result.tag, "ok");
  assert.equal(result.val.tag, "ok");
  const response = result.val.val;
  assert.equal(response.status(), 200);
  assert.equal(readAll(response), '{"data":[]}');
  assert.deepEqual(future.get(), { tag: "err", val: undefined }, "the answer is handed out once");
});

test("the upstream's response headers reach the guest: Age for the JWKS cache", async () => {
  const { request } = outgoing(`${origin}/aged`);
  const future = handler().handle(request, undefined);
  await wait(future);
  const response = future.get().val.val;
  assert.equal(response.status(), 200);
  const fields = response.headers();
  // fetch folds the repeated line into one value, in order: its first member is still the first
  // line's, which is what the component reads (RFC 9111 §5.1).
  assert.deepEqual(fields.get("age").map(text), ["597, 3"]);
  assert.deepEqual(fields.get("Cache-Control").map(text), ["public, max-age=600"]);
  assert.equal(fields.get("x-absent").length, 0);
  assert.throws(() => fields.append("age", bytes("0")), (e) => e?.tag === "immutable");
  assert.equal(readAll(response), '{"keys":[]}');
});

test("a ready pollable is answered without a Promise", async () => {
  const { request } = outgoing(`${origin}/users`);
  const future = handler().handle(request, undefined);
  await wait(future);
  const ready = poll.poll([future.subscribe(), monotonicClock.subscribeDuration(10n ** 12n)]);
  assert.ok(ready instanceof Uint32Array, "poll returned a Promise although a pollable was ready");
  assert.deepEqual([...ready], [0]);
  assert.equal(future.subscribe().block(), undefined);
});

test("an origin off the allowlist is refused with HTTP-request-denied, and never contacted", () => {
  const before = outsiderHits;
  const { request } = outgoing(`${outsiderOrigin()}/users`);
  assert.throws(() => handler().handle(request, undefined), (e) => e?.tag === "HTTP-request-denied");
  // Same host, another port: another origin.
  const { request: path } = outgoing(`${origin}/users`);
  path.setPathWithQuery("@evil.example/users");
  assert.throws(() => handler().handle(path, undefined), (e) => e?.tag === "HTTP-request-denied");
  assert.equal(outsiderHits, before);
});

test("a redirect is handed to the guest, not followed", async () => {
  const before = outsiderHits;
  const { request } = outgoing(`${origin}/redirect`);
  const future = handler().handle(request, undefined);
  await wait(future);
  const response = future.get().val.val;
  assert.equal(response.status(), 302);
  assert.equal(outsiderHits, before, "the redirect target was contacted");
});

test("a declared body over the cap is refused with HTTP-response-body-size, unread", async () => {
  const { request, options } = outgoing(`${origin}/big-declared`, { timeoutMs: 5000 });
  const started = performance.now();
  const future = handler().handle(request, options);
  assert.deepEqual(await wait(future), [0]);
  assert.deepEqual(future.get(), {
    tag: "ok",
    val: { tag: "err", val: { tag: "HTTP-response-body-size", val: BigInt(MAX_RESPONSE_BODY_BYTES + 1) } },
  });
  assert.ok(performance.now() - started < 2000, "waited for a body it should have refused");
});

test("a chunked body is cut at the cap with HTTP-response-body-size", async () => {
  const { request, options } = outgoing(`${origin}/big-chunked`, { timeoutMs: 10000 });
  const future = handler().handle(request, options);
  assert.deepEqual(await wait(future, 10000), [0]);
  assert.deepEqual(future.get(), {
    tag: "ok",
    val: { tag: "err", val: { tag: "HTTP-response-body-size", val: undefined } },
  });
});

// `path` must end in HTTP-response-timeout at the request's timeout (the guest's own deadline is
// later), and the exchange must be aborted.
async function timesOutAborted(path, timeoutMs) {
  const { request, options } = outgoing(`${origin}${path}`, { timeoutMs });
  const started = performance.now();
  const future = handler().handle(request, options);
  assert.deepEqual(await wait(future, 5000), [0]);
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= timeoutMs - 10 && elapsed < 2000, `answered after ${elapsed} ms`);
  assert.deepEqual(future.get(), { tag: "ok", val: { tag: "err", val: { tag: "HTTP-response-timeout" } } });
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(seen.filter((s) => s.path === path).at(-1)?.closedEarly, `the exchange with ${path} was not aborted`);
}

test("a hanging upstream ends in HTTP-response-timeout at the request's timeout, aborted", () =>
  timesOutAborted("/hang", 200));

test("a body that stalls after the headers ends in HTTP-response-timeout at the deadline, aborted", () =>
  timesOutAborted("/stall-body", 300));

// setTimeout calls made by the shim while `run` waits.
async function timersDuring(run) {
  const original = globalThis.setTimeout;
  let calls = 0;
  globalThis.setTimeout = (...args) => {
    calls++;
    return original(...args);
  };
  try {
    return { result: await run(), calls };
  } finally {
    globalThis.setTimeout = original;
  }
}

test("a wait on an upstream answer beside the guest's own deadline, due as soon, arms no timer of ours", async () => {
  const { request, options } = outgoing(`${origin}/hang`, { timeoutMs: 250 });
  const future = handler().handle(request, options);
  // The guest's deadline is within the slack before the answer's, however late it is taken.
  const { result, calls } = await timersDuring(() => wait(future, 248));
  // The fetch's own timeout signal ended the wait (the guest's deadline may or may not be due).
  assert.equal(result[0], 0);
  assert.equal(calls, 0, "the wait armed a timer");
  assert.deepEqual(future.get(), { tag: "ok", val: { tag: "err", val: { tag: "HTTP-response-timeout" } } });
});

test("a guest that gives up first gets its deadline, and dropping the future aborts the fetch", async () => {
  const { request, options } = outgoing(`${origin}/hang`, { timeoutMs: 10000 });
  const future = handler().handle(request, options);
  const count = seen.filter((s) => s.path === "/hang").length;
  // Its deadline is well before the answer's: this wait needs a timer of its own.
  const { result, calls } = await timersDuring(() => wait(future, 100));
  assert.deepEqual(result, [1]);
  // One, or more when a timer fires before the clock reads its instant and is re-armed.
  assert.ok(calls >= 1, "the guest's earlier deadline armed no timer");
  assert.equal(future.get(), undefined, "no answer yet");
  future[dispose]();
  await new Promise((r) => setTimeout(r, 200));
  const hung = seen.filter((s) => s.path === "/hang");
  assert.equal(hung.length, count + 1);
  assert.ok(hung.at(-1).closedEarly, "dropping the future did not abort the exchange");
});

test("a POST body written after handle is sent once finished", async () => {
  const { request, options } = outgoing(`${origin}/echo`, { method: "post", timeoutMs: 2000 });
  const body = request.body();
  const future = handler().handle(request, options);
  const stream = body.write();
  assert.equal(stream.blockingWriteAndFlush(bytes('{"a":')), undefined, "writes never wait");
  stream.write(bytes("1}"));
  stream[dispose]();
  assert.equal(future.subscribe().ready(), false, "sent before the body was finished");
  types.OutgoingBody.finish(body, undefined);
  await wait(future);
  assert.equal(readAll(future.get().val.val), 'POST {"a":1}');
});

test("fields refuse invalid names, CR/LF in values, and changes once locked", () => {
  const fields = new types.Fields();
  assert.throws(() => fields.append("bad name", bytes("x")), (e) => e?.tag === "invalid-syntax");
  assert.throws(() => fields.append("x-a", bytes("a\r\nb: c")), (e) => e?.tag === "invalid-syntax");
  assert.throws(() => fields.append("Host", bytes("evil")), (e) => e?.tag === "forbidden");
  fields.append("X-A", bytes("1"));
  fields.append("x-a", bytes("2"));
  assert.deepEqual(fields.get("x-A").map(text), ["1", "2"]);
  new types.OutgoingRequest(fields);
  assert.throws(() => fields.append("x-b", bytes("3")), (e) => e?.tag === "immutable");
});

// A guest written in JS for serveRequest: what the component does with the incoming-handler.
function guest(answer) {
  return async (request, out) => {
    const seenByGuest = {
      method: request.method(),
      path: request.pathWithQuery(),
      headers: request.headers().entries().map(([k, v]) => [k, text(v)]),
    };
    answer(seenByGuest, out);
  };
}

test("serveRequest hands the guest method, path and headers, and returns its answer", async () => {
  let got;
  const response = await serveRequest(
    new Request("https://w.example/admin/users?limit=5", { headers: { authorization: "Bearer t" } }),
    guest((seenByGuest, out) => {
      got = seenByGuest;
      const headers = new types.Fields();
      headers.append("content-type", bytes("application/json"));
      const r = new types.OutgoingResponse(headers);
      r.setStatusCode(418);
      const body = r.body();
      types.ResponseOutparam.set(out, { tag: "ok", val: r });
      const s = body.write();
      s.blockingWriteAndFlush(bytes('{"ok":'));
      s.blockingWriteAndFlush(bytes("true}"));
      types.OutgoingBody.finish(body, undefined);
    }),
  );
  assert.deepEqual(got.method, { tag: "get" });
  assert.equal(got.path, "/admin/users?limit=5");
  assert.deepEqual(got.headers, [["authorization", "Bearer t"]]);
  assert.equal(response.status, 418);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.equal(await response.text(), '{"ok":true}');
});

test("repeated header names keep every value; a header named __proto__ stays a header", async () => {
  // Outgoing: the fetch init.
  const { request } = outgoing(`${origin}/users`);
  request.headers().immutable = false;
  request.headers().append("x-multi", bytes("a"));
  request.headers().append("X-Multi", bytes("b"));
  const before = seen.length;
  const future = handler().handle(request, undefined);
  await wait(future);
  assert.equal(future.get().val.tag, "ok");
  const raw = seen[before].headers;
  const sent = (name) => raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === name ? [raw[i + 1]] : []));
  // fetch may fold repeated values into one line; neither value may be lost.
  assert.equal(sent("x-multi").join(", "), "a, b");
  assert.deepEqual(sent("accept"), ["application/json"]);
  // The Response built from the guest's answer, with and without a repeated name. (__proto__ is
  // checked here only: Node's fetch itself leaves such a header off the wire.)
  for (const repeat of [false, true]) {
    const response = await serveRequest(
      new Request("https://w.example/"),
      guest((_, out) => {
        const headers = new types.Fields();
        headers.append("Content-Type", bytes("application/json"));
        headers.append("__proto__", bytes("p"));
        headers.append("vary", bytes("authorization"));
        if (repeat) headers.append("Vary", bytes("origin"));
        const r = new types.OutgoingResponse(headers);
        types.ResponseOutparam.set(out, { tag: "ok", val: r });
      }),
    );
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.equal(response.headers.get("__proto__"), "p");
    assert.equal(response.headers.get("vary"), repeat ? "authorization, origin" : "authorization");
  }
});

test("serveRequest fails (the shim answers 502) when the guest sets no response or leaves its body unfinished", async () => {
  const req = () => new Request("https://w.example/");
  await assert.rejects(serveRequest(req(), async () => {}), GuestResponseError);
  await assert.rejects(
    serveRequest(
      req(),
      guest((_, out) => {
        const r = new types.OutgoingResponse(new types.Fields());
        r.body();
        types.ResponseOutparam.set(out, { tag: "ok", val: r });
      }),
    ),
    GuestResponseError,
  );
});

test("an extension method reaches the guest as `other`", async () => {
  let method;
  await assert.rejects(
    serveRequest(new Request("https://w.example/", { method: "PROPFIND" }), guest((s) => (method = s.method))),
    GuestResponseError,
  );
  assert.deepEqual(method, { tag: "other", val: "PROPFIND" });
});
