//! Windows builds only: the icon and version information (publisher, description) go
//! into `flurfunk.exe` as a resource, compiled by MinGW's `windres` (or `$WINDRES`).
//! Other targets build nothing here.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=packaging/windows/resources.rc.in");
    println!("cargo:rerun-if-changed=packaging/icons/flurfunk.ico");
    println!("cargo:rerun-if-env-changed=WINDRES");
    let windows = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows");
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !windows {
        return;
    }
    if !gnu {
        println!("cargo:warning=no icon or version resource: only the -gnu target is set up");
        return;
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let version = std::env::var("CARGO_PKG_VERSION").expect("set by cargo");
    let mut parts: Vec<String> = version
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse::<u16>().unwrap_or(0).to_string())
        .collect();
    parts.resize(4, "0".into());
    let template = std::fs::read_to_string(root.join("packaging/windows/resources.rc.in"))
        .expect("packaging/windows/resources.rc.in");
    let icon = root.join("packaging/icons/flurfunk.ico");
    let rc = template
        .replace("@VERSION_COMMAS@", &parts.join(","))
        .replace("@VERSION@", &version)
        .replace("@ICON@", &icon.display().to_string().replace('\\', "/"))
        .replace("@FILENAME@", "flurfunk.exe")
        .replace(
            "@DESCRIPTION@",
            "Flurfunk - serverless messenger for the town hall network",
        );
    let rc_path = out.join("flurfunk.rc");
    std::fs::write(&rc_path, rc).expect("write the resource script");
    let object = out.join("flurfunk-resources.o");
    let windres = std::env::var("WINDRES").unwrap_or_else(|_| "x86_64-w64-mingw32-windres".into());
    let status = Command::new(&windres)
        .arg(&rc_path)
        .args(["-O", "coff", "-o"])
        .arg(&object)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {windres} (install mingw-w64): {e}"));
    assert!(
        status.success(),
        "{windres} failed on {}",
        rc_path.display()
    );
    println!("cargo:rustc-link-arg-bin=flurfunk={}", object.display());
}
