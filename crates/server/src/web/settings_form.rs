//! The working-mode settings page with its TOU period editor (manual 5.1). The form edits the
//! fields an owner chooses (mode, backup reserve, TOU periods and charge target); the rest of
//! `melv_ems::Settings` (grid services curves, backup reconnection) is kept as stored. Saving goes
//! through the same `service::save_settings` as the API, so the same rules refuse the same input.

use super::layout::{error_page, esc, page, WebForm, WebUser};
use crate::error::ApiError;
use crate::service;
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use melv_core::WorkingMode;
use melv_ems::{PeriodKind, Settings, TouPeriod};

/// Rows of the TOU editor per day type: enough for a three-rate tariff with shoulders.
const ROWS: usize = 6;

const MODES: [(WorkingMode, &str); 4] = [
    (WorkingMode::SelfConsumption, "Self-consumption"),
    (WorkingMode::TimeOfUse, "Time of use (TOU)"),
    (WorkingMode::GridServices, "Grid ancillary services"),
    (WorkingMode::OffGridBackup, "Off-grid backup"),
];

fn form(
    site_id: i64,
    s: &Settings,
    version: i64,
    delivery: &str,
    msg: Option<Result<String, String>>,
) -> String {
    let mut b = match msg {
        Some(Ok(m)) => format!(r#"<p class="notice" role="status">{}</p>"#, esc(&m)),
        Some(Err(e)) => format!(r#"<p class="error" role="alert">{}</p>"#, esc(&e)),
        None => String::new(),
    };
    b.push_str(&format!(
        r#"<nav aria-label="Site"><a href="/sites/{site_id}">Dashboard</a></nav><p>Version {version} ({delivery}).</p><form method="post" action="/sites/{site_id}/settings"><fieldset><legend>Battery working mode</legend>"#
    ));
    for (m, label) in MODES {
        let checked = if s.mode == m { " checked" } else { "" };
        b.push_str(&format!(
            r#"<div><input type="radio" id="mode-{m}" name="mode" value="{m}"{checked}> <label for="mode-{m}" style="display:inline">{label}</label></div>"#
        ));
    }
    b.push_str(&format!(
        r#"</fieldset><label for="reserve">Backup reserve: no discharge below (% SOC)</label><input id="reserve" name="reserve_pct" type="number" min="0" max="100" step="1" value="{:.0}">"#,
        s.reserve_soc * 100.0
    ));
    for (day, list) in [("weekday", &s.tou.weekday), ("weekend", &s.tou.weekend)] {
        b.push_str(&format!(
            r#"<fieldset><legend>TOU periods, {}</legend><p>Times are the site's local time; a period may pass midnight (22:00 to 06:00). Leave a row empty to drop it.</p><table class="tou"><thead><tr><th scope="col">From</th><th scope="col">To</th><th scope="col">Function</th></tr></thead><tbody>"#,
            if day == "weekday" { "Monday to Friday" } else { "Saturday and Sunday" }
        ));
        for i in 0..ROWS {
            let p = list.get(i);
            let start = p.map(|p| p.start.to_string()).unwrap_or_default();
            let end = p.map(|p| p.end.to_string()).unwrap_or_default();
            let kind = p.map(|p| p.kind);
            let sel = |k: PeriodKind| if kind == Some(k) { " selected" } else { "" };
            b.push_str(&format!(
                r#"<tr><td><label for="{day}-{i}-start" class="sr">From, row {n}</label><input id="{day}-{i}-start" name="{day}.{i}.start" type="time" value="{start}"></td><td><label for="{day}-{i}-end" class="sr">To, row {n}</label><input id="{day}-{i}-end" name="{day}.{i}.end" type="time" value="{end}"></td><td><label for="{day}-{i}-kind" class="sr">Function, row {n}</label><select id="{day}-{i}-kind" name="{day}.{i}.kind"><option value="charge"{c}>Charge</option><option value="discharge"{d}>Discharge</option></select></td></tr>"#,
                n = i + 1,
                c = sel(PeriodKind::Charge),
                d = sel(PeriodKind::Discharge),
            ));
        }
        b.push_str("</tbody></table></fieldset>");
    }
    b.push_str(&format!(
        r#"<label for="target">TOU charging periods charge from the grid up to (% SOC)</label><input id="target" name="charge_target_pct" type="number" min="1" max="100" step="1" value="{:.0}">
<p><button type="submit">Save settings</button></p></form>
<p><small>Manual 5.1: TOU needs at least one charging or discharging period, and is not available where grid charging of storage is forbidden.</small></p>"#,
        s.tou.charge_target_soc * 100.0
    ));
    b
}

pub async fn show(State(s): State<AppState>, user: WebUser, Path(raw): Path<String>) -> Response {
    render(&s, &user, &raw, None, None).await
}

async fn render(
    s: &AppState,
    user: &WebUser,
    raw: &str,
    shown: Option<&Settings>,
    msg: Option<Result<String, String>>,
) -> Response {
    let r = async {
        let id: i64 = raw
            .parse()
            .map_err(|_| ApiError::not_found(format!("site {raw:?} not found")))?;
        let site = service::site_for(s, &user.0, id).await?;
        let cur = service::current_settings(s, &site).await?;
        Ok::<_, ApiError>((site, cur))
    }
    .await;
    match r {
        Ok((site, cur)) => {
            let delivery = cur
                .delivery
                .map(|d| d.as_str())
                .unwrap_or("defaults, never saved");
            let body = form(
                site.id,
                shown.unwrap_or(&cur.settings),
                cur.version,
                delivery,
                msg.clone(),
            );
            let status = match msg {
                Some(Err(_)) => axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                _ => axum::http::StatusCode::OK,
            };
            (
                status,
                page(&format!("Settings · {}", site.name), Some(&user.0), &body),
            )
                .into_response()
        }
        Err(e) => error_page(Some(&user.0), e),
    }
}

/// Reads the form into settings, starting from the stored ones. Errors name the form field.
fn parse(base: &Settings, f: &[(String, String)]) -> Result<Settings, String> {
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim());
    let mut s = base.clone();
    if let Some(m) = get("mode") {
        s.mode = m.parse()?;
    }
    let pct = |k: &str| -> Result<Option<f64>, String> {
        match get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .map(|x| Some(x / 100.0))
                .map_err(|_| format!("{k}: {v:?} is not a number")),
        }
    };
    if let Some(r) = pct("reserve_pct")? {
        s.reserve_soc = r;
    }
    if let Some(t) = pct("charge_target_pct")? {
        s.tou.charge_target_soc = t;
    }
    for day in ["weekday", "weekend"] {
        let mut list = Vec::new();
        for i in 0..ROWS {
            let start = get(&format!("{day}.{i}.start")).unwrap_or("");
            let end = get(&format!("{day}.{i}.end")).unwrap_or("");
            if start.is_empty() && end.is_empty() {
                continue;
            }
            let kind = match get(&format!("{day}.{i}.kind")) {
                Some("discharge") => PeriodKind::Discharge,
                _ => PeriodKind::Charge,
            };
            // Browsers send "00:00" for midnight; an end of "00:00" means the end of the day.
            let end = if end == "00:00" { "24:00" } else { end };
            list.push(TouPeriod {
                start: start
                    .parse()
                    .map_err(|e| format!("{day} row {}: from: {e}", i + 1))?,
                end: end
                    .parse()
                    .map_err(|e| format!("{day} row {}: to: {e}", i + 1))?,
                kind,
            });
        }
        if day == "weekday" {
            s.tou.weekday = list;
        } else {
            s.tou.weekend = list;
        }
    }
    Ok(s)
}

pub async fn save(
    State(s): State<AppState>,
    user: WebUser,
    Path(raw): Path<String>,
    WebForm(f): WebForm<Vec<(String, String)>>,
) -> Response {
    let id: i64 = match raw.parse() {
        Ok(i) => i,
        Err(_) => {
            return error_page(
                Some(&user.0),
                ApiError::not_found(format!("site {raw:?} not found")),
            )
        }
    };
    let base = match service::site_for(&s, &user.0, id).await {
        Ok(site) => match service::current_settings(&s, &site).await {
            Ok(c) => c.settings,
            Err(e) => return error_page(Some(&user.0), e),
        },
        Err(e) => return error_page(Some(&user.0), e),
    };
    let new = match parse(&base, &f) {
        Ok(n) => n,
        Err(e) => return render(&s, &user, &raw, Some(&base), Some(Err(e))).await,
    };
    match service::save_settings(&s, &user.0, id, &new).await {
        Ok(v) => {
            render(
                &s,
                &user,
                &raw,
                None,
                Some(Ok(format!(
                    "Saved as version {}; it is delivered to the gateway at its next connection.",
                    v.version
                ))),
            )
            .await
        }
        Err(e) => render(&s, &user, &raw, Some(&new), Some(Err(e.message))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fields: &[(&str, &str)], expected: Result<&str, &str>) {
        let f: Vec<(String, String)> = fields
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        match (parse(&Settings::default(), &f), expected) {
            (Ok(s), Ok(json)) => assert_eq!(serde_json::to_string(&s.tou.weekday).unwrap(), json),
            (Err(e), Err(w)) => assert!(e.starts_with(w), "{e} vs {w}"),
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn tou_rows() {
        check(&[("mode", "time_of_use")], Ok("[]"));
        check(
            &[
                ("weekday.0.start", "22:00"),
                ("weekday.0.end", "06:00"),
                ("weekday.0.kind", "charge"),
            ],
            Ok(r#"[{"start":"22:00","end":"06:00","kind":"charge"}]"#),
        );
        check(
            &[
                ("weekday.1.start", "17:00"),
                ("weekday.1.end", "00:00"),
                ("weekday.1.kind", "discharge"),
            ],
            Ok(r#"[{"start":"17:00","end":"24:00","kind":"discharge"}]"#),
        );
        check(
            &[("weekday.0.start", "7"), ("weekday.0.end", "08:00")],
            Err("weekday row 1: from: invalid time"),
        );
        check(&[("mode", "turbo")], Err("unknown working mode"));
        check(
            &[("reserve_pct", "abc")],
            Err("reserve_pct: \"abc\" is not a number"),
        );
    }
}
