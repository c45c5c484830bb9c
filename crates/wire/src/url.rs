//! The broker's address, one parser for every side (`melv gateway --mqtt`, `melv ingest --mqtt`,
//! `melv serve --mqtt`).
//!
//! ```text
//! [mqtt:// | tcp://] [USER[:PASSWORD]@] HOST [:PORT] [/]
//! ```
//!
//! * The scheme is `mqtt://` or its synonym `tcp://`, or left out. `mqtts://` is refused with its
//!   own reason: there is no TLS in this build (put a TLS-terminating proxy or a broker bridge in
//!   front). Any other scheme is refused.
//! * `HOST` is a name, an IPv4 address or a bracketed IPv6 address (`[::1]:1883`); it may not be
//!   empty nor contain `/`.
//! * `PORT` is 1 to 65535, 1883 when left out. **Port 0 is refused**: it is not a port a client can
//!   connect to (it means "any port" to a listener), so it is always a typo.
//! * **`USER@HOST` is accepted**: the user becomes the broker username. A password may follow the
//!   user after `:`, but a command line is visible to every user of the machine, so the password is
//!   better given in the environment variable [`PASSWORD_ENV`] (`MELV_MQTT_PASSWORD`), which is
//!   where `--mqtt-username USER` has always taken it from ([`MqttUrl::credentials`]). The user may
//!   not contain `:`, `/` or `@`; nothing is percent-decoded.

use std::fmt;

/// The environment variable holding the broker password.
pub const PASSWORD_ENV: &str = "MELV_MQTT_PASSWORD";
/// The port when the URL names none.
pub const DEFAULT_PORT: u16 = 1883;

/// A parsed broker URL.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttUrl {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Why a broker URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MQTT URL {url:?}: {problem}; expected mqtt://[USER[:PASSWORD]@]HOST[:PORT]")]
pub struct UrlError {
    /// The URL with any password replaced by `***`.
    pub url: String,
    pub problem: UrlProblem,
}

/// What is wrong with a broker URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("scheme {0:?} is not supported")]
    Scheme(String),
    #[error("mqtts (MQTT over TLS) is not supported by this build")]
    Tls,
    #[error("no host")]
    NoHost,
    #[error("host {0:?} may not contain '/'")]
    BadHost(String),
    #[error("port {0:?} is not a number from 1 to 65535")]
    BadPort(String),
    #[error("port 0 is not a port to connect to")]
    PortZero,
    #[error("empty username before '@'")]
    EmptyUser,
    #[error("username {0:?} may not contain '/'")]
    BadUser(String),
}

/// A username and its password, for the broker's CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Why no credentials could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("--mqtt-username {flag:?} and the MQTT URL's user {url:?} differ: give one")]
    TwoUsers { flag: String, url: String },
    #[error(
        "--mqtt-username {0}: set the password in the environment variable MELV_MQTT_PASSWORD"
    )]
    NoPassword(String),
}

impl MqttUrl {
    /// Parses `url` (module documentation).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        parse(url).map_err(|problem| UrlError {
            url: redact(url),
            problem,
        })
    }

    /// The broker credentials: the username from `--mqtt-username` (`flag_user`) or from the URL
    /// (they must agree when both are given), the password from the URL or else `env_password`
    /// (the value of [`PASSWORD_ENV`]). `None`: anonymous. A username without a password is an
    /// error, not an anonymous login.
    pub fn credentials(
        &self,
        flag_user: Option<&str>,
        env_password: Option<String>,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let user = match (flag_user, self.username.as_deref()) {
            (Some(f), Some(u)) if f != u => {
                return Err(CredentialsError::TwoUsers {
                    flag: f.into(),
                    url: u.into(),
                })
            }
            (Some(u), _) | (None, Some(u)) => u,
            (None, None) => return Ok(None),
        };
        let password = self
            .password
            .clone()
            .or(env_password)
            .ok_or_else(|| CredentialsError::NoPassword(user.to_string()))?;
        Ok(Some(Credentials {
            username: user.to_string(),
            password,
        }))
    }

    /// [`MqttUrl::credentials`] with the password from the process environment.
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place a broker password is read from the environment, for the hosts"
    )]
    pub fn credentials_from_env(
        &self,
        flag_user: Option<&str>,
    ) -> Result<Option<Credentials>, CredentialsError> {
        self.credentials(flag_user, std::env::var(PASSWORD_ENV).ok())
    }
}

/// `mqtt://user@host:port`, never the password.
impl fmt::Display for MqttUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mqtt://")?;
        if let Some(u) = &self.username {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for MqttUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl std::str::FromStr for MqttUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        MqttUrl::parse(s)
    }
}

fn parse(url: &str) -> Result<MqttUrl, UrlProblem> {
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some(("mqtts" | "ssl" | "tls", _)) => return Err(UrlProblem::Tls),
        Some((scheme, _)) => return Err(UrlProblem::Scheme(scheme.to_string())),
        None => url,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, password) = match u.split_once(':') {
                Some((user, p)) => (user, Some(p.to_string())),
                None => (u, None),
            };
            if user.is_empty() {
                return Err(UrlProblem::EmptyUser);
            }
            if user.contains('/') {
                return Err(UrlProblem::BadUser(user.to_string()));
            }
            (Some(user.to_string()), password)
        }
    };
    let (host, port) = split_host_port(hostport)?;
    if host.is_empty() {
        return Err(UrlProblem::NoHost);
    }
    if host.contains('/') {
        return Err(UrlProblem::BadHost(host.to_string()));
    }
    Ok(MqttUrl {
        host: host.to_string(),
        port,
        username,
        password,
    })
}

fn split_host_port(s: &str) -> Result<(&str, u16), UrlProblem> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| UrlProblem::BadHost(s.to_string()))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(UrlProblem::BadHost(s.to_string())),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) => return Err(UrlProblem::PortZero),
            Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(UrlProblem::BadPort(p.to_string())),
        },
    };
    Ok((host, port))
}

/// `url` with the password, if any, replaced by `***` (for error messages and logs).
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str, host: &str, port: u16, user: Option<&str>, password: Option<&str>) {
        let u = MqttUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.username.as_deref(),
                u.password.as_deref()
            ),
            (host, port, user, password),
            "{url}"
        );
    }

    fn refused(url: &str, problem: UrlProblem) {
        let e = MqttUrl::parse(url).unwrap_err();
        assert_eq!(e.problem, problem, "{url}");
        assert!(
            e.to_string()
                .ends_with("expected mqtt://[USER[:PASSWORD]@]HOST[:PORT]"),
            "{e}"
        );
    }

    #[test]
    fn accepted_forms() {
        ok("mqtt://127.0.0.1:1883", "127.0.0.1", 1883, None, None);
        ok(
            "tcp://broker.example:11883/",
            "broker.example",
            11883,
            None,
            None,
        );
        ok("localhost", "localhost", 1883, None, None);
        ok("broker:1", "broker", 1, None, None);
        ok("mqtt://h:65535", "h", 65535, None, None);
        ok("mqtt://gw-1@h:1883", "h", 1883, Some("gw-1"), None);
        ok("gw-1@h", "h", 1883, Some("gw-1"), None);
        ok(
            "mqtt://gw-1:s3cr:t@h:2",
            "h",
            2,
            Some("gw-1"),
            Some("s3cr:t"),
        );
        ok("mqtt://u:@h", "h", 1883, Some("u"), Some(""));
        ok("mqtt://[::1]:1884", "::1", 1884, None, None);
        ok("mqtt://[::1]", "::1", 1883, None, None);
    }

    #[test]
    fn refused_forms() {
        refused("mqtt://h:0", UrlProblem::PortZero);
        refused("mqtt://:1883", UrlProblem::NoHost);
        refused("", UrlProblem::NoHost);
        refused("mqtt://", UrlProblem::NoHost);
        refused("mqtt://u@", UrlProblem::NoHost);
        refused("mqtt://h:99999", UrlProblem::BadPort("99999".into()));
        refused("mqtt://h:+1", UrlProblem::BadPort("+1".into()));
        refused("mqtt://h:", UrlProblem::BadPort("".into()));
        refused("mqtt://h/x:1", UrlProblem::BadHost("h/x".into()));
        refused("mqtt://h/x", UrlProblem::BadHost("h/x".into()));
        refused("mqtts://h:8883", UrlProblem::Tls);
        refused("http://h:1", UrlProblem::Scheme("http".into()));
        refused("mqtt://@h:1", UrlProblem::EmptyUser);
        refused("mqtt://a/b@h:1", UrlProblem::BadUser("a/b".into()));
        refused("mqtt://[::1", UrlProblem::BadHost("[::1".into()));
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        let e = MqttUrl::parse("mqtt://u:hunter2@h:0")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("u:***@h:0"), "{e}");
        let u = MqttUrl::parse("mqtt://u:hunter2@h").unwrap();
        assert!(!format!("{u:?} {u}").contains("hunter2"));
        assert_eq!(u.to_string(), "mqtt://u@h:1883");
        let c = u.credentials(None, None).unwrap().unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn credentials() {
        let anon = MqttUrl::parse("mqtt://h").unwrap();
        let user = MqttUrl::parse("mqtt://gw-1@h").unwrap();
        let both = MqttUrl::parse("mqtt://gw-1:url-pw@h").unwrap();
        let env = || Some("env-pw".to_string());
        let c = |u: &str, p: &str| {
            Some(Credentials {
                username: u.into(),
                password: p.into(),
            })
        };
        assert_eq!(anon.credentials(None, env()), Ok(None));
        assert_eq!(
            anon.credentials(Some("gw-1"), env()),
            Ok(c("gw-1", "env-pw"))
        );
        assert_eq!(
            anon.credentials(Some("gw-1"), None),
            Err(CredentialsError::NoPassword("gw-1".into()))
        );
        assert_eq!(user.credentials(None, env()), Ok(c("gw-1", "env-pw")));
        assert_eq!(
            user.credentials(Some("gw-1"), env()),
            Ok(c("gw-1", "env-pw"))
        );
        assert!(matches!(
            user.credentials(Some("gw-2"), env()),
            Err(CredentialsError::TwoUsers { .. })
        ));
        assert_eq!(both.credentials(None, env()), Ok(c("gw-1", "url-pw")));
        assert!(user
            .credentials(None, None)
            .unwrap_err()
            .to_string()
            .contains("MELV_MQTT_PASSWORD"));
    }
}
