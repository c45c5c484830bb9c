//! The records a gateway sends, their JSON envelope, and the MQTT topic tree: the contract with the
//! cloud, which lives in `melv-wire` (one definition for both sides) and is re-exported here.

pub use melv_wire::record::{
    AlertRecord, BatteryTelemetry, Counters, Envelope, LinkState, Record, RecordMessage,
    SiteTelemetry, StatusDetail, StatusMessage, Telemetry, SCHEMA, SCHEMA_VERSION,
};
pub use melv_wire::topic::{BadGatewayId, Topics, TOPIC_ROOT};
