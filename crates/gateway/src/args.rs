//! Command-line arguments of the gateway process and the small pure decisions about them.

use crate::queue::DEFAULT_CAPACITY;
use crate::site::TELEMETRY_INTERVAL_S;
use melv_scenario::builtin::SiteSource;
use std::path::PathBuf;

/// `melv gateway` and `melv-gateway` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayArgs {
    /// Site TOML (the simulator's format: site, settings, profile CSV). Default: the built-in
    /// example `self-consumption` (`--example` names another one).
    #[arg(conflicts_with = "example")]
    pub site: Option<PathBuf>,
    /// A built-in example site: self-consumption, tou-two-batteries or backup-outages.
    #[arg(long)]
    pub example: Option<String>,
    /// MQTT broker, mqtt://[USER@]HOST[:PORT] (port 1883 by default, port 0 refused; melv_wire::url).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub mqtt: String,
    /// Broker username (with deploy/mosquitto/acl: the gateway id); the password is read from the
    /// environment variable MELV_MQTT_PASSWORD, else it is the gateway's claim code (--print-claim).
    #[arg(long)]
    pub mqtt_username: Option<String>,
    /// Print the gateway id and its claim code (made and kept in the state directory on first use)
    /// as JSON, and exit. The installer binds the gateway in the cloud with it.
    #[arg(long, conflicts_with = "new_claim")]
    pub print_claim: bool,
    /// Replace the claim code with a new one (credential rotation), print it like --print-claim and
    /// exit; then bind the new code in the cloud (POST /api/sites/{id}/devices/{serial}/claim).
    #[arg(long)]
    pub new_claim: bool,
    /// Time acceleration: simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Directory of the queue and persisted state (one gateway per directory). Default: the
    /// platform's data directory, one folder per gateway id (on Linux
    /// `$XDG_DATA_HOME/melv/gateway/ID`, else `~/.local/share/melv/gateway/ID`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Gateway id (an MQTT topic level); default: the site file's stem.
    #[arg(long)]
    pub gateway_id: Option<String>,
    /// Control cycle, simulated seconds (must divide 60).
    #[arg(long, default_value_t = 1.0)]
    pub cycle: f64,
    /// Publish Home Assistant discovery and state messages.
    #[arg(long)]
    pub ha_discovery: bool,
    /// Most records held on disk; beyond it the oldest are dropped and counted.
    #[arg(long, default_value_t = DEFAULT_CAPACITY)]
    pub queue_capacity: u64,
    /// Backlog records published per wall-clock second behind live data.
    #[arg(long, default_value_t = 50.0)]
    pub backlog_rate: f64,
    /// Records sent and not confirmed by the cloud (its ack on `melv/v1/GW/ack`) are sent again
    /// from the cloud's mark when the mark has not moved for this many wall seconds; the wait
    /// doubles at each resend without progress, up to 10 minutes (docs/gateway.md 5).
    #[arg(long, default_value_t = 30.0)]
    pub resend_after: f64,
    /// Who confirms a record before it leaves the queue: `cloud` (the cloud's ack on
    /// `melv/v1/GW/ack`; records survive a broker that loses its sessions) or `broker` (its PUBACK:
    /// for a gateway that talks to a local broker with no melv cloud behind it, e.g. Home Assistant
    /// only, where nobody would ever confirm).
    #[arg(long, value_enum, default_value_t = Confirm::Cloud)]
    pub confirm: Confirm,
    /// Stop after this many simulated seconds of this run (then flush and exit).
    #[arg(long)]
    pub run_for: Option<f64>,
    /// Site clock: `now` starts the site at the current UTC time (the profile is read at the same
    /// position in its year), `profile` at the profile's own first instant.
    #[arg(long, value_enum, default_value_t = ClockStart::Now)]
    pub clock: ClockStart,
    /// At shutdown, wait at most this many wall seconds for the queue to drain.
    #[arg(long, default_value_t = 10.0)]
    pub flush_timeout: f64,
    /// Serve SunSpec Modbus TCP local control on this address (e.g. 127.0.0.1:1502); off by default.
    /// Reads show the site; writes steer it through the controller's safety layers (docs/modbus.md).
    #[arg(long, value_name = "ADDR")]
    pub modbus: Option<String>,
    /// Drive batteries on a CAN bus instead of in-process twins: socketcand://HOST:PORT/CHANNEL
    /// (e.g. `melv can serve --site SITE.toml` hosting twins, or a socketcand daemon in front of a
    /// real adapter) or socketcan:IFACE (Linux, build feature `socketcan`). The batteries run in
    /// their own time: use --speed 1 with real units.
    #[arg(long, value_name = "TARGET")]
    pub can: Option<String>,
    /// Modbus unit id of the SunSpec device.
    #[arg(long, default_value_t = 1)]
    pub modbus_unit_id: u8,
    /// External control ends after this many wall seconds without a Modbus write or heartbeat.
    #[arg(long, default_value_t = 900.0)]
    pub modbus_watchdog_s: f64,
}

impl GatewayArgs {
    /// Every number in range, with the option and the reason in the error (issue 13 item 7:
    /// `--run-for nan` never ended, `--run-for -1` and `--cycle -1` were taken).
    pub fn check(&self) -> Result<(), String> {
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(format!("--speed {}: must be a positive number", self.speed));
        }
        if !(self.cycle.is_finite() && self.cycle > 0.0 && TELEMETRY_INTERVAL_S % self.cycle == 0.0)
        {
            return Err(format!(
                "--cycle {}: must be a positive number of seconds that divides {TELEMETRY_INTERVAL_S} s",
                self.cycle
            ));
        }
        if let Some(r) = self.run_for {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!(
                    "--run-for {r}: must be a positive number of simulated seconds"
                ));
            }
        }
        if !(self.flush_timeout.is_finite() && self.flush_timeout >= 0.0) {
            return Err(format!(
                "--flush-timeout {}: must be 0 or more wall seconds",
                self.flush_timeout
            ));
        }
        if !(self.backlog_rate.is_finite() && self.backlog_rate >= 0.0) {
            return Err(format!(
                "--backlog-rate {}: must be 0 or more records per second",
                self.backlog_rate
            ));
        }
        if !(self.resend_after.is_finite() && self.resend_after >= 0.1) {
            return Err(format!(
                "--resend-after {}: must be at least 0.1 wall seconds",
                self.resend_after
            ));
        }
        if self.queue_capacity == 0 {
            return Err("--queue-capacity 0: the queue must hold at least one record".into());
        }
        Ok(())
    }

    /// The site named by `SITE` or `--example`, or the default built-in one.
    pub fn site_source(&self) -> Result<SiteSource, melv_scenario::SimError> {
        SiteSource::from_args(self.site.clone(), self.example.as_deref())
    }

    /// The gateway id: `--gateway-id`, or the site's stem.
    pub fn gateway_id(&self, site: &SiteSource) -> String {
        self.gateway_id.clone().unwrap_or_else(|| site.stem())
    }

    /// The state directory: `--state-dir`, or the gateway's folder under the platform's data
    /// directory. Never the current directory, unless asked for.
    pub fn state_dir(&self, gateway_id: &str) -> Result<PathBuf, String> {
        if let Some(d) = &self.state_dir {
            return Ok(d.clone());
        }
        let dirs = directories::ProjectDirs::from("", "", "melv").ok_or_else(|| {
            "no home directory to keep the gateway's state in: give --state-dir".to_string()
        })?;
        Ok(dirs.data_dir().join("gateway").join(gateway_id))
    }
}

/// Who confirms a record before the queue deletes it (docs/gateway.md 5).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    Cloud,
    Broker,
}

/// Where the site's clock starts on the first run of a state directory.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockStart {
    Now,
    Profile,
}

/// Where the site's clock starts on the first run: `(clock_offset_s, sim_elapsed_s)` with the
/// offset a whole number of profile spans and the elapsed time on a minute boundary, so that the
/// clock reads `now_unix_s` (to the minute) at the matching position of the profile.
pub fn clock_start(now_unix_s: f64, profile_start_s: f64, span_s: f64) -> (f64, f64) {
    let d = now_unix_s - profile_start_s;
    let pos = d.rem_euclid(span_s);
    let offset = d - pos;
    (
        offset,
        (pos / TELEMETRY_INTERVAL_S).floor() * TELEMETRY_INTERVAL_S,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: GatewayArgs,
    }

    fn check(extra: &[&str]) -> Result<(), String> {
        let argv = ["melv-gateway"].iter().chain(extra.iter());
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .args
            .check()
    }

    #[test]
    fn out_of_range_numbers_are_refused_naming_the_option() {
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&["--run-for", "3600", "--cycle", "60"]), Ok(()));
        for (opt, v) in [
            ("--run-for", "nan"),
            ("--run-for", "-1"),
            ("--run-for", "0"),
            ("--run-for", "inf"),
            ("--cycle", "-1"),
            ("--cycle", "7"),
            ("--cycle", "nan"),
            ("--speed", "0"),
            ("--flush-timeout", "-1"),
            ("--backlog-rate", "nan"),
            ("--queue-capacity", "0"),
        ] {
            // `--opt=-1`: the form in which clap takes a negative number.
            let e = check(&[&format!("{opt}={v}")]).unwrap_err();
            assert!(e.starts_with(&format!("{opt} ")), "{opt} {v}: {e}");
        }
    }

    #[test]
    fn clock_starts_now_at_the_same_place_in_the_profile() {
        let year = 365.0 * 86_400.0;
        // Profile 2019 from 0; now is 2026 + 10 days 00:00:30.
        let (off, el) = clock_start(7.0 * year + 10.0 * 86_400.0 + 30.0, 0.0, year);
        assert_eq!((off, el), (7.0 * year, 10.0 * 86_400.0));
        // Before the profile: still a whole number of spans.
        let (off, el) = clock_start(-90.0, 0.0, year);
        assert_eq!((off, el), (-year, year - 120.0));
    }
}
