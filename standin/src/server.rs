//! One loopback HTTP server that speaks the wire format of all three Wacht services the
//! component talks to (contract §2, §4, §5). Their paths do not collide, so one origin serves all:
//!
//! | endpoint | path | real service |
//! | --- | --- | --- |
//! | [`Endpoint::Jwks`] | `GET /.well-known/jwks.json` | frontend API |
//! | [`Endpoint::Users`] | `GET /users` | backend API |
//! | [`Endpoint::AuthzCheck`] | `POST /v1/authz/check` | gateway |
//!
//! The server runs on its own thread with its own tokio runtime, so a [`StandIn`] works the same
//! from a `#[tokio::test]`, a plain `#[test]` and a synchronous `main`. Dropping it stops the
//! server and closes every connection, hung ones included.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::tokens::TestKey;
use crate::users::{ListQuery, User, sample_users};

/// The three Wacht endpoints, plus everything else (counted and recorded, answered 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /.well-known/jwks.json` (frontend API).
    Jwks,
    /// `GET /users` (backend API).
    Users,
    /// `POST /v1/authz/check` (gateway).
    AuthzCheck,
    /// Any other path: the component should never call one.
    Other,
}

impl Endpoint {
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Jwks,
        Endpoint::Users,
        Endpoint::AuthzCheck,
        Endpoint::Other,
    ];

    fn index(self) -> usize {
        match self {
            Endpoint::Jwks => 0,
            Endpoint::Users => 1,
            Endpoint::AuthzCheck => 2,
            Endpoint::Other => 3,
        }
    }

    fn of_path(path: &str) -> Endpoint {
        match path {
            "/.well-known/jwks.json" => Endpoint::Jwks,
            "/users" => Endpoint::Users,
            "/v1/authz/check" => Endpoint::AuthzCheck,
            _ => Endpoint::Other,
        }
    }
}

/// How an endpoint misbehaves. Switchable at run time with [`StandIn::set_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer as the real service does.
    #[default]
    Normal,
    /// Answer with this status and the error body the real service sends with it.
    Status(u16),
    /// 200 with `content-type: application/json` and a truncated JSON body.
    BadJson,
    /// Read the request, then never answer (until [`StandInConfig::hang_for`] or shutdown).
    /// Other connections are served meanwhile.
    Hang,
    /// 429 with the service's error body and, like the real backend, no `Retry-After`.
    RateLimited,
    /// Drop the connection without writing a response.
    Close,
}

/// The two principal types the gateway knows (contract §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    ApiKey,
    OauthAccessToken,
}

impl PrincipalType {
    /// The wire name: `api_key` or `oauth_access_token`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::ApiKey => "api_key",
            PrincipalType::OauthAccessToken => "oauth_access_token",
        }
    }
}

/// The deployment the stand-in's machine credentials belong to, unless told otherwise: what
/// `WACHT_DEPLOYMENT_ID` names when the component is pointed at the stand-in.
pub const DEPLOYMENT_ID: &str = "1900000000000000100";
/// Another tenant's deployment, for credentials that are not ours.
pub const FOREIGN_DEPLOYMENT_ID: &str = "1900000000000000999";

/// `identity` of a gateway answer (contract §4): the credential's owner, ids as decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub key_id: String,
    pub deployment_id: String,
    pub app_slug: String,
    pub key_name: String,
    pub owner_user_id: Option<String>,
    pub organization_id: Option<String>,
    pub workspace_id: Option<String>,
    pub organization_membership_id: Option<String>,
    pub workspace_membership_id: Option<String>,
}

/// A machine credential the gateway knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub principal: PrincipalType,
    /// Permissions it holds; the gateway requires ALL of `required_permissions`.
    pub permissions: Vec<String>,
    /// When true, every check answers `allowed: false, reason: "rate_limited"`.
    pub rate_limited: bool,
    /// `retry_after` (milliseconds) of a rate-limited answer.
    pub retry_after_ms: Option<u64>,
    /// `identity` of the answer; `None` answers `"identity": null`.
    pub identity: Option<Identity>,
}

impl Credential {
    /// An API key of [`DEPLOYMENT_ID`] holding `permissions`.
    pub fn api_key(permissions: &[&str]) -> Credential {
        Credential::new(PrincipalType::ApiKey, permissions)
    }

    /// An OAuth access token of [`DEPLOYMENT_ID`] holding `permissions`.
    pub fn oauth_access_token(permissions: &[&str]) -> Credential {
        Credential::new(PrincipalType::OauthAccessToken, permissions)
    }

    fn new(principal: PrincipalType, permissions: &[&str]) -> Credential {
        let id = |n: u32| Some(format!("19000000000000{n:05}"));
        // For OAuth the gateway names the OAuth client (its row id and client_id), and no
        // organization or workspace.
        let identity = match principal {
            PrincipalType::ApiKey => Identity {
                key_id: "1900000000000000200".into(),
                deployment_id: DEPLOYMENT_ID.into(),
                app_slug: "admin-dashboard".into(),
                key_name: "demo key".into(),
                owner_user_id: id(500),
                organization_id: id(300),
                workspace_id: id(400),
                organization_membership_id: id(301),
                workspace_membership_id: id(401),
            },
            PrincipalType::OauthAccessToken => Identity {
                key_id: "1900000000000000210".into(),
                deployment_id: DEPLOYMENT_ID.into(),
                app_slug: "admin-dashboard".into(),
                key_name: "oauth_client_demo".into(),
                owner_user_id: id(500),
                organization_id: None,
                workspace_id: None,
                organization_membership_id: None,
                workspace_membership_id: None,
            },
        };
        Credential {
            principal,
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            rate_limited: false,
            retry_after_ms: None,
            identity: Some(identity),
        }
    }

    /// The same credential, owned by deployment `id` (another tenant's, say).
    pub fn in_deployment(mut self, id: &str) -> Credential {
        if let Some(identity) = &mut self.identity {
            identity.deployment_id = id.into();
        }
        self
    }

    /// The same credential, issued for app `slug`.
    pub fn in_app(mut self, slug: &str) -> Credential {
        if let Some(identity) = &mut self.identity {
            identity.app_slug = slug.into();
        }
        self
    }

    /// The same credential, scoped to this organization and workspace (`None`: no scope).
    pub fn in_scope(mut self, organization: Option<&str>, workspace: Option<&str>) -> Credential {
        if let Some(identity) = &mut self.identity {
            identity.organization_id = organization.map(String::from);
            identity.workspace_id = workspace.map(String::from);
        }
        self
    }

    /// The same credential, answered with `"identity": null`.
    pub fn without_identity(mut self) -> Credential {
        self.identity = None;
        self
    }

    /// The same credential, rate limited with `retry_after` = `retry_after_ms`.
    pub fn rate_limited(mut self, retry_after_ms: u64) -> Credential {
        self.rate_limited = true;
        self.retry_after_ms = Some(retry_after_ms);
        self
    }
}

/// What a [`StandIn`] starts with. `Default` gives a fresh random ES256 key, the sample users,
/// a random backend API key and no machine credentials.
pub struct StandInConfig {
    /// 0 = an ephemeral port.
    pub port: u16,
    /// The backend API key `GET /users` accepts.
    pub api_key: String,
    /// The JWKS served; sessions are signed with these.
    pub keys: Vec<TestKey>,
    pub users: Vec<User>,
    /// Machine credentials the gateway knows, by value.
    pub credentials: Vec<(String, Credential)>,
    /// How long [`Fault::Hang`] holds a request before giving up (shutdown ends it sooner).
    pub hang_for: Duration,
    /// How many requests are kept for [`StandIn::requests`] (oldest dropped first).
    pub record_limit: usize,
}

impl Default for StandInConfig {
    fn default() -> Self {
        StandInConfig {
            port: 0,
            api_key: random_secret("sk_test"),
            keys: vec![TestKey::es256_random()],
            users: sample_users(),
            credentials: Vec::new(),
            hang_for: Duration::from_secs(120),
            record_limit: 512,
        }
    }
}

impl StandInConfig {
    /// For a demo: the defaults plus one machine API key holding `user:read` (the gateway
    /// permission the component asks for by default). Find it with [`StandIn::credentials`].
    pub fn demo() -> Self {
        StandInConfig::default().with_credential(
            random_secret("wk_test"),
            Credential::api_key(&["user:read"]),
        )
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = api_key.into();
        self
    }

    pub fn with_keys(mut self, keys: Vec<TestKey>) -> Self {
        self.keys = keys;
        self
    }

    pub fn with_users(mut self, users: Vec<User>) -> Self {
        self.users = users;
        self
    }

    pub fn with_credential(mut self, value: impl Into<String>, credential: Credential) -> Self {
        self.credentials.push((value.into(), credential));
        self
    }

    pub fn with_hang_for(mut self, hang_for: Duration) -> Self {
        self.hang_for = hang_for;
        self
    }
}

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Arrival order, from 0.
    pub id: usize,
    pub endpoint: Endpoint,
    pub method: String,
    pub path: String,
    /// The raw query string, exactly as sent (no decoding).
    pub query: Option<String>,
    /// Every header, names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
    /// The status answered; `None` while pending, or when hung or closed without an answer.
    pub response_status: Option<u16>,
    /// The exact body answered.
    pub response_body: Option<Bytes>,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A running stand-in. Cheap accessors; every setter takes effect for the next request.
pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIn")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    /// Binds 127.0.0.1:`config.port` and starts serving on a thread of its own.
    pub fn start(config: StandInConfig) -> anyhow::Result<StandIn> {
        let listener = StdTcpListener::bind(("127.0.0.1", config.port))
            .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: RwLock::new(config.api_key),
            keys: RwLock::new(config.keys.into_iter().map(Arc::new).collect()),
            jwks_document: RwLock::new(None),
            jwks_age: RwLock::new(None),
            users: RwLock::new(config.users),
            credentials: RwLock::new(config.credentials.into_iter().collect()),
            faults: Mutex::new([Fault::Normal; 4]),
            counters: Default::default(),
            records: Mutex::new(VecDeque::new()),
            record_limit: config.record_limit,
            hang_for: config.hang_for,
            request_seq: AtomicUsize::new(0),
            record_seq: AtomicUsize::new(0),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the stand-in's runtime")?;
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("wacht-standin-{}", addr.port()))
            .spawn(move || {
                // Dropping the runtime at the end of this closure cancels every connection task.
                runtime.block_on(accept_loop(listener, state, shutdown_rx));
            })
            .context("spawning the stand-in thread")?;
        Ok(StandIn {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `StandIn::start(StandInConfig::default())`.
    pub fn start_default() -> anyhow::Result<StandIn> {
        StandIn::start(StandInConfig::default())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash: the base URL of all three services.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `pk_test_` + standard base64 (padded) of [`StandIn::url`]: its frontend API is this server.
    pub fn publishable_key(&self) -> String {
        publishable_key_for(&self.url())
    }

    /// The component's settings for this stand-in: every Wacht URL pointing here, its backend
    /// API key, its publishable key, and [`DEPLOYMENT_ID`] as this deployment.
    pub fn component_env(&self) -> Vec<(String, String)> {
        let url = self.url();
        vec![
            ("WACHT_API_KEY".into(), self.api_key()),
            ("WACHT_PUBLISHABLE_KEY".into(), self.publishable_key()),
            ("WACHT_BACKEND_API_URL".into(), url.clone()),
            ("WACHT_GATEWAY_URL".into(), url),
            ("WACHT_DEPLOYMENT_ID".into(), DEPLOYMENT_ID.into()),
        ]
    }

    /// The backend API key `GET /users` accepts.
    pub fn api_key(&self) -> String {
        read(&self.shared.api_key).clone()
    }

    pub fn set_api_key(&self, api_key: impl Into<String>) {
        *write(&self.shared.api_key) = api_key.into();
    }

    pub fn set_fault(&self, endpoint: Endpoint, fault: Fault) {
        if let Some(slot) = lock(&self.shared.faults).get_mut(endpoint.index()) {
            *slot = fault;
        }
    }

    pub fn fault(&self, endpoint: Endpoint) -> Fault {
        lock(&self.shared.faults)
            .get(endpoint.index())
            .copied()
            .unwrap_or_default()
    }

    /// Replaces the JWKS (key rotation).
    pub fn set_keys(&self, keys: Vec<TestKey>) {
        *write(&self.shared.keys) = keys.into_iter().map(Arc::new).collect();
    }

    /// Serves `document` as the JWKS, byte for byte, instead of the keys' set; `None` goes back
    /// to the keys. For key sets no `TestKey` can sign for (test vectors).
    pub fn set_jwks_document(&self, document: Option<String>) {
        *write(&self.shared.jwks_document) = document;
    }

    /// Sends `Age: <age>` with the JWKS (as a CDN answering from its cache would), byte for
    /// byte, so an invalid value can be sent too; `None` sends no `Age`.
    pub fn set_jwks_age(&self, age: Option<&str>) {
        *write(&self.shared.jwks_age) = age.map(str::to_string);
    }

    /// The keys currently served, first one first.
    pub fn keys(&self) -> Vec<Arc<TestKey>> {
        read(&self.shared.keys).clone()
    }

    /// The first served key: the one a session token is normally signed with.
    pub fn key(&self) -> Option<Arc<TestKey>> {
        read(&self.shared.keys).first().cloned()
    }

    pub fn set_users(&self, users: Vec<User>) {
        *write(&self.shared.users) = users;
    }

    pub fn users(&self) -> Vec<User> {
        read(&self.shared.users).clone()
    }

    /// Registers (or replaces) a machine credential the gateway will know.
    pub fn add_credential(&self, value: impl Into<String>, credential: Credential) {
        write(&self.shared.credentials).insert(value.into(), credential);
    }

    /// The machine credentials the gateway knows, sorted by value.
    pub fn credentials(&self) -> Vec<(String, Credential)> {
        let mut all: Vec<(String, Credential)> = read(&self.shared.credentials)
            .iter()
            .map(|(v, c)| (v.clone(), c.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// A session token as the newest issuer mints it for this frontend API (organization
    /// permission `deployment:read`), valid for `ttl_secs`, signed with the first key.
    pub fn session_token(&self, ttl_secs: u64) -> anyhow::Result<String> {
        let key = self.key().context("the stand-in has no signing key")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let mut claims = crate::tokens::session_claims(&self.url(), now);
        claims["exp"] = json!(now.saturating_add(ttl_secs));
        Ok(key.token(&claims))
    }

    pub fn remove_credential(&self, value: &str) {
        write(&self.shared.credentials).remove(value);
    }

    /// Requests that reached `endpoint` since start (or [`StandIn::reset`]), faulted ones included.
    pub fn count(&self, endpoint: Endpoint) -> usize {
        self.shared
            .counters
            .get(endpoint.index())
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    /// Requests to any endpoint.
    pub fn total_count(&self) -> usize {
        Endpoint::ALL.iter().map(|e| self.count(*e)).sum()
    }

    /// The recorded requests to `endpoint`, oldest first (at most `record_limit` over all).
    pub fn requests(&self, endpoint: Endpoint) -> Vec<Recorded> {
        lock(&self.shared.records)
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect()
    }

    /// Every recorded request, oldest first.
    pub fn all_requests(&self) -> Vec<Recorded> {
        lock(&self.shared.records).iter().cloned().collect()
    }

    /// The newest recorded request to `endpoint`.
    pub fn last_request(&self, endpoint: Endpoint) -> Option<Recorded> {
        lock(&self.shared.records)
            .iter()
            .rev()
            .find(|r| r.endpoint == endpoint)
            .cloned()
    }

    /// Zeroes the counters, forgets the recorded requests and clears every fault.
    pub fn reset(&self) {
        for c in &self.shared.counters {
            c.store(0, Ordering::SeqCst);
        }
        lock(&self.shared.records).clear();
        *lock(&self.shared.faults) = [Fault::Normal; 4];
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `pk_test_` + standard base64 of `frontend_api_url`.
pub fn publishable_key_for(frontend_api_url: &str) -> String {
    format!(
        "pk_test_{}",
        base64::engine::general_purpose::STANDARD.encode(frontend_api_url)
    )
}

/// `<prefix>_` + 43 base64url characters (32 random bytes): the shape of Wacht API keys and
/// opaque OAuth tokens (`oat_…`). Random per call; not for cryptographic use.
pub fn random_secret(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = Vec::with_capacity(32);
    let mut counter: u64 = 0;
    while bytes.len() < 32 {
        // RandomState is seeded per process and per instance: enough for test/demo secrets.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(counter);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        bytes.extend_from_slice(&h.finish().to_le_bytes());
        counter += 1;
    }
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
    )
}

struct Shared {
    api_key: RwLock<String>,
    keys: RwLock<Vec<Arc<TestKey>>>,
    /// Served instead of the keys' JWKS when set (test vectors bring their own documents).
    jwks_document: RwLock<Option<String>>,
    /// The JWKS answer's `Age` header, when set.
    jwks_age: RwLock<Option<String>>,
    users: RwLock<Vec<User>>,
    credentials: RwLock<HashMap<String, Credential>>,
    faults: Mutex<[Fault; 4]>,
    counters: [AtomicUsize; 4],
    records: Mutex<VecDeque<Recorded>>,
    record_limit: usize,
    hang_for: Duration,
    request_seq: AtomicUsize,
    record_seq: AtomicUsize,
}

// A panic elsewhere must not wedge the stand-in: poisoned locks are used as they are.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(
    listener: StdTcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wacht-standin: cannot listen: {e}");
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // EMFILE and friends: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| serve(shared.clone(), req));
            // An error here is a client that went away or a `Fault::Close`: nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
struct CloseConnection;

impl fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed by fault injection")
    }
}

impl std::error::Error for CloseConnection {}

type Reply = Response<Bytes>;

async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 1 << 20).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large").map(Full::new)),
    };
    let endpoint = Endpoint::of_path(parts.uri.path());
    if let Some(counter) = shared.counters.get(endpoint.index()) {
        counter.fetch_add(1, Ordering::SeqCst);
    }
    let id = shared.record_seq.fetch_add(1, Ordering::SeqCst);
    let recorded = Recorded {
        id,
        endpoint,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        json: serde_json::from_slice(&body).ok(),
        body,
        response_status: None,
        response_body: None,
    };
    {
        let mut records = lock(&shared.records);
        records.push_back(recorded.clone());
        while records.len() > shared.record_limit {
            records.pop_front();
        }
    }

    let fault = lock(&shared.faults)
        .get(endpoint.index())
        .copied()
        .unwrap_or_default();
    let reply = match fault {
        Fault::Close => return Err(CloseConnection),
        Fault::Hang => {
            tokio::time::sleep(shared.hang_for).await;
            return Err(CloseConnection);
        }
        Fault::BadJson => bad_json(endpoint),
        Fault::Status(status) => error_reply(endpoint, status),
        Fault::RateLimited => error_reply(endpoint, 429),
        Fault::Normal => match (endpoint, &parts.method) {
            (Endpoint::Jwks, &Method::GET) => jwks(&shared),
            (Endpoint::Users, &Method::GET) => users(&shared, &recorded),
            (Endpoint::AuthzCheck, &Method::POST) => authz_check(&shared, &recorded),
            (Endpoint::Other, _) => text(StatusCode::NOT_FOUND, "Not Found"),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        },
    };
    if let Some(r) = lock(&shared.records).iter_mut().rev().find(|r| r.id == id) {
        r.response_status = Some(reply.status().as_u16());
        r.response_body = Some(reply.body().clone());
    }
    Ok(reply.map(Full::new))
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Bytes::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The backend API's error body: `{"errors":[{"message":…,"code":status}]}`.
fn backend_error(status: StatusCode, message: &str) -> Reply {
    json_reply(
        status,
        &json!({"errors": [{"message": message, "code": status.as_u16()}]}),
    )
}

/// The error each service sends with `status`, as the real one would.
fn error_reply(endpoint: Endpoint, status: u16) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    match endpoint {
        Endpoint::Users => {
            let message = match status.as_u16() {
                401 => "Invalid API key",
                429 => "Too many requests",
                _ => reason,
            };
            backend_error(status, message)
        }
        // The gateway's 401 is sometimes this plain-text body (contract §4).
        Endpoint::AuthzCheck if status == StatusCode::UNAUTHORIZED => {
            text(status, "Invalid API key")
        }
        Endpoint::AuthzCheck => json_reply(
            status,
            &json!({"error": reason.to_lowercase().replace(' ', "_"), "message": reason}),
        ),
        // The frontend API's JWKS sits behind a CDN: plain-text errors.
        Endpoint::Jwks | Endpoint::Other => text(status, reason.to_string()),
    }
}

fn bad_json(endpoint: Endpoint) -> Reply {
    let truncated: &'static str = match endpoint {
        Endpoint::Jwks => r#"{"keys":[{"kty":"EC","crv":"P-256","x":"#,
        Endpoint::Users => r#"{"data":[{"id":"1900000000000000001","created_at":"2026-"#,
        Endpoint::AuthzCheck => r#"{"request_id":"req_1","allowed":tr"#,
        Endpoint::Other => r#"{"#,
    };
    let mut resp = Response::new(Bytes::from_static(truncated.as_bytes()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn jwks(shared: &Shared) -> Reply {
    let mut resp = match read(&shared.jwks_document).clone() {
        Some(document) => {
            let mut resp = Response::new(Bytes::from(document));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        None => {
            let keys = read(&shared.keys).clone();
            let refs: Vec<&TestKey> = keys.iter().map(|k| k.as_ref()).collect();
            json_reply(StatusCode::OK, &crate::tokens::jwks(&refs))
        }
    };
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=600"),
    );
    if let Some(age) = read(&shared.jwks_age)
        .as_deref()
        .and_then(|age| HeaderValue::from_str(age).ok())
    {
        resp.headers_mut().insert(header::AGE, age);
    }
    resp
}

fn users(shared: &Shared, req: &Recorded) -> Reply {
    let expected = format!("Bearer {}", read(&shared.api_key));
    // Exactly one Authorization header, byte-for-byte `Bearer <key>` (case-sensitive scheme).
    if req.header_all("authorization") != [expected.as_str()] {
        return backend_error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let query = match ListQuery::parse(req.query.as_deref()) {
        Ok(q) => q,
        Err(message) => return backend_error(StatusCode::BAD_REQUEST, &message),
    };
    let (page, has_more) = query.apply(&read(&shared.users));
    // Serialized from structs, not a `Value`, so fields keep the server's order (`id` first).
    #[derive(serde::Serialize)]
    struct Page<'a> {
        data: &'a [User],
        has_more: bool,
        limit: usize,
        offset: usize,
    }
    let body = serde_json::to_vec(&Page {
        data: &page,
        has_more,
        limit: query.limit,
        offset: query.offset,
    })
    .unwrap_or_default();
    let mut resp = Response::new(Bytes::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    principal: PrincipalRef,
    resource: String,
    method: String,
    #[serde(default)]
    client_ip: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    required_permissions: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalRef {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

fn gateway_error(status: StatusCode, message: &str) -> Reply {
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_lowercase()
        .replace(' ', "_");
    json_reply(status, &json!({"error": code, "message": message}))
}

fn authz_check(shared: &Shared, req: &Recorded) -> Reply {
    let is_json = req
        .header("content-type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return gateway_error(
            StatusCode::BAD_REQUEST,
            "Expected request with `Content-Type: application/json`",
        );
    }
    // Syntax errors are 400; well-formed JSON of the wrong shape (unknown fields included) is 422.
    let Some(value) = req.json.clone() else {
        return gateway_error(
            StatusCode::BAD_REQUEST,
            "Failed to parse the request body as JSON",
        );
    };
    let check: CheckRequest = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => {
            return gateway_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("Failed to deserialize the JSON body: {e}"),
            );
        }
    };
    if Method::from_bytes(check.method.as_bytes()).is_err()
        || check.method != check.method.to_ascii_uppercase()
        || !check.resource.starts_with('/')
    {
        return gateway_error(StatusCode::BAD_REQUEST, "invalid method or resource");
    }
    // client_ip and user_agent are accepted (and recorded); the decision does not use them.
    let _ = (&check.client_ip, &check.user_agent);

    let credential = read(&shared.credentials)
        .get(&check.principal.value)
        .filter(|c| c.principal.as_str() == check.principal.kind)
        .cloned();
    let Some(credential) = credential else {
        return text(StatusCode::UNAUTHORIZED, "Invalid API key");
    };

    let required = check.required_permissions.unwrap_or_default();
    let holds_all = required.iter().all(|p| credential.permissions.contains(p));
    let (allowed, reason, blocked_rule) = if credential.rate_limited {
        (
            false,
            Value::from("rate_limited"),
            Value::from("rate_limit:default"),
        )
    } else if !holds_all {
        (false, Value::from("permission_denied"), Value::Null)
    } else {
        (true, Value::Null, Value::Null)
    };
    let seq = shared.request_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let remaining = if credential.rate_limited { 0 } else { 99 };
    let retry_after = if credential.rate_limited {
        credential.retry_after_ms.map_or(Value::Null, Value::from)
    } else {
        Value::Null
    };
    let headers = if credential.rate_limited {
        json!({"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0"})
    } else {
        json!({})
    };
    json_reply(
        StatusCode::OK,
        &json!({
            "request_id": format!("req_{seq:016x}"),
            "allowed": allowed,
            "reason": reason,
            "blocked_rule": blocked_rule,
            "identity": credential.identity,
            "permissions": credential.permissions,
            "metadata": {},
            "rate_limits": [{"rule": "default", "remaining": remaining, "limit": 100}],
            "retry_after": retry_after,
            "headers": headers,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// A minimal HTTP/1.1 client: one request per connection, read to EOF.
    /// `None` when the server closed the connection without answering.
    fn call(
        s: &StandIn,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<(u16, String, String)> {
        let mut stream = TcpStream::connect(s.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        stream.write_all(req.as_bytes()).unwrap();
        let mut raw = String::new();
        let _ = stream.read_to_string(&mut raw);
        if raw.is_empty() {
            return None;
        }
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        Some((status, head.to_lowercase(), body.to_string()))
    }

    fn json(body: &str) -> Value {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn users_requires_the_exact_bearer_key_and_pages() {
        let s = StandIn::start(StandInConfig::default().with_api_key("sk_test_k")).unwrap();
        let (st, _, body) = call(&s, "GET", "/users?limit=20", &[], "").unwrap();
        assert_eq!(st, 401);
        assert_eq!(
            json(&body),
            json!({"errors":[{"message":"Invalid API key","code":401}]})
        );
        let (st, _, _) = call(
            &s,
            "GET",
            "/users",
            &[("authorization", "bearer sk_test_k")],
            "",
        )
        .unwrap();
        assert_eq!(st, 401, "the scheme is case-sensitive");
        let (st, head, body) = call(
            &s,
            "GET",
            "/users?limit=2&offset=1",
            &[("authorization", "Bearer sk_test_k")],
            "",
        )
        .unwrap();
        assert_eq!(st, 200);
        assert!(head.contains("content-type: application/json"));
        let v = json(&body);
        assert_eq!(v["limit"], 2);
        assert_eq!(v["offset"], 1);
        assert_eq!(v["has_more"], true);
        assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
        let users: Vec<User> = serde_json::from_value(v["data"].clone()).unwrap();
        assert_eq!(users[0], sample_users()[1]);
        assert!(body.starts_with(r#"{"data":[{"id":"1900000000000000002","created_at":"#));
        assert_eq!(s.count(Endpoint::Users), 3);
        let last = s.last_request(Endpoint::Users).unwrap();
        assert_eq!(last.query.as_deref(), Some("limit=2&offset=1"));
        assert_eq!(last.header("Authorization"), Some("Bearer sk_test_k"));
    }

    #[test]
    fn jwks_serves_the_configured_keys_and_rotates() {
        let s = StandIn::start(
            StandInConfig::default().with_keys(vec![TestKey::es256(1).with_kid("a")]),
        )
        .unwrap();
        let (st, _, body) = call(&s, "GET", "/.well-known/jwks.json", &[], "").unwrap();
        assert_eq!(st, 200);
        assert_eq!(
            json(&body),
            crate::tokens::jwks(&[&TestKey::es256(1).with_kid("a")])
        );
        s.set_keys(vec![TestKey::es256(2), TestKey::es384(3)]);
        let (_, _, body) = call(&s, "GET", "/.well-known/jwks.json", &[], "").unwrap();
        assert_eq!(json(&body)["keys"].as_array().map(Vec::len), Some(2));
        assert_eq!(s.count(Endpoint::Jwks), 2);
        let doc = r#"{"keys":[{"kty":"oct","k":"AAAA"}],"extra":1}"#;
        s.set_jwks_document(Some(doc.to_string()));
        let (st, _, body) = call(&s, "GET", "/.well-known/jwks.json", &[], "").unwrap();
        assert_eq!((st, body.as_str()), (200, doc));
        s.set_jwks_document(None);
        let (_, _, body) = call(&s, "GET", "/.well-known/jwks.json", &[], "").unwrap();
        assert_eq!(json(&body)["keys"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn gateway_checks_strictly() {
        let s = StandIn::start(
            StandInConfig::default()
                .with_credential(
                    "wk_live_good",
                    Credential::api_key(&["user:read", "user:write"]),
                )
                .with_credential("oat_tok", Credential::oauth_access_token(&["user:write"]))
                .with_credential(
                    "wk_live_slow",
                    Credential::api_key(&["user:read"]).rate_limited(1500),
                ),
        )
        .unwrap();
        let ct = [("content-type", "application/json")];
        let check = |kind: &str, value: &str| {
            json!({"principal":{"type":kind,"value":value},"resource":"/admin/users","method":"GET",
                   "client_ip":"203.0.113.9","user_agent":"t","required_permissions":["user:read"]})
            .to_string()
        };
        let (st, _, body) = call(
            &s,
            "POST",
            "/v1/authz/check",
            &ct,
            &check("api_key", "wk_live_good"),
        )
        .unwrap();
        assert_eq!(st, 200);
        let v = json(&body);
        assert_eq!(v["allowed"], true);
        assert_eq!(v["reason"], Value::Null);
        assert!(v["request_id"].as_str().unwrap().starts_with("req_"));
        assert_eq!(v["identity"]["deployment_id"], DEPLOYMENT_ID);
        for field in [
            "key_id",
            "app_slug",
            "key_name",
            "organization_id",
            "workspace_id",
        ] {
            assert!(v["identity"][field].is_string(), "{field}");
        }
        for field in [
            "blocked_rule",
            "permissions",
            "metadata",
            "rate_limits",
            "retry_after",
            "headers",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
        let (_, _, body) = call(
            &s,
            "POST",
            "/v1/authz/check",
            &ct,
            &check("oauth_access_token", "oat_tok"),
        )
        .unwrap();
        assert_eq!(json(&body)["reason"], "permission_denied");
        let (_, _, body) = call(
            &s,
            "POST",
            "/v1/authz/check",
            &ct,
            &check("api_key", "wk_live_slow"),
        )
        .unwrap();
        let v = json(&body);
        assert_eq!(
            (
                v["allowed"].clone(),
                v["reason"].clone(),
                v["retry_after"].clone()
            ),
            (json!(false), json!("rate_limited"), json!(1500))
        );
        // Unknown value, and a known value under the wrong type: plain-text 401.
        for (kind, value) in [("api_key", "nope"), ("api_key", "oat_tok")] {
            let (st, head, body) =
                call(&s, "POST", "/v1/authz/check", &ct, &check(kind, value)).unwrap();
            assert_eq!((st, body.as_str()), (401, "Invalid API key"));
            assert!(head.contains("text/plain"));
        }
        let extra = json!({"principal":{"type":"api_key","value":"wk_live_good"},"resource":"/admin/users","method":"GET","extra":1}).to_string();
        assert_eq!(
            call(&s, "POST", "/v1/authz/check", &ct, &extra).unwrap().0,
            422
        );
        assert_eq!(
            call(
                &s,
                "POST",
                "/v1/authz/check",
                &[],
                &check("api_key", "wk_live_good")
            )
            .unwrap()
            .0,
            400
        );
        assert_eq!(
            call(&s, "POST", "/v1/authz/check", &ct, "{").unwrap().0,
            400
        );
        let recorded = s.requests(Endpoint::AuthzCheck);
        assert_eq!(recorded.len(), 8);
        assert_eq!(
            recorded[0].json.as_ref().unwrap()["client_ip"],
            "203.0.113.9"
        );
    }

    #[test]
    fn faults_switch_at_run_time() {
        let s = StandIn::start(StandInConfig::default().with_hang_for(Duration::from_secs(30)))
            .unwrap();
        let auth = format!("Bearer {}", s.api_key());
        let h = [("authorization", auth.as_str())];
        s.set_fault(Endpoint::Users, Fault::Status(503));
        let (st, _, body) = call(&s, "GET", "/users", &h, "").unwrap();
        assert_eq!(
            (st, json(&body)),
            (
                503,
                json!({"errors":[{"message":"Service Unavailable","code":503}]})
            )
        );
        s.set_fault(Endpoint::Users, Fault::RateLimited);
        let (st, head, _) = call(&s, "GET", "/users", &h, "").unwrap();
        assert_eq!(st, 429);
        assert!(!head.contains("retry-after"));
        s.set_fault(Endpoint::Users, Fault::BadJson);
        let (st, _, body) = call(&s, "GET", "/users", &h, "").unwrap();
        assert_eq!(st, 200);
        assert!(serde_json::from_str::<Value>(&body).is_err());
        s.set_fault(Endpoint::Users, Fault::Close);
        assert!(call(&s, "GET", "/users", &h, "").is_none());
        s.set_fault(Endpoint::AuthzCheck, Fault::Status(401));
        let (st, _, body) = call(&s, "POST", "/v1/authz/check", &[], "").unwrap();
        assert_eq!((st, body.as_str()), (401, "Invalid API key"));

        // A hung request does not block other connections, and dropping the stand-in ends it.
        s.set_fault(Endpoint::Jwks, Fault::Hang);
        let addr = s.addr();
        let hung = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"GET /.well-known/jwks.json HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            buf
        });
        std::thread::sleep(Duration::from_millis(100));
        s.set_fault(Endpoint::Users, Fault::Normal);
        assert_eq!(call(&s, "GET", "/users", &h, "").unwrap().0, 200);
        let started = std::time::Instant::now();
        drop(s);
        assert!(
            hung.join().unwrap().is_empty(),
            "a hung request gets no answer"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn demo_has_a_working_api_key_and_session_token() {
        let s = StandIn::start(StandInConfig::demo()).unwrap();
        let creds = s.credentials();
        assert_eq!(creds.len(), 1);
        let (value, cred) = &creds[0];
        assert!(value.starts_with("wk_test_"));
        assert_eq!(cred.permissions, ["user:read"]);
        let token = s.session_token(600).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iss"], json!(s.url()));
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            600
        );
    }

    #[test]
    fn publishable_key_encodes_the_url() {
        let s = StandIn::start_default().unwrap();
        let pk = s.publishable_key();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(pk.strip_prefix("pk_test_").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), s.url());
        assert!(s.url().starts_with("http://127.0.0.1:"));
        let secret = random_secret("oat");
        assert_eq!(secret.len(), "oat_".len() + 43);
        assert_ne!(secret, random_secret("oat"));
    }
}
