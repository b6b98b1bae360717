//! Demo mode: no Wacht account needed. A stand-in Wacht (JWKS with a fresh ES256 key, a backend
//! `/users` with sample users, a gateway that knows one demo API key) runs on loopback, and the
//! component is configured against it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use wacht_standin::{PrincipalType, StandIn, StandInConfig};

/// How long the printed session token stays valid.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);

/// The component settings demo mode provides (any user value for them is ignored).
pub const PROVIDED: [&str; 4] = [
    "WACHT_API_KEY",
    "WACHT_PUBLISHABLE_KEY",
    "WACHT_BACKEND_API_URL",
    "WACHT_GATEWAY_URL",
];

pub struct Demo {
    standin: StandIn,
    session_token: String,
    session_expires: u64,
    api_key: String,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("standin", &self.standin.url())
            .field("session_expires", &self.session_expires)
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// Starts the stand-in on an ephemeral loopback port and mints a session token.
    pub fn start() -> anyhow::Result<Demo> {
        let standin =
            StandIn::start(StandInConfig::demo()).context("starting the stand-in Wacht")?;
        let session_token = standin.session_token(SESSION_TTL.as_secs())?;
        let session_expires = unix_now().saturating_add(SESSION_TTL.as_secs());
        let api_key = standin
            .credentials()
            .into_iter()
            .find(|(_, c)| c.principal == PrincipalType::ApiKey)
            .map(|(value, _)| value)
            .context("the demo stand-in has no API key")?;
        Ok(Demo {
            standin,
            session_token,
            session_expires,
            api_key,
        })
    }

    pub fn standin(&self) -> &StandIn {
        &self.standin
    }

    /// A session token (organization permission `deployment:read`), valid for [`SESSION_TTL`].
    pub fn session_token(&self) -> &str {
        &self.session_token
    }

    /// Unix time the session token expires.
    pub fn session_expires(&self) -> u64 {
        self.session_expires
    }

    /// A machine API key the stand-in gateway knows (permission `user:read`).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The component's environment: `user`'s `WACHT_*` with the four connection settings
    /// replaced by the stand-in's. Also returns the names of the user's values replaced.
    pub fn env(&self, user: &[(String, String)]) -> (Vec<(String, String)>, Vec<String>) {
        let ignored: Vec<String> = user
            .iter()
            .filter(|(k, v)| PROVIDED.contains(&k.as_str()) && !v.trim().is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        let mut env: Vec<(String, String)> = user
            .iter()
            .filter(|(k, _)| !PROVIDED.contains(&k.as_str()))
            .cloned()
            .collect();
        let url = self.standin.url();
        env.extend([
            ("WACHT_API_KEY".to_string(), self.standin.api_key()),
            (
                "WACHT_PUBLISHABLE_KEY".to_string(),
                self.standin.publishable_key(),
            ),
            ("WACHT_BACKEND_API_URL".to_string(), url.clone()),
            ("WACHT_GATEWAY_URL".to_string(), url),
        ]);
        (env, ignored)
    }

    /// `curl` with the session token, against `base_url` (`http://host:port`).
    pub fn curl_session(&self, base_url: &str) -> String {
        format!(
            "curl -s {base_url}/admin/users -H 'Authorization: Bearer {}'",
            self.session_token
        )
    }

    /// `curl` with the demo API key.
    pub fn curl_api_key(&self, base_url: &str) -> String {
        format!(
            "curl -s {base_url}/admin/users -H 'x-api-key: {}'",
            self.api_key
        )
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `HH:MM UTC` of a Unix time.
pub(crate) fn utc_hh_mm(unix: u64) -> String {
    let day = unix % 86_400;
    format!("{:02}:{:02} UTC", day / 3600, day % 3600 / 60)
}
