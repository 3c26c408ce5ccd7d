//! `flurfunk`: glue only. Parses arguments, sets up the identity, maps errors to one line
//! and an exit code. The network node and the desktop app build on the library.

use std::path::PathBuf;
use std::process::ExitCode;

use flurfunk::identity::{Identity, safety_number};

const USAGE: &str = "\
Flurfunk: serverless, end-to-end encrypted messenger for the local network.

Usage:
  flurfunk [--data-dir DIR] init --name NAME   create this installation's identity
  flurfunk [--data-dir DIR] whoami             show user id, name and fingerprint
  flurfunk --help

The data directory defaults to the per-user data directory of the OS
(Linux: ~/.local/share/flurfunk, Windows: %APPDATA%\\flurfunk).";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flurfunk: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_data_dir() -> anyhow_lite::Result<PathBuf> {
    dirs::data_dir()
        .map(|d| d.join("flurfunk"))
        .ok_or_else(|| "cannot determine the per-user data directory; pass --data-dir".into())
}

fn run(mut args: Vec<String>) -> anyhow_lite::Result<()> {
    let mut data_dir = None;
    if let Some(pos) = args.iter().position(|a| a == "--data-dir") {
        if pos + 1 >= args.len() {
            return Err("--data-dir needs a directory".into());
        }
        data_dir = Some(PathBuf::from(args.remove(pos + 1)));
        args.remove(pos);
    }
    let data_dir = match data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let key_path = data_dir.join("identity.key");
    match args.first().map(String::as_str) {
        Some("init") => {
            let name = match (args.get(1).map(String::as_str), args.get(2)) {
                (Some("--name"), Some(name)) => name.clone(),
                _ => return Err("usage: flurfunk init --name NAME".into()),
            };
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
            let id = Identity::generate(&mut rand::rngs::OsRng, &name)?;
            id.save_new(&key_path)?;
            println!("created identity {} ({})", id.user_id(), id.display_name());
            Ok(())
        }
        Some("whoami") => {
            let id = Identity::load(&key_path)?;
            println!("user id:     {}", id.user_id());
            println!("name:        {}", id.display_name());
            println!(
                "fingerprint: {}",
                safety_number(&id.user_id(), &id.user_id())
                    .split(' ')
                    .take(6)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            Ok(())
        }
        Some("--help") | Some("-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command '{other}'; see flurfunk --help").into()),
    }
}

/// The edge's error type: any error, shown as one line.
mod anyhow_lite {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
}
