//! `flurfunk admin` for groups: the organisation groups ("Alle" and one per department,
//! kept in line with the directory) and the retention of single groups.

use anyhow::{Context, Result, bail};
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::{Request, Response};
use flurfunk::wire::{Directory, StatementKind};

use super::{Cap, audit, held_statement, publish, request, this_networks_admin};

/// Create the organisation groups not there yet (with the directory's colleagues this
/// node knows; its node adds the others as their profiles arrive) and name them, with
/// this node as their steward, in a signed statement.
pub(super) async fn org_groups(
    dir: &DataDir,
    everyone: Option<String>,
    departments: bool,
    take_over: bool,
    admin_key: Option<std::path::PathBuf>,
) -> Result<()> {
    use flurfunk::wire::{OrgGroup, OrgGroups};
    let admin = this_networks_admin(dir, admin_key)?;
    if let Some(name) = &everyone {
        flurfunk::identity::validate_name(name)
            .map_err(|e| anyhow::anyhow!("the name of the group of everyone: {e}"))?;
    }
    let directory = held_statement(dir, StatementKind::Directory)
        .await?
        .map(|s| Directory::decode(&s.body))
        .transpose()
        .context("the node holds a malformed directory")?
        .filter(|d| !d.entries.is_empty())
        .context(
            "the network has no directory: organisation groups take their members from it (flurfunk admin directory import FILE)",
        )?;
    let Response::Status { status } = request(dir, Request::Status).await? else {
        bail!("unexpected reply");
    };
    let me: flurfunk::identity::UserId = status.user_id.parse()?;
    // A node that has not met the network may not hold the groups made elsewhere, and
    // would make a second set.
    if status.peers_online == 0 {
        bail!(
            "this node is connected to nobody: it may not hold the organisation groups made elsewhere; start it where colleagues are reachable and try again"
        );
    }
    let current = held_statement(dir, StatementKind::OrgGroups).await?;
    let mut held = current
        .as_ref()
        .map(|s| OrgGroups::decode(&s.body))
        .transpose()
        .context("the node holds malformed organisation groups")?;
    if let Some(h) = &held
        && h.steward != me
    {
        if !take_over {
            bail!(
                "the organisation groups are kept by another node ({}); run this on that node, or, if it is gone for good, here with --take-over (new groups are made; the old ones become ordinary groups)",
                h.steward
            );
        }
        held = None;
    }
    // Which groups: "" for everyone, then each department of the directory.
    let mut wanted: std::collections::BTreeMap<String, String> = Default::default();
    if let Some(name) = everyone {
        wanted.insert(String::new(), name);
    }
    if departments {
        for entry in directory.entries.values() {
            if !entry.department.is_empty() {
                wanted.insert(entry.department.clone(), entry.department.clone());
            }
        }
    }
    let bad: Vec<&String> = wanted
        .values()
        .filter(|name| flurfunk::identity::validate_name(name).is_err())
        .collect();
    if !bad.is_empty() {
        bail!(
            "not usable as a group name (change the department in the directory): {}",
            bad.iter()
                .map(|n| crate::output::printable(n))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if wanted.len() > flurfunk::wire::MAX_ORG_GROUPS {
        bail!(
            "{} groups; the network holds at most {}",
            wanted.len(),
            flurfunk::wire::MAX_ORG_GROUPS
        );
    }
    let mut groups: Vec<OrgGroup> = held
        .iter()
        .flat_map(|h| h.groups.iter())
        .filter(|g| wanted.contains_key(&g.department))
        .cloned()
        .collect();
    for g in held.iter().flat_map(|h| h.groups.iter()) {
        if !wanted.contains_key(&g.department) {
            outln!(
                "no longer an organisation group (it stays as an ordinary group): {}",
                if g.department.is_empty() {
                    "the group of everyone".to_string()
                } else {
                    crate::output::printable(&g.department)
                }
            );
        }
    }
    // Colleagues this node knows a profile of, for the groups made now.
    let Response::KeyRecipients { recipients } = request(dir, Request::KeyRecipients).await? else {
        bail!("unexpected reply");
    };
    // Relays hold ciphertext only: never members.
    let known: std::collections::BTreeSet<String> = recipients
        .into_iter()
        .filter(|r| !r.relay)
        .map(|r| r.user_id)
        .collect();
    let mut created = Vec::new();
    for (department, name) in &wanted {
        if groups.iter().any(|g| g.department == *department) {
            continue;
        }
        let members: Vec<String> = directory
            .entries
            .iter()
            .filter(|(_, e)| department.is_empty() || e.department == *department)
            .map(|(u, _)| u.to_string())
            .filter(|u| known.contains(u) && *u != status.user_id)
            .collect();
        let Response::Group { conversation } = request(
            dir,
            Request::GroupCreate {
                name: name.clone(),
                members,
            },
        )
        .await?
        else {
            bail!("unexpected reply");
        };
        groups.push(OrgGroup {
            conversation: conversation.parse()?,
            department: department.clone(),
        });
        created.push(name.clone());
    }
    let next = OrgGroups {
        steward: me,
        groups,
    };
    if held.as_ref().is_some_and(|h| h.encode() == next.encode()) {
        outln!("the organisation groups are unchanged");
        return Ok(());
    }
    let statement = admin
        .sign_next(
            current.as_ref(),
            StatementKind::OrgGroups,
            flurfunk::node::now_ms(),
            next.encode(),
        )
        .context("too many organisation groups for one statement")?;
    let serial = statement.serial;
    publish(dir, &statement).await?;
    audit(
        dir,
        &admin,
        &format!(
            "org-groups\tserial={serial}\t{} groups\tcreated: {}",
            next.groups.len(),
            created.join(", ")
        ),
    )?;
    outln!(
        "organisation groups no. {serial}: {} groups, kept in line with the directory by this node{}",
        next.groups.len(),
        if created.is_empty() {
            String::new()
        } else {
            format!(
                "; created: {}",
                created
                    .iter()
                    .map(|n| crate::output::printable(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(())
}

/// Show the groups with a retention period of their own, or set one (`period`: how
/// long; `Cap(None)`: the group's own period taken away).
pub(super) async fn group_retention(
    dir: &DataDir,
    group: Option<String>,
    period: Option<Cap>,
    admin_key: Option<std::path::PathBuf>,
) -> Result<()> {
    use flurfunk::wire::{GroupRetention, MIN_KEEP_MESSAGES_S, Policy, human_window};
    let current = held_statement(dir, StatementKind::GroupRetention).await?;
    let held = current
        .as_ref()
        .map(|s| GroupRetention::decode(&s.body))
        .transpose()
        .context("the node holds a malformed group retention")?
        .unwrap_or_default();
    let network = held_statement(dir, StatementKind::Policy)
        .await?
        .and_then(|s| Policy::decode(&s.body).ok())
        .and_then(|p| p.keep_messages_s);
    let Response::Conversations { conversations } = request(dir, Request::Conversations).await?
    else {
        bail!("unexpected reply");
    };
    let name_of = |conv: &flurfunk::wire::ConversationId| {
        let id = conv.to_string();
        conversations
            .iter()
            .find(|c| c.conversation == id)
            .map_or_else(
                || format!("a group this node is not in ({})", &id[..12]),
                |c| crate::output::printable(&c.name),
            )
    };
    let show = |r: &GroupRetention| {
        let mut lines = vec![format!(
            "every conversation: {}",
            network.map_or("kept for good".to_string(), |s| format!(
                "{} (the maximum)",
                human_window(s)
            ))
        )];
        for (conv, keep) in r.groups.iter().filter_map(|(c, g)| Some((c, g.keep_s?))) {
            let shorter = network.filter(|&n| n < keep);
            lines.push(format!(
                "{}: {}{}",
                name_of(conv),
                human_window(keep),
                shorter.map_or(String::new(), |n| format!(
                    " (the network's {} hold: shorter)",
                    human_window(n)
                ))
            ));
        }
        lines.join("\n")
    };
    let (Some(group), Some(period)) = (group, period) else {
        outln!("{}", show(&held));
        return Ok(());
    };
    if period.0.is_some_and(|s| s < MIN_KEEP_MESSAGES_S) {
        bail!("messages are kept at least a day (e.g. 30d)");
    }
    // The group: a conversation id, or the name of a group this node is in (one only).
    let conv: flurfunk::wire::ConversationId = match group.parse() {
        Ok(id) => {
            // A 1:1 chat this node knows is no group (nodes would apply it all the same).
            if conversations
                .iter()
                .any(|c| c.conversation == group && c.kind != "group")
            {
                bail!("{group} is a 1:1 chat, not a group");
            }
            id
        }
        Err(_) => {
            let named: Vec<_> = conversations
                .iter()
                .filter(|c| c.kind == "group" && c.is_member && c.name == group)
                .collect();
            match named.as_slice() {
                [one] => one.conversation.parse()?,
                [] => bail!(
                    "this node is in no group called {:?} (give its conversation id: `flurfunk conversations --json` on a member's machine)",
                    crate::output::printable(&group)
                ),
                _ => bail!(
                    "{} groups are called {:?}; give the conversation id: {}",
                    named.len(),
                    crate::output::printable(&group),
                    named
                        .iter()
                        .map(|c| c.conversation.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let admin = this_networks_admin(dir, admin_key)?;
    let now = flurfunk::node::now_ms();
    let Some(statement) = admin.change_group_retention(current.as_ref(), conv, period.0, now)?
    else {
        outln!("{}", show(&held));
        return Ok(());
    };
    let next = GroupRetention::decode(&statement.body)?;
    let serial = statement.serial;
    publish(dir, &statement).await?;
    let what = format!(
        "{}: {}",
        name_of(&conv),
        period
            .0
            .map_or("the network's period".to_string(), human_window)
    );
    audit(
        dir,
        &admin,
        &format!("group-retention\tserial={serial}\t{conv}\t{what}"),
    )?;
    outln!("group retention no. {serial} set for every node: {what}");
    outln!("{}", show(&next));
    super::warn_older_builds(dir).await?;
    Ok(())
}
