//! The MQTT topic tree (`docs/gateway.md` 2). The strings are what `deploy/mosquitto/acl` grants:
//! changing one is a change of the deployed brokers' ACLs, not only of this crate.
//!
//! ```text
//! melv/v1/{gateway}/telemetry      gateway -> cloud  sequenced records, kind "telemetry"
//! melv/v1/{gateway}/alerts         gateway -> cloud  sequenced records, kind "alert"
//! melv/v1/{gateway}/status         gateway -> cloud  retained, online/offline (offline: last will)
//! melv/v1/{gateway}/settings       cloud -> gateway  retained, the desired settings
//! melv/v1/{gateway}/settings/ack   gateway -> cloud  the verdict on a settings version
//! melv/v1/{gateway}/ack            cloud -> gateway  retained, the records the cloud has committed
//! melv/v1/{gateway}/ha/state       gateway -> Home Assistant, retained (not the cloud's)
//! ```

/// Root of the topic tree. Its `v1` is the topic tree's version, not the record schema's
/// ([`crate::SCHEMA`]): records changed in schema 2, the topics did not.
pub const TOPIC_ROOT: &str = "melv/v1";

/// The topics of one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub telemetry: String,
    pub alerts: String,
    /// Retained, `online`/`offline` (the offline one as the MQTT last will).
    pub status: String,
    /// Cloud -> gateway, retained: the desired settings with their version.
    pub settings: String,
    /// Gateway -> cloud: the verdict on a settings version.
    pub settings_ack: String,
    /// Retained live state for Home Assistant (not sequenced, not queued).
    pub ha_state: String,
    /// Cloud -> gateway, retained: the end-to-end acknowledgement ([`crate::UplinkAck`]).
    pub ack: String,
}

/// Why a gateway id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("gateway id {0:?}: use 1 to 64 characters from a-z, A-Z, 0-9, '-' and '_' (it is an MQTT topic level)")]
pub struct BadGatewayId(pub String);

impl Topics {
    /// Topics of gateway `id`; ids are topic levels, so `/`, `+`, `#` and the like are refused.
    pub fn new(id: &str) -> Result<Self, BadGatewayId> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(BadGatewayId(id.to_string()));
        }
        let base = format!("{TOPIC_ROOT}/{id}");
        Ok(Self {
            telemetry: format!("{base}/telemetry"),
            alerts: format!("{base}/alerts"),
            status: format!("{base}/status"),
            settings: settings_topic(id),
            settings_ack: settings_ack_topic(id),
            ha_state: format!("{base}/ha/state"),
            ack: ack_topic(id),
        })
    }

    /// The topic of a sequenced record kind ([`crate::Record::kind`]).
    pub fn for_kind(&self, kind: &str) -> &str {
        match kind {
            "alert" => &self.alerts,
            _ => &self.telemetry,
        }
    }
}

/// The topic on which the cloud publishes a gateway's desired settings (retained).
pub fn settings_topic(gateway: &str) -> String {
    format!("{TOPIC_ROOT}/{gateway}/settings")
}

/// The topic on which a gateway acknowledges its settings.
pub fn settings_ack_topic(gateway: &str) -> String {
    format!("{TOPIC_ROOT}/{gateway}/settings/ack")
}

/// The topic on which the cloud tells a gateway which of its records are committed (retained).
pub fn ack_topic(gateway: &str) -> String {
    format!("{TOPIC_ROOT}/{gateway}/ack")
}

/// What a topic the cloud ingests is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Telemetry,
    Alerts,
    SettingsAck,
}

impl TopicKind {
    /// The record kind a sequenced topic carries (`None` for acks, which are not sequenced).
    pub fn record_kind(self) -> Option<&'static str> {
        match self {
            TopicKind::Telemetry => Some("telemetry"),
            TopicKind::Alerts => Some("alert"),
            TopicKind::SettingsAck => None,
        }
    }
}

/// `melv/v1/{gw}/telemetry` -> (`gw`, Telemetry), likewise `/alerts` and `/settings/ack`; anything
/// else (other topics of the tree included) is `None`.
pub fn parse_topic(topic: &str) -> Option<(&str, TopicKind)> {
    let rest = topic.strip_prefix(TOPIC_ROOT)?.strip_prefix('/')?;
    let (gw, tail) = rest.split_once('/')?;
    if gw.is_empty() {
        return None;
    }
    let kind = match tail {
        "telemetry" => TopicKind::Telemetry,
        "alerts" => TopicKind::Alerts,
        "settings/ack" => TopicKind::SettingsAck,
        _ => return None,
    };
    Some((gw, kind))
}

/// The subscriptions that receive every gateway's [`parse_topic`] topics.
pub fn ingest_filters() -> [String; 3] {
    [
        format!("{TOPIC_ROOT}/+/telemetry"),
        format!("{TOPIC_ROOT}/+/alerts"),
        format!("{TOPIC_ROOT}/+/settings/ack"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_id(id: &str, ok: bool) {
        assert_eq!(Topics::new(id).is_ok(), ok, "{id:?}");
    }

    #[test]
    fn gateway_ids_are_single_topic_levels() {
        check_id("gw-1", true);
        check_id("Site_42", true);
        check_id("", false);
        check_id("a/b", false);
        check_id("a+", false);
        check_id("#", false);
        check_id("é", false);
        check_id(&"x".repeat(65), false);
    }

    /// The strings deploy/mosquitto/acl grants.
    #[test]
    fn topic_tree() {
        let t = Topics::new("gw-1").unwrap();
        assert_eq!(t.telemetry, "melv/v1/gw-1/telemetry");
        assert_eq!(t.alerts, "melv/v1/gw-1/alerts");
        assert_eq!(t.status, "melv/v1/gw-1/status");
        assert_eq!(t.settings, "melv/v1/gw-1/settings");
        assert_eq!(t.settings_ack, "melv/v1/gw-1/settings/ack");
        assert_eq!(t.ha_state, "melv/v1/gw-1/ha/state");
        assert_eq!(t.ack, "melv/v1/gw-1/ack");
        assert_eq!(t.for_kind("alert"), t.alerts);
        assert_eq!(t.for_kind("telemetry"), t.telemetry);
        assert_eq!(
            ingest_filters(),
            [
                "melv/v1/+/telemetry",
                "melv/v1/+/alerts",
                "melv/v1/+/settings/ack"
            ]
        );
    }

    #[test]
    fn the_cloud_reads_back_what_the_gateway_publishes_on() {
        let t = Topics::new("gw-1").unwrap();
        assert_eq!(
            parse_topic(&t.telemetry),
            Some(("gw-1", TopicKind::Telemetry))
        );
        assert_eq!(parse_topic(&t.alerts), Some(("gw-1", TopicKind::Alerts)));
        assert_eq!(
            parse_topic(&t.settings_ack),
            Some(("gw-1", TopicKind::SettingsAck))
        );
        assert_eq!(parse_topic(&t.status), None);
        assert_eq!(parse_topic(&t.settings), None);
        // The cloud's own acknowledgements are not ingested.
        assert_eq!(parse_topic(&t.ack), None);
        assert_eq!(parse_topic("melv/v1//telemetry"), None);
        assert_eq!(parse_topic("melv/v2/gw-1/telemetry"), None);
        assert_eq!(parse_topic("melv/v1/gw-1/telemetry/x"), None);
        assert_eq!(TopicKind::Alerts.record_kind(), Some("alert"));
        assert_eq!(TopicKind::Telemetry.record_kind(), Some("telemetry"));
        assert_eq!(TopicKind::SettingsAck.record_kind(), None);
    }
}
