//! `flurfunk admin`: machine setup for installers (network key, firewall) and the network
//! admin's actions with the admin key (certify relays, revoke and reinstate colleagues,
//! show statements, the audit log).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use flurfunk::admin::AdminKey;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::launch;
use flurfunk::app::{Request, Response};

use super::request;

#[derive(Subcommand)]
pub(crate) enum AdminAction {
    /// Check a network key file and install it for every user of this machine
    /// (Windows: %ProgramData%\Flurfunk\network.key, Linux: /etc/flurfunk/network.key).
    InstallNetworkKey { file: std::path::PathBuf },
    /// Windows Firewall rules for Flurfunk (the MSI runs these).
    Firewall {
        #[command(subcommand)]
        action: FirewallAction,
    },
    /// Certify a relay (managed networks): only certified relays are given conversations
    /// they are not members of. Prints the certificate, or writes it to --out.
    CertifyRelay {
        /// The relay's user id (`flurfunk whoami` on the relay).
        user_id: String,
        /// The network's admin key file (made by `flurfunk network new`).
        #[arg(long, value_name = "FILE")]
        admin_key: std::path::PathBuf,
        /// Days it holds (1 to 1826). Short by default: a relay taken out of service is
        /// best revoked (`flurfunk admin revoke`), and otherwise keeps its role until then.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=1826))]
        days: u64,
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Install a relay certificate into this data directory, after checking it names this
    /// node and the network's admin key signed it.
    InstallRelayCert { file: std::path::PathBuf },
    /// Revoke a colleague who left (managed networks): every node stops talking to its
    /// node, refuses what it signs from now on, and group admins remove it from their
    /// groups. Needs this installation's node (running, or started later to pass it on).
    Revoke {
        /// Name or user id.
        user: String,
        #[arg(long, value_name = "FILE")]
        admin_key: Option<std::path::PathBuf>,
    },
    /// Take a revocation back (a colleague who returned).
    Reinstate {
        /// Name or user id.
        user: String,
        #[arg(long, value_name = "FILE")]
        admin_key: Option<std::path::PathBuf>,
    },
    /// Show the admin statements this node holds (who was revoked, since when).
    Statements {
        #[arg(long)]
        json: bool,
    },
    /// Print this installation's admin audit log (every admin action, with time).
    Audit,
}

#[derive(Subcommand)]
pub(crate) enum FirewallAction {
    /// Allow inbound TCP for the program and UDP 5353 (mDNS), domain and private networks.
    Add {
        /// The installed flurfunk.exe (default: this program).
        program: Option<std::path::PathBuf>,
    },
    /// Remove the rules again.
    Remove,
}

pub(crate) async fn admin(dir: &DataDir, action: AdminAction) -> Result<()> {
    use flurfunk::app::install;
    match action {
        AdminAction::CertifyRelay {
            user_id,
            admin_key,
            days,
            out,
        } => {
            let relay: flurfunk::identity::UserId = user_id.parse()?;
            let admin = flurfunk::admin::AdminKey::load(&admin_key)?;
            let day = 24 * 3600 * 1000;
            let certificate =
                admin.certify_relay(relay, flurfunk::node::now_ms(), days.saturating_mul(day))?;
            match out {
                Some(path) => {
                    flurfunk::identity::write_private_file(
                        &path,
                        certificate.to_text().as_bytes(),
                        false,
                    )
                    .with_context(|| format!("writing {}", path.display()))?;
                    println!(
                        "certified relay {} for {days} days (admin {}): {}",
                        relay.short(),
                        flurfunk::admin::fingerprint(&admin.public()),
                        path.display()
                    );
                }
                None => print!("{}", certificate.to_text()),
            }
            audit(dir, &admin, &format!("certify-relay\t{relay}\tdays={days}"))?;
        }
        AdminAction::InstallRelayCert { file } => {
            let identity = launch::load_identity(dir)?;
            let key = launch::load_network_key(dir)?;
            if key.admin().is_none() {
                bail!(
                    "this node's network is unmanaged (its key file names no admin): relays need no certificate"
                );
            }
            // A certificate is one short line: nothing larger is read.
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(
                    std::fs::File::open(&file)
                        .with_context(|| format!("reading {}", file.display()))?,
                    4096,
                ),
                &mut text,
            )
            .with_context(|| format!("reading {}", file.display()))?;
            let certificate = flurfunk::wire::RelayCertificate::from_text(&text)?;
            certificate
                .check(
                    &key.admin().unwrap_or_default(),
                    &identity.user_id(),
                    flurfunk::node::now_ms(),
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            flurfunk::identity::write_private_file(
                &dir.relay_certificate(),
                certificate.to_text().as_bytes(),
                true,
            )?;
            println!(
                "relay certificate installed in {}; start the relay with: flurfunk node --relay",
                dir.relay_certificate().display()
            );
        }
        AdminAction::Revoke { user, admin_key } => {
            change_revocation(dir, &user, admin_key, true).await?
        }
        AdminAction::Reinstate { user, admin_key } => {
            change_revocation(dir, &user, admin_key, false).await?
        }
        AdminAction::Statements { json } => {
            let Response::Statements { statements } =
                request(dir, Request::AdminStatements).await?
            else {
                bail!("unexpected reply");
            };
            if json {
                println!("{}", serde_json::to_string(&statements)?);
            } else if statements.is_empty() {
                println!("no admin statements");
            }
            for s in statements.iter().filter(|_| !json) {
                println!(
                    "{} no. {} of {}",
                    s.kind,
                    s.serial,
                    super::local_time(s.issued_ms, true)
                );
                for r in &s.revoked {
                    println!(
                        "  {}  {}  since {}",
                        r.user_id,
                        super::printable(&r.name),
                        super::local_time(r.since_ms, true)
                    );
                }
            }
        }
        AdminAction::Audit => match std::fs::read_to_string(dir.admin_audit_log()) {
            Ok(log) => print!("{log}"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("no admin actions recorded in {}", dir.root().display())
            }
            Err(e) => return Err(e).context("reading the admin audit log"),
        },
        AdminAction::InstallNetworkKey { file } => {
            let (path, fingerprint) = install::install_machine_key(&file)?;
            println!(
                "installed network {fingerprint} for every user of this machine: {}",
                path.display()
            );
        }
        AdminAction::Firewall { action } => match action {
            FirewallAction::Add { program } => {
                let program = match program {
                    Some(p) => p,
                    None => std::env::current_exe()?,
                };
                install::run_netsh(&install::firewall_add_commands(&program))?;
                println!("firewall rules added for {}", program.display());
            }
            FirewallAction::Remove => {
                install::run_netsh(&install::firewall_remove_commands())?;
                println!("firewall rules removed");
            }
        },
    }
    Ok(())
}

/// Revoke `who` (or take the revocation back): the next revocation statement, built from
/// the one the node holds, signed here with the admin key and handed to the node.
async fn change_revocation(
    dir: &DataDir,
    who: &str,
    admin_key: Option<std::path::PathBuf>,
    revoke: bool,
) -> Result<()> {
    let key = launch::load_network_key(dir)?;
    let Some(network_admin) = key.admin() else {
        bail!(
            "this node's network is unmanaged (its key file names no admin key): nobody can be revoked"
        );
    };
    let path = admin_key.unwrap_or_else(|| dir.admin_key());
    let admin = AdminKey::load(&path)?;
    if admin.public() != network_admin {
        bail!(
            "{} is not this network's admin key (the network's is {})",
            path.display(),
            flurfunk::admin::fingerprint(&network_admin)
        );
    }
    let Response::User { user_id, name } = request(dir, Request::Whois { who: who.into() }).await?
    else {
        bail!("unexpected reply");
    };
    let user: flurfunk::identity::UserId = user_id.parse()?;
    let Response::Statements { statements } = request(dir, Request::AdminStatements).await? else {
        bail!("unexpected reply");
    };
    let current = statements
        .iter()
        .find(|s| s.kind == "revocations")
        .map(|s| {
            hex::decode(&s.encoded)
                .ok()
                .and_then(|b| flurfunk::wire::AdminStatement::decode(&b).ok())
                .context("the node holds a malformed statement")
        })
        .transpose()?;
    let shown = if name.is_empty() {
        user.short()
    } else {
        format!("{} ({})", super::printable(&name), user.short())
    };
    let now = flurfunk::node::now_ms();
    let Some(next) = admin.change_revocations(current.as_ref(), user, revoke, now)? else {
        println!(
            "{shown} is {} revoked; nothing changed",
            if revoke { "already" } else { "not" }
        );
        return Ok(());
    };
    let serial = next.serial;
    request(
        dir,
        Request::PublishStatement {
            encoded: hex::encode(next.encode()),
        },
    )
    .await?;
    let action = if revoke { "revoke" } else { "reinstate" };
    audit(
        dir,
        &admin,
        &format!("{action}\t{user}\t{name}\tserial={serial}"),
    )?;
    if revoke {
        println!(
            "revoked {shown} (revocation list no. {serial}): nodes stop talking to it as they hear of it; group admins remove it from their groups"
        );
    } else {
        println!("reinstated {shown} (revocation list no. {serial})");
    }
    Ok(())
}

/// One line in this installation's admin audit log: UTC time, admin key, action.
fn audit(dir: &DataDir, admin: &AdminKey, what: &str) -> Result<()> {
    use std::io::Write;
    let line = format!(
        "{}\tadmin {}\t{}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        flurfunk::admin::fingerprint(&admin.public()),
        what.replace(['\n', '\r'], " ")
    );
    let path = dir.admin_audit_log();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_all()))
        .with_context(|| format!("writing the admin audit log {}", path.display()))
}
