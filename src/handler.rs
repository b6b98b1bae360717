//! The request flow of `GET /admin/users`, host-independent: route → configuration →
//! credential → (session: JWKS + JWT + protect | machine: gateway) → backend users call.
//!
//! Inputs are plain data (method, target, headers, configuration, the time); the network is
//! the `Upstream` trait; state that outlives a request (the JWKS cache) is lent in.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::access_log::{Principal, Record, TOKEN_CACHE_HIT, TOKEN_CACHE_MISS};

use crate::backend;
use crate::claims::{ClaimRules, Claims};
use crate::config::{BaseUrl, ClientIpHeader, Config, ConfigError, LogFormat};
use crate::cors;
use crate::credentials::{self, Credential, CredentialError};
use crate::error::Error;
use crate::gateway::{self, GatewayError};
use crate::jwks::KeySet;
use crate::jwks_cache::{Age, JwksCache};
use crate::jwt;
use crate::protect::{self, Requirements};
use crate::reply::{Reply, json_reply};
use crate::request::{self, Route, UsersQuery};
use crate::signature::Verifier;
use crate::token_cache::{self, TokenCache};
use crate::trace::Trace;
use crate::upstream::{
    Method, OutRequest, OutResponse, Service, StatusCode, TransportError, Upstream,
};

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
const MAX_JWKS_BYTES: usize = 64 * 1024;
const MAX_USER_AGENT_BYTES: usize = 512;
pub const USER_AGENT: &str = concat!("wacht-admin/", env!("CARGO_PKG_VERSION"));
/// The access line's `msg` and `token_cache` words, where hosts have found them so far.
pub use crate::access_log::{MSG as ACCESS_LOG_MSG, TOKEN_CACHE_RESULTS};
/// The request id's header, on every answer and every upstream call.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The incoming request, as far as the core needs it.
pub struct Incoming<'a> {
    pub method: &'a Method,
    /// Path and query, e.g. `/admin/users?limit=5`.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
}

impl Incoming<'_> {
    /// A header's value; one that is not UTF-8 counts as absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
    }

    /// A header that must not be repeated: two credentials are ambiguous, and picking one
    /// would let a proxy's header and the caller's disagree about who is calling.
    fn credential_header(&self, name: &str) -> Result<Option<&str>, CredentialError> {
        let mut values = self.headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => std::str::from_utf8(v.as_bytes())
                .map(Some)
                .map_err(|_| CredentialError::Malformed),
            (Some(_), Some(_)) => Err(CredentialError::Ambiguous),
        }
    }

    /// The caller's address from the configured header; only a well-formed IP is passed on.
    pub fn client_ip(&self, source: ClientIpHeader) -> Option<&str> {
        let raw = match source {
            ClientIpHeader::None => return None,
            ClientIpHeader::CfConnectingIp => self.header("cf-connecting-ip")?,
            // The right-most hop of the last header: what the nearest proxy appended. Hops
            // further left were written by whoever sent the request.
            ClientIpHeader::XForwardedFor => {
                let last = self.headers.get_all("x-forwarded-for").iter().next_back()?;
                std::str::from_utf8(last.as_bytes())
                    .ok()?
                    .rsplit(',')
                    .next()?
            }
        }
        .trim();
        raw.parse::<std::net::IpAddr>().is_ok().then_some(raw)
    }

    fn user_agent(&self) -> Option<&str> {
        self.header("user-agent")
            .filter(|ua| !ua.is_empty() && ua.len() <= MAX_USER_AGENT_BYTES)
    }
}

/// Everything a request borrows from its host.
pub struct Context<'a> {
    pub config: &'a Result<Config, ConfigError>,
    /// Unix time in seconds.
    pub now: u64,
    pub jwks: &'a mut JwksCache,
    /// Verified session tokens, kept between requests like the JWKS.
    pub tokens: &'a mut TokenCache,
    /// Imports fetched JWKS keys: the host's native crypto, or the portable verifier.
    pub verifier: &'a dyn Verifier,
    pub upstream: &'a mut dyn Upstream,
    /// The request's ids, passed on to upstreams and logged.
    pub trace: &'a Trace,
}

/// The reply and what the access log records about the request.
#[derive(Debug)]
pub struct Outcome {
    pub reply: Reply,
    pub log: Record,
}

impl Outcome {
    /// The access line ([`Record::line`]) for this request.
    pub fn log_line(
        &self,
        format: LogFormat,
        method: &str,
        target: &str,
        duration_ns: u64,
    ) -> String {
        self.log.line(
            format,
            method,
            target,
            self.reply.status().as_u16(),
            duration_ns,
        )
    }
}

/// Every answer carries the request id, so a caller can quote it and an operator find the line.
fn finish(mut reply: Reply, cors: &cors::Decision, log: Record) -> Outcome {
    cors::decorate(cors, &mut reply);
    if let Ok(id) = HeaderValue::from_str(&log.request_id) {
        reply.headers_mut().insert(REQUEST_ID, id);
    }
    Outcome { reply, log }
}

/// An answer given before the request reached the handler (a method token `http` refuses).
pub fn refuse(error: &Error, trace: &Trace) -> Outcome {
    let log = Record {
        request_id: trace.request_id.clone(),
        trace_id: trace.trace_id.clone(),
        error: Some(error.code()),
        ..Record::default()
    };
    finish(error.reply(&trace.request_id), &cors::Decision::Off, log)
}

pub fn handle(req: &Incoming<'_>, ctx: Context<'_>) -> Outcome {
    let mut log = Record {
        request_id: ctx.trace.request_id.clone(),
        trace_id: ctx.trace.trace_id.clone(),
        ..Record::default()
    };
    // A broken configuration has no CORS: its 500s go to nobody's dashboard.
    let (cors, allow_headers) = match ctx.config {
        Ok(config) => (
            cors::decide(&config.cors_origins, req.headers),
            Some(&config.cors_allow_headers),
        ),
        Err(_) => (cors::Decision::Off, None),
    };
    let path = req.target.split('?').next().unwrap_or("");
    if let Some(allow_headers) = allow_headers
        && let Some(reply) = cors::preflight(
            &cors,
            allow_headers,
            req.method,
            path,
            req.headers,
            &ctx.trace.request_id,
        )
    {
        log.error = match reply.status() {
            StatusCode::FORBIDDEN => Some(cors::ORIGIN_NOT_ALLOWED),
            StatusCode::BAD_REQUEST => Some(cors::BAD_PREFLIGHT),
            _ => None,
        };
        return finish(reply, &cors, log);
    }
    let mut flow = Flow { ctx, log };
    let reply = match flow.run(req) {
        Ok(reply) => reply,
        Err(e) => {
            flow.log.error = Some(e.code());
            e.reply(&flow.ctx.trace.request_id)
        }
    };
    finish(reply, &cors, flow.log)
}

/// The key set session tokens are checked against: the inline `WACHT_JWKS`, else the last good
/// fetched set.
fn session_keys<'k>(
    config: &'k Config,
    jwks: &'k JwksCache,
    now: u64,
) -> Result<&'k KeySet, Error> {
    match &config.inline_jwks {
        Some(keys) => Ok(keys),
        None => jwks.last_good(now).ok_or(Error::NoKeys),
    }
}

/// Who a verified session token names, for the audit trail.
fn principal(claims: &Claims) -> Principal {
    Principal::Session {
        subject: claims.subject.clone(),
        session_id: claims.session_id.clone(),
        organization: claims.organization.clone(),
        workspace: claims.workspace.clone(),
    }
}

struct Flow<'a> {
    ctx: Context<'a>,
    log: Record,
}

impl Flow<'_> {
    fn run(&mut self, req: &Incoming<'_>) -> Result<Reply, Error> {
        let Route::Users(query) = request::route(req.method.as_str(), req.target)?;
        let config = self.ctx.config.as_ref().map_err(Clone::clone)?;
        // Without our own key nothing can succeed: say so before spending any upstream call.
        let api_key = config.api_key()?;
        let credential = credentials::extract(
            req.credential_header("authorization")?,
            req.credential_header("x-api-key")?,
        )?;
        self.log.credential = Some(credential.kind());
        match credential {
            Credential::Session(token) => self.check_session(token, config)?,
            Credential::ApiKey(_) | Credential::OAuthAccessToken(_) => {
                self.check_machine(credential, req, config)?
            }
        }
        self.list_users(config, api_key, &query)
    }

    fn check_session(&mut self, token: &str, config: &Config) -> Result<(), Error> {
        let frontend = config.frontend_api()?;
        let issuer = frontend.origin();
        let rules = ClaimRules {
            issuer: &issuer,
            now: self.ctx.now,
            skew: config.clock_skew_secs,
        };
        // Keyless checks first: a garbled or `alg: none` token costs no JWKS request.
        let parsed = jwt::parse(token)?;
        if config.inline_jwks.is_none() {
            self.ensure_fresh_keys(frontend)?;
        }
        let keys = session_keys(config, self.ctx.jwks, rules.now)?;
        let capacity = config.token_cache_size;
        // Hashed once per request, and only when the cache is on.
        let digest = (capacity > 0).then(|| token_cache::digest(token));
        let cached = digest.as_ref().and_then(|d| {
            self.ctx
                .tokens
                .get(d, keys, rules.now, rules.skew, capacity)
        });
        self.log.token_cache = digest.map(|_| {
            if cached.is_some() {
                TOKEN_CACHE_HIT
            } else {
                TOKEN_CACHE_MISS
            }
        });
        let requirements = Requirements {
            permissions: &config.required_permissions,
            organization: config.required_organization.as_deref(),
            workspace: config.required_workspace.as_deref(),
        };
        if let Some(claims) = cached {
            self.log.principal = Some(principal(&claims));
            return Ok(protect::protect(&claims, &requirements)?);
        }
        let (claims, kid) = match &config.inline_jwks {
            Some(keys) => parsed.verify(keys, &rules)?,
            None => self.verify_with_fetched_keys(&parsed, frontend, &rules)?,
        };
        self.log.principal = Some(principal(&claims));
        let verdict = protect::protect(&claims, &requirements);
        if let Some(digest) = digest {
            // The set that verified it: after an unknown-kid refetch, the new one. A verified
            // token is kept even when this configuration's permissions refuse it.
            let keys = session_keys(config, self.ctx.jwks, rules.now)?;
            self.ctx.tokens.insert(digest, keys, claims, kid, capacity);
        }
        Ok(verdict?)
    }

    /// Fetches when the set is stale or missing, but never more than once per interval: a
    /// frontend API that is down must not see one fetch per request. On a failed fetch, the
    /// last good set serves while it is young enough.
    fn ensure_fresh_keys(&mut self, frontend: &BaseUrl) -> Result<(), Error> {
        let now = self.ctx.now;
        if !self.ctx.jwks.fresh(now)
            && self.ctx.jwks.may_refetch(now)
            && let Err(e) = self.refresh_jwks(frontend)
            && self.ctx.jwks.last_good(now).is_none()
        {
            return Err(e);
        }
        Ok(())
    }

    fn verify_with_fetched_keys(
        &mut self,
        token: &jwt::Parsed<'_>,
        frontend: &BaseUrl,
        rules: &ClaimRules<'_>,
    ) -> Result<(Claims, Option<String>), Error> {
        let now = self.ctx.now;
        let keys = self.current_keys()?;
        match token.verify(keys, rules) {
            Err(e) if e.is_unknown_kid() && self.ctx.jwks.may_refetch(now) => {
                // Perhaps the keys rotated: one refetch, then the verdict stands.
                if self.refresh_jwks(frontend).is_err() {
                    return Err(e.into());
                }
                Ok(token.verify(self.current_keys()?, rules)?)
            }
            result => Ok(result?),
        }
    }

    fn current_keys(&self) -> Result<&KeySet, Error> {
        self.ctx.jwks.last_good(self.ctx.now).ok_or(Error::NoKeys)
    }

    fn refresh_jwks(&mut self, frontend: &BaseUrl) -> Result<(), Error> {
        let now = self.ctx.now;
        let fetched = self
            .send(OutRequest {
                service: Service::Jwks,
                method: Method::GET,
                base: frontend,
                path_with_query: format!("{}{JWKS_PATH}", frontend.path),
                headers: vec![("accept", "application/json".into())],
                body: None,
                timeout_ms: self.timeout_ms(),
                max_body_bytes: MAX_JWKS_BYTES,
            })
            .and_then(|resp| match resp.status {
                StatusCode::OK => {
                    // Before the keys are parsed: an answer too old to use is not worth importing.
                    let age = Age::from_field(resp.age.as_deref())?;
                    Ok((KeySet::parse(&resp.body, self.ctx.verifier)?, age))
                }
                other => Err(Error::JwksStatus(other.as_u16())),
            });
        match fetched {
            Ok((keys, age)) => {
                self.ctx.jwks.fetched(keys, now, age);
                Ok(())
            }
            Err(e) => {
                self.ctx.jwks.fetch_failed(now);
                Err(e)
            }
        }
    }

    fn check_machine(
        &mut self,
        credential: Credential<'_>,
        req: &Incoming<'_>,
        config: &Config,
    ) -> Result<(), Error> {
        // Without the deployment to bind grants to, no gateway answer could count: refuse
        // before sending the credential anywhere.
        let binding = gateway::Binding {
            deployment_id: config.deployment_id()?,
            apps: &config.gateway_apps,
            organization: config.required_organization.as_deref(),
            workspace: config.required_workspace.as_deref(),
        };
        let check = gateway::Check {
            credential,
            resource: request::USERS_PATH,
            method: req.method.as_str(),
            client_ip: req.client_ip(config.client_ip_header),
            user_agent: req.user_agent(),
            required_permissions: &config.gateway_permissions,
        };
        let body = check.body().map_err(|_| GatewayError::Malformed)?;
        let resp = self.send(OutRequest {
            service: Service::Gateway,
            method: Method::POST,
            base: &config.gateway,
            path_with_query: format!("{}{}", config.gateway.path, gateway::CHECK_PATH),
            headers: vec![
                ("content-type", "application/json".into()),
                ("accept", "application/json".into()),
            ],
            body: Some(body),
            timeout_ms: self.timeout_ms(),
            max_body_bytes: gateway::MAX_ANSWER_BYTES,
        })?;
        let checked = gateway::interpret(resp.status.as_u16(), &resp.body, &binding);
        self.log.gateway_request_id = checked.request_id;
        self.log.principal = checked.owner.map(Principal::Machine);
        Ok(checked.verdict?)
    }

    fn list_users(
        &mut self,
        config: &Config,
        api_key: &str,
        query: &UsersQuery,
    ) -> Result<Reply, Error> {
        let resp = self.send(OutRequest {
            service: Service::Backend,
            method: Method::GET,
            base: &config.backend_api,
            path_with_query: backend::users_path(&config.backend_api, query),
            headers: vec![
                ("authorization", format!("Bearer {api_key}")),
                ("accept", "application/json".into()),
            ],
            body: None,
            timeout_ms: self.timeout_ms(),
            max_body_bytes: backend::MAX_ANSWER_BYTES,
        })?;
        backend::interpret(resp.status.as_u16(), &resp.body)?;
        Ok(json_reply(StatusCode::OK, resp.body))
    }

    fn timeout_ms(&self) -> u64 {
        self.ctx
            .config
            .as_ref()
            .map_or(crate::config::DEFAULT_UPSTREAM_TIMEOUT_MS, |c| {
                c.upstream_timeout_ms
            })
    }

    fn send(&mut self, mut req: OutRequest<'_>) -> Result<OutResponse, Error> {
        let service = req.service;
        let trace = self.ctx.trace;
        req.headers.push(("user-agent", USER_AGENT.into()));
        req.headers.push(("x-request-id", trace.request_id.clone()));
        req.headers.push(("traceparent", trace.traceparent()));
        if let Some(state) = &trace.tracestate {
            req.headers.push(("tracestate", state.clone()));
        }
        let result = self.ctx.upstream.send(req);
        match result {
            Ok(resp) => {
                self.log.upstream_status = Some(resp.status.as_u16());
                Ok(resp)
            }
            Err(TransportError::TooLarge) if service == Service::Backend => {
                Err(backend::BackendError::TooLarge.into())
            }
            Err(error) => Err(Error::Transport { service, error }),
        }
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
