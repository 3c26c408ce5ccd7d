//! `flurfunk admin`: machine setup for installers (network key, firewall) and the network
//! admin's actions with the admin key (certify relays, revoke and reinstate colleagues,
//! show statements, the audit log).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use flurfunk::admin::AdminKey;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::launch;
use flurfunk::app::{Request, Response};

use flurfunk::wire::{
    AdminStatement, Directory, DirectoryEntry, MAX_DIRECTORY_ENTRIES, Policy, Presence,
    StatementKind,
};

use super::request;

#[path = "admin_groups.rs"]
mod groups;

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
    /// Show the organisation's policy for every node, or change the switches given.
    Policy(PolicyArgs),
    /// Rotate the network key (managed networks), e.g. after revoking a colleague: the
    /// new key is sealed to every colleague this node knows (only those in the directory,
    /// if it has entries) less the revoked; nodes dial with it from the switch and accept
    /// the old one until the overlap ends. Then a node with only the old key (revoked,
    /// or offline throughout) reaches nobody and needs the new key file (--out).
    RotateNetworkKey {
        /// Where to write the new key file, for installations made from now on (MSI,
        /// `flurfunk network join`); never overwrites.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        /// When nodes start to dial with the new key (e.g. 30s, 1h, 24h).
        #[arg(long, value_name = "TIME", default_value = "24h", value_parser = parse_window)]
        switch_in: Cap,
        /// How long after the switch the old key is still accepted (at most 30 days):
        /// a node offline until then still gets in and is given the new key.
        #[arg(long, value_name = "TIME", default_value = "7d", value_parser = parse_window)]
        overlap: Cap,
        /// Seal the key to every colleague known, also those the directory does not name.
        #[arg(long)]
        all_known: bool,
        #[arg(long, value_name = "FILE")]
        admin_key: Option<std::path::PathBuf>,
    },
    /// The network's directory (managed networks): official names and departments,
    /// shown with a mark everywhere, so nobody can pose as "Bürgermeisteramt".
    Directory {
        #[command(subcommand)]
        action: DirectoryAction,
    },
    /// Organisation groups (managed networks): a group of everyone in the directory
    /// ("Alle") and one per department. This installation's node creates them and then
    /// keeps their members in line with the directory: a colleague added to it joins,
    /// one moved changes group, one taken out leaves. Nobody can leave them. Run it again
    /// when the directory has new departments.
    OrgGroups {
        /// The name of the group of everyone.
        #[arg(long, default_value = "Alle", value_name = "NAME")]
        everyone: String,
        /// No group of everyone.
        #[arg(long)]
        no_everyone: bool,
        /// No group per department.
        #[arg(long)]
        no_departments: bool,
        /// The groups are kept by another installation that is gone for good: make new
        /// ones kept by this one (the old ones become ordinary groups).
        #[arg(long)]
        take_over: bool,
        #[arg(long, value_name = "FILE")]
        admin_key: Option<std::path::PathBuf>,
    },
    /// Retention of single groups (managed networks): every node deletes a message in
    /// GROUP a PERIOD after it was sent, as `policy --keep-messages` does for all
    /// conversations (which stays the maximum: the shorter holds). Without arguments:
    /// the groups with a period of their own.
    Retention {
        /// The group: its name (one this node is in) or its conversation id
        /// (`flurfunk conversations --json` on a member's machine).
        group: Option<String>,
        /// How long (e.g. 30d; at least 1d), or `none` to take the group's own period
        /// away.
        #[arg(value_parser = parse_window, requires = "group")]
        period: Option<Cap>,
        #[arg(long, value_name = "FILE")]
        admin_key: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum DirectoryAction {
    /// Show the directory this node holds.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Set a colleague's official name (and department).
    Set {
        /// The colleague's user id (`flurfunk whoami` on its machine; not a name: whoever
        /// holds a name now need not be the colleague meant).
        user: String,
        /// The official name.
        name: String,
        #[arg(long)]
        department: Option<String>,
        #[arg(long, value_name = "FILE")]
        admin_key: Option<std::path::PathBuf>,
    },
    /// Take a colleague out of the directory (its self-chosen name shows again).
    Remove {
        /// User id or full name.
        user: String,
        #[arg(long, value_name = "FILE")]
        admin_key: Option<std::path::PathBuf>,
    },
    /// Replace the whole directory with a file: one colleague per line,
    /// "user id;name;department" (UTF-8, e.g. saved from a spreadsheet as CSV; lines
    /// starting with # and empty lines are skipped).
    Import {
        file: std::path::PathBuf,
        #[arg(long, value_name = "FILE")]
        admin_key: Option<std::path::PathBuf>,
    },
}

#[derive(clap::Args)]
pub(crate) struct PolicyArgs {
    /// Turn features off for everyone: files (sending), reactions, edits, previews (the
    /// message's text in notifications); comma-separated.
    #[arg(long, value_name = "FEATURES", value_delimiter = ',', value_parser = flurfunk::wire::feature_named)]
    turn_off: Vec<u64>,
    /// Turn features on again (as for --turn-off).
    #[arg(long, value_name = "FEATURES", value_delimiter = ',', value_parser = flurfunk::wire::feature_named)]
    turn_on: Vec<u64>,
    /// Whether anyone is told that a message was read (delivery ticks stay).
    #[arg(long, value_enum)]
    read_receipts: Option<Switch>,
    /// What the app shows of colleagues' presence.
    #[arg(long, value_parser = parse_presence)]
    presence: Option<Presence>,
    /// Largest file any node sends (e.g. 100MB), or "none" (each node's setting).
    #[arg(long, value_name = "SIZE|none", value_parser = parse_cap)]
    max_file_size: Option<Cap>,
    /// Largest file fetched without a click (e.g. 10MB, 0), or "none".
    #[arg(long, value_name = "SIZE|none", value_parser = parse_cap)]
    auto_download: Option<Cap>,
    /// Whether messages can be deleted for everyone ("off" where retention duties
    /// forbid it; deleting for oneself stays).
    #[arg(long, value_enum)]
    delete_for_everyone: Option<Switch>,
    /// How long after sending its author can edit a message (e.g. 15m, 24h, 2d), or
    /// "none" (any time).
    #[arg(long, value_name = "TIME|none", value_parser = parse_window)]
    edit_window: Option<Cap>,
    /// How long after sending a message can be deleted for everyone, or "none".
    #[arg(long, value_name = "TIME|none", value_parser = parse_window)]
    delete_window: Option<Cap>,
    /// How long messages are kept (e.g. 90d, at least 1d): older ones are deleted on
    /// every node, text, files, edits and reactions. "none": kept.
    #[arg(long, value_name = "TIME|none", value_parser = parse_window)]
    keep_messages: Option<Cap>,
    #[arg(long, value_name = "FILE")]
    admin_key: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Switch {
    On,
    Off,
}

/// A size limit, or none.
#[derive(Clone, Copy)]
pub(crate) struct Cap(pub(super) Option<u64>);

fn parse_cap(text: &str) -> Result<Cap, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Cap(None));
    }
    flurfunk::files::parse_size(text).map(|n| Cap(Some(n)))
}

/// "15m", "24h", "2d" (a number alone: minutes) as seconds, or "none".
fn parse_window(text: &str) -> Result<Cap, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(Cap(None));
    }
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, "m"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("\"{text}\": use minutes, hours or days, e.g. 15m, 24h, 2d"))?;
    let unit_s = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("\"{text}\": use m, h or d (e.g. 15m, 24h, 2d)")),
    };
    match n.checked_mul(unit_s) {
        Some(s) if s <= 10 * 366 * 86_400 => Ok(Cap(Some(s))),
        _ => Err(format!("\"{text}\" is more than ten years")),
    }
}

fn parse_presence(text: &str) -> Result<Presence, String> {
    match text.trim() {
        "full" => Ok(Presence::Full),
        "online" | "online-only" => Ok(Presence::OnlineOnly),
        "hidden" | "none" => Ok(Presence::Hidden),
        other => Err(format!("\"{other}\": use full, online or hidden")),
    }
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
                    outln!(
                        "certified relay {} for {days} days (admin {}): {}",
                        relay.short(),
                        flurfunk::admin::fingerprint(&admin.public()),
                        path.display()
                    );
                }
                None => out!("{}", certificate.to_text()),
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
            outln!(
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
                outln!("{}", serde_json::to_string(&statements)?);
            } else if statements.is_empty() {
                outln!("no admin statements");
            }
            for s in statements.iter().filter(|_| !json) {
                outln!(
                    "{} no. {} of {}",
                    s.kind,
                    s.serial,
                    super::local_time(s.issued_ms, true)
                );
                for d in &s.directory {
                    outln!("  {}", directory_line(d));
                }
                for g in &s.org_groups {
                    outln!(
                        "  {}  {}  {}  {} members (kept by {})",
                        g.conversation,
                        if g.department.is_empty() {
                            "everyone".to_string()
                        } else {
                            super::printable(&g.department)
                        },
                        super::printable(&g.name),
                        g.members,
                        &g.steward[..12]
                    );
                }
                for g in &s.group_retention {
                    outln!(
                        "  {}  {}  {}{}",
                        &g.conversation[..12],
                        super::printable(&g.name),
                        g.keep_messages_s
                            .map_or("the network's period".to_string(), |k| format!(
                                "messages kept {}",
                                flurfunk::wire::human_window(k)
                            )),
                        g.dropped_before_ms.map_or(String::new(), |t| format!(
                            "; messages before {} may have lost their text",
                            super::local_time(t, true)
                        ))
                    );
                }
                for r in &s.revoked {
                    outln!(
                        "  {}  {}  since {}",
                        r.user_id,
                        super::printable(&r.name),
                        super::local_time(r.since_ms, true)
                    );
                }
            }
        }
        AdminAction::Policy(change) => change_policy(dir, change).await?,
        AdminAction::RotateNetworkKey {
            out,
            switch_in,
            overlap,
            all_known,
            admin_key,
        } => rotate_network_key(dir, &out, switch_in, overlap, all_known, admin_key).await?,
        AdminAction::Directory { action } => directory(dir, action).await?,
        AdminAction::OrgGroups {
            everyone,
            no_everyone,
            no_departments,
            take_over,
            admin_key,
        } => {
            groups::org_groups(
                dir,
                (!no_everyone).then_some(everyone),
                !no_departments,
                take_over,
                admin_key,
            )
            .await?
        }
        AdminAction::Retention {
            group,
            period,
            admin_key,
        } => groups::group_retention(dir, group, period, admin_key).await?,
        AdminAction::Audit => match std::fs::read_to_string(dir.admin_audit_log()) {
            Ok(log) => out!("{log}"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                outln!("no admin actions recorded in {}", dir.root().display())
            }
            Err(e) => return Err(e).context("reading the admin audit log"),
        },
        AdminAction::InstallNetworkKey { file } => {
            let (path, fingerprint) = install::install_machine_key(&file)?;
            outln!(
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
                outln!("firewall rules added for {}", program.display());
            }
            FirewallAction::Remove => {
                install::run_netsh(&install::firewall_remove_commands())?;
                outln!("firewall rules removed");
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
    let admin = this_networks_admin(dir, admin_key)?;
    let Response::User { user_id, name } = request(dir, Request::Whois { who: who.into() }).await?
    else {
        bail!("unexpected reply");
    };
    let user: flurfunk::identity::UserId = user_id.parse()?;
    // Revoking is serious: a part of a name is not enough.
    if who.parse::<flurfunk::identity::UserId>().is_err()
        && !name.trim().eq_ignore_ascii_case(who.trim())
    {
        bail!(
            "'{who}' matches {} ({user}); give the full name or the user id",
            super::printable(&name)
        );
    }
    let current = held_statement(dir, StatementKind::Revocations).await?;
    let shown = if name.is_empty() {
        user.short()
    } else {
        format!("{} ({})", super::printable(&name), user.short())
    };
    let now = flurfunk::node::now_ms();
    let Some(next) = admin.change_revocations(current.as_ref(), user, revoke, now)? else {
        outln!(
            "{shown} is {} revoked; nothing changed",
            if revoke { "already" } else { "not" }
        );
        return Ok(());
    };
    let serial = next.serial;
    publish(dir, &next).await?;
    let action = if revoke { "revoke" } else { "reinstate" };
    audit(
        dir,
        &admin,
        &format!("{action}\t{user}\t{name}\tserial={serial}"),
    )?;
    if revoke {
        outln!(
            "revoked {shown} (revocation list no. {serial}): nodes stop talking to it as they hear of it; group admins remove it from their groups"
        );
    } else {
        outln!("reinstated {shown} (revocation list no. {serial})");
    }
    Ok(())
}

/// Make the next network key, seal it to the colleagues chosen, write the new key file
/// and hand the statement to this installation's node.
async fn rotate_network_key(
    dir: &DataDir,
    out: &std::path::Path,
    switch_in: Cap,
    overlap: Cap,
    all_known: bool,
    admin_key: Option<std::path::PathBuf>,
) -> Result<()> {
    let admin = this_networks_admin(dir, admin_key)?;
    if out.exists() {
        bail!(
            "{} exists; the new key file is never written over one",
            out.display()
        );
    }
    let (Some(switch_s), Some(overlap_s)) = (switch_in.0, overlap.0) else {
        bail!("--switch-in and --overlap need a time, e.g. 24h and 7d");
    };
    // A node that has not caught up may hold an old rotation (its serial would lose)
    // or miss revocations: it must be connected.
    let Response::Status { status } = request(dir, Request::Status).await? else {
        bail!("unexpected reply");
    };
    if status.peers_online == 0 {
        bail!(
            "this installation's node is not connected to anyone: start it (flurfunk node) and let it catch up first, so the rotation builds on the newest statements"
        );
    }
    let Response::KeyRecipients { recipients } = request(dir, Request::KeyRecipients).await? else {
        bail!("unexpected reply");
    };
    // Sealed to whom the admin vouches for: the directory (a fresh identity a departed
    // colleague made is in none), the certified relays and this installation. Without a
    // directory only when asked: then every profile this node holds, which anyone with
    // the old key could have added to.
    let has_directory = held_statement(dir, StatementKind::Directory)
        .await?
        .and_then(|s| Directory::decode(&s.body).ok())
        .is_some_and(|d| !d.entries.is_empty());
    if !has_directory && !all_known {
        bail!(
            "the network has no directory, so there is no list of colleagues to seal the new key to; fill it (flurfunk admin directory import FILE), or seal it to every colleague this node knows ({} now) with --all-known",
            recipients.len()
        );
    }
    let mut sealed_to = Vec::new();
    let mut names = Vec::new();
    for r in recipients
        .iter()
        .filter(|r| all_known || r.in_directory || r.relay)
    {
        let user: flurfunk::identity::UserId = r.user_id.parse()?;
        let mut dh = [0u8; 32];
        hex::decode_to_slice(&r.dh_public, &mut dh).context("a malformed key from the node")?;
        sealed_to.push((user, dh));
        names.push(super::printable(&r.name));
    }
    let current = held_statement(dir, StatementKind::NetworkKey).await?;
    let now = flurfunk::node::now_ms();
    let switch_at = now.saturating_add(switch_s.saturating_mul(1000));
    let overlap_until = switch_at.saturating_add(overlap_s.saturating_mul(1000));
    // The key the running node uses (after a rotation on a machine locked to IT's
    // installed file, not the file's): a rotation that names another would leave every
    // node with the new key alone at once, and nobody who is away would get back in.
    let mut replaces = [0u8; 16];
    hex::decode_to_slice(&status.network_key_id, &mut replaces)
        .context("the node did not say which network key it uses")?;
    let new_key =
        flurfunk::net::NetworkKey::generate(&mut rand::rngs::OsRng).with_admin(admin.public());
    let (statement, left_out) = admin.rotate_network_key(
        &mut rand::rngs::OsRng,
        current.as_ref(),
        &new_key.file_key(),
        &sealed_to,
        replaces,
        switch_at,
        overlap_until,
        now,
    )?;
    // The file first: a key handed to the network that IT does not have would shut out
    // every installation made later.
    new_key.save_new(out)?;
    publish(dir, &statement).await?;
    audit(
        dir,
        &admin,
        &format!(
            "rotate-network-key\t{} -> {}\tserial={}\tswitch_at_ms={switch_at}\toverlap_until_ms={overlap_until}\trecipients={}",
            status.network,
            new_key.fingerprint(),
            statement.serial,
            sealed_to.len() - left_out.len()
        ),
    )?;
    outln!(
        "network key {} -> {} (statement no. {}), sealed to {} colleague(s){}: {}",
        status.network,
        new_key.fingerprint(),
        statement.serial,
        sealed_to.len() - left_out.len(),
        if all_known {
            ""
        } else {
            " (directory and relays)"
        },
        names.join(", ")
    );
    for user in &left_out {
        outln!("  left out (its key is not valid): {user}");
    }
    // Colleagues this node knows that the key was not sealed to: nodes that hear of the
    // rotation refuse them from now on, so IT knows whom to hand the new key file.
    let not_sealed: Vec<String> = recipients
        .iter()
        .filter(|r| !(all_known || r.in_directory || r.relay))
        .map(|r| {
            format!(
                "{} ({})",
                super::printable(&r.name),
                &r.user_id[..12.min(r.user_id.len())]
            )
        })
        .collect();
    if !not_sealed.is_empty() {
        outln!(
            "not sealed to (not in the directory; they need the new key file): {}",
            not_sealed.join(", ")
        );
    }
    outln!(
        "nodes dial with the new key from {} and accept the old one until {}; new installations need {}",
        super::local_time(switch_at, true),
        super::local_time(overlap_until, true),
        out.display()
    );
    Ok(())
}

/// The admin key (`DIR/admin.key` or `path`), checked to be the one this node's network
/// names.
pub(super) fn this_networks_admin(
    dir: &DataDir,
    path: Option<std::path::PathBuf>,
) -> Result<AdminKey> {
    let key = launch::load_network_key(dir)?;
    let Some(network_admin) = key.admin() else {
        bail!(
            "this node's network is unmanaged (its key file names no admin key): there are no admin statements"
        );
    };
    let path = path.unwrap_or_else(|| dir.admin_key());
    let admin = AdminKey::load(&path)?;
    if admin.public() != network_admin {
        bail!(
            "{} is not this network's admin key (the network's is {})",
            path.display(),
            flurfunk::admin::fingerprint(&network_admin)
        );
    }
    Ok(admin)
}

/// The statement of `kind` this installation's node holds.
pub(super) async fn held_statement(
    dir: &DataDir,
    kind: StatementKind,
) -> Result<Option<AdminStatement>> {
    let Response::Statements { statements } = request(dir, Request::AdminStatements).await? else {
        bail!("unexpected reply");
    };
    flurfunk::node::held_statement(&statements, kind)
        .context("the node holds a malformed statement")
}

/// One colleague of the directory in a line: user id, name, (department).
fn directory_line(d: &flurfunk::node::DirectoryView) -> String {
    format!(
        "{}  {}{}",
        d.user_id,
        super::printable(&d.name),
        if d.department.is_empty() {
            String::new()
        } else {
            format!("  ({})", super::printable(&d.department))
        }
    )
}

/// Hand a signed statement to this installation's node (which passes it on).
/// After a retention or a feature switch: a warning if colleagues online run a build
/// that does not know it (they keep what it deletes, ignore what it turns off).
pub(super) async fn warn_older_builds(dir: &DataDir) -> Result<()> {
    let Response::Status { status } = request(dir, Request::Status).await? else {
        bail!("unexpected reply");
    };
    if status.peers_on_older_builds > 0 {
        outln!(
            "warning: {} of the {} colleagues online run an older Flurfunk: they keep the messages a retention deletes and ignore features turned off (update every computer first; docs/ADMIN.md)",
            status.peers_on_older_builds,
            status.peers_online
        );
    }
    Ok(())
}

pub(super) async fn publish(dir: &DataDir, statement: &AdminStatement) -> Result<()> {
    request(
        dir,
        Request::PublishStatement {
            encoded: hex::encode(statement.encode()),
        },
    )
    .await?;
    Ok(())
}

/// Show the organisation's policy, or change the switches given (the rest stay).
async fn change_policy(dir: &DataDir, change: PolicyArgs) -> Result<()> {
    let current = held_statement(dir, StatementKind::Policy).await?;
    let mut policy = current
        .as_ref()
        .and_then(|s| Policy::decode(&s.body).ok())
        .unwrap_or_default();
    let before = policy;
    if let Some(on) = change.read_receipts {
        policy.read_receipts = on == Switch::On;
    }
    if let Some(p) = change.presence {
        policy.presence = p;
    }
    if let Some(size) = change.max_file_size {
        policy.max_file_bytes = size.0;
    }
    if let Some(size) = change.auto_download {
        policy.auto_download_bytes = size.0;
    }
    if let Some(on) = change.delete_for_everyone {
        policy.delete_for_everyone = on == Switch::On;
    }
    if let Some(window) = change.edit_window {
        policy.edit_window_s = window.0;
    }
    if let Some(window) = change.delete_window {
        policy.delete_window_s = window.0;
    }
    if change.turn_off.iter().any(|b| change.turn_on.contains(b)) {
        bail!("a feature is named in both --turn-off and --turn-on");
    }
    for bit in change.turn_off {
        policy.features_off |= bit;
    }
    for bit in change.turn_on {
        policy.features_off &= !bit;
    }
    if let Some(keep) = change.keep_messages {
        if keep
            .0
            .is_some_and(|s| s < flurfunk::wire::MIN_KEEP_MESSAGES_S)
        {
            bail!("messages are kept at least a day (e.g. --keep-messages 90d)");
        }
        policy.keep_messages_s = keep.0;
        policy = policy.carry_retention(&before, flurfunk::node::now_ms());
    }
    let window = |v: Option<u64>| v.map_or("any time".to_string(), flurfunk::wire::human_window);
    let size = |v: Option<u64>| {
        v.map_or(
            "each node's setting".to_string(),
            flurfunk::files::human_size,
        )
    };
    let show = |p: &Policy| {
        format!(
            "read receipts: {}\npresence: {}\nlargest file sent: {}\nfetched by itself up to: {}\n\
             delete for everyone: {}\nedit within: {}\ndelete for everyone within: {}\n\
             messages kept: {}\nturned off: {}",
            if p.read_receipts { "on" } else { "off" },
            match p.presence {
                Presence::Full => "online and last seen",
                Presence::OnlineOnly => "online only",
                Presence::Hidden => "not shown",
            },
            size(p.max_file_bytes),
            size(p.auto_download_bytes),
            if p.delete_for_everyone {
                "allowed"
            } else {
                "not allowed"
            },
            window(p.edit_window_s),
            window(p.delete_window_s),
            p.keep_messages_s
                .map_or("for good".to_string(), flurfunk::wire::human_window),
            flurfunk::wire::features_named(p.features_off)
        )
    };
    if policy == before {
        if current.is_none() {
            outln!("no policy set: every node decides for itself");
        }
        outln!("{}", show(&policy));
        return Ok(());
    }
    let admin = this_networks_admin(dir, change.admin_key)?;
    let Some(next) = admin.change_policy(current.as_ref(), policy, flurfunk::node::now_ms())?
    else {
        outln!("{}", show(&policy));
        return Ok(());
    };
    let serial = next.serial;
    publish(dir, &next).await?;
    audit(
        dir,
        &admin,
        &format!(
            "policy\tserial={serial}\t{}",
            show(&policy).replace('\n', "; ")
        ),
    )?;
    outln!("policy no. {serial} set for every node:\n{}", show(&policy));
    if policy.keep_messages_s.is_some() || policy.features_off != 0 {
        warn_older_builds(dir).await?;
    }
    Ok(())
}

/// Show or change the directory: the next directory statement is built from the one the
/// node holds, signed here and handed to the node.
async fn directory(dir: &DataDir, action: DirectoryAction) -> Result<()> {
    let current = held_statement(dir, StatementKind::Directory).await?;
    let mut directory = current
        .as_ref()
        .map(|s| Directory::decode(&s.body))
        .transpose()
        .context("the node holds a malformed directory")?
        .unwrap_or_default();
    let before = directory.clone();
    let (admin_key, what) = match action {
        DirectoryAction::Show { json } => {
            let rows: Vec<flurfunk::node::DirectoryView> = directory
                .entries
                .iter()
                .map(|(user, e)| flurfunk::node::DirectoryView {
                    user_id: user.to_string(),
                    name: e.name.clone(),
                    department: e.department.clone(),
                })
                .collect();
            if json {
                outln!("{}", serde_json::to_string(&rows)?);
            } else if rows.is_empty() {
                outln!("no directory: colleagues are shown with the names they chose");
            }
            for r in rows.iter().filter(|_| !json) {
                outln!("{}", directory_line(r));
            }
            return Ok(());
        }
        DirectoryAction::Set {
            user,
            name,
            department,
            admin_key,
        } => {
            let user: flurfunk::identity::UserId = user.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "give the colleague's user id (flurfunk whoami on its computer, or flurfunk peers here), not a name"
                )
            })?;
            let entry = directory_entry(&name, department.as_deref().unwrap_or(""))?;
            if !directory.entries.contains_key(&user)
                && directory.entries.len() >= MAX_DIRECTORY_ENTRIES
            {
                bail!("the directory holds at most {MAX_DIRECTORY_ENTRIES} colleagues");
            }
            let what = format!(
                "directory-set\t{user}\t{}\t{}",
                entry.name, entry.department
            );
            directory.entries.insert(user, entry);
            (admin_key, what)
        }
        DirectoryAction::Remove { user, admin_key } => {
            let user = whole_user(dir, &user).await?;
            if directory.entries.remove(&user).is_none() {
                outln!("{user} is not in the directory; nothing changed");
                return Ok(());
            }
            (admin_key, format!("directory-remove\t{user}"))
        }
        DirectoryAction::Import { file, admin_key } => {
            directory = read_directory_file(&file)?;
            (
                admin_key,
                format!(
                    "directory-import\t{}\t{} colleagues",
                    file.display(),
                    directory.entries.len()
                ),
            )
        }
    };
    if current
        .as_ref()
        .is_some_and(|s| s.body == directory.encode())
    {
        outln!("the directory is unchanged");
        return Ok(());
    }
    let admin = this_networks_admin(dir, admin_key)?;
    // What it does to the organisation groups, which follow the directory.
    if held_statement(dir, StatementKind::OrgGroups)
        .await?
        .is_some()
    {
        let gone = before
            .entries
            .keys()
            .filter(|u| !directory.entries.contains_key(u))
            .count();
        let moved = before
            .entries
            .iter()
            .filter(|(u, e)| {
                directory
                    .entries
                    .get(u)
                    .is_some_and(|n| n.department != e.department)
            })
            .count();
        if gone + moved > 0 {
            outln!(
                "organisation groups: {gone} colleagues leave them (no longer in the directory), {moved} change department (a new department needs flurfunk admin org-groups)"
            );
        }
    }
    let next = admin
        .sign_next(
            current.as_ref(),
            StatementKind::Directory,
            flurfunk::node::now_ms(),
            directory.encode(),
        )
        .context("the directory is too large for one statement")?;
    let serial = next.serial;
    publish(dir, &next).await?;
    audit(dir, &admin, &format!("{what}\tserial={serial}"))?;
    outln!(
        "directory no. {serial} with {} colleagues set for every node",
        directory.entries.len()
    );
    Ok(())
}

/// A user id, or a full name this node knows (as for revoking: a part is not enough).
async fn whole_user(dir: &DataDir, who: &str) -> Result<flurfunk::identity::UserId> {
    if let Ok(user) = who.trim().parse() {
        return Ok(user);
    }
    let Response::User { user_id, name } = request(dir, Request::Whois { who: who.into() }).await?
    else {
        bail!("unexpected reply");
    };
    if !name.trim().eq_ignore_ascii_case(who.trim()) {
        bail!(
            "'{who}' matches {} ({user_id}); give the full name or the user id",
            super::printable(&name)
        );
    }
    Ok(user_id.parse()?)
}

/// An official name and department, checked by the rule for names chosen here.
fn directory_entry(name: &str, department: &str) -> Result<DirectoryEntry> {
    let (name, department) = (name.trim(), department.trim());
    flurfunk::identity::validate_name(name)
        .with_context(|| format!("official name '{}'", super::printable(name)))?;
    if !department.is_empty() {
        flurfunk::identity::validate_name(department)
            .with_context(|| format!("department '{}'", super::printable(department)))?;
    }
    Ok(DirectoryEntry {
        name: name.into(),
        department: department.into(),
    })
}

/// A directory file: "user id;name;department" per line. Every bad line is reported
/// with its number, and nothing is changed then.
fn read_directory_file(path: &std::path::Path) -> Result<Directory> {
    const MAX_FILE: u64 = 4 << 20;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?,
            MAX_FILE + 1,
        ),
        &mut bytes,
    )
    .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE {
        bail!(
            "{} is larger than a directory file can be (4 MiB)",
            path.display()
        );
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
    let mut directory = Directory::default();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{FEFF}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(';').collect();
        let result = match fields.as_slice() {
            [user, name] | [user, name, ""] => Ok((user, name, "")),
            [user, name, department] => Ok((user, name, *department)),
            _ => Err(anyhow::anyhow!("expected \"user id;name;department\"")),
        }
        .and_then(|(user, name, department)| {
            let user: flurfunk::identity::UserId = user
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("'{}' is not a user id", super::printable(user)))?;
            let entry = directory_entry(name, department)?;
            if directory.entries.insert(user, entry).is_some() {
                bail!("{user} is listed twice");
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(format!("line {}: {e:#}", n + 1));
        }
    }
    if directory.entries.len() > MAX_DIRECTORY_ENTRIES {
        errors.push(format!(
            "{} colleagues; a directory holds at most {MAX_DIRECTORY_ENTRIES}",
            directory.entries.len()
        ));
    }
    if !errors.is_empty() {
        bail!(
            "{} not imported; nothing changed:\n{}",
            path.display(),
            errors.join("\n")
        );
    }
    Ok(directory)
}

/// One line in this installation's admin audit log: UTC time, admin key, action.
pub(super) fn audit(dir: &DataDir, admin: &AdminKey, what: &str) -> Result<()> {
    let path = dir.admin_audit_log();
    flurfunk::admin::append_audit(&path, admin, what)
        .with_context(|| format!("writing the admin audit log {}", path.display()))
}
