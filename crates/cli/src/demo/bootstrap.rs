//! The demo's accounts and site, made on an empty database through the same service functions the
//! web app and the API call (`melv_server::service`), so the demo site went through every rule a real
//! one does: the installer creates it, adds the gateway and the batteries by serial, records a
//! passing pre-installation check (manual 4.1.1), activates it (manual 4.11) and hands it over to
//! the owner.

use anyhow::{bail, Context};
use melv_server::auth::{hash_password, Principal};
use melv_server::error::ApiError;
use melv_server::service::{self, CheckInput, DeviceInput, HandoverInput, NewAccount, SiteInput};
use melv_server::AppState;
use melv_sim::scenario::Scenario;
use melv_store::{DeviceKind, Role};

/// One demo account. The passwords are published (printed at start, in docs/demo.md): the demo
/// listens on the loopback interface by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub role: Role,
    pub email: &'static str,
    pub name: &'static str,
    pub password: &'static str,
    /// What this account shows in the web app, for the start banner.
    pub sees: &'static str,
}

pub const ADMIN: Account = Account {
    role: Role::Admin,
    email: "admin@example.com",
    name: "Demo Administrator",
    password: "demo-admin",
    sees: "every site and account",
};
pub const INSTALLER: Account = Account {
    role: Role::Installer,
    email: "installer@example.com",
    name: "Demo Installer",
    password: "demo-installer",
    sees: "the deployment wizard, the audit trail",
};
pub const OWNER: Account = Account {
    role: Role::Owner,
    email: "owner@example.com",
    name: "Demo Owner",
    password: "demo-owner",
    sees: "dashboard, history, alerts, working-mode settings",
};
/// Owner first: that is the one to sign in with.
pub const ACCOUNTS: [Account; 3] = [OWNER, INSTALLER, ADMIN];

/// The demo site in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSite {
    pub site_id: i64,
    pub name: String,
    /// True when this run made it (the database was empty).
    pub created: bool,
}

fn api(what: &'static str) -> impl Fn(ApiError) -> anyhow::Error {
    move |e| anyhow::anyhow!("demo bootstrap: {what}: {} ({})", e.message, e.status)
}

/// The demo site of gateway `gateway` with batteries `batteries` (decimal serials): made with its
/// accounts when the database has no account yet, otherwise found and checked against the site
/// file (a database made for another site file, or a real cloud's database, is refused).
pub async fn ensure(
    state: &AppState,
    scenario: &Scenario,
    gateway: &str,
    batteries: &[String],
) -> anyhow::Result<DemoSite> {
    let store = &state.store;
    if store.count_users().await? > 0 {
        return existing(state, gateway, batteries).await;
    }
    let now = state.clock.now_ms();
    let hash = hash_password(ADMIN.password).map_err(api("admin password"))?;
    let admin = store
        .create_user(ADMIN.email, ADMIN.name, Role::Admin, &hash, now)
        .await?;
    let as_principal = |user| Principal {
        user,
        token_hash: String::new(),
    };
    let admin = as_principal(admin);
    let account = |a: &Account| NewAccount {
        email: a.email.into(),
        name: a.name.into(),
        password: a.password.into(),
        role: a.role,
    };
    let installer = service::create_account(state, Some(&admin), &account(&INSTALLER))
        .await
        .map_err(api("installer account"))?;
    let installer = as_principal(installer);
    // Installers create the owner accounts of the sites they hand over.
    service::create_account(state, Some(&installer), &account(&OWNER))
        .await
        .map_err(api("owner account"))?;

    let cfg = &scenario.site;
    let phases = cfg.phases.count();
    let mut name = format!("Demo: {}", scenario.title);
    if name.chars().count() > service::MAX_TEXT {
        name = name.chars().take(service::MAX_TEXT).collect();
    }
    let site = service::create_site(
        state,
        &installer,
        &SiteInput {
            name,
            phases: phases as i64,
            country: service::country_name(cfg.country),
            timezone: cfg.timezone.name().to_string(),
        },
    )
    .await
    .map_err(api("create site"))?;
    // The demo's gateway runs in this process and hands its records to the feed directly, so it
    // never signs in; it still gets a claim code, as every bound gateway does.
    let add = |serial: &str, kind| DeviceInput {
        serial: serial.to_string(),
        kind,
        claim_code: (kind == DeviceKind::Gateway).then(melv_server::auth::new_claim_code),
    };
    service::add_device(
        state,
        &installer,
        site.id,
        &add(gateway, DeviceKind::Gateway),
    )
    .await
    .map_err(api("add the gateway"))?;
    for b in batteries {
        service::add_device(state, &installer, site.id, &add(b, DeviceKind::Battery))
            .await
            .map_err(api("add a battery"))?;
    }
    // The installer measures each phase at the point of connection (manual 4.1.1); the simulated
    // grid is at the country's nominal voltage.
    let check = service::record_check(
        state,
        &installer,
        site.id,
        &CheckInput {
            grid_voltages_v: vec![cfg.country.nominal_voltage_v(); phases],
            mount: None,
        },
    )
    .await
    .map_err(api("pre-installation check"))?;
    if !check.plan.installable {
        bail!(
            "demo bootstrap: the pre-installation check refuses the site file's site: {}",
            check.check.summary
        );
    }
    service::activate(state, &installer, site.id)
        .await
        .map_err(api("activate"))?;
    service::handover(
        state,
        &installer,
        site.id,
        &HandoverInput {
            owner_email: OWNER.email.into(),
        },
    )
    .await
    .map_err(api("hand over"))?;
    // The settings the site file runs with, as version 1 (commissioned by the installer), so that
    // the settings page shows what the site does; the gateway acknowledges it on its first poll.
    service::save_settings(state, &installer, site.id, &scenario.settings)
        .await
        .map_err(api("settings of the site file"))?;
    Ok(DemoSite {
        site_id: site.id,
        name: site.name,
        created: true,
    })
}

async fn existing(
    state: &AppState,
    gateway: &str,
    batteries: &[String],
) -> anyhow::Result<DemoSite> {
    let store = &state.store;
    let device = store
        .device(gateway)
        .await?
        .filter(|d| d.kind == DeviceKind::Gateway);
    let Some(device) = device else {
        bail!(
            "the database has accounts but no gateway {gateway:?}: it is not a demo database \
             (give `melv demo` a new --database, or none for a fresh one)"
        );
    };
    let site = store
        .site(device.site_id)
        .await?
        .with_context(|| format!("site {} of gateway {gateway:?}", device.site_id))?;
    let mut registered: Vec<String> = store
        .devices(site.id)
        .await?
        .into_iter()
        .filter(|d| d.kind == DeviceKind::Battery)
        .map(|d| d.serial)
        .collect();
    registered.sort();
    let mut running = batteries.to_vec();
    running.sort();
    if registered != running {
        bail!(
            "the database's demo site has batteries {registered:?} but this site file runs {running:?}: \
             it was made with another --site (use a new --database)"
        );
    }
    Ok(DemoSite {
        site_id: site.id,
        name: site.name,
        created: false,
    })
}
