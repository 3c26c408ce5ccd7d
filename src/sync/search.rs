//! Search across the texts this node can read: words matched at the start of a word or,
//! from four letters on, inside one (German compounds: "salz" finds "Streusalz"), case and
//! umlauts folded (ä/ae, ö/oe, ü/ue, ß/ss), every word of the query required. Edited
//! messages are found by their newest text, deleted ones never, files by name and caption.
//!
//! The index (`search_index`) lives in memory only and is built in slices after start;
//! until it is ready a search decrypts newest first, page by page, and stops at `limit`
//! hits or `MAX_SEARCH_SCAN` texts. Either way every hit is opened and checked as the
//! message reads now. Nothing of it is written to disk.

use super::*;

/// Texts one search opens, newest first, across the conversations searched: the node's
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
    /// conversation or all. With the index ready, the whole history; before, the newest
    /// `MAX_SEARCH_SCAN` texts (decrypted one by one).
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
        let mut hits = if self.search_index.is_ready() {
            self.search_indexed(&query, only, limit)?
        } else {
            self.search_scan(&query, only, limit)?
        };
        hits.sort_by(|a, b| b.wall_ms.cmp(&a.wall_ms).then(b.order.cmp(&a.order)));
        hits.truncate(limit);
        Ok(hits)
    }

    /// The index proposes, each proposal is opened and checked as it reads now; at most
    /// `MAX_SEARCH_SCAN` are opened.
    fn search_indexed(
        &self,
        query: &[String],
        only: Option<ConversationId>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, SyncError> {
        let mut hits = Vec::new();
        for doc in self
            .search_index
            .candidates(query, only)
            .into_iter()
            .take(MAX_SEARCH_SCAN)
        {
            if hits.len() >= limit {
                break;
            }
            let (Some(state), Some(e)) = (
                self.convs.get(&doc.conversation),
                self.store.event(&doc.event_id)?,
            ) else {
                continue;
            };
            if e.header.conversation == doc.conversation
                && let Some(hit) = self.hit_of(state, &e, query)
            {
                hits.push(hit);
            }
        }
        Ok(hits)
    }

    /// Before the index is ready: newest first across conversations, page by page.
    fn search_scan(
        &self,
        query: &[String],
        only: Option<ConversationId>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, SyncError> {
        let convs: Vec<ConversationId> = match only {
            Some(c) => vec![c],
            None => self.convs.keys().copied().collect(),
        };
        let mut hits = Vec::new();
        let mut scanned = 0usize;
        // Each conversation is paged back on its own; the pages' newest texts are merged
        // by time.
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
                    if e.header.kind != EventKind::Text || e.is_purged() || state.is_outside(e) {
                        continue;
                    }
                    scanned += 1;
                    if let Some(hit) = self.hit_of(state, e, query) {
                        hits.push(hit);
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        Ok(hits)
    }

    /// `e` as a hit, if it is a readable text of its conversation, not deleted (for
    /// everyone or here) and its text as it reads now has every query word.
    fn hit_of(&self, state: &ConversationState, e: &Event, query: &[String]) -> Option<SearchHit> {
        if e.header.kind != EventKind::Text
            || e.is_purged()
            || state.is_outside(e)
            || self.hidden.contains(&e.id())
            || state.actions.deletion_of(e).is_some()
        {
            return None;
        }
        let text = match self.newest_edit(state, e) {
            Some((text, _)) => text,
            None => match state.decrypt(e)? {
                Content::Text { text, .. } => text,
                Content::Attachment(a) => format!("{} {}", a.name, a.caption),
                _ => return None,
            },
        };
        matches(query, &text).then(|| SearchHit {
            conversation: e.header.conversation,
            event_id: e.id(),
            author: e.header.author,
            order: e.order_key(),
            wall_ms: e.header.wall_ms,
            text,
        })
    }

    /// Add a text's or an edit's words to the index (its body just opened).
    pub(super) fn index_content(&mut self, event: &Event, content: &Content) {
        let h = &event.header;
        match (h.kind, content, event.target()) {
            (EventKind::Text, Content::Text { text, .. }, _) => {
                self.search_index
                    .add(h.conversation, event.id(), h.wall_ms, true, text);
            }
            (EventKind::Text, Content::Attachment(a), _) => {
                let text = format!("{} {}", a.name, a.caption);
                self.search_index
                    .add(h.conversation, event.id(), h.wall_ms, true, &text);
            }
            (EventKind::Edit, Content::Text { text, .. }, Some(target)) => {
                self.search_index
                    .add(h.conversation, target, h.wall_ms, false, text);
            }
            _ => {}
        }
    }

    /// Read up to about `budget` stored events into the index (the node calls it on its
    /// tick until it is ready). True once every conversation has been read.
    pub fn index_step(&mut self, budget: usize) -> Result<bool, SyncError> {
        let mut left = budget;
        while left > 0 {
            let Some((conv, after)) = self.search_index.next_slice() else {
                break;
            };
            let page = self.store.events_after_key(&conv, after, SEARCH_PAGE)?;
            let Some(last) = page.last().map(Event::order_key) else {
                self.search_index.slice_read(None);
                continue;
            };
            left = left.saturating_sub(page.len());
            for e in &page {
                if !matches!(e.header.kind, EventKind::Text | EventKind::Edit) || e.is_purged() {
                    continue;
                }
                let content = match self.convs.get(&conv) {
                    Some(state) if !state.is_outside(e) => state.decrypt(e),
                    _ => None,
                };
                if let Some(content) = content {
                    self.index_content(e, &content);
                }
            }
            self.search_index.slice_read(Some(last));
        }
        Ok(self.search_index.is_ready())
    }

    /// Whether the index has read every stored text, and (texts, distinct words,
    /// postings) in it.
    pub fn search_index_state(&self) -> (bool, (usize, usize, usize)) {
        (self.search_index.is_ready(), self.search_index.size())
    }
}

/// Stored events read into the search index per tick after start (a few ms).
pub(super) const INDEX_STEP_EVENTS: usize = 2_000;

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
