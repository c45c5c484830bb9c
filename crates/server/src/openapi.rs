//! The OpenAPI 3.0 document of `/api`, written by hand from [`crate::api::ROUTES`] and the request
//! and response shapes. A test checks that its paths and methods are exactly the routes'.

use crate::api::{Access, ROUTES};
use serde_json::{json, Map, Value};

fn err() -> Value {
    json!({"description": "Error with a message", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn ok(code: &str) -> (String, Value) {
    (
        code.to_string(),
        json!({"description": "Success", "content": {"application/json": {"schema": {}}}}),
    )
}

/// Request bodies of the routes that take one.
fn request(method: &str, path: &str) -> Option<Value> {
    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    Some(match (method, path) {
        ("post", "/api/login") => body(r("Login")),
        ("post", "/api/accounts") => body(r("NewAccount")),
        ("post", "/api/sites") => body(r("SiteInput")),
        ("post", "/api/sites/{id}/devices") => body(r("DeviceInput")),
        ("post", "/api/sites/{id}/devices/{serial}/claim") => body(r("ClaimInput")),
        ("post", "/api/sites/{id}/checks") => body(r("CheckInput")),
        ("post", "/api/sites/{id}/handover") => body(r("HandoverInput")),
        ("put", "/api/sites/{id}/settings") => body(r("Settings")),
        ("post", "/api/ingest") => body(r("Batch")),
        ("post", "/api/gateway/{serial}/settings/ack") => body(r("Ack")),
        _ => return None,
    })
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, access, summary) in ROUTES {
        let mut op = Map::new();
        op.insert("summary".into(), json!(summary));
        op.insert(
            "operationId".into(),
            json!(format!(
                "{method}{}",
                path.replace(['/', '{', '}', '.', '-'], "_")
            )),
        );
        let mut params = Vec::new();
        if path.contains("{id}") {
            params.push(json!({"name": "id", "in": "path", "required": true, "example": 1, "schema": {"type": "integer", "format": "int64"}}));
        }
        if path.contains("{serial}") {
            params.push(json!({"name": "serial", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}}));
        }
        if *path == "/api/sites/{id}/history" {
            params.push(json!({"name": "resolution", "in": "query", "required": true, "schema": {"type": "string", "enum": ["5min", "hour", "day", "month"]}}));
            params.push(json!({"name": "from_ms", "in": "query", "required": false, "schema": {"type": "integer", "format": "int64"}}));
            params.push(json!({"name": "to_ms", "in": "query", "required": false, "schema": {"type": "integer", "format": "int64"}}));
        }
        if !params.is_empty() {
            op.insert("parameters".into(), json!(params));
        }
        if let Some(b) = request(method, path) {
            op.insert("requestBody".into(), b);
        }
        let created = matches!(
            (*method, *path),
            ("post", "/api/accounts")
                | ("post", "/api/sites")
                | ("post", "/api/sites/{id}/devices")
                | ("post", "/api/sites/{id}/checks")
        );
        let mut responses = Map::new();
        let no_content = matches!(
            (*method, *path),
            ("post", "/api/logout")
                | ("delete", "/api/sites/{id}/devices/{serial}")
                | ("post", "/api/sites/{id}/devices/{serial}/claim")
        );
        let (c, v) = if no_content {
            ("204".to_string(), json!({"description": "Done"}))
        } else {
            ok(if created { "201" } else { "200" })
        };
        responses.insert(c, v);
        for code in [
            "400", "401", "403", "404", "409", "413", "415", "422", "429",
        ] {
            responses.insert(code.into(), err());
        }
        op.insert("responses".into(), Value::Object(responses));
        match access {
            Access::Public => {
                op.insert("security".into(), json!([]));
            }
            Access::User => {
                op.insert("security".into(), json!([{"bearer": []}, {"cookie": []}]));
            }
            Access::Gateway => {
                op.insert("security".into(), json!([{"gatewayToken": []}]));
            }
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = Value::Object(op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "melv cloud API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Sites, devices, working-mode settings, telemetry and alerts of M-ELV (MS-7K-U) home batteries. Power signs: battery positive = discharging, grid positive = importing."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE},
                "gatewayToken": {"type": "http", "scheme": "bearer"}
            },
            "schemas": schemas()
        }
    })
}

fn schemas() -> Value {
    let period = json!({"type": "object", "additionalProperties": false, "required": ["start", "end", "kind"], "properties": {
        "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "kind": {"type": "string", "enum": ["charge", "discharge"]}}});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Login": {"type": "object", "additionalProperties": false, "required": ["email", "password"], "properties": {
            "email": {"type": "string"}, "password": {"type": "string"}}},
        "NewAccount": {"type": "object", "additionalProperties": false, "required": ["email", "name", "password", "role"], "properties": {
            "email": {"type": "string"}, "name": {"type": "string"}, "password": {"type": "string", "minLength": 8},
            "role": {"type": "string", "enum": ["installer", "owner", "admin"]}}},
        "SiteInput": {"type": "object", "additionalProperties": false, "required": ["name", "phases", "country", "timezone"], "properties": {
            "name": {"type": "string"}, "phases": {"type": "integer", "enum": [1, 3]},
            "country": {"type": "string", "enum": ["generic", "AU", "DE", "IT"]}, "timezone": {"type": "string", "example": "Europe/Berlin"}}},
        "DeviceInput": {"type": "object", "additionalProperties": false, "required": ["serial", "kind"], "properties": {
            "serial": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}, "kind": {"type": "string", "enum": ["gateway", "battery"]},
            "claim_code": {"type": "string", "description": "A gateway's claim code (its label; `melv gateway --print-claim`); required for a gateway", "example": "7K2M-9QXD-R4TB-WN3H-P0CZ"}}},
        "ClaimInput": {"type": "object", "additionalProperties": false, "required": ["claim_code"], "properties": {
            "claim_code": {"type": "string"}}},
        "CheckInput": {"type": "object", "additionalProperties": false, "required": ["grid_voltages_v"], "properties": {
            "grid_voltages_v": {"type": "array", "items": {"type": "number"}},
            "mount": {"type": "string", "enum": ["floor", "wall"], "nullable": true}}},
        "HandoverInput": {"type": "object", "additionalProperties": false, "required": ["owner_email"], "properties": {
            "owner_email": {"type": "string"}}},
        "TouPeriod": period,
        "Settings": {"type": "object", "additionalProperties": false, "description": "melv_ems::Settings; omitted fields take their defaults", "properties": {
            "mode": {"type": "string", "enum": ["self_consumption", "time_of_use", "grid_services", "off_grid_backup"]},
            "reserve_soc": {"type": "number", "minimum": 0, "maximum": 1},
            "tou": {"type": "object", "additionalProperties": false, "properties": {
                "weekday": {"type": "array", "items": {"$ref": "#/components/schemas/TouPeriod"}},
                "weekend": {"type": "array", "items": {"$ref": "#/components/schemas/TouPeriod"}},
                "charge_target_soc": {"type": "number"}}},
            "grid_services": {"type": "object"},
            "backup": {"type": "object", "additionalProperties": false, "properties": {
                "reconnect_stable_s": {"type": "number"}, "reconnect_min_hz": {"type": "number"},
                "reconnect_max_hz": {"type": "number"}, "off_grid_min_soc": {"type": "number"}}},
            "calibration_interval_days": {"type": "number"}}},
        "Batch": {"type": "object", "additionalProperties": false, "required": ["gateway_serial"], "properties": {
            "gateway_serial": {"type": "string"},
            "points": {"type": "array", "maxItems": crate::ingest::MAX_POINTS, "items": {"type": "object", "additionalProperties": false,
                "required": ["seq", "ts_ms", "interval_s", "pv_w", "load_w", "grid_w", "battery_w", "soc"], "properties": {
                "seq": {"type": "integer", "minimum": 0}, "ts_ms": {"type": "integer"}, "interval_s": {"type": "number"},
                "pv_w": {"type": "number"}, "load_w": {"type": "number"}, "grid_w": {"type": "number"},
                "battery_w": {"type": "number"}, "soc": {"type": "number", "minimum": 0, "maximum": 1}}}},
            "batteries": {"type": "array", "items": {"type": "object"}},
            "events": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                "required": ["seq", "ts_ms", "device_serial", "code", "active"], "properties": {
                "seq": {"type": "integer"}, "ts_ms": {"type": "integer"}, "device_serial": {"type": "string"},
                "code": {"type": "integer"}, "active": {"type": "boolean"}}}}}},
        "Ack": {"type": "object", "additionalProperties": false, "required": ["version", "ok"], "properties": {
            "version": {"type": "integer"}, "ok": {"type": "boolean"}, "message": {"type": "string", "nullable": true}}}
    })
}
