//! What a user can ask of a node, in words: requests that name people and groups the way
//! people do ("Anna", "Bauhof", a user id, a conversation id or its prefix), resolved
//! against what the node knows and executed through its handle.
//!
//! The CLI, the control socket and (later) the desktop app share this, so a name resolves
//! the same way everywhere. Nothing here touches the swarm or the store directly.

pub mod control;
pub mod data_dir;
pub mod install;
pub mod launch;
pub mod machine_policy;
pub mod messages;

use serde::{Deserialize, Serialize};

use crate::identity::UserId;
use crate::node::{ConversationView, MessageItem, NodeError, NodeHandle, NodeStatus, PeerView};
use crate::wire::ConversationId;

/// Shortest conversation id prefix accepted in place of the full id.
pub const MIN_ID_PREFIX: usize = 8;
/// History lines returned when the caller does not say.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;
/// Messages a search returns when the caller does not say.
pub const DEFAULT_SEARCH_LIMIT: usize = 50;

fn default_search_limit() -> usize {
    DEFAULT_SEARCH_LIMIT
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("unknown recipient '{0}': no such person, group or conversation")]
    UnknownRecipient(String),
    #[error("'{name}' is ambiguous; use one of: {candidates}")]
    Ambiguous { name: String, candidates: String },
    #[error("unknown group '{0}'")]
    UnknownGroup(String),
    #[error(
        "you are no longer a member of '{0}' (you left or were removed); `history` still shows what you received before"
    )]
    NoLongerMember(String),
    #[error("no desktop app runs for this data directory, only a headless node")]
    NoWindow,
    #[error("no message '{0}' with a file in that conversation (see `history --json`)")]
    UnknownMessage(String),
    #[error("no message '{0}' in that conversation (its id from `history`, 8+ characters)")]
    NoSuchMessage(String),
    #[error("{0}")]
    File(String),
    #[error("the admin statement is malformed")]
    BadStatement,
    #[error(transparent)]
    Node(#[from] NodeError),
}

#[cfg(test)]
mod tests {
    use super::name_match;

    #[test]
    fn names_match_exactly_or_by_word_starts() {
        assert_eq!(name_match("Anna Schmidt", "anna schmidt"), 2);
        assert_eq!(name_match("Anna Schmidt", "anna"), 1);
        assert_eq!(name_match("Anna Schmidt", "Schm"), 1);
        assert_eq!(name_match("Anna Schmidt", "nna"), 0);
        assert_eq!(name_match("Bürgerbüro", "bürger"), 1);
        assert_eq!(name_match("Anna Schmidt", "   "), 0);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Peers,
    Conversations,
    Send {
        to: String,
        text: String,
    },
    /// Answer a message (`event`: its id or the first 8+ characters); "@Name" in the
    /// text calls a member.
    Reply {
        to: String,
        event: String,
        text: String,
    },
    /// Replace the text of an own message.
    Edit {
        to: String,
        event: String,
        text: String,
    },
    /// Delete a message for everyone (own ones; others' as a group admin).
    Delete {
        to: String,
        event: String,
    },
    /// Delete a message for this user only (any message; the others keep it). A request
    /// of its own, so a node of an earlier version refuses it instead of deleting for
    /// everyone.
    DeleteForMe {
        to: String,
        event: String,
    },
    /// React with one emoji; an empty one takes the reaction back.
    React {
        to: String,
        event: String,
        emoji: String,
    },
    /// Every version of an edited message.
    Versions {
        to: String,
        event: String,
    },
    /// Messages containing every word (prefixes; case and umlauts folded), newest first,
    /// in the conversation `in` names or in all.
    Search {
        words: String,
        #[serde(default, rename = "in")]
        in_conversation: Option<String>,
        #[serde(default = "default_search_limit")]
        limit: usize,
    },
    History {
        conversation: String,
        limit: usize,
    },
    GroupCreate {
        name: String,
        members: Vec<String>,
    },
    GroupAdd {
        group: String,
        user: String,
    },
    GroupRemove {
        group: String,
        user: String,
    },
    GroupLeave {
        group: String,
    },
    /// Send a file (`path` absolute: the node may run in another directory).
    SendFile {
        to: String,
        path: String,
        #[serde(default)]
        text: String,
    },
    /// Save the file of a message (`event`: its id or the first 8+ characters) to
    /// `dest` (absolute; a directory: the file keeps its name there).
    SaveFile {
        conversation: String,
        event: String,
        dest: String,
    },
    /// Fetch the file of a message (also one larger than what is fetched by itself).
    Download {
        conversation: String,
        event: String,
    },
    /// Files being fetched.
    Downloads,
    /// Replace this installation's X25519 key (`NodeHandle::update_key`).
    KeyUpdate,
    /// Bring the desktop app's window forward (a second start of the app asks this).
    Raise,
    /// Who a name or id means (`flurfunk admin revoke Anna`).
    Whois {
        who: String,
    },
    /// The statements of the network's admin key this node holds.
    AdminStatements,
    /// A statement signed with the admin key (hex of `wire::AdminStatement::encode`),
    /// handed to the network.
    PublishStatement {
        encoded: String,
    },
    /// The colleagues a network key rotation can be sealed to: every profile this node
    /// holds, less the revoked (`flurfunk admin rotate-network-key`).
    KeyRecipients,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Status {
        status: Box<NodeStatus>,
    },
    Peers {
        peers: Vec<PeerView>,
    },
    Conversations {
        conversations: Vec<ConversationView>,
    },
    Sent {
        conversation: String,
        event_id: String,
        /// Other nodes online right now; 0 means the message waits in the outbox.
        peers_online: usize,
    },
    History {
        conversation: Box<ConversationView>,
        messages: Vec<MessageItem>,
    },
    Group {
        conversation: String,
    },
    /// A file was saved here.
    SavedFile {
        path: String,
    },
    /// The file of that message is not (wholly) here yet: fetch it first (`blob` names
    /// it in `Downloads`).
    NotHere {
        blob: String,
    },
    Downloads {
        downloads: Vec<crate::node::DownloadView>,
    },
    User {
        user_id: String,
        name: String,
    },
    Statements {
        statements: Vec<crate::node::StatementView>,
    },
    KeyRecipients {
        recipients: Vec<crate::node::RecipientView>,
    },
    /// Every version of a message, oldest first.
    Versions {
        versions: Vec<messages::VersionItem>,
    },
    /// Messages found, newest first.
    Found {
        hits: Vec<crate::node::SearchItem>,
    },
    Done,
}

pub async fn execute(node: &NodeHandle, request: Request) -> Result<Response, AppError> {
    Ok(match request {
        Request::Status => Response::Status {
            status: Box::new(node.status().await?),
        },
        Request::Peers => Response::Peers {
            peers: node.peers().await?,
        },
        Request::Conversations => Response::Conversations {
            conversations: node.conversations().await?,
        },
        Request::Send { to, text } => {
            let conversation = resolve_recipient(node, &to).await?;
            let mentions = messages::mentions_in(node, conversation, &text).await?;
            let event_id = node
                .send_message(conversation, text, None, mentions)
                .await?;
            Response::Sent {
                conversation: conversation.to_string(),
                event_id: event_id.to_string(),
                peers_online: node.status().await?.peers_online,
            }
        }
        Request::SendFile { to, path, text } => {
            let conversation = resolve_recipient(node, &to).await?;
            let event_id = node.send_file(conversation, path.into(), text).await?;
            Response::Sent {
                conversation: conversation.to_string(),
                event_id: event_id.to_string(),
                peers_online: node.status().await?.peers_online,
            }
        }
        Request::SaveFile {
            conversation,
            event,
            dest,
        } => {
            let (conv, message) = file_message(node, &conversation, &event).await?;
            let file = message.file.clone().unwrap_or_default();
            if !file.here {
                return Ok(Response::NotHere { blob: file.blob });
            }
            let path = save_path(std::path::Path::new(&dest), &file.name)?;
            let event_id = message
                .event_id
                .parse()
                .map_err(|_| AppError::UnknownMessage(event))?;
            node.save_file(conv, event_id, path.clone()).await?;
            Response::SavedFile {
                path: path.display().to_string(),
            }
        }
        Request::Download {
            conversation,
            event,
        } => {
            let (conv, message) = file_message(node, &conversation, &event).await?;
            let event_id = message
                .event_id
                .parse()
                .map_err(|_| AppError::UnknownMessage(event))?;
            node.download(conv, event_id).await?;
            Response::Done
        }
        Request::Downloads => Response::Downloads {
            downloads: node.downloads().await?,
        },
        Request::History {
            conversation,
            limit,
        } => {
            // A group one left or was removed from still has its history up to then.
            let conv = match resolve_recipient(node, &conversation).await {
                Err(AppError::NoLongerMember(_)) => {
                    former_group(&node.conversations().await?, &conversation)
                        .and_then(|g| g.conversation.parse().ok())
                        .ok_or_else(|| AppError::UnknownRecipient(conversation.clone()))?
                }
                other => other?,
            };
            let view = node
                .conversation(conv)
                .await?
                .ok_or_else(|| AppError::UnknownRecipient(conversation.clone()))?;
            Response::History {
                conversation: Box::new(view),
                messages: node.messages(conv, None, limit).await?,
            }
        }
        Request::GroupCreate { name, members } => {
            let mut users = Vec::new();
            for m in &members {
                users.push(resolve_user(node, m).await?);
            }
            let conv = node.create_group(name, users).await?;
            Response::Group {
                conversation: conv.to_string(),
            }
        }
        Request::GroupAdd { group, user } => {
            let conv = resolve_group(node, &group).await?;
            let user = resolve_user(node, &user).await?;
            node.add_member(conv, user).await?;
            Response::Done
        }
        Request::GroupRemove { group, user } => {
            let conv = resolve_group(node, &group).await?;
            let user = resolve_user(node, &user).await?;
            node.remove_member(conv, user).await?;
            Response::Done
        }
        Request::GroupLeave { group } => {
            let conv = resolve_group(node, &group).await?;
            node.leave(conv).await?;
            Response::Done
        }
        Request::KeyUpdate => {
            node.update_key().await?;
            Response::Done
        }
        // Only the control server of the desktop app can answer this.
        Request::Raise => return Err(AppError::NoWindow),
        Request::Whois { who } => {
            let user = resolve_user(node, &who).await?;
            // The official name where the directory has one (it comes last).
            let name = known_names(node)
                .await?
                .into_iter()
                .rev()
                .find(|(u, _)| *u == user)
                .map(|(_, name)| name)
                .unwrap_or_default();
            Response::User {
                user_id: user.to_string(),
                name,
            }
        }
        Request::AdminStatements => Response::Statements {
            statements: node.admin_statements().await?,
        },
        Request::KeyRecipients => Response::KeyRecipients {
            recipients: node.key_recipients().await?,
        },
        request @ (Request::Reply { .. }
        | Request::Edit { .. }
        | Request::Delete { .. }
        | Request::DeleteForMe { .. }
        | Request::React { .. }
        | Request::Versions { .. }
        | Request::Search { .. }) => messages::execute(node, request).await?,
        Request::PublishStatement { encoded } => {
            let statement = hex::decode(encoded.trim())
                .ok()
                .and_then(|b| crate::wire::AdminStatement::decode(&b).ok())
                .ok_or(AppError::BadStatement)?;
            node.publish_admin_statement(statement).await?;
            Response::Done
        }
    })
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// How well `name` matches what the user typed: 2 exactly (ignoring case), 1 when the
/// typed words start the name's words ("anna" or "schmidt" for "Anna Schmidt"), else 0.
fn name_match(name: &str, typed: &str) -> u8 {
    if same_name(name, typed) {
        return 2;
    }
    let name = name.to_lowercase();
    let words: Vec<&str> = name.split_whitespace().collect();
    let typed = typed.trim().to_lowercase();
    let wanted: Vec<&str> = typed.split_whitespace().collect();
    if !wanted.is_empty()
        && wanted
            .iter()
            .all(|w| words.iter().any(|n| n.starts_with(w)))
    {
        1
    } else {
        0
    }
}

/// The entries with the best match level above 0.
fn best_matches<'a, T>(items: &'a [T], typed: &str, name: impl Fn(&T) -> &str) -> Vec<&'a T> {
    let best = items
        .iter()
        .map(|i| name_match(name(i), typed))
        .max()
        .unwrap_or(0);
    if best == 0 {
        return Vec::new();
    }
    items
        .iter()
        .filter(|i| name_match(name(i), typed) == best)
        .collect()
}

/// A conversation by full id or unique id prefix.
fn by_id(conversations: &[ConversationView], target: &str) -> Option<ConversationId> {
    let t = target.trim().to_lowercase();
    if t.len() < MIN_ID_PREFIX || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut hits = conversations
        .iter()
        .filter(|c| c.conversation.starts_with(&t));
    let first = hits.next()?;
    if hits.next().is_some() {
        return None;
    }
    first.conversation.parse().ok()
}

/// A group by id, id prefix or name.
pub async fn resolve_group(node: &NodeHandle, target: &str) -> Result<ConversationId, AppError> {
    let conversations = node.conversations().await?;
    if let Some(id) = by_id(&conversations, target) {
        return Ok(id);
    }
    let groups: Vec<ConversationView> = conversations
        .into_iter()
        .filter(|c| c.kind == "group")
        .collect();
    let hits = best_matches(&groups, target, |c| &c.name);
    match hits.as_slice() {
        [one] => one
            .conversation
            .parse()
            .map_err(|_| AppError::UnknownGroup(target.into())),
        [] => Err(AppError::UnknownGroup(target.into())),
        many => Err(AppError::Ambiguous {
            name: target.into(),
            candidates: many
                .iter()
                .map(|c| c.conversation[..12].to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Messages searched for an id prefix at most (newest first).
const MESSAGE_SEARCH_LIMIT: usize = 10_000;

/// The conversation and the message whose id is or starts with `event` (as `history`
/// prints it, after `#`; among the newest `MESSAGE_SEARCH_LIMIT`), of those `keep` takes.
pub(crate) async fn find_message(
    node: &NodeHandle,
    conversation: &str,
    event: &str,
    keep: impl Fn(&MessageItem) -> bool,
) -> Result<(crate::wire::ConversationId, MessageItem), AppError> {
    let event = event.trim().trim_start_matches('#').to_ascii_lowercase();
    message_by_prefix(
        node,
        conversation,
        event,
        |m| m.notice.is_none() && keep(m),
        AppError::NoSuchMessage,
    )
    .await
}

/// The conversation and the message with a file whose id is or starts with `event`.
async fn file_message(
    node: &NodeHandle,
    conversation: &str,
    event: &str,
) -> Result<(crate::wire::ConversationId, MessageItem), AppError> {
    let event = event.trim().to_ascii_lowercase();
    message_by_prefix(
        node,
        conversation,
        event,
        |m| m.file.is_some(),
        AppError::UnknownMessage,
    )
    .await
}

/// The one message of `keep` whose id starts with `event` (8+ characters); `missing`
/// names the error for none.
async fn message_by_prefix(
    node: &NodeHandle,
    conversation: &str,
    event: String,
    keep: impl Fn(&MessageItem) -> bool,
    missing: fn(String) -> AppError,
) -> Result<(crate::wire::ConversationId, MessageItem), AppError> {
    let conv = resolve_recipient(node, conversation).await?;
    if event.len() < 8 {
        return Err(missing(event));
    }
    let found: Vec<MessageItem> = node
        .messages(conv, None, MESSAGE_SEARCH_LIMIT)
        .await?
        .into_iter()
        .filter(|m| keep(m) && m.event_id.starts_with(&event))
        .collect();
    match <[MessageItem; 1]>::try_from(found) {
        Ok([m]) => Ok((conv, m)),
        Err(found) if found.is_empty() => Err(missing(event)),
        Err(found) => Err(AppError::Ambiguous {
            name: event,
            candidates: found
                .iter()
                .map(|m| m.event_id[..16].to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Where to save a received file named `name`: `dest` itself, or in the directory
/// `dest` under the name made safe, numbered if that exists ("Plan (2).pdf").
pub fn save_path(dest: &std::path::Path, name: &str) -> Result<std::path::PathBuf, AppError> {
    if !dest.is_dir() {
        return Ok(dest.to_path_buf());
    }
    let safe = crate::files::safe_file_name(name);
    let (stem, ext) = match safe.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
        _ => (safe.clone(), String::new()),
    };
    for n in 1..1000 {
        let candidate = if n == 1 {
            dest.join(&safe)
        } else {
            dest.join(format!("{stem} ({n}){ext}"))
        };
        if !candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(AppError::File(format!(
        "{} holds too many files named {safe}",
        dest.display()
    )))
}

/// The one group of which this node is no longer a member whose name matches `target`
/// (exactly, or else by word starts).
fn former_group(conversations: &[ConversationView], target: &str) -> Option<ConversationView> {
    let former: Vec<&ConversationView> = conversations
        .iter()
        .filter(|c| c.kind == "group" && !c.is_member)
        .collect();
    for level in [2, 1] {
        let hits: Vec<&&ConversationView> = former
            .iter()
            .filter(|c| name_match(&c.name, target) == level)
            .collect();
        match hits.as_slice() {
            [one] => return Some((**one).clone()),
            [] => continue,
            _ => return None,
        }
    }
    None
}

/// A person by user id or display name (unique among known profiles).
pub async fn resolve_user(node: &NodeHandle, target: &str) -> Result<UserId, AppError> {
    if let Ok(user) = target.parse::<UserId>() {
        return Ok(user);
    }
    let names = known_names(node).await?;
    let mut hits: Vec<UserId> = best_matches(&names, target, |(_, name)| name)
        .into_iter()
        .map(|(user, _)| *user)
        .collect();
    hits.sort();
    hits.dedup();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(AppError::UnknownRecipient(target.into())),
        many => Err(AppError::Ambiguous {
            name: target.into(),
            candidates: many
                .iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Every name a colleague is known by here: the official ones of the network's directory,
/// and the self-chosen ones of the profiles, except a self-chosen name that looks like
/// someone else's official one (`identity::name_key`): typing "Bürgermeisteramt" never
/// reaches an impostor who chose that name.
async fn known_names(node: &NodeHandle) -> Result<Vec<(UserId, String)>, AppError> {
    use crate::identity::name_key;
    let mut official: Vec<(UserId, String)> = Vec::new();
    for statement in node.admin_statements().await? {
        for entry in statement.directory {
            if let Ok(user) = entry.user_id.parse() {
                official.push((user, entry.name));
            }
        }
    }
    let keys: std::collections::HashMap<String, UserId> = official
        .iter()
        .map(|(user, name)| (name_key(name), *user))
        .collect();
    let chosen = node
        .profiles()
        .await?
        .into_iter()
        .filter(|p| {
            keys.get(&name_key(&p.display_name))
                .is_none_or(|holder| *holder == p.user_id)
        })
        .map(|p| (p.user_id, p.display_name));
    // Chosen names first, official ones last (`Whois` shows the last one found).
    Ok(chosen.chain(official).collect())
}

/// Where a message "to X" goes: a conversation id (or prefix), a group name, a person's
/// name or user id (their 1:1 chat, created on first use).
pub async fn resolve_recipient(
    node: &NodeHandle,
    target: &str,
) -> Result<ConversationId, AppError> {
    let conversations = node.conversations().await?;
    if let Some(id) = by_id(&conversations, target) {
        return Ok(id);
    }
    if let Ok(user) = target.parse::<UserId>() {
        return Ok(node.open_direct(user).await?);
    }
    // Candidates by name: groups, and people (whose 1:1 chat may not exist yet); exact
    // matches win over partial ones.
    let groups: Vec<ConversationView> = conversations
        .into_iter()
        .filter(|c| c.kind == "group" && c.is_member)
        .collect();
    let names = known_names(node).await?;
    let exact = groups.iter().any(|g| name_match(&g.name, target) == 2)
        || names.iter().any(|(_, name)| name_match(name, target) == 2);
    let level = if exact { 2 } else { 1 };
    let groups: Vec<&ConversationView> = groups
        .iter()
        .filter(|c| name_match(&c.name, target) == level)
        .collect();
    let mut people: Vec<UserId> = names
        .iter()
        .filter(|(_, name)| name_match(name, target) == level)
        .map(|(user, _)| *user)
        .collect();
    people.sort();
    people.dedup();
    match (groups.as_slice(), people.as_slice()) {
        ([group], []) => group
            .conversation
            .parse()
            .map_err(|_| AppError::UnknownRecipient(target.into())),
        ([], [user]) => Ok(node.open_direct(*user).await?),
        ([], []) => Err(match former_group(&node.conversations().await?, target) {
            Some(group) => AppError::NoLongerMember(group.name),
            None => AppError::UnknownRecipient(target.into()),
        }),
        (groups, people) => Err(AppError::Ambiguous {
            name: target.into(),
            candidates: groups
                .iter()
                .map(|c| format!("group {}", &c.conversation[..12]))
                .chain(people.iter().map(|u| format!("user {u}")))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
