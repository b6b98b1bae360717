// wasi:io (error, poll, streams) and wasi:clocks/monotonic-clock for the Worker, in place of
// preview2-shim's browser build.
//
// Everything the guest reads is already in memory when it gets the stream (http.js buffers each
// upstream body before the response is handed over), and everything it writes goes to memory or
// to console.log. So reads, writes and flushes are synchronous and are not JSPI imports
// (build.mjs): only poll and pollable.block wait, and only for what is not ready yet. A pollable
// that is ready answers at once; preview2-shim's poll yields a timer turn even then.
//
// jco's glue lowers a resource only if it is `instanceof` the class given in the imports: every
// stream and pollable handed to the guest (stdio, clocks, http) must come from this module.

const dispose = Symbol.dispose || Symbol.for("dispose");

// The most a `check-write` permits at once. Writes land in memory, so this is only a chunk size.
const WRITE_PERMIT_BYTES = 1 << 20;
const WRITE_PERMIT = BigInt(WRITE_PERMIT_BYTES);
// setTimeout's largest delay; a longer wait is re-armed when it fires.
const MAX_DELAY_MS = 0x7fffffff;
// How much later than a clock deadline a wait may end when a self-timed target bounds it.
const SELF_TIMED_SLACK_MS = 5;
const EMPTY = new Uint8Array(0);

// wasi:io/error. The guest only drops it or asks for its text.
export class IoError {
  constructor(message) {
    this.message = message;
  }

  toDebugString() {
    return this.message;
  }
}

// A pollable over a `target`: `ready()`, and optionally `arm(wake)` (call `wake` once when ready
// may have changed), `deadline` (performance-clock milliseconds), `expire()` (called once the
// deadline has passed) and `selfTimed` (true once the target wakes its waiters by its deadline on
// its own, as an upstream answer under its fetch's timeout signal does). No target means always
// ready (in-memory streams, past instants).
export class Pollable {
  constructor(target = null) {
    this.target = target;
  }

  ready() {
    return this.target === null || this.target.ready();
  }

  // Returns nothing when ready: the JSPI import then resumes without waiting on anything.
  block() {
    if (this.ready()) return undefined;
    return waitAny([this]).then(() => undefined);
  }

  [dispose]() {
    this.target = null;
  }
}

function readyIndices(list) {
  let count = 0;
  for (let i = 0; i < list.length; i++) if (list[i].ready()) count++;
  const out = new Uint32Array(count);
  for (let i = 0, j = 0; j < count; i++) if (list[i].ready()) out[j++] = i;
  return out;
}

// Resolves with the ready indices once any pollable of `list` is ready. At most one timer serves
// the whole wait, set for the earliest deadline in the list and cleared when the wait ends. None
// when a self-timed target is due by then (within SELF_TIMED_SLACK_MS): the guest polls an
// upstream answer beside its own deadline, the same instant, and a timer set and cleared per
// outgoing call is a measurable share of a request's CPU in workerd.
function waitAny(list) {
  return new Promise((resolve) => {
    let timer = null;
    let settled = false;
    const armTimer = () => {
      let at = Infinity;
      let selfAt = Infinity;
      for (const pollable of list) {
        const target = pollable.target;
        const deadline = target?.deadline;
        if (target?.selfTimed) {
          if (deadline < selfAt) selfAt = deadline;
        } else if (deadline < at) {
          at = deadline;
        }
      }
      if (at === Infinity || selfAt <= at + SELF_TIMED_SLACK_MS) return;
      timer = setTimeout(wake, Math.min(Math.max(Math.ceil(at - nowMs()), 0), MAX_DELAY_MS));
    };
    const wake = () => {
      if (settled) return;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      const now = nowMs();
      for (const pollable of list) {
        const target = pollable.target;
        if (target?.expire && target.deadline <= now) target.expire();
      }
      const ready = readyIndices(list);
      // A timer may fire before the clock reads its instant: wait again for what is left.
      if (ready.length === 0) return armTimer();
      settled = true;
      resolve(ready);
    };
    for (const pollable of list) pollable.target?.arm?.(wake);
    armTimer();
  });
}

export const poll = {
  Pollable,
  // `poll(list)`: the ready indices, at once when any is ready.
  poll(list) {
    if (list.length === 0) throw new Error("poll list must not be empty");
    const ready = readyIndices(list);
    return ready.length > 0 ? ready : waitAny(list);
  },
};

function closed() {
  throw { tag: "closed" };
}

// An input stream over bytes held in memory (an upstream body, or nothing for stdin). Reads
// hand out views, not copies: the glue copies them into guest memory.
export class InputStream {
  constructor(bytes = EMPTY) {
    this.bytes = bytes;
    this.offset = 0;
  }

  read(len) {
    const bytes = this.bytes;
    if (bytes === null || this.offset >= bytes.byteLength) closed();
    const left = bytes.byteLength - this.offset;
    const n = len < BigInt(left) ? Number(len) : left;
    const chunk = bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return chunk;
  }

  blockingRead(len) {
    return this.read(len);
  }

  skip(len) {
    return BigInt(this.read(len).byteLength);
  }

  blockingSkip(len) {
    return this.skip(len);
  }

  subscribe() {
    return new Pollable();
  }

  [dispose]() {
    this.bytes = null;
  }
}

// An output stream into `sink` ({ write(bytes), flush?(), drop?() }), which never blocks.
export class OutputStream {
  constructor(sink) {
    this.sink = sink;
  }

  checkWrite() {
    if (this.sink === null) closed();
    return WRITE_PERMIT;
  }

  write(bytes) {
    if (this.sink === null) closed();
    if (bytes.byteLength > WRITE_PERMIT_BYTES) throw new Error("write exceeds the permit of check-write");
    this.sink.write(bytes);
  }

  blockingWriteAndFlush(bytes) {
    this.write(bytes);
    this.flush();
  }

  flush() {
    if (this.sink === null) closed();
    this.sink.flush?.();
  }

  blockingFlush() {
    this.flush();
  }

  writeZeroes(len) {
    this.write(new Uint8Array(Number(len)));
  }

  blockingWriteZeroesAndFlush(len) {
    this.writeZeroes(len);
    this.flush();
  }

  splice(src, len) {
    const max = len < WRITE_PERMIT ? len : WRITE_PERMIT;
    const bytes = src.read(max);
    this.write(bytes);
    return BigInt(bytes.byteLength);
  }

  blockingSplice(src, len) {
    return this.splice(src, len);
  }

  subscribe() {
    return new Pollable();
  }

  [dispose]() {
    const sink = this.sink;
    this.sink = null;
    sink?.drop?.();
  }
}

export const error = { Error: IoError };
export const streams = { InputStream, OutputStream };

// Workers advance this clock only between I/O events, as Date.now.
export const nowMs = () => performance.now();
const NS_PER_MS = 1e6;

// A pollable target that is ready at an instant (milliseconds on the performance clock).
class Instant {
  constructor(deadline) {
    this.deadline = deadline;
  }

  ready() {
    return nowMs() >= this.deadline;
  }
}

export const monotonicClock = {
  now() {
    return BigInt(Math.floor(nowMs() * NS_PER_MS));
  },
  resolution() {
    return 1000000n;
  },
  subscribeInstant(instant) {
    const atMs = Number(instant) / NS_PER_MS;
    return new Pollable(atMs <= nowMs() ? null : new Instant(atMs));
  },
  subscribeDuration(duration) {
    if (duration === 0n) return new Pollable();
    return new Pollable(new Instant(nowMs() + Number(duration) / NS_PER_MS));
  },
};

export const wallClock = {
  now() {
    const ms = Date.now();
    return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * NS_PER_MS };
  },
  resolution() {
    return { seconds: 0n, nanoseconds: NS_PER_MS };
  },
};
