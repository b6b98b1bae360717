//! Demo mode of `make serve`: no Wacht account needed. This stand-in serves the JWKS (a fresh
//! ES256 key), the backend `/users` (sample users) and a gateway that knows one demo API key; the
//! component is configured against it, and the banner prints curl lines to try.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{PrincipalType, StandIn, StandInConfig};
use anyhow::Context as _;

/// How long the printed session token stays valid.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);

/// The component settings demo mode provides (any user value for them is ignored).
pub const PROVIDED: [&str; 5] = [
    "WACHT_API_KEY",
    "WACHT_PUBLISHABLE_KEY",
    "WACHT_BACKEND_API_URL",
    "WACHT_GATEWAY_URL",
    "WACHT_DEPLOYMENT_ID",
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

    /// The component's environment: `user`'s `WACHT_*` with the connection settings
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
        env.extend(self.standin.component_env());
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

    /// The start-up banner's demo part: where the stand-in is, the curl lines to try, and how to
    /// serve a real deployment instead.
    pub fn banner(&self, url: &str, ip: IpAddr, ignored: &[String]) -> String {
        let mut out = String::new();
        let standin = self.standin.url();
        let _ = writeln!(
            out,
            "\n*** DEMO MODE ***  WACHT_API_KEY is not set, so nothing here talks to a real Wacht:\n\
         a stand-in Wacht at {standin} serves the JWKS (a fresh ES256 key), the backend\n\
         /users (sample users) and a gateway that knows one demo API key."
        );
        if !ignored.is_empty() {
            let _ = writeln!(
                out,
                "Ignored in demo mode (they need WACHT_API_KEY too): {}",
                ignored.join(", ")
            );
        }
        if !ip.is_loopback() {
            let _ = writeln!(
                out,
                "Note: {ip} is not a loopback address: whoever reaches it can use the token \
             below (it only unlocks the stand-in's sample users)."
            );
        }
        let _ = writeln!(out, "\nListening on {url}. Try it:\n");
        let _ = writeln!(
            out,
            "  # a session token, valid for {} min (until {}):",
            SESSION_TTL.as_secs() / 60,
            utc_hh_mm(self.session_expires)
        );
        let _ = writeln!(out, "  {}\n", self.curl_session(url));
        let _ = writeln!(
            out,
            "  # the demo API key (checked by the stand-in gateway):"
        );
        let _ = writeln!(out, "  {}\n", self.curl_api_key(url));
        let _ = writeln!(
            out,
            "To serve a real Wacht deployment, set its keys and start again:\n\n  \
         WACHT_API_KEY=<secret key> WACHT_PUBLISHABLE_KEY=pk_live_... make serve\n\n\
         (optional: WACHT_BACKEND_API_URL, WACHT_GATEWAY_URL, PORT, HOST; see --help)"
        );
        out
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `HH:MM UTC` of a Unix time.
fn utc_hh_mm(unix: u64) -> String {
    let day = unix % 86_400;
    format!("{:02}:{:02} UTC", day / 3600, day % 3600 / 60)
}
