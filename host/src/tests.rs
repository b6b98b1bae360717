//! The failure paths, with guests written in WAT that export `wasi:http/incoming-handler` and
//! misbehave: each must become an `Err` promptly, never a hung or crashed caller.

use super::*;
use http_body_util::Full;

/// A component whose `handle` runs `body` (core wasm instructions; params: two handles).
fn guest(body: &str) -> Vec<u8> {
    let text = format!(
        r#"(component
  (import "wasi:http/types@0.2.12" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))))
  (alias export $types "incoming-request" (type $req))
  (alias export $types "response-outparam" (type $out))
  (core module $m
    (func (export "handle") (param i32 i32) {body}))
  (core instance $i (instantiate $m))
  (func $handle (param "request" (own $req)) (param "response-out" (own $out))
    (canon lift (core func $i "handle")))
  (instance $h (export "handle" (func $handle)))
  (export "wasi:http/incoming-handler@0.2.12" (instance $h)))"#
    );
    wat::parse_str(text).unwrap()
}

fn request() -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .uri("http://localhost/admin/users")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn options(timeout_ms: u64) -> EngineOptions {
    EngineOptions {
        request_timeout: Duration::from_millis(timeout_ms),
        ..EngineOptions::default()
    }
}

// current_thread: the guest and the caller share one thread, so only the epoch deadline can stop
// a guest that never yields.
#[tokio::test]
async fn a_spinning_guest_is_interrupted() {
    let c = Component::from_binary(&guest("(loop $l (br $l))"), &options(200)).unwrap();
    let started = Instant::now();
    let err = c.handle(request(), &[]).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let chain = format!("{err:#}");
    assert!(
        chain.contains("trapped") || chain.contains("did not finish"),
        "{chain}"
    );
}

#[tokio::test]
async fn a_trapping_guest_is_an_error() {
    let c = Component::from_binary(&guest("unreachable"), &options(5_000)).unwrap();
    let err = c.handle(request(), &[]).await.unwrap_err();
    let chain = format!("{err:#}");
    assert!(chain.contains("guest trapped"), "{chain}");
}

#[tokio::test]
async fn a_guest_that_never_answers_is_an_error() {
    let c = Component::from_binary(&guest(""), &options(5_000)).unwrap();
    let err = c.handle(request(), &[]).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("without setting a response"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_survives_failures_and_pooling_waits_for_slots() {
    let opts = EngineOptions {
        pooling: Some(2),
        ..options(2_000)
    };
    let c = Component::from_binary(&guest("unreachable"), &opts).unwrap();
    // Four times more concurrent requests than pool slots: each waits for a slot and then
    // fails on its own trap, never on an exhausted pool.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.handle(request(), &[]).await })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(format!("{err:#}").contains("guest trapped"), "{err:#}");
    }
}

#[test]
fn a_component_without_the_handler_is_refused() {
    let wasm = wat::parse_str("(component)").unwrap();
    let err = Component::from_binary(&wasm, &EngineOptions::default()).unwrap_err();
    assert!(format!("{err:#}").contains("incoming-handler"), "{err:#}");
}

#[test]
fn cached_compiles_are_reused() {
    let dir = std::env::temp_dir().join(format!("wacht-host-cache-{}", std::process::id()));
    let opts = EngineOptions {
        cache_dir: Some(dir.clone()),
        ..EngineOptions::default()
    };
    let wasm = guest("unreachable");
    Component::from_binary(&wasm, &opts).unwrap();
    Component::from_binary(&wasm, &opts).unwrap();
    let entries = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(entries > 0, "nothing was written to the cache directory");
}
