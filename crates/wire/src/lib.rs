//! # melv-wire: the contract between a gateway and the cloud
//!
//! Both sides of the MQTT link build on this crate, so the contract is written once:
//! * [`topic`]: the topic tree (`melv/v1/{gateway}/...`), the strings `deploy/mosquitto/acl` grants;
//! * [`record`]: every message on it with its JSON (serde), the schema version ([`SCHEMA`]) every
//!   payload carries, and the envelope a consumer reads first;
//! * [`url`]: the broker URL (`mqtt://[USER[:PASSWORD]@]HOST[:PORT]`) and the broker credentials;
//! * [`client`]: rumqttc options from a URL, and the shutdown signal of every process.
//!
//! The JSON of each message is pinned by a golden file in `tests/fixtures` (`tests/golden.rs`): a
//! change of the schema shows up as a diff there, and wants [`SCHEMA_VERSION`] bumped.
//!
//! This crate decides nothing: no validation of values against a site (that is the cloud's,
//! `melv-server`'s feed), no delivery logic (the gateway's queue and uplink).

pub mod claim;
pub mod client;
pub mod record;
pub mod topic;
pub mod url;

pub use client::{mqtt_options, shutdown_signal};
pub use record::{
    check_schema, AlertRecord, BatteryTelemetry, Counters, Envelope, LinkState, Record,
    RecordMessage, SchemaError, SettingsAck, SettingsMessage, SiteTelemetry, StatusDetail,
    StatusMessage, Telemetry, UplinkAck, SCHEMA, SCHEMA_VERSION,
};
pub use topic::{
    ack_topic, ingest_filters, parse_topic, settings_ack_topic, settings_topic, BadGatewayId,
    TopicKind, Topics, TOPIC_ROOT,
};
pub use url::{Credentials, CredentialsError, MqttUrl, UrlError, UrlProblem, PASSWORD_ENV};
