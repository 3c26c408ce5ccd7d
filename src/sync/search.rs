//! Search across the texts this node can read: words matched at the start of a word or,
//! from four letters on, inside one (German compounds: "salz" finds "Streusalz"), case and
//! umlauts folded (ä/ae, ö/oe, ü/ue, ß/ss), every word of the query required. Edited
//! messages are found by their newest text, deleted ones never, files by name and caption.
//!
//! Nothing is indexed or written: a search decrypts newest first, page by page, and stops
//! at `limit` hits or `MAX_SEARCH_SCAN` texts, so no plaintext index exists on disk and a
//! search costs a store read and a decryption per text looked at (`cargo bench --bench
//! core -- search`: 6 to 15 µs per text; 20,000 in 0.12 s, 100,000 in 1.5 s, 2 busy cores).

use super::*;

/// Texts one search looks at, newest first, across the conversations searched: the node's
/// event loop answers nothing else meanwhile, so a search must end (0.5 s here).
pub const MAX_SEARCH_SCAN: usize = 50_000;

/// One message found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchHit {
    pub conversation: ConversationId,
    pub event_id: EventId,
    pub author: UserId,
    pub order: OrderKey,
    pub wall_ms: u64,
    /// Its text as it reads now (the newest edit; for a file its name, then the caption).
    pub text: String,
}

/// Lower case with umlauts and ß spelled out, so "Strasse" finds "Straße" and "Mueller"
/// finds "Müller".
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            c => out.push(c),
        }
    }
    out
}

/// The words of a text, folded.
pub fn words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether every query word is found in `text` (at a word's start, or inside one for
/// query words of four letters or more).
pub fn matches(query: &[String], text: &str) -> bool {
    if query.is_empty() {
        return false;
    }
    let have = words(text);
    query.iter().all(|q| {
        have.iter().any(|w| {
            w.starts_with(q.as_str()) || (q.chars().count() >= 4 && w.contains(q.as_str()))
        })
    })
}

impl<S: Store> Engine<S> {
    /// Messages containing every word of `query`, newest first, at most `limit`, in one
    /// conversation or all.
    pub fn search(
        &self,
        query: &str,
        only: Option<ConversationId>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, SyncError> {
        let query = words(query);
        if query.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let convs: Vec<ConversationId> = match only {
            Some(c) => vec![c],
            None => self.convs.keys().copied().collect(),
        };
        let mut hits = Vec::new();
        let mut scanned = 0usize;
        // Newest first across conversations: each conversation is paged back on its
        // own; the pages' newest texts are merged by time.
        let mut cursors: Vec<(ConversationId, Option<OrderKey>, bool)> =
            convs.into_iter().map(|c| (c, None, false)).collect();
        while scanned < MAX_SEARCH_SCAN && hits.len() < limit {
            let mut progressed = false;
            for (conv, cursor, done) in cursors.iter_mut() {
                if *done || scanned >= MAX_SEARCH_SCAN {
                    continue;
                }
                let Some(state) = self.convs.get(conv) else {
                    *done = true;
                    continue;
                };
                let page = self.store.events_before(conv, *cursor, SEARCH_PAGE)?;
                let Some(first) = page.first() else {
                    *done = true;
                    continue;
                };
                *cursor = Some(first.order_key());
                progressed = true;
                for e in page.iter().rev() {
                    if e.header.kind != EventKind::Text
                        || e.is_purged()
                        || state.is_outside(e)
                        || self.hidden.contains(&e.id())
                    {
                        continue;
                    }
                    scanned += 1;
                    if state.actions.deletion_of(e).is_some() {
                        continue;
                    }
                    let text = match self.newest_edit(state, e) {
                        Some((text, _)) => text,
                        None => match state.decrypt(e) {
                            Some(Content::Text { text, .. }) => text,
                            Some(Content::Attachment(a)) => format!("{} {}", a.name, a.caption),
                            _ => continue,
                        },
                    };
                    if matches(&query, &text) {
                        hits.push(SearchHit {
                            conversation: *conv,
                            event_id: e.id(),
                            author: e.header.author,
                            order: e.order_key(),
                            wall_ms: e.header.wall_ms,
                            text,
                        });
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        hits.sort_by(|a, b| b.wall_ms.cmp(&a.wall_ms).then(b.order.cmp(&a.order)));
        hits.truncate(limit);
        Ok(hits)
    }
}

/// Events read per page while searching.
const SEARCH_PAGE: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<String> {
        words(s)
    }

    #[test]
    fn words_match_by_start_compounds_case_and_umlauts() {
        assert!(matches(&q("salz"), "Die Streusalz-Lieferung kommt"));
        assert!(matches(&q("Streu"), "Streusalz ist da"));
        assert!(matches(&q("strasse"), "Schild an der Bahnhofstraße"));
        assert!(matches(&q("Müller"), "Herr Mueller ruft zurück"));
        assert!(matches(&q("mueller"), "Herr Müller ruft zurück"));
        assert!(matches(&q("SALZ dienstag"), "Salz kommt Dienstag"));
        // Every word is needed; short words only at a word's start.
        assert!(!matches(&q("salz mittwoch"), "Salz kommt Dienstag"));
        assert!(!matches(&q("alz"), "Salz kommt"));
        assert!(!matches(&q(""), "Salz"));
        assert!(!matches(&q("  -- "), "Salz"));
    }
}
