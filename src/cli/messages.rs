//! `flurfunk reply|edit|delete|react|versions`: acting on one message from the command
//! line (named by the id `history` prints after `#`, or its first 8+ characters).

use anyhow::{Result, bail};
use clap::Subcommand;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::{Request, Response};

use super::{local_time, printable, request};

#[derive(Subcommand)]
pub enum MessageAction {
    /// Answer a message (the answer shows it quoted; "@Name" calls a member).
    Reply {
        /// The conversation: a name, group or conversation id.
        conversation: String,
        /// The message: its id from `history` (after #) or the first 8+ characters.
        event: String,
        text: String,
    },
    /// Replace the text of one of your messages (everyone sees "edited").
    Edit {
        conversation: String,
        event: String,
        text: String,
    },
    /// Delete a message for everyone: yours, or anyone's in a group you are an admin of.
    /// Its text, file, edits and reactions are removed from every computer.
    /// `--for-me`: any message, from this computer only (the others keep it).
    Delete {
        conversation: String,
        event: String,
        #[arg(long)]
        for_me: bool,
    },
    /// React with an emoji (e.g. 👍); `--remove` takes your reaction back.
    React {
        conversation: String,
        event: String,
        #[arg(required_unless_present = "remove")]
        emoji: Option<String>,
        #[arg(long)]
        remove: bool,
    },
    /// Find messages: every word must occur (at a word's start, or inside one from four
    /// letters on; case and umlauts do not matter: "strasse" finds "Straße"), newest first.
    Search {
        #[arg(required = true)]
        words: Vec<String>,
        /// Only in this conversation (a name, group or conversation id).
        #[arg(long = "in", value_name = "WHO")]
        in_conversation: Option<String>,
        #[arg(long, default_value_t = flurfunk::app::DEFAULT_SEARCH_LIMIT)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Every version of an edited message, oldest first.
    Versions {
        conversation: String,
        event: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(dir: &DataDir, action: MessageAction) -> Result<()> {
    let (req, done) = match action {
        MessageAction::Reply {
            conversation,
            event,
            text,
        } => (
            Request::Reply {
                to: conversation,
                event,
                text,
            },
            "answer saved",
        ),
        MessageAction::Edit {
            conversation,
            event,
            text,
        } => (
            Request::Edit {
                to: conversation,
                event,
                text,
            },
            "edited",
        ),
        MessageAction::Delete {
            conversation,
            event,
            for_me,
        } if for_me => {
            let Response::Done = request(
                dir,
                Request::DeleteForMe {
                    to: conversation,
                    event,
                },
            )
            .await?
            else {
                bail!("unexpected reply");
            };
            outln!("deleted here (the others keep it)");
            return Ok(());
        }
        MessageAction::Delete {
            conversation,
            event,
            ..
        } => (
            Request::Delete {
                to: conversation,
                event,
            },
            "deleted for everyone",
        ),
        MessageAction::React {
            conversation,
            event,
            emoji,
            remove,
        } => (
            Request::React {
                to: conversation,
                event,
                emoji: if remove {
                    String::new()
                } else {
                    emoji.unwrap_or_default()
                },
            },
            if remove {
                "reaction taken back"
            } else {
                "reacted"
            },
        ),
        MessageAction::Search {
            words,
            in_conversation,
            limit,
            json,
        } => {
            let Response::Found { hits } = request(
                dir,
                Request::Search {
                    words: words.join(" "),
                    in_conversation,
                    limit,
                },
            )
            .await?
            else {
                bail!("unexpected reply");
            };
            for h in &hits {
                if json {
                    outln!("{}", serde_json::to_string(h)?);
                } else {
                    outln!(
                        "{}",
                        printable(&format!(
                            "{}  [{}] {}: {}  #{}",
                            local_time(h.wall_ms, true),
                            h.conversation_name,
                            h.author_name,
                            h.text,
                            &h.event_id[..8]
                        ))
                    );
                }
            }
            if hits.is_empty() && !json {
                outln!("nothing found");
            }
            return Ok(());
        }
        MessageAction::Versions {
            conversation,
            event,
            json,
        } => {
            let Response::Versions { versions } = request(
                dir,
                Request::Versions {
                    to: conversation,
                    event,
                },
            )
            .await?
            else {
                bail!("unexpected reply");
            };
            for v in &versions {
                if json {
                    outln!("{}", serde_json::to_string(v)?);
                } else {
                    outln!("{}  {}", local_time(v.wall_ms, true), printable(&v.text));
                }
            }
            return Ok(());
        }
    };
    match request(dir, req).await? {
        Response::Sent { peers_online, .. } => {
            if peers_online == 0 {
                outln!("{done}; nobody reachable now, it waits in the outbox");
            } else {
                outln!("{done}; sending");
            }
            Ok(())
        }
        _ => bail!("unexpected reply"),
    }
}
