//! Off-grid backup as data: the on-grid backup mode, islanding on grid loss, overload, depletion,
//! PV curtailment, and reconnection after the grid has been stable for the set time.

mod common;
use common::*;
use melv_core::{Country, Phases, WorkingMode};
use melv_ems::{Controller, Reason, Settings, SiteConfig};

fn controller(country: Country, mode: WorkingMode, reserve: f64, backup: bool) -> Controller {
    let mut site = SiteConfig::new(Phases::Single, country, 1, chrono_tz::UTC);
    site.backup_capable = backup;
    let s = Settings {
        mode,
        reserve_soc: reserve,
        ..Default::default()
    };
    Controller::new(site, s).expect("valid test site")
}

#[test]
fn backup_mode_on_grid_keeps_the_batteries_full() {
    use Reason::*;
    let mut ctl = controller(Country::Germany, WorkingMode::OffGridBackup, 0.2, true);
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 500.0, &[bat(0.5)]).want(&[-3750.0], BackupCharging),
            Case::at(60, 0.0, 500.0, &[bat(1.0)]).want(&[0.0], BackupStandby),
        ],
    );
    // Grid charging forbidden: only PV fills it; it never discharges on grid.
    let mut ctl = controller(Country::Italy, WorkingMode::OffGridBackup, 0.2, true);
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 500.0, &[bat(0.5)]).want(&[0.0], BackupStandby),
            Case::at(60, 2000.0, 500.0, &[bat(0.5)]).want(&[-1500.0], BackupCharging),
        ],
    );
}

#[test]
fn islanding_and_reconnection() {
    use Reason::*;
    let b = [bat(0.5)];
    let mut ctl = controller(Country::Germany, WorkingMode::SelfConsumption, 0.3, true);
    let d = check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 800.0, &b).want(&[800.0], SelfConsumptionDischarge),
            // Grid lost: island; the batteries carry the house (manual 5.1 note).
            Case::at(60, 0.0, 800.0, &b)
                .off_grid()
                .island()
                .want(&[800.0], OffGridIslanded),
        ],
    );
    assert!(d.commands[0].grid_forming);
    check(
        &mut ctl,
        &[
            // Off grid the reserve is there to be used, down to the off-grid minimum (5 %).
            Case::at(120, 0.0, 800.0, &[bat(0.25)])
                .off_grid()
                .island()
                .want(&[800.0], OffGridIslanded),
            Case::at(180, 0.0, 6000.0, &b)
                .off_grid()
                .island()
                .want(&[4500.0], OffGridOverload),
            // Full batteries and a PV surplus: PV is cut to load + what the unit still takes.
            Case::at(240, 6000.0, 500.0, &b)
                .off_grid()
                .island()
                .want(&[-3750.0], PvCurtailed)
                .curtail(4250.0),
            Case::at(300, 6000.0, 500.0, &[bat(1.0)])
                .off_grid()
                .island()
                .want(&[0.0], PvCurtailed)
                .curtail(500.0),
            // Grid back at 360 s: wait 60 s of stable grid (VDE-AR-N 4105 reconnection delay).
            Case::at(360, 0.0, 800.0, &b)
                .island()
                .want(&[800.0], ReconnectWaiting),
            Case::at(419, 0.0, 800.0, &b)
                .island()
                .want(&[800.0], ReconnectWaiting),
            // An overvoltage restarts the wait.
            Case::at(400 + 20, 0.0, 800.0, &b)
                .volts(280.0)
                .island()
                .want(&[800.0], ReconnectWaiting),
            Case::at(421, 0.0, 800.0, &b)
                .island()
                .want(&[800.0], ReconnectWaiting),
            Case::at(480, 0.0, 800.0, &b)
                .island()
                .want(&[800.0], ReconnectWaiting),
            Case::at(481, 0.0, 800.0, &b).want(&[800.0], SelfConsumptionDischarge),
        ],
    );
}

#[test]
fn depleted_island_stops_and_restarts_with_sun() {
    use Reason::*;
    let mut ctl = controller(Country::Germany, WorkingMode::SelfConsumption, 0.0, true);
    let d = check(
        &mut ctl,
        &[Case::at(0, 0.0, 800.0, &[bat(0.05)])
            .off_grid()
            .island()
            .want(&[0.0], OffGridDepleted)],
    );
    assert!(!d.commands[0].grid_forming);
    let d = check(
        &mut ctl,
        &[Case::at(60, 2000.0, 800.0, &[bat(0.05)])
            .off_grid()
            .island()
            .want(&[-1200.0], OffGridIslanded)],
    );
    assert!(d.commands[0].grid_forming);
}

#[test]
fn without_the_backup_relay_grid_loss_stops_the_batteries() {
    let mut ctl = controller(Country::Germany, WorkingMode::SelfConsumption, 0.0, false);
    check(
        &mut ctl,
        &[Case::at(0, 0.0, 800.0, &[bat(0.5)])
            .off_grid()
            .want(&[0.0], Reason::GridLost)],
    );
}
