//! The gateway's claim code ([`melv_wire::claim`]): its per-device secret, made from the OS's random
//! source on first use and kept in the state directory (`claim_code`, readable by the owner only).
//! `melv gateway --print-claim` shows it for the label and the installer; the installer proves it
//! once when binding the gateway to a site in the cloud; the gateway then signs in to the broker
//! with it (username = its gateway id) unless `MELV_MQTT_PASSWORD` says otherwise.
//! `--new-claim` replaces it (credential rotation: the installer binds the new code in the cloud).

use crate::args::GatewayArgs;
use std::io::Read;
use std::path::{Path, PathBuf};

const FILE: &str = "claim_code";

fn path(args: &GatewayArgs) -> Result<(String, PathBuf), String> {
    let source = args.site_source().map_err(|e| e.to_string())?;
    let id = args.gateway_id(&source);
    Ok((id.clone(), args.state_dir(&id)?.join(FILE)))
}

fn fresh() -> Result<String, String> {
    let mut b = [0u8; 13];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("claim code: no random source (/dev/urandom): {e}"))?;
    Ok(melv_wire::claim::encode(&b))
}

fn write(file: &Path, code: &str) -> Result<(), String> {
    let err = |e: std::io::Error| format!("claim code file {}: {e}", file.display());
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{code}\n")).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    std::fs::rename(&tmp, file).map_err(err)
}

fn read(file: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(file) {
        Ok(s) => melv_wire::claim::normalize(s.trim())
            .map(Some)
            .map_err(|e| format!("claim code file {}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("claim code file {}: {e}", file.display())),
    }
}

/// The gateway id and its claim code, made now if the state directory has none (or always, with
/// `rotate`).
pub fn load_or_create(args: &GatewayArgs, rotate: bool) -> Result<(String, String), String> {
    let (id, file) = path(args)?;
    if !rotate {
        if let Some(code) = read(&file)? {
            return Ok((id, code));
        }
    }
    let code = fresh()?;
    write(&file, &code)?;
    Ok((id, code))
}

/// `--print-claim` / `--new-claim`: the JSON line to print (`{"gateway_id", "claim_code"}`, the code
/// grouped as on a label); `None` when neither flag is given (run the gateway).
pub fn command(args: &GatewayArgs) -> Option<Result<String, String>> {
    if !(args.print_claim || args.new_claim) {
        return None;
    }
    Some(load_or_create(args, args.new_claim).map(|(id, code)| {
        serde_json::json!({"gateway_id": id, "claim_code": melv_wire::claim::grouped(&code)})
            .to_string()
    }))
}

/// The stored claim code, if the state directory has one (the broker password by default).
pub fn stored(args: &GatewayArgs) -> Result<Option<String>, String> {
    read(&path(args)?.1)
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

    #[test]
    fn a_code_is_made_once_kept_and_rotated() {
        let dir = std::env::temp_dir().join(format!("melv-claim-{}", std::process::id()));
        let args = Cli::parse_from([
            "g",
            "--state-dir",
            dir.to_str().unwrap(),
            "--gateway-id",
            "GW-9",
        ])
        .args;
        assert_eq!(stored(&args), Ok(None));
        let (id, a) = load_or_create(&args, false).unwrap();
        assert_eq!(id, "GW-9");
        assert_eq!(melv_wire::claim::normalize(&a), Ok(a.clone()));
        assert_eq!(load_or_create(&args, false).unwrap().1, a, "kept");
        assert_eq!(stored(&args), Ok(Some(a.clone())));
        let b = load_or_create(&args, true).unwrap().1;
        assert_ne!(a, b, "rotated");
        assert_eq!(stored(&args), Ok(Some(b)));
        std::fs::write(dir.join(FILE), "not a code").unwrap();
        assert!(stored(&args).unwrap_err().contains("claim_code: "));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
