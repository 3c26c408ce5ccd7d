//! What the terminal shows: events and history lines in words, times, names made safe
//! to print (peers' control and direction characters replaced), and output that ends
//! quietly when its reader goes away.

use super::*;

pub(crate) fn human_event(event: &NodeEvent) -> Option<String> {
    Some(match event {
        NodeEvent::Listening { address } => format!("listening on {address}"),
        NodeEvent::Message {
            conversation_name,
            author_name,
            text,
            for_some_members,
            ..
        } => {
            let mark = if *for_some_members {
                " (not readable by everyone in the group)"
            } else {
                ""
            };
            format!("[{conversation_name}] {author_name}: {text}{mark}")
        }
        NodeEvent::Mentioned {
            conversation_name,
            author_name,
            text,
            ..
        } => format!("[{conversation_name}] {author_name} mentions you (edited): {text}"),
        NodeEvent::PeerOnline { name, .. } => format!("{name} is online"),
        NodeEvent::PeerOffline { name, .. } => format!("{name} went offline"),
        NodeEvent::ConversationCreated { name, kind, .. } => {
            format!("new {kind} conversation: {name}")
        }
        NodeEvent::Warning { message } => format!("warning: {message}"),
        NodeEvent::DiskFull { what } => format!(
            "the disk is full ({what}): files wait until there is room; nothing saved is lost"
        ),
        NodeEvent::Misbehaviour {
            what,
            conversation_name,
            name,
            ..
        } => match what.as_str() {
            "wrong_key" => format!(
                "warning: {name}'s device sent a key in \"{conversation_name}\" that does not fit for everyone; a member proved it, and nobody uses that key. Check that device (tampering or a faulty installation)."
            ),
            _ => format!(
                "warning: {name}'s device sent two different versions of one message in \"{conversation_name}\"; Flurfunk keeps one of them for everyone. Check that device (a copied profile, a restored backup, or tampering)."
            ),
        },
        NodeEvent::Retracted { .. } => {
            "a message was withdrawn (its author had been removed)".into()
        }
        NodeEvent::LeftOrganisation { name, user_id } => {
            format!("{name} ({user_id}) has left the organisation (revoked by the network's admin)")
        }
        _ => return None,
    })
}

pub(crate) fn history_line(m: &MessageItem, members: usize) -> String {
    if let Some(notice) = &m.notice {
        let subject = m.subject_name.as_deref().unwrap_or("?");
        let line = match notice.as_str() {
            "created" => format!("{} created the group", m.author_name),
            "added" => format!("{} added {subject}", m.author_name),
            "removed" => format!("{} removed {subject}", m.author_name),
            "left" => format!("{} left the group", m.author_name),
            "promoted" => format!("{} made {subject} an admin", m.author_name),
            "renamed" => format!("{} renamed the group to \"{}\"", m.author_name, m.text),
            "key_changed" => format!("{} has a new key", m.author_name),
            other => format!("{} changed the group ({other})", m.author_name),
        };
        return format!("{}  -- {line}", local_time(m.wall_ms, true));
    }
    let ticks = if !m.own {
        ""
    } else if m.read_by.len() + 1 >= members {
        "  ✓✓ read"
    } else if m.waiting_for.is_empty() {
        "  ✓✓"
    } else {
        "  ✓"
    };
    if m.deleted {
        return format!(
            "{}  {}: (message deleted)  #{}",
            local_time(m.wall_ms, true),
            m.author_name,
            &m.event_id[..8]
        );
    }
    let quote = m.reply_to.as_ref().map_or(String::new(), |q| {
        if q.deleted {
            "[re: deleted message] ".to_string()
        } else if q.author_name.is_empty() {
            "[re: a message not here] ".to_string()
        } else {
            format!("[re {}: \"{}\"] ", q.author_name, q.text)
        }
    });
    let edited = if m.edited { " (edited)" } else { "" };
    let reactions = if m.reactions.is_empty() {
        String::new()
    } else {
        let each: Vec<String> = m
            .reactions
            .iter()
            .map(|r| format!("{} {}", r.emoji, r.users.len()))
            .collect();
        format!("  [{}]", each.join(", "))
    };
    let file = m.file.as_ref().map_or(String::new(), |f| {
        let here = if f.here { "" } else { ", not here yet" };
        format!(
            "[file {} ({}{here}) id {}] ",
            f.name,
            flurfunk::files::human_size(f.size),
            &m.event_id[..12]
        )
    });
    format!(
        "{}  {}: {quote}{file}{}{edited}{reactions}  #{}{}",
        local_time(m.wall_ms, true),
        m.author_name,
        m.text,
        &m.event_id[..8],
        ticks
    )
}

pub(crate) fn local_time(ms: u64, with_date: bool) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(ms as i64).single() {
        Some(t) if with_date => t.format("%Y-%m-%d %H:%M").to_string(),
        Some(t) => t.format("%H:%M").to_string(),
        None => "?".into(),
    }
}

/// What a peer wrote, safe for a terminal: one line (a line break shows as ↵, so no
/// text can forge a line of its own), control characters (escape sequences) and
/// characters that reorder or hide text shown as U+FFFD.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '↵',
            c if c.is_control() || flurfunk::identity::is_deceptive_char(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

pub(crate) fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text.replace('\n', " ");
    if flat.chars().count() > max_chars {
        format!("{}…", flat.chars().take(max_chars).collect::<String>())
    } else {
        flat
    }
}

pub(crate) fn fingerprint(id: &Identity) -> String {
    safety_number(&id.user_id(), &id.user_id())
        .split(' ')
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn network_label(key: &NetworkKey) -> String {
    if key.is_demo() {
        format!("DEMO network ({})", key.fingerprint())
    } else if let Some(admin) = key.admin() {
        format!(
            "{} (managed, admin {})",
            key.fingerprint(),
            flurfunk::admin::fingerprint(&admin)
        )
    } else {
        format!("{} (unmanaged)", key.fingerprint())
    }
}

/// Write to standard output; a closed pipe ends the program quietly (exit 0), any other
/// failure with a one-line error.
pub(crate) fn write_out(args: std::fmt::Arguments) {
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("flurfunk: cannot write the output: {e}");
        std::process::exit(1);
    }
}
