//! Configuration, from environment variables only: the one mechanism that wasmtime (`--env`),
//! Spin (`[component.x.environment]`, `spin up -e`) and the jco shim (`WASIShim` env) all pass through.
//!
//! Missing *required* values are reported where they are needed (an API-key caller does not need
//! the publishable key); malformed values are reported up front. Messages name the variable,
//! never its value.

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};

pub use crate::base_url::BaseUrl;
use crate::cors::{self, Origin};
use crate::jwks::KeySet;
use crate::signature::Verifier;

pub const DEFAULT_BACKEND_API_URL: &str = "https://api.wacht.dev";
pub const DEFAULT_GATEWAY_URL: &str = "https://gateway.wacht.dev";
pub const DEFAULT_REQUIRED_PERMISSIONS: &str = "deployment:read";
pub const DEFAULT_GATEWAY_PERMISSIONS: &str = "user:read";
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 5;
/// Verified session tokens kept per instance (`WACHT_TOKEN_CACHE_SIZE`; 0 turns the cache off).
pub const DEFAULT_TOKEN_CACHE_SIZE: u64 = 1024;
/// The most `WACHT_TOKEN_CACHE_SIZE` may be: what one instance can hold. A cached token costs
/// ~620 bytes of linear memory (measured in wasmtime: tests/all/http_token_cache.rs), so a full
/// cache takes ~60 MiB, under half the native host's 128 MiB per instance; the rest is for the
/// largest backend answer (~15 MiB while a 4 MiB page passes through) and claims larger than
/// the measured ones.
pub const MAX_TOKEN_CACHE_SIZE: u64 = 100_000;
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 10_000;

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error(
        "{0} is not a valid publishable key (pk_test_/pk_live_ followed by base64 of an http(s) URL)"
    )]
    PublishableKey(&'static str),
    #[error("{0} is not an http(s) URL without query or fragment")]
    Url(&'static str),
    #[error("{0} must be a whole number between {1} and {2}")]
    Number(&'static str, u64, u64),
    #[error("{0} must list at least one permission")]
    EmptyList(&'static str),
    #[error("{0} is not a JWK set with at least one usable ES256, ES384 or RS256 key")]
    InvalidJwks(&'static str),
    #[error("{0} must be the deployment's decimal id (digits only)")]
    DeploymentId(&'static str),
    #[error(
        "{0} is not set: API keys and OAuth access tokens are refused until it names this deployment"
    )]
    MissingDeploymentId(&'static str),
    #[error("{0} must be one of cf-connecting-ip, x-forwarded-for, none")]
    ClientIpHeader(&'static str),
    #[error("{0} must be text or json")]
    LogFormat(&'static str),
    #[error(
        "{0} must list exact origins (scheme://host[:port]) separated by commas and no wildcard"
    )]
    CorsOrigins(&'static str),
    #[error("{0} must list header names separated by commas")]
    CorsAllowHeaders(&'static str),
}

/// The frontend API origin encoded in a publishable key:
/// `pk_test_`/`pk_live_` + standard base64 (padding optional) of `https://<host>`, no trailing `$`.
pub fn frontend_api_from_publishable_key(key: &str) -> Option<BaseUrl> {
    let encoded = key
        .strip_prefix("pk_test_")
        .or_else(|| key.strip_prefix("pk_live_"))?;
    let encoded = encoded.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .ok()?;
    let url = std::str::from_utf8(&bytes).ok()?;
    let mut base = BaseUrl::parse(url)?;
    // The issuer is the origin: path (and any trailing slash) is not part of it.
    base.path.clear();
    Some(base)
}

/// Where the caller's address comes from, for the gateway's `client_ip`. Only a header that the
/// host or a proxy in front of it sets (and overwrites) is trustworthy, so none is read unless
/// configured: the Workers shim sets `cf-connecting-ip` (Cloudflare overwrites it), the native
/// host `x-forwarded-for` (it replaces the header with the peer address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpHeader {
    None,
    CfConnectingIp,
    /// The right-most entry: the one the nearest proxy appended.
    XForwardedFor,
}

/// The access log line: `key=value` text, or one JSON object (for log pipelines that index
/// fields, such as Workers Logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Everything the handler reads from the environment, validated. `Debug` shows the API key as
/// `[REDACTED]` (secrecy).
#[derive(Clone, Debug)]
pub struct Config {
    api_key: Option<SecretString>,
    frontend_api: Result<BaseUrl, ConfigError>,
    pub backend_api: BaseUrl,
    pub gateway: BaseUrl,
    /// Inline JWKS (`WACHT_JWKS`): verify sessions without fetching keys.
    pub inline_jwks: Option<KeySet>,
    /// `protect({ permission })`: ANY of these suffices.
    pub required_permissions: Vec<String>,
    /// Sent to the gateway as `required_permissions`: ALL are required.
    pub gateway_permissions: Vec<String>,
    pub required_organization: Option<String>,
    pub required_workspace: Option<String>,
    /// `WACHT_DEPLOYMENT_ID`: a gateway grant counts only when it names this deployment.
    deployment_id: Option<u64>,
    /// `WACHT_GATEWAY_APPS`: the `app_slug`s whose machine credentials count; empty means any.
    pub gateway_apps: Vec<String>,
    pub clock_skew_secs: u64,
    pub upstream_timeout_ms: u64,
    pub token_cache_size: usize,
    pub log_format: LogFormat,
    /// `WACHT_CORS_ORIGINS`; empty means CORS is off.
    pub cors_origins: Vec<Origin>,
    /// The preflight's `Access-Control-Allow-Headers`, built once: the defaults and
    /// `WACHT_CORS_ALLOW_HEADERS`.
    pub cors_allow_headers: http::HeaderValue,
    pub client_ip_header: ClientIpHeader,
}

impl Config {
    /// Builds the configuration from `(name, value)` pairs (the process environment in the
    /// component; a literal list in tests). Empty values count as unset.
    /// An inline `WACHT_JWKS` is imported into `verifier` here, once.
    pub fn from_vars<I, K, V>(vars: I, verifier: &dyn Verifier) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        // A dozen variables at most: a list, not a HashMap (whose hasher would pull a random
        // seed import and ~4 KB into the component). The last value of a repeated name wins.
        let mut get: Vec<(String, String)> = Vec::new();
        for (k, v) in vars {
            let (k, v) = (k.as_ref(), v.as_ref().trim());
            if k.starts_with("WACHT_") && !v.is_empty() {
                get.push((k.to_string(), v.to_string()));
            }
        }
        let var = |name: &str| {
            get.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };

        let url = |name: &'static str, default: &str| -> Result<BaseUrl, ConfigError> {
            BaseUrl::parse(&var(name).unwrap_or_else(|| default.to_string()))
                .ok_or(ConfigError::Url(name))
        };
        let number = |name: &'static str, default: u64, min: u64, max: u64| match var(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or(ConfigError::Number(name, min, max)),
        };
        let list = |name: &'static str, default: &str| -> Result<Vec<String>, ConfigError> {
            let raw = var(name).unwrap_or_else(|| default.to_string());
            let items: Vec<String> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if items.is_empty() {
                Err(ConfigError::EmptyList(name))
            } else {
                Ok(items)
            }
        };

        let frontend_api = match var("WACHT_PUBLISHABLE_KEY") {
            None => Err(ConfigError::Missing("WACHT_PUBLISHABLE_KEY")),
            Some(pk) => frontend_api_from_publishable_key(&pk)
                .ok_or(ConfigError::PublishableKey("WACHT_PUBLISHABLE_KEY")),
        };
        // A malformed key is a deployment mistake: report it on every request, not only on
        // session requests, so it cannot hide behind API-key traffic.
        if let Err(e @ ConfigError::PublishableKey(_)) = &frontend_api {
            return Err(e.clone());
        }

        // Parsed here, once per instance: a broken inline set fails every request, not only
        // session requests, and no request parses it again.
        let inline_jwks = var("WACHT_JWKS")
            .map(|raw| KeySet::parse(raw.as_bytes(), verifier))
            .transpose()
            .map_err(|_| ConfigError::InvalidJwks("WACHT_JWKS"))?;
        let deployment_id = var("WACHT_DEPLOYMENT_ID")
            .map(|id| {
                // Digits only (no sign, no spaces): the decimal id the gateway writes.
                id.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| id.parse::<u64>().ok())
                    .flatten()
                    .ok_or(ConfigError::DeploymentId("WACHT_DEPLOYMENT_ID"))
            })
            .transpose()?;
        let gateway_apps = match var("WACHT_GATEWAY_APPS") {
            None => Vec::new(),
            Some(_) => list("WACHT_GATEWAY_APPS", "")?,
        };
        let cors_origins = match var("WACHT_CORS_ORIGINS") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(|o| Origin::parse(o.trim()))
                .collect::<Option<Vec<Origin>>>()
                .ok_or(ConfigError::CorsOrigins("WACHT_CORS_ORIGINS"))?,
        };
        let cors_allow_headers = match var("WACHT_CORS_ALLOW_HEADERS") {
            None => cors::allow_headers([]),
            Some(_) => cors::allow_headers(
                list("WACHT_CORS_ALLOW_HEADERS", "")?
                    .iter()
                    .map(String::as_str),
            ),
        }
        .ok_or(ConfigError::CorsAllowHeaders("WACHT_CORS_ALLOW_HEADERS"))?;
        let log_format = match var("WACHT_LOG_FORMAT")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(ConfigError::LogFormat("WACHT_LOG_FORMAT")),
        };
        let client_ip_header = match var("WACHT_CLIENT_IP_HEADER")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("none") => ClientIpHeader::None,
            Some("cf-connecting-ip") => ClientIpHeader::CfConnectingIp,
            Some("x-forwarded-for") => ClientIpHeader::XForwardedFor,
            Some(_) => return Err(ConfigError::ClientIpHeader("WACHT_CLIENT_IP_HEADER")),
        };

        Ok(Config {
            api_key: var("WACHT_API_KEY").map(SecretString::from),
            frontend_api,
            backend_api: url("WACHT_BACKEND_API_URL", DEFAULT_BACKEND_API_URL)?,
            gateway: url("WACHT_GATEWAY_URL", DEFAULT_GATEWAY_URL)?,
            inline_jwks,
            client_ip_header,
            required_permissions: list("WACHT_REQUIRED_PERMISSIONS", DEFAULT_REQUIRED_PERMISSIONS)?,
            gateway_permissions: list("WACHT_GATEWAY_PERMISSIONS", DEFAULT_GATEWAY_PERMISSIONS)?,
            required_organization: var("WACHT_REQUIRED_ORGANIZATION"),
            required_workspace: var("WACHT_REQUIRED_WORKSPACE"),
            deployment_id,
            gateway_apps,
            clock_skew_secs: number("WACHT_CLOCK_SKEW_SECS", DEFAULT_CLOCK_SKEW_SECS, 0, 300)?,
            upstream_timeout_ms: number(
                "WACHT_UPSTREAM_TIMEOUT_MS",
                DEFAULT_UPSTREAM_TIMEOUT_MS,
                1,
                120_000,
            )?,
            token_cache_size: number(
                "WACHT_TOKEN_CACHE_SIZE",
                DEFAULT_TOKEN_CACHE_SIZE,
                0,
                MAX_TOKEN_CACHE_SIZE,
            )? as usize,
            log_format,
            cors_origins,
            cors_allow_headers,
        })
    }

    /// The backend API key; required for every successful request.
    pub fn api_key(&self) -> Result<&str, ConfigError> {
        self.api_key
            .as_ref()
            .map(|key| key.expose_secret())
            .ok_or(ConfigError::Missing("WACHT_API_KEY"))
    }

    /// This deployment's id; required for machine credentials only.
    pub fn deployment_id(&self) -> Result<u64, ConfigError> {
        self.deployment_id
            .ok_or(ConfigError::MissingDeploymentId("WACHT_DEPLOYMENT_ID"))
    }

    /// The frontend API (JWT issuer, JWKS host); required for session auth only.
    pub fn frontend_api(&self) -> Result<&BaseUrl, ConfigError> {
        self.frontend_api.as_ref().map_err(Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Portable;

    fn pk(url: &str) -> String {
        format!(
            "pk_test_{}",
            base64::engine::general_purpose::STANDARD.encode(url)
        )
    }

    #[test]
    fn publishable_key_decodes_to_the_origin() {
        let base =
            frontend_api_from_publishable_key("pk_live_aHR0cHM6Ly9mcm9udGVuZC5leGFtcGxlLmNvbQ==")
                .unwrap();
        assert_eq!(base.origin(), "https://frontend.example.com");
        // Padding optional, host lowercased, path and trailing slash dropped.
        let key = pk("https://Frontend.Example.com/some/path/");
        let key = key.trim_end_matches('=');
        assert_eq!(
            frontend_api_from_publishable_key(key).unwrap().origin(),
            "https://frontend.example.com"
        );
        assert_eq!(
            frontend_api_from_publishable_key(&pk("http://127.0.0.1:8081"))
                .unwrap()
                .origin(),
            "http://127.0.0.1:8081"
        );
    }

    #[test]
    fn bad_publishable_keys_are_rejected() {
        for key in [
            "",
            "pk_prod_aHR0cHM6Ly9hLmNvbQ",
            "sk_test_aHR0cHM6Ly9hLmNvbQ",
            "pk_test_!!!",
            &pk("ftp://frontend.example.com"),
            &pk("frontend.example.com"),
            &pk("https://"),
            &pk("https://a.com?x=1"),
            &pk("https://user@a.com"),
            &pk("https://a.com:99999"),
        ] {
            assert!(
                frontend_api_from_publishable_key(key).is_none(),
                "accepted {key:?}"
            );
        }
    }

    #[test]
    fn defaults_apply_and_missing_values_surface_where_needed() {
        let cfg = Config::from_vars([("WACHT_API_KEY", "sk_x")], &Portable).unwrap();
        assert_eq!(cfg.api_key().unwrap(), "sk_x");
        assert_eq!(cfg.backend_api.origin(), "https://api.wacht.dev");
        assert_eq!(cfg.gateway.origin(), "https://gateway.wacht.dev");
        assert_eq!(cfg.required_permissions, vec!["deployment:read"]);
        assert_eq!(cfg.gateway_permissions, vec!["user:read"]);
        assert_eq!(cfg.clock_skew_secs, 5);
        assert_eq!(cfg.upstream_timeout_ms, 10_000);
        assert_eq!(cfg.token_cache_size, 1024);
        assert_eq!(cfg.log_format, LogFormat::Text);
        assert_eq!(
            cfg.frontend_api(),
            Err(ConfigError::Missing("WACHT_PUBLISHABLE_KEY"))
        );

        let cfg = Config::from_vars([("WACHT_API_KEY", "  ")], &Portable).unwrap();
        assert_eq!(cfg.api_key(), Err(ConfigError::Missing("WACHT_API_KEY")));
        let off = Config::from_vars([("WACHT_TOKEN_CACHE_SIZE", "0")], &Portable).unwrap();
        assert_eq!(off.token_cache_size, 0);
        let most = Config::from_vars([("WACHT_TOKEN_CACHE_SIZE", "100000")], &Portable).unwrap();
        assert_eq!(most.token_cache_size as u64, MAX_TOKEN_CACHE_SIZE);
        let json = Config::from_vars([("WACHT_LOG_FORMAT", "JSON")], &Portable).unwrap();
        assert_eq!(json.log_format, LogFormat::Json);
        assert!(json.cors_origins.is_empty());
        let cors = Config::from_vars(
            [(
                "WACHT_CORS_ORIGINS",
                "https://admin.example.com, http://localhost:3000",
            )],
            &Portable,
        )
        .unwrap();
        let listed: Vec<&str> = cors.cors_origins.iter().map(Origin::as_str).collect();
        assert_eq!(
            listed,
            ["https://admin.example.com", "http://localhost:3000"]
        );
    }

    #[test]
    fn malformed_values_are_errors_that_name_the_variable_not_the_value() {
        let secret = "sk_secret_value";
        let cases = [
            ("WACHT_PUBLISHABLE_KEY", "pk_test_notbase64%%"),
            ("WACHT_BACKEND_API_URL", "api.wacht.dev"),
            ("WACHT_GATEWAY_URL", "https://gw?x"),
            ("WACHT_CLOCK_SKEW_SECS", "-1"),
            ("WACHT_UPSTREAM_TIMEOUT_MS", "0"),
            ("WACHT_REQUIRED_PERMISSIONS", " , "),
            ("WACHT_TOKEN_CACHE_SIZE", "100001"),
            ("WACHT_TOKEN_CACHE_SIZE", "1000000"),
            ("WACHT_TOKEN_CACHE_SIZE", "-1"),
            ("WACHT_LOG_FORMAT", "yaml"),
            ("WACHT_CORS_ORIGINS", "*"),
            ("WACHT_CORS_ORIGINS", "https://a.example, https://*.example"),
            ("WACHT_CORS_ORIGINS", "https://a.example/"),
            ("WACHT_CORS_ORIGINS", " , "),
            ("WACHT_DEPLOYMENT_ID", "-12"),
            ("WACHT_DEPLOYMENT_ID", "12a"),
            ("WACHT_DEPLOYMENT_ID", "99999999999999999999999"),
            ("WACHT_GATEWAY_APPS", " , "),
            ("WACHT_CORS_ALLOW_HEADERS", "x-ok, bad header"),
            ("WACHT_CORS_ALLOW_HEADERS", ","),
        ];
        for (name, value) in cases {
            let err = Config::from_vars([("WACHT_API_KEY", secret), (name, value)], &Portable)
                .unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(!msg.contains(value.trim()) || value.trim().is_empty() || value == "0");
            assert!(!msg.contains(secret));
        }
    }

    #[test]
    fn lists_and_urls_are_parsed() {
        let cfg = Config::from_vars(
            [
                (
                    "WACHT_REQUIRED_PERMISSIONS",
                    "deployment:read, deployment:admin",
                ),
                ("WACHT_BACKEND_API_URL", "http://127.0.0.1:9000/prefix/"),
                ("OTHER", "ignored"),
            ],
            &Portable,
        )
        .unwrap();
        assert_eq!(
            cfg.required_permissions,
            vec!["deployment:read", "deployment:admin"]
        );
        assert_eq!(cfg.backend_api.authority, "127.0.0.1:9000");
        assert_eq!(cfg.backend_api.path, "/prefix");
        assert!(!cfg.backend_api.https);
    }

    #[test]
    fn deployment_binding_settings() {
        let cfg = Config::from_vars([("WACHT_API_KEY", "sk_x")], &Portable).unwrap();
        let err = cfg.deployment_id().unwrap_err();
        assert!(err.to_string().contains("WACHT_DEPLOYMENT_ID"), "{err}");
        assert!(cfg.gateway_apps.is_empty());
        let cfg = Config::from_vars(
            [
                ("WACHT_DEPLOYMENT_ID", " 1900000000000000100 "),
                ("WACHT_GATEWAY_APPS", "dashboard, ops ,"),
            ],
            &Portable,
        )
        .unwrap();
        assert_eq!(cfg.deployment_id(), Ok(1_900_000_000_000_000_100));
        assert_eq!(cfg.gateway_apps, ["dashboard", "ops"]);
    }

    #[test]
    fn debug_never_prints_the_api_key() {
        let cfg = Config::from_vars([("WACHT_API_KEY", "sk_very_secret")], &Portable).unwrap();
        assert!(!format!("{cfg:?}").contains("sk_very_secret"));
    }
}
