//! Requests about one message, in words: reply, edit, delete for everyone or for me, react, earlier
//! versions; and "@Name" in a text resolved to the members it calls. The message is named
//! by its id or the first 8+ characters (as `history` prints it after `#`).

use super::{AppError, Request, Response, find_message};
use crate::identity::UserId;
use crate::node::{MemberView, NodeHandle};
use crate::wire::{ConversationId, EventId};

/// One version of an edited message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionItem {
    pub wall_ms: u64,
    pub text: String,
}

pub(super) async fn execute(node: &NodeHandle, request: Request) -> Result<Response, AppError> {
    let sent = |conversation: ConversationId, event_id: EventId| Response::Sent {
        conversation: conversation.to_string(),
        event_id: event_id.to_string(),
        peers_online: 0,
    };
    let id = |m: &crate::node::MessageItem| -> Result<EventId, AppError> {
        m.event_id
            .parse()
            .map_err(|_| AppError::NoSuchMessage(m.event_id.clone()))
    };
    Ok(match request {
        Request::Reply { to, event, text } => {
            let (conv, m) = find_message(node, &to, &event, |m| !m.deleted).await?;
            let mentions = mentions_in(node, conv, &text).await?;
            let event_id = node
                .send_message(conv, text, Some(id(&m)?), mentions)
                .await?;
            with_online(node, sent(conv, event_id)).await?
        }
        Request::Edit { to, event, text } => {
            let (conv, m) = find_message(node, &to, &event, |m| m.own && !m.deleted).await?;
            let mentions = mentions_in(node, conv, &text).await?;
            let event_id = node.edit(conv, id(&m)?, text, mentions).await?;
            with_online(node, sent(conv, event_id)).await?
        }
        Request::DeleteForMe { to, event } => {
            let (conv, m) = find_message(node, &to, &event, |_| true).await?;
            node.delete_for_me(conv, id(&m)?).await?;
            Response::Done
        }
        Request::Delete { to, event } => {
            let (conv, m) = find_message(node, &to, &event, |m| !m.deleted).await?;
            let event_id = node.delete_for_everyone(conv, id(&m)?).await?;
            with_online(node, sent(conv, event_id)).await?
        }
        Request::React { to, event, emoji } => {
            let (conv, m) = find_message(node, &to, &event, |m| !m.deleted).await?;
            let event_id = node.react(conv, id(&m)?, emoji.trim().to_string()).await?;
            with_online(node, sent(conv, event_id)).await?
        }
        Request::Versions { to, event } => {
            let (conv, m) = find_message(node, &to, &event, |m| !m.deleted).await?;
            Response::Versions {
                versions: node
                    .versions(conv, id(&m)?)
                    .await?
                    .into_iter()
                    .map(|(wall_ms, text)| VersionItem { wall_ms, text })
                    .collect(),
            }
        }
        Request::Search {
            words,
            in_conversation,
            limit,
        } => {
            let only = match in_conversation {
                Some(who) => Some(super::resolve_recipient(node, &who).await?),
                None => None,
            };
            Response::Found {
                hits: node.search(words, only, limit.min(1_000)).await?,
            }
        }
        other => unreachable_request(other)?,
    })
}

fn unreachable_request(request: Request) -> Result<Response, AppError> {
    Err(AppError::File(format!(
        "not a message request: {request:?}"
    )))
}

async fn with_online(node: &NodeHandle, mut response: Response) -> Result<Response, AppError> {
    if let Response::Sent { peers_online, .. } = &mut response {
        *peers_online = node.status().await?.peers_online;
    }
    Ok(response)
}

/// The members of `conversation` that `text` calls with "@Name".
pub async fn mentions_in(
    node: &NodeHandle,
    conversation: ConversationId,
    text: &str,
) -> Result<Vec<UserId>, AppError> {
    if !text.contains('@') {
        return Ok(Vec::new());
    }
    let members = node
        .conversation(conversation)
        .await?
        .map(|c| c.members)
        .unwrap_or_default();
    Ok(mentioned(text, &members))
}

/// "@Anna Schmidt" calls the member of that name (the longest name that follows the @,
/// ignoring case); "@Anna" calls a member whose first name that is, if only one has it.
pub fn mentioned(text: &str, members: &[MemberView]) -> Vec<UserId> {
    let names: Vec<(String, UserId)> = members
        .iter()
        .filter_map(|m| {
            let name = m.name.trim_end_matches('✔').trim().to_lowercase();
            Some((name, m.user_id.parse().ok()?))
        })
        .filter(|(name, _)| !name.is_empty())
        .collect();
    let lower = text.to_lowercase();
    let mut out: Vec<UserId> = Vec::new();
    for (at, _) in lower.match_indices('@') {
        let rest = &lower[at + 1..];
        let ends_word = |n: usize| {
            rest[n..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric())
        };
        let full = names
            .iter()
            .filter(|(name, _)| rest.starts_with(name.as_str()) && ends_word(name.len()))
            .max_by_key(|(name, _)| name.len());
        let found = match full {
            Some((_, user)) => Some(*user),
            None => {
                let first: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
                let by_first: Vec<UserId> = names
                    .iter()
                    .filter(|(name, _)| {
                        !first.is_empty() && name.split_whitespace().next() == Some(first.as_str())
                    })
                    .map(|(_, u)| *u)
                    .collect();
                (by_first.len() == 1).then(|| by_first[0])
            }
        };
        if let Some(user) = found
            && !out.contains(&user)
        {
            out.push(user);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, seed: u8) -> MemberView {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([seed; 32]);
        let id = crate::identity::Identity::generate(&mut rng, "x")
            .unwrap()
            .user_id();
        MemberView {
            user_id: id.to_string(),
            name: name.into(),
            department: None,
            admin: false,
            left_organisation: false,
        }
    }

    #[test]
    fn at_names_call_members_by_full_or_unique_first_name() {
        let members = [
            member("Anna Schmidt", 1),
            member("Anna Berg", 2),
            member("Ben Krüger ✔", 3),
        ];
        let ids: Vec<UserId> = members.iter().map(|m| m.user_id.parse().unwrap()).collect();
        assert_eq!(
            mentioned("@Anna Schmidt kommst du?", &members),
            vec![ids[0]]
        );
        // Two Annas: "@Anna" alone calls nobody; Ben by first name, mark ignored.
        assert_eq!(mentioned("@anna und @ben!", &members), vec![ids[2]]);
        assert_eq!(mentioned("@Ben Krüger @Ben Krüger", &members), vec![ids[2]]);
        assert!(mentioned("mail@annaschmidt.de", &members).is_empty());
        assert!(mentioned("kein at", &members).is_empty());
    }
}
