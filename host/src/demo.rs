//! Demo mode (a stand-in Wacht on loopback when `WACHT_API_KEY` is unset) lives in the stand-in
//! crate, behind the `demo` feature that `make serve` turns on: a production build links neither
//! the stand-in nor its RSA signing code, and without `WACHT_API_KEY` it refuses to start.

#[cfg(feature = "demo")]
pub use wacht_standin::demo::*;

/// The banner event's demo fields: the stand-in, the curl lines and the token's expiry.
#[cfg(feature = "demo")]
pub(crate) fn banner_fields(
    demo: &Demo,
    url: &str,
    ignored: &[String],
    fields: &mut serde_json::Value,
) {
    fields["demo_standin_url"] = demo.standin().url().into();
    fields["curl_session"] = demo.curl_session(url).into();
    fields["curl_api_key"] = demo.curl_api_key(url).into();
    fields["session_token_expires"] = demo.session_expires().into();
    fields["ignored_in_demo_mode"] = ignored.into();
}

#[cfg(not(feature = "demo"))]
pub(crate) fn banner_fields(demo: &Demo, _: &str, _: &[String], _: &mut serde_json::Value) {
    match *demo {}
}

#[cfg(not(feature = "demo"))]
pub use disabled::Demo;

#[cfg(not(feature = "demo"))]
mod disabled {
    /// Demo mode is not built in: [`Demo::start`] says so, and no `Demo` ever exists.
    #[derive(Debug)]
    pub enum Demo {}

    impl Demo {
        pub fn start() -> anyhow::Result<Demo> {
            anyhow::bail!(
                "WACHT_API_KEY is not set, and this build has no demo mode (build with \
                 --features demo, as make serve does, or set WACHT_API_KEY)"
            )
        }

        pub fn env(&self, _: &[(String, String)]) -> (Vec<(String, String)>, Vec<String>) {
            match *self {}
        }

        pub fn banner(&self, _: &str, _: std::net::IpAddr, _: &[String]) -> String {
            match *self {}
        }
    }
}
