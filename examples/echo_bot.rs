//! echo_bot: a colleague who is always there. It accepts every 1:1 chat and every group it
//! is added to, and answers each message with the text and the times it measured, so a
//! tester alone at a desk can try every feature.
//!
//! ```text
//! cargo run --release --example echo_bot -- --data-dir /tmp/echo-bot --no-mdns \
//!     --peer /ip4/127.0.0.1/tcp/47110
//! ```

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::launch;
use flurfunk::node::{NodeEvent, NodeHandle};
use flurfunk::wire::{ConversationId, Role};
use tokio::sync::broadcast::error::RecvError;

/// Prefix of every answer; messages starting with it are never answered, so two bots in
/// one group cannot ping-pong forever.
const ECHO_PREFIX: &str = "Echo: ";
/// Answers whose delivery receipt is awaited; older ones are forgotten (bounded memory).
const MAX_PENDING: usize = 1024;

#[derive(Parser)]
#[command(about = "Flurfunk echo bot: answers every message with its text and round trip")]
struct Cli {
    /// Where the bot keeps its identity and messages.
    #[arg(long, default_value = "echo-bot-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Display name on the network.
    #[arg(long, default_value = "Echo-Bot")]
    name: String,
    #[command(flatten)]
    net: common::NetArgs,
}

struct Pending {
    conversation: ConversationId,
    recipient: String,
    sent: Instant,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    common::init_logging();
    let dir = DataDir::new(&cli.data_dir);
    let identity = common::prepare(&dir, &cli.name, &cli.net)?;
    let options = cli.net.launch_options(Role::Member);
    let mut running = launch::launch(&dir, options).await?;
    let node = running.node.clone();
    println!(
        "echo_bot {} ({}) in network {}",
        identity.display_name(),
        identity.user_id(),
        running.network_key.fingerprint()
    );
    let mut pending: HashMap<String, Pending> = HashMap::new();
    // Round trip of the last answer per conversation: sent -> stored by the recipient ->
    // delivery receipt back, all on this machine's clock.
    let mut last_round_trip: HashMap<ConversationId, Duration> = HashMap::new();
    let stop = launch::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            _ = &mut stop => break,
            e = running.events.recv() => e,
        };
        let event = match event {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                eprintln!("fell behind, {n} events skipped");
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        match event {
            NodeEvent::Listening { address } => println!("listening on {address}"),
            NodeEvent::PeerOnline { name, .. } => println!("{name} is online"),
            NodeEvent::ConversationCreated {
                conversation,
                kind,
                name,
            } if kind == "group" => {
                println!("added to group {name}");
                if let Ok(conv) = conversation.parse() {
                    let greeting = "Hallo! Ich bin der Echo-Bot und schicke jede Nachricht \
                                    zurück, mit der gemessenen Laufzeit.";
                    send(&node, conv, greeting.to_string()).await;
                }
            }
            NodeEvent::Message {
                conversation,
                conversation_name,
                author,
                author_name,
                wall_ms,
                text,
                ..
            } => {
                println!("[{conversation_name}] {author_name}: {text}");
                let Ok(conv) = conversation.parse::<ConversationId>() else {
                    continue;
                };
                if text.starts_with(ECHO_PREFIX) {
                    continue;
                }
                let transit_ms = common::now_ms().saturating_sub(wall_ms);
                let previous = match last_round_trip.get(&conv) {
                    Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1000.0),
                    None => "noch keine".to_string(),
                };
                let answer = format!(
                    "{ECHO_PREFIX}{text}\n(Laufzeit hierher {transit_ms} ms nach der Uhr des \
                     Absenders; Rundlauf meiner letzten Antwort: {previous})"
                );
                if let Some(event_id) = send(&node, conv, answer).await {
                    if pending.len() >= MAX_PENDING {
                        pending.clear();
                    }
                    pending.insert(
                        event_id,
                        Pending {
                            conversation: conv,
                            recipient: author,
                            sent: Instant::now(),
                        },
                    );
                }
                if let Err(e) = node.mark_read(conv).await {
                    eprintln!("cannot mark as read: {e}");
                }
            }
            NodeEvent::Receipt { conversation } => {
                let Ok(conv) = conversation.parse::<ConversationId>() else {
                    continue;
                };
                if !pending.values().any(|p| p.conversation == conv) {
                    continue;
                }
                let Ok(items) = node.messages(conv, None, 64).await else {
                    continue;
                };
                for item in items.iter().filter(|m| m.own) {
                    let delivered = pending
                        .get(&item.event_id)
                        .is_some_and(|p| item.delivered_to.contains(&p.recipient));
                    if delivered && let Some(p) = pending.remove(&item.event_id) {
                        last_round_trip.insert(conv, p.sent.elapsed());
                    }
                }
            }
            NodeEvent::Warning { message } => eprintln!("warning: {message}"),
            NodeEvent::Misbehaviour {
                what,
                conversation_name,
                name,
                ..
            } => eprintln!("warning: {name}'s device misbehaved in {conversation_name}: {what}"),
            _ => {}
        }
    }
    println!("stopping");
    node.shutdown().await?;
    Ok(())
}

async fn send(node: &NodeHandle, conversation: ConversationId, text: String) -> Option<String> {
    match node.send_text(conversation, text).await {
        Ok(id) => Some(id.to_string()),
        Err(e) => {
            eprintln!("cannot answer: {e}");
            None
        }
    }
}
