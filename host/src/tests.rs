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

fn pool(wasm: &[u8], size: usize, timeout_ms: u64, queue_ms: u64) -> InstancePool {
    let c = Component::from_binary(wasm, &options(timeout_ms)).unwrap();
    InstancePool::new(
        c,
        Vec::new(),
        PoolOptions {
            size,
            max_requests_per_instance: 100,
            queue_timeout: Duration::from_millis(queue_ms),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn the_pool_drops_an_instance_that_traps() {
    let p = pool(&guest("unreachable"), 2, 5_000, 1_000);
    for _ in 0..3 {
        let f = p.handle(request()).await.unwrap_err();
        assert_eq!(f.kind, FailureKind::Failed, "{f}");
        assert!(format!("{:#}", f.error).contains("guest trapped"), "{f}");
        assert!(f.instance.is_some());
    }
    let stats = p.stats();
    assert_eq!(
        (stats.created, stats.discarded, stats.idle, stats.failed),
        (3, 3, 0, 3)
    );
}

#[tokio::test]
async fn the_pool_drops_an_instance_that_never_answers() {
    let p = pool(&guest(""), 1, 5_000, 1_000);
    let f = p.handle(request()).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Failed);
    assert!(
        format!("{:#}", f.error).contains("without setting a response"),
        "{f}"
    );
    assert_eq!(p.stats().discarded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_guest_times_out_and_a_full_pool_answers_busy() {
    let p = pool(&guest("(loop $l (br $l))"), 1, 600, 100);
    let spinning = {
        let p = p.clone();
        tokio::spawn(async move { p.handle(request()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The only instance is busy: the next request waits 100 ms, then gives up.
    let f = p.handle(request()).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Busy, "{f}");
    assert!(f.instance.is_none());
    let f = spinning.await.unwrap().unwrap_err();
    assert!(
        matches!(f.kind, FailureKind::Timeout | FailureKind::Failed),
        "{f}"
    );
    assert!(f.elapsed < Duration::from_secs(3), "{:?}", f.elapsed);
    let stats = p.stats();
    assert_eq!((stats.busy, stats.discarded), (1, 1));
}

#[test]
fn a_pool_larger_than_the_pooling_allocator_is_refused() {
    let opts = EngineOptions {
        pooling: Some(2),
        ..options(1_000)
    };
    let c = Component::from_binary(&guest("unreachable"), &opts).unwrap();
    let err = InstancePool::new(
        c,
        Vec::new(),
        PoolOptions {
            size: 3,
            ..PoolOptions::default()
        },
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("slots"), "{err:#}");
}
