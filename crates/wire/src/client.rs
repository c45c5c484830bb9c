//! What every MQTT client of the system sets the same way, and the shutdown signal of every process.

use crate::url::{Credentials, MqttUrl};
use rumqttc::MqttOptions;
use std::time::Duration;

/// rumqttc's options for `url` under `client_id`: host, port, keep-alive (at least 1 s, rumqttc's
/// minimum; a dead connection is noticed after about 1.5 times it) and, when given, the credentials.
/// Session, in-flight window, packet size and last will are each side's own and set by the caller.
pub fn mqtt_options(
    url: &MqttUrl,
    client_id: impl Into<String>,
    keep_alive: Duration,
    credentials: Option<&Credentials>,
) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, url.host.clone(), url.port);
    o.set_keep_alive(keep_alive.max(Duration::from_secs(1)));
    if let Some(c) = credentials {
        o.set_credentials(c.username.clone(), c.password.clone());
    }
    o
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_carry_the_url_and_the_credentials() {
        let url = MqttUrl::parse("mqtt://broker:1884").unwrap();
        let c = Credentials {
            username: "gw-1".into(),
            password: "pw".into(),
        };
        let o = mqtt_options(&url, "melv-gw-gw-1", Duration::from_millis(10), Some(&c));
        assert_eq!(o.broker_address(), ("broker".to_string(), 1884));
        assert_eq!(o.client_id(), "melv-gw-gw-1");
        assert_eq!(o.keep_alive(), Duration::from_secs(1));
        assert_eq!(
            o.credentials(),
            Some(("gw-1".to_string(), "pw".to_string()))
        );
        let o = mqtt_options(&url, "x", Duration::from_secs(5), None);
        assert_eq!(o.credentials(), None);
    }
}
