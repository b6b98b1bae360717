// wasi:http (types, outgoing-handler) for the Worker, in place of preview2-shim's browser build,
// and the adapter between a Workers Request/Response and the guest's incoming-handler.
//
// Why our own: the guest's exchanges are small and whole, so each is one `fetch` plus one
// bounded body read, kept in memory and handed to the guest through io.js streams that never
// wait. preview2-shim streams every body through reader promises and pollables that each cost a
// JSPI suspension and a timer turn. Headers are converted once, where they cross to or from fetch.
//
// The guest still speaks plain wasi:http 0.2 (the same component as on wasmtime); this module
// implements what the component imports, and build.mjs checks the glue calls nothing else.
import { InputStream, OutputStream, Pollable, nowMs } from "./io.js";
import { requestTarget } from "./policy.js";

const dispose = Symbol.dispose || Symbol.for("dispose");
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);

// The largest upstream body kept in memory: above what the guest itself accepts from any
// upstream, so its own limit decides; this only keeps a misbehaving upstream from filling the
// isolate. Past it the guest gets the WASI error HTTP-response-body-size.
export const MAX_RESPONSE_BODY_BYTES = 8 * 1024 * 1024;
// With no request-options: one deadline for the exchange all the same, never an endless wait.
const DEFAULT_TIMEOUT_MS = 30000;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Connection-level headers: fetch manages them itself.
const FORBIDDEN = new Set(["connection", "keep-alive", "host"]);

const METHODS = new Map(
  ["get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"].map((m) => [
    m.toUpperCase(),
    { tag: m },
  ]),
);

function validValue(bytes) {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x0a || b === 0x0d || b === 0) return false;
  }
  return true;
}

// wasi:http/types fields: [name, bytes] pairs in order, as the guest gave them.
class Fields {
  constructor() {
    this.list = [];
    this.immutable = false;
  }

  static fromList(entries) {
    const fields = new Fields();
    for (const [name, value] of entries) fields.append(name, value);
    return fields;
  }

  get(name) {
    const key = name.toLowerCase();
    return this.list.filter((e) => e[0].toLowerCase() === key).map((e) => e[1]);
  }

  has(name) {
    const key = name.toLowerCase();
    return this.list.some((e) => e[0].toLowerCase() === key);
  }

  set(name, values) {
    this.#check(name);
    for (const value of values) if (!validValue(value)) throw { tag: "invalid-syntax" };
    const key = name.toLowerCase();
    this.list = this.list.filter((e) => e[0].toLowerCase() !== key);
    for (const value of values) this.list.push([name, value]);
  }

  delete(name) {
    if (this.immutable) throw { tag: "immutable" };
    const key = name.toLowerCase();
    this.list = this.list.filter((e) => e[0].toLowerCase() !== key);
  }

  append(name, value) {
    this.#check(name);
    if (!validValue(value)) throw { tag: "invalid-syntax" };
    this.list.push([name, value]);
  }

  entries() {
    return this.list;
  }

  clone() {
    const fields = new Fields();
    fields.list = this.list.slice();
    return fields;
  }

  #check(name) {
    if (this.immutable) throw { tag: "immutable" };
    if (!TOKEN.test(name)) throw { tag: "invalid-syntax" };
    if (FORBIDDEN.has(name.toLowerCase())) throw { tag: "forbidden" };
  }
}

// forEach rather than iterating the Headers: it builds no [name, value] array per header.
function lockedFields(headers) {
  const fields = new Fields();
  const list = fields.list;
  headers.forEach((value, name) => {
    list.push([name, encoder.encode(value)]);
  });
  fields.immutable = true;
  return fields;
}

// The guest's fields as a fetch/Response `headers` init: a plain object when no name repeats,
// as workerd converts a record much faster than a sequence of pairs; pairs otherwise, so that
// every value of a repeated name is kept.
function headersInit(fields) {
  const record = {};
  for (const [name, value] of fields.list) {
    const key = name.toLowerCase();
    // __proto__ is a valid header name, but a record's converter may read it as the prototype.
    if (key === "__proto__" || Object.hasOwn(record, key)) return headerPairs(fields);
    record[key] = decoder.decode(value);
  }
  return record;
}

function headerPairs(fields) {
  const pairs = [];
  for (const [name, value] of fields.list) pairs.push([name, decoder.decode(value)]);
  return pairs;
}

class RequestOptions {
  connectTimeout() {
    return this.connect;
  }

  setConnectTimeout(duration) {
    this.connect = duration;
  }

  firstByteTimeout() {
    return this.firstByte;
  }

  setFirstByteTimeout(duration) {
    this.firstByte = duration;
  }

  betweenBytesTimeout() {
    return this.betweenBytes;
  }

  setBetweenBytesTimeout(duration) {
    this.betweenBytes = duration;
  }
}

// Where an outgoing body's stream writes: chunks in memory, sent as one body at `finish`.
class BodySink {
  constructor() {
    this.chunks = [];
    this.closed = false;
  }

  write(bytes) {
    if (this.closed) throw { tag: "closed" };
    this.chunks.push(bytes);
  }

  bytes() {
    const chunks = this.chunks;
    if (chunks.length <= 1) return chunks[0] ?? EMPTY;
    let length = 0;
    for (const c of chunks) length += c.byteLength;
    const out = new Uint8Array(length);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
}

class OutgoingBody {
  constructor() {
    this.sink = new BodySink();
    this.streamTaken = false;
    this.finished = false;
    // Set by the outgoing handler when the request was sent before its body was finished.
    this.onDone = null;
  }

  write() {
    if (this.streamTaken) throw undefined;
    this.streamTaken = true;
    return new OutputStream(this.sink);
  }

  static finish(body, trailers) {
    if (trailers) throw { tag: "internal-error", val: "trailers are not supported" };
    if (body.finished) throw { tag: "internal-error", val: "body already finished" };
    body.finished = true;
    body.sink.closed = true;
    body.onDone?.(true);
  }

  [dispose]() {
    // Dropped unfinished: the body is incomplete, and so is the request it belongs to.
    if (!this.finished) {
      this.sink.closed = true;
      this.onDone?.(false);
    }
    this.onDone = null;
  }
}

class OutgoingRequest {
  constructor(headers) {
    headers.immutable = true;
    this.fields = headers;
    this.verb = METHODS.get("GET");
    this.scheme_ = undefined;
    this.authority_ = undefined;
    this.path = undefined;
    this.body_ = null;
  }

  body() {
    if (this.body_ !== null) throw undefined;
    this.body_ = new OutgoingBody();
    return this.body_;
  }

  method() {
    return this.verb;
  }

  setMethod(method) {
    if (method.tag === "other" && !TOKEN.test(method.val)) throw undefined;
    this.verb = method;
  }

  pathWithQuery() {
    return this.path;
  }

  setPathWithQuery(path) {
    this.path = path;
  }

  scheme() {
    return this.scheme_;
  }

  setScheme(scheme) {
    this.scheme_ = scheme;
  }

  authority() {
    return this.authority_;
  }

  setAuthority(authority) {
    // No userinfo: fetch refuses URLs that carry credentials.
    if (authority?.includes("@")) throw undefined;
    this.authority_ = authority;
  }

  headers() {
    return this.fields;
  }
}

class BodyTooLarge extends Error {
  constructor(size) {
    super("upstream body over the cap");
    this.size = size;
  }
}

// The body, whole, or BodyTooLarge past the cap. A declared length is checked before anything is
// read; without one (chunked, or decoded by fetch) the body is read in pieces and cut at the cap.
async function readBody(response) {
  const body = response.body;
  if (body === null) return EMPTY;
  const declared = response.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && !response.headers.has("content-encoding")) {
    const length = Number(declared);
    if (length > MAX_RESPONSE_BODY_BYTES) {
      body.cancel().catch(() => {});
      throw new BodyTooLarge(length);
    }
    return new Uint8Array(await response.arrayBuffer());
  }
  const reader = body.getReader();
  const chunks = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > MAX_RESPONSE_BODY_BYTES) {
      reader.cancel().catch(() => {});
      throw new BodyTooLarge(undefined);
    }
    chunks.push(value);
  }
  const sink = new BodySink();
  sink.chunks = chunks;
  return sink.bytes();
}

const TIMEOUT = { tag: "HTTP-response-timeout" };

// The answer to one outgoing request, HTTP-response-timeout past its deadline. Once sent, the
// fetch's own timeout signal enforces the deadline (the future is then `selfTimed`, io.js), so a
// wait on it arms no timer of ours; before that, a wait's timer expires it. Dropping the future
// aborts the exchange.
class FutureIncomingResponse {
  constructor(timeoutMs) {
    this.result = undefined;
    this.taken = false;
    this.controller = null;
    this.waiters = [];
    this.deadline = nowMs() + timeoutMs;
    this.selfTimed = false;
  }

  subscribe() {
    return new Pollable(this);
  }

  // Pollable target (io.js).
  ready() {
    return this.result !== undefined;
  }

  arm(wake) {
    this.waiters?.push(wake);
  }

  expire() {
    if (this.result !== undefined) return;
    this.controller?.abort();
    this.settle({ tag: "err", val: TIMEOUT });
  }

  get() {
    if (this.result === undefined) return undefined;
    if (this.taken) return { tag: "err", val: undefined };
    this.taken = true;
    return { tag: "ok", val: this.result };
  }

  settle(result) {
    if (this.result !== undefined) return;
    this.result = result;
    this.controller = null;
    const waiters = this.waiters;
    this.waiters = null;
    if (waiters) for (const wake of waiters) wake();
  }

  // One fetch and its body read whole, both within the deadline; the outcome, never a rejection.
  async send(url, init) {
    const controller = new AbortController();
    const timeout = AbortSignal.timeout(Math.max(Math.ceil(this.deadline - nowMs()), 1));
    this.controller = controller;
    this.selfTimed = true;
    init.signal = AbortSignal.any([controller.signal, timeout]);
    try {
      const response = await fetch(url, init);
      const bytes = await readBody(response);
      this.settle({ tag: "ok", val: new IncomingResponse(response.status, response.headers, bytes) });
    } catch (e) {
      // The fetch error's own text is not passed on: it could name the URL.
      let code = { tag: "internal-error", val: undefined };
      if (e instanceof BodyTooLarge) {
        code = { tag: "HTTP-response-body-size", val: e.size === undefined ? undefined : BigInt(e.size) };
      } else if (timeout.aborted) {
        code = TIMEOUT;
      }
      this.settle({ tag: "err", val: code });
    }
  }

  [dispose]() {
    // The guest gave up: stop the exchange.
    if (this.result === undefined) this.controller?.abort();
    this.controller = null;
    this.waiters = null;
  }
}

class IncomingResponse {
  constructor(status, headers, bytes) {
    this.code = status;
    this.fetchHeaders = headers;
    this.fields = null;
    this.bytes = bytes;
  }

  status() {
    return this.code;
  }

  headers() {
    this.fields ??= lockedFields(this.fetchHeaders);
    return this.fields;
  }

  consume() {
    if (this.bytes === null) throw undefined;
    const body = new IncomingBody(this.bytes);
    this.bytes = null;
    return body;
  }
}

class IncomingBody {
  constructor(bytes) {
    this.bytes = bytes;
  }

  stream() {
    if (this.bytes === null) throw undefined;
    const stream = new InputStream(this.bytes);
    this.bytes = null;
    return stream;
  }

  static finish(body) {
    body.bytes = null;
    return new FutureTrailers();
  }
}

// No trailers ever: fetch does not expose them.
class FutureTrailers {
  constructor() {
    this.taken = false;
  }

  subscribe() {
    return new Pollable();
  }

  get() {
    if (this.taken) return { tag: "err", val: undefined };
    this.taken = true;
    return { tag: "ok", val: { tag: "ok", val: undefined } };
  }
}

// The request the Worker received, as the guest's incoming-request. Read lazily: the guest asks
// for the method, the path and the headers once each.
class IncomingRequest {
  constructor(request) {
    this.request = request;
  }

  method() {
    const method = this.request.method;
    return METHODS.get(method) ?? { tag: "other", val: method };
  }

  pathWithQuery() {
    const url = this.request.url;
    const start = url.indexOf("/", url.indexOf("//") + 2);
    if (start < 0) return "/";
    const hash = url.indexOf("#", start);
    return hash < 0 ? url.slice(start) : url.slice(start, hash);
  }

  scheme() {
    return this.request.url.startsWith("https:") ? { tag: "HTTPS" } : { tag: "HTTP" };
  }

  authority() {
    return new URL(this.request.url).host;
  }

  headers() {
    return lockedFields(this.request.headers);
  }

  // The route is GET only: the guest is handed no body, so nothing is buffered.
  consume() {
    return new IncomingBody(EMPTY);
  }
}

class OutgoingResponse {
  constructor(headers) {
    headers.immutable = true;
    this.fields = headers;
    this.code = 200;
    this.body_ = null;
  }

  statusCode() {
    return this.code;
  }

  setStatusCode(code) {
    if (!(code >= 100 && code <= 999)) throw undefined;
    this.code = code;
  }

  headers() {
    return this.fields;
  }

  body() {
    if (this.body_ !== null) throw undefined;
    this.body_ = new OutgoingBody();
    return this.body_;
  }
}

class ResponseOutparam {
  constructor() {
    this.result = undefined;
  }

  static set(param, response) {
    if (param.result !== undefined) throw new Error("response outparam already set");
    param.result = response;
  }
}

export const types = {
  Fields,
  FutureIncomingResponse,
  FutureTrailers,
  IncomingBody,
  IncomingRequest,
  IncomingResponse,
  OutgoingBody,
  OutgoingRequest,
  OutgoingResponse,
  RequestOptions,
  ResponseOutparam,
  // No io error carries an http error code here.
  httpErrorCode() {
    return undefined;
  },
};

// The longest timeout the guest gave, as one deadline for the whole exchange (fetch exposes no
// connect or between-bytes phases; the guest gives the same value for all three).
function timeoutMs(options) {
  let ns = -1n;
  for (const d of [options?.connect, options?.firstByte, options?.betweenBytes]) {
    if (typeof d === "bigint" && d > ns) ns = d;
  }
  if (ns < 0n) return DEFAULT_TIMEOUT_MS;
  return Math.min(Math.max(Math.ceil(Number(ns) / 1e6), 1), 0x7fffffff);
}

// wasi:http/outgoing-handler straight onto fetch, for the origins in `allowed` only. Redirects
// are handed to the guest, never followed: following one could leave the allowlist.
export function outgoingHandler(allowed) {
  return {
    handle(request, options) {
      const target = requestTarget(request);
      if (target === null || !allowed.has(target.origin)) throw { tag: "HTTP-request-denied" };
      const method = request.verb.tag === "other" ? request.verb.val : request.verb.tag.toUpperCase();
      const init = { method, headers: headersInit(request.fields), redirect: "manual" };
      const future = new FutureIncomingResponse(timeoutMs(options));
      const body = request.body_;
      // fetch refuses a body on GET and HEAD: none is sent, as on other hosts.
      if (body === null || method === "GET" || method === "HEAD") {
        future.send(target.href, init);
      } else if (body.finished) {
        init.body = body.sink.bytes();
        future.send(target.href, init);
      } else {
        body.onDone = (finished) => {
          if (!finished) {
            future.settle({ tag: "err", val: { tag: "internal-error", val: "request body not finished" } });
            return;
          }
          init.body = body.sink.bytes();
          future.send(target.href, init);
        };
      }
      return future;
    },
  };
}

// Why a guest produced no usable response (the shim logs the class name only).
export class GuestResponseError extends Error {}

// Runs the guest's incoming-handler on `request` and returns its answer as a Response. The guest
// writes its whole body before it returns, so the body is complete by then.
export async function serveRequest(request, handle) {
  const out = new ResponseOutparam();
  await handle(new IncomingRequest(request), out);
  const result = out.result;
  if (result === undefined || result.tag !== "ok") {
    throw new GuestResponseError(result === undefined ? "no response set" : "error response");
  }
  const response = result.val;
  const body = response.body_;
  if (body !== null && !body.finished) throw new GuestResponseError("response body not finished");
  const bytes = body === null ? EMPTY : body.sink.bytes();
  return new Response(bytes.byteLength > 0 ? bytes : null, {
    status: response.code,
    headers: headersInit(response.fields),
  });
}
