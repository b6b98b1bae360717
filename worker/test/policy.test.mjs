// The shim's pure policy functions: `node --test worker/test/` (run by `make test-worker`).
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  allowedOrigins,
  hasJspi,
  maxInstances,
  poolSize,
  requestId,
  requestOrigin,
  requestTarget,
  staleAfterMs,
  wachtVars,
} from "../src/policy.js";

const pk = (url, prefix = "pk_test_") => prefix + btoa(url);
// A stand-in for an OutgoingRequest (src/http.js): only the getters requestTarget reads.
const req = (tag, authority, path) => ({
  scheme: () => (tag ? { tag } : undefined),
  authority: () => authority,
  pathWithQuery: () => path,
});

test("only WACHT_* string bindings reach the guest", () => {
  const env = {
    WACHT_API_KEY: "sk_test_x",
    WACHT_BACKEND_API_URL: "https://api.example",
    OTHER_SECRET: "s3cret",
    wacht_lower: "no",
    WACHT_KV: { get() {} },
    WACHT_NUMBER: 5,
  };
  assert.deepEqual(wachtVars(env), {
    WACHT_API_KEY: "sk_test_x",
    WACHT_BACKEND_API_URL: "https://api.example",
    WACHT_CLIENT_IP_HEADER: "cf-connecting-ip",
  });
});

test("on Workers the guest trusts CF-Connecting-IP unless told otherwise", () => {
  assert.equal(wachtVars({}).WACHT_CLIENT_IP_HEADER, "cf-connecting-ip");
  assert.equal(wachtVars({ WACHT_CLIENT_IP_HEADER: "none" }).WACHT_CLIENT_IP_HEADER, "none");
});

test("pool size: default 8, 0 allowed, capped, junk ignored", () => {
  assert.equal(poolSize({}), 8);
  assert.equal(poolSize({ WACHT_POOL_SIZE: "0" }), 0);
  assert.equal(poolSize({ WACHT_POOL_SIZE: "3" }), 3);
  assert.equal(poolSize({ WACHT_POOL_SIZE: "1000" }), 64);
  assert.equal(poolSize({ WACHT_POOL_SIZE: "-1" }), 8);
  assert.equal(poolSize({ WACHT_POOL_SIZE: "many" }), 8);
});

test("allowlist: backend, gateway and the frontend API of the publishable key", () => {
  const allowed = allowedOrigins({
    WACHT_BACKEND_API_URL: "https://API.example.com/v1/",
    WACHT_GATEWAY_URL: "http://127.0.0.1:8081",
    WACHT_PUBLISHABLE_KEY: pk("https://frontend.example.com"),
  });
  assert.deepEqual([...allowed].sort(), ["http://127.0.0.1:8081", "https://api.example.com", "https://frontend.example.com"]);
});

test("allowlist: defaults when unset, pk_live_ and unpadded keys, junk ignored", () => {
  assert.deepEqual([...allowedOrigins({})].sort(), ["https://api.wacht.dev", "https://gateway.wacht.dev"]);
  const unpadded = "pk_live_" + btoa("https://f.example.com").replace(/=+$/, "");
  assert.ok(allowedOrigins({ WACHT_PUBLISHABLE_KEY: unpadded }).has("https://f.example.com"));
  for (const bad of ["pk_test_%%%", "sk_test_" + btoa("https://x.example"), pk("ftp://x.example"), pk("not a url")]) {
    assert.equal(allowedOrigins({ WACHT_PUBLISHABLE_KEY: bad }).size, 2, bad);
  }
  assert.equal(allowedOrigins({ WACHT_BACKEND_API_URL: "javascript:alert(1)" }).size, 1);
});

test("request origin is the origin fetch will reach", () => {
  assert.equal(requestOrigin(req("HTTPS", "api.example.com", "/users?limit=20")), "https://api.example.com");
  assert.equal(requestOrigin(req("HTTPS", "api.example.com:443", "/users")), "https://api.example.com");
  assert.equal(requestOrigin(req("HTTP", "127.0.0.1:8081", "/v1/authz/check")), "http://127.0.0.1:8081");
  // A path that does not start with "/" could move the host (`https://allowed@evil/`): refused.
  assert.equal(requestOrigin(req("HTTPS", "api.example.com", "@evil.example/users")), null);
  assert.equal(requestOrigin(req("HTTPS", "api.example.com", ".evil.example/")), null);
  assert.equal(requestOrigin(req("other", "api.example.com", "/")), null);
  assert.equal(requestOrigin(req(undefined, "api.example.com", "/")), null);
  assert.equal(requestOrigin(req("HTTPS", undefined, "/")), null);
  assert.equal(requestOrigin(req("HTTPS", "api.example.com", undefined)), null);
});

test("a request is allowed only when its origin is on the list", () => {
  const allowed = allowedOrigins({ WACHT_BACKEND_API_URL: "https://api.example.com", WACHT_GATEWAY_URL: "https://gw.example.com" });
  assert.ok(allowed.has(requestOrigin(req("HTTPS", "api.example.com", "/users"))));
  assert.ok(!allowed.has(requestOrigin(req("HTTP", "api.example.com", "/users"))), "scheme matters");
  assert.ok(!allowed.has(requestOrigin(req("HTTPS", "api.example.com:8443", "/users"))), "port matters");
  assert.ok(!allowed.has(requestOrigin(req("HTTPS", "evil.example", "/users"))));
  assert.ok(!allowed.has(requestOrigin(req("HTTPS", "api.example.com", "@evil.example/"))));
});

test("in-flight cap: default 32, at least 1", () => {
  assert.equal(maxInstances({}), 32);
  assert.equal(maxInstances({ WACHT_MAX_INSTANCES: "4" }), 4);
  assert.equal(maxInstances({ WACHT_MAX_INSTANCES: "0" }), 32);
  assert.equal(maxInstances({ WACHT_MAX_INSTANCES: "x" }), 32);
});

test("an in-flight entry is stale after four upstream timeouts and 5 s", () => {
  assert.equal(staleAfterMs({}), 45000);
  assert.equal(staleAfterMs({ WACHT_UPSTREAM_TIMEOUT_MS: "500" }), 7000);
  assert.equal(staleAfterMs({ WACHT_UPSTREAM_TIMEOUT_MS: "junk" }), 45000);
});

test("JSPI is detected from WebAssembly.Suspending and WebAssembly.promising", () => {
  const fn = () => {};
  assert.equal(hasJspi({ Suspending: fn, promising: fn }), true);
  assert.equal(hasJspi({ Suspending: fn }), false);
  assert.equal(hasJspi({ promising: fn }), false);
  assert.equal(hasJspi({}), false);
  assert.equal(hasJspi(undefined), false);
  assert.equal(hasJspi({ Suspending: {}, promising: fn }), false);
});

test("the request target's origin is the origin of the URL fetch is given", () => {
  const cases = [
    ["HTTPS", "api.example.com", "/users?limit=20"],
    ["HTTPS", "API.Example.com:443", "/users"],
    ["HTTP", "127.0.0.1:8081", "//evil.example/x"],
    ["HTTPS", "api.example.com", "/\\evil.example/"],
    ["HTTPS", "api.example.com", "/@evil.example"],
    ["HTTPS", "api.example.com?", "/x"],
    ["HTTPS", "api.example.com#", "/x"],
    ["HTTPS", "evil.example/", "/x"],
    ["HTTPS", "[::1]:8443", "/x"],
  ];
  for (const [tag, authority, path] of cases) {
    const target = requestTarget(req(tag, authority, path));
    assert.ok(target, `${authority} ${path}`);
    assert.equal(target.origin, new URL(target.href).origin, `${authority} ${path}`);
  }
  assert.equal(requestTarget(req("HTTPS", "a b", "/")), null);
});

test("the shim's own answers keep a usable caller request id, else make one", () => {
  const h = (id) => new Headers(id === undefined ? {} : { "x-request-id": id });
  assert.equal(requestId(h("dash-1.2_3:4")), "dash-1.2_3:4");
  assert.equal(requestId(h("a".repeat(128))), "a".repeat(128));
  for (const bad of [undefined, "", "a b", "a/b", "a".repeat(129)]) {
    const id = requestId(h(bad));
    assert.match(id, /^[0-9a-f]{32}$/, String(bad));
  }
  const twice = new Headers([["x-request-id", "a"], ["x-request-id", "b"]]);
  assert.match(requestId(twice), /^[0-9a-f]{32}$/);
});
