//! What the host checks in the environment at start-up: every `WACHT_*` name against the names
//! someone reads (a typo would otherwise be ignored without a word), and the component's
//! configuration with the component's own parser (a bad value would otherwise start a server
//! whose every request is a 500).

use std::fmt;

use wacht_admin::config::{Config, ConfigError};

use crate::verifier::Ring;

/// Every `WACHT_*` the component reads: the names in `src/config.rs` (a test keeps the two
/// equal until the component's crate exports its own list).
pub const COMPONENT_VARS: [&str; 18] = [
    "WACHT_API_KEY",
    "WACHT_PUBLISHABLE_KEY",
    "WACHT_BACKEND_API_URL",
    "WACHT_GATEWAY_URL",
    "WACHT_JWKS",
    "WACHT_REQUIRED_PERMISSIONS",
    "WACHT_GATEWAY_PERMISSIONS",
    "WACHT_DEPLOYMENT_ID",
    "WACHT_GATEWAY_APPS",
    "WACHT_REQUIRED_ORGANIZATION",
    "WACHT_REQUIRED_WORKSPACE",
    "WACHT_CLOCK_SKEW_SECS",
    "WACHT_TOKEN_CACHE_SIZE",
    "WACHT_CORS_ORIGINS",
    "WACHT_CORS_ALLOW_HEADERS",
    "WACHT_LOG_FORMAT",
    "WACHT_UPSTREAM_TIMEOUT_MS",
    "WACHT_CLIENT_IP_HEADER",
];

/// Read by the Cloudflare Workers shim only (`worker/src/index.js`); harmless here.
pub const WORKER_ONLY_VARS: [&str; 2] = ["WACHT_POOL_SIZE", "WACHT_MAX_INSTANCES"];

/// Below this similarity (Jaro, as clap's own suggestions) no name is suggested.
const SUGGESTION_THRESHOLD: f64 = 0.8;

/// Something worth saying about one `WACHT_*` name in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameNote {
    /// Nobody reads it; `suggestion` is the nearest known name, if one is near.
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
    /// The Workers shim's setting: ignored by this host.
    WorkerOnly(String),
}

impl NameNote {
    /// An unknown name is a warning; a Worker-only one is information.
    pub fn is_warning(&self) -> bool {
        matches!(self, NameNote::Unknown { .. })
    }
}

impl fmt::Display for NameNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameNote::Unknown {
                name,
                suggestion: Some(near),
            } => write!(
                f,
                "{name} is not read by the component or this host: did you mean {near}?"
            ),
            NameNote::Unknown {
                name,
                suggestion: None,
            } => write!(f, "{name} is not read by the component or this host"),
            NameNote::WorkerOnly(name) => write!(
                f,
                "{name} is a setting of the Cloudflare Workers shim only; this host ignores it"
            ),
        }
    }
}

/// The notes for the `WACHT_*` names among `names`; `host_vars` are the host's own (its flags'
/// environment variables). Values are never looked at.
pub fn check_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
    host_vars: &[String],
) -> Vec<NameNote> {
    let known: Vec<&str> = COMPONENT_VARS
        .iter()
        .copied()
        .chain(host_vars.iter().map(String::as_str))
        .chain(WORKER_ONLY_VARS.iter().copied())
        .collect();
    let mut notes = Vec::new();
    for name in names.into_iter().filter(|n| n.starts_with("WACHT_")) {
        if WORKER_ONLY_VARS.contains(&name) {
            notes.push(NameNote::WorkerOnly(name.to_string()));
        } else if !known.contains(&name) {
            notes.push(NameNote::Unknown {
                name: name.to_string(),
                suggestion: nearest(name, &known).map(str::to_string),
            });
        }
    }
    notes
}

/// The known name most like `name`, compared without the common `WACHT_` prefix (which would
/// make every name look alike).
fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let tail = |n: &'a str| n.strip_prefix("WACHT_").unwrap_or(n);
    let name = name.strip_prefix("WACHT_").unwrap_or(name);
    known
        .iter()
        .map(|k| (strsim::jaro(name, tail(k)), *k))
        .filter(|(score, _)| *score >= SUGGESTION_THRESHOLD)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The component's configuration refused at start-up. Its message names the variable, never
/// its value (the component's [`ConfigError`] says only the name).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("configuration error: {0}")]
pub struct ConfigRefused(#[from] pub ConfigError);

/// Parses `env` (exactly what the component will get) as the component does.
pub fn check_config(env: &[(String, String)]) -> Result<Config, ConfigRefused> {
    Ok(Config::from_vars(env.iter().cloned(), &Ring)?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The literals `"WACHT_..."` of the component's src/config.rs, as tests/all/spin_manifest.rs
    /// reads them.
    fn names_in_config_rs() -> BTreeSet<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/config.rs");
        let src = std::fs::read_to_string(&path).unwrap();
        src.split('"')
            .skip(1)
            .step_by(2)
            .filter(|lit| lit.len() > "WACHT_".len() && lit.starts_with("WACHT_"))
            .filter(|lit| lit.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_component_names_are_those_of_its_config_rs() {
        let ours: BTreeSet<String> = COMPONENT_VARS.iter().map(|n| n.to_string()).collect();
        assert_eq!(ours.len(), COMPONENT_VARS.len(), "a name is listed twice");
        assert_eq!(ours, names_in_config_rs());
        assert!(ours.contains("WACHT_CLOCK_SKEW_SECS"));
    }

    fn notes(names: &[&str]) -> Vec<NameNote> {
        let host = vec![
            "WACHT_ADMIN_INSTANCES".to_string(),
            "WACHT_ADMIN_LISTEN".to_string(),
        ];
        check_names(names.iter().copied(), &host)
    }

    #[test]
    fn unknown_names_are_noted_with_the_nearest_known_one() {
        assert_eq!(
            notes(&[
                "PATH",
                "WACHT_API_KEY",
                "WACHT_ADMIN_INSTANCES",
                "WACHT_CORS_ORIGIN",
                "WACHT_ADMIN_INSTANCE",
                "WACHT_POOL_SIZE",
                "WACHT_ZZZ",
            ]),
            vec![
                NameNote::Unknown {
                    name: "WACHT_CORS_ORIGIN".into(),
                    suggestion: Some("WACHT_CORS_ORIGINS".into()),
                },
                NameNote::Unknown {
                    name: "WACHT_ADMIN_INSTANCE".into(),
                    suggestion: Some("WACHT_ADMIN_INSTANCES".into()),
                },
                NameNote::WorkerOnly("WACHT_POOL_SIZE".into()),
                NameNote::Unknown {
                    name: "WACHT_ZZZ".into(),
                    suggestion: None,
                },
            ]
        );
        let typo = &notes(&["WACHT_PUBLISHABLE_KY"])[0];
        assert_eq!(
            typo.to_string(),
            "WACHT_PUBLISHABLE_KY is not read by the component or this host: did you mean \
             WACHT_PUBLISHABLE_KEY?"
        );
        assert!(typo.is_warning());
        assert!(!NameNote::WorkerOnly("WACHT_MAX_INSTANCES".into()).is_warning());
    }

    #[test]
    fn a_bad_value_is_refused_by_name_never_by_value() {
        let env = |skew: &str| {
            vec![
                ("WACHT_API_KEY".to_string(), "sk_test_x".to_string()),
                ("WACHT_CLOCK_SKEW_SECS".to_string(), skew.to_string()),
            ]
        };
        assert!(check_config(&env("5")).is_ok());
        let refused = check_config(&env("s3cr3t-ish")).unwrap_err();
        let message = refused.to_string();
        assert!(message.contains("WACHT_CLOCK_SKEW_SECS"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }
}
