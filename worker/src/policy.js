// What the shim lets through: which bindings reach the guest, how many idle instances are kept,
// and which origins the guest may call. Pure functions, so that `node --test worker/test/`
// checks them without workerd.

// The component's own defaults (src/config.rs): an unset URL binding means these hosts.
const DEFAULT_BACKEND_API_URL = "https://api.wacht.dev";
const DEFAULT_GATEWAY_URL = "https://gateway.wacht.dev";
const DEFAULT_POOL_SIZE = 8;
const MAX_POOL_SIZE = 64;
const DEFAULT_MAX_INSTANCES = 32;
const DEFAULT_UPSTREAM_TIMEOUT_MS = 10000;

// WACHT_POOL_SIZE: idle instances kept between requests; 0 = a new instance for every request.
export function poolSize(env) {
  const n = Number.parseInt(env.WACHT_POOL_SIZE ?? "", 10);
  return Number.isInteger(n) && n >= 0 ? Math.min(n, MAX_POOL_SIZE) : DEFAULT_POOL_SIZE;
}

// WACHT_MAX_INSTANCES: requests served at once (each holds an instance); more are shed with 503.
export function maxInstances(env) {
  const n = Number.parseInt(env.WACHT_MAX_INSTANCES ?? "", 10);
  return Number.isInteger(n) && n >= 1 ? n : DEFAULT_MAX_INSTANCES;
}

// How long a request can legitimately hold an instance: at most three upstream calls in a row
// (JWKS, a JWKS refetch, the backend), each bounded by WACHT_UPSTREAM_TIMEOUT_MS; with margin.
export function staleAfterMs(vars) {
  const n = Number.parseInt(vars.WACHT_UPSTREAM_TIMEOUT_MS ?? "", 10);
  const timeout = Number.isInteger(n) && n > 0 ? n : DEFAULT_UPSTREAM_TIMEOUT_MS;
  return 4 * timeout + 5000;
}

export function wachtVars(env) {
  // Cloudflare sets (and overwrites) CF-Connecting-IP: the guest may trust it for client_ip.
  const vars = { WACHT_CLIENT_IP_HEADER: "cf-connecting-ip" };
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith("WACHT_") && typeof value === "string") vars[name] = value;
  }
  return vars;
}

// The origins the guest may call: backend API, gateway, and the frontend API (JWKS) that the
// publishable key encodes (`pk_test_`/`pk_live_` + base64 of its URL).
export function allowedOrigins(vars) {
  const origins = new Set();
  const add = (url) => {
    try {
      const u = new URL(url);
      if (u.protocol === "https:" || u.protocol === "http:") origins.add(u.origin);
    } catch {
      // Not a URL: the component reports the configuration error itself.
    }
  };
  add(vars.WACHT_BACKEND_API_URL || DEFAULT_BACKEND_API_URL);
  add(vars.WACHT_GATEWAY_URL || DEFAULT_GATEWAY_URL);
  const pk = /^pk_(?:test|live)_(.+)$/.exec(vars.WACHT_PUBLISHABLE_KEY ?? "");
  if (pk) {
    try {
      add(atob(pk[1]));
    } catch {
      // Not base64: the component reports it.
    }
  }
  return origins;
}

// Where an outgoing request goes: `{ origin, href }`, href being
// `${scheme}//${authority}${pathWithQuery}` as fetch will parse it, or null. The path must start
// with "/" (else it could move the host: `https://allowed@evil/`), so the host is settled before
// the path begins and the origin depends on scheme and authority alone: it is parsed once per
// scheme and authority (the guest calls two or three origins), not once per request.
const origins = new Map();
const MAX_CACHED_ORIGINS = 64;

export function requestTarget(request) {
  const scheme = request.scheme();
  const protocol = scheme?.tag === "HTTP" ? "http:" : scheme?.tag === "HTTPS" ? "https:" : null;
  const authority = request.authority();
  const path = request.pathWithQuery();
  if (!protocol || !authority || typeof path !== "string" || !path.startsWith("/")) return null;
  const base = `${protocol}//${authority}`;
  let origin = origins.get(base);
  if (origin === undefined) {
    try {
      origin = new URL(`${base}/`).origin;
    } catch {
      origin = null;
    }
    if (origins.size >= MAX_CACHED_ORIGINS) origins.clear();
    origins.set(base, origin);
  }
  return origin === null ? null : { origin, href: base + path };
}

// The origin of that URL: what the allowlist is checked against.
export function requestOrigin(request) {
  return requestTarget(request)?.origin ?? null;
}

// Whether this runtime can suspend Wasm on a Promise (JSPI): the component's blocking WASI calls
// and the WebCrypto verifier need it. Checked once, at start-up.
export function hasJspi(wasm) {
  return typeof wasm?.Suspending === "function" && typeof wasm?.promising === "function";
}

// The request id of an answer the shim gives itself (the guest makes its own the same way): the
// caller's X-Request-Id when it is 1-128 characters of [A-Za-z0-9._:-], else a new one. A
// repeated header arrives joined with ", " and so is replaced.
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestId(headers) {
  const given = headers.get("x-request-id");
  return given !== null && REQUEST_ID.test(given) ? given : crypto.randomUUID().replaceAll("-", "");
}
