//! The search index: folded words -> the texts that contain (or once contained) them, in
//! memory only. Built in slices after start (`Engine::index_step`, from the node's tick)
//! and kept up to date as texts and edits are stored; until it is ready, a search scans.
//!
//! It only proposes: every candidate is opened and checked against the message as it
//! reads now (newest edit, deleted, deleted for me, still a member's), so words of an
//! earlier version, a deleted or a hidden message never show up, and nothing has to be
//! taken out of the index. Nothing of it is written to disk.

use std::collections::{BTreeMap, HashMap};

use crate::wire::{ConversationId, EventId, OrderKey};

/// One indexed text.
#[derive(Clone, Copy, Debug)]
pub(super) struct Doc {
    pub conversation: ConversationId,
    pub event_id: EventId,
    /// When it was written (its author's clock): candidates are opened newest first.
    pub wall_ms: u64,
}

#[derive(Debug, Default)]
pub(super) struct SearchIndex {
    docs: Vec<Doc>,
    by_id: HashMap<EventId, u32>,
    /// Folded word -> numbers of the docs with it (ascending as added; a doc appears
    /// again when an edit brings the word back).
    words: BTreeMap<String, Vec<u32>>,
    /// Conversations still to read after start, each with the last order key read.
    backlog: Vec<(ConversationId, Option<OrderKey>)>,
    ready: bool,
    postings: usize,
}

impl SearchIndex {
    /// An index to be built from these conversations' stored texts.
    pub fn new(backlog: Vec<ConversationId>) -> Self {
        SearchIndex {
            ready: backlog.is_empty(),
            backlog: backlog.into_iter().map(|c| (c, None)).collect(),
            ..SearchIndex::default()
        }
    }

    /// Every stored text has been read once.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The next conversation to read and where to go on.
    pub fn next_slice(&self) -> Option<(ConversationId, Option<OrderKey>)> {
        self.backlog.last().copied()
    }

    /// The slice was read up to `last` (None: the conversation is done).
    pub fn slice_read(&mut self, last: Option<OrderKey>) {
        match last {
            Some(key) => {
                if let Some(entry) = self.backlog.last_mut() {
                    entry.1 = Some(key);
                }
            }
            None => {
                self.backlog.pop();
                self.ready = self.backlog.is_empty();
            }
        }
    }

    /// Index `text` (a text, a file's name and caption, or an edit's new text) under the
    /// message `event_id`. `wall_ms` of the message itself, where known, wins over an
    /// edit's.
    pub fn add(
        &mut self,
        conversation: ConversationId,
        event_id: EventId,
        wall_ms: u64,
        is_original: bool,
        text: &str,
    ) {
        let n = match self.by_id.get(&event_id) {
            Some(n) => {
                if is_original && let Some(doc) = self.docs.get_mut(*n as usize) {
                    doc.wall_ms = wall_ms;
                }
                *n
            }
            None => {
                let Ok(n) = u32::try_from(self.docs.len()) else {
                    return;
                };
                self.docs.push(Doc {
                    conversation,
                    event_id,
                    wall_ms,
                });
                self.by_id.insert(event_id, n);
                n
            }
        };
        let mut words = super::search::words(text);
        words.sort();
        words.dedup();
        for w in words {
            let list = self.words.entry(w).or_default();
            if list.last() != Some(&n) {
                list.push(n);
                self.postings += 1;
            }
        }
    }

    /// Docs that have every query word (at a word's start, or inside one from four
    /// letters on), newest first.
    pub fn candidates(&self, query: &[String], only: Option<ConversationId>) -> Vec<Doc> {
        let mut found: Option<Vec<u32>> = None;
        for q in query {
            let mut docs: Vec<u32> = Vec::new();
            if q.chars().count() >= 4 {
                for (w, list) in &self.words {
                    if w.contains(q.as_str()) {
                        docs.extend_from_slice(list);
                    }
                }
            } else {
                for (w, list) in self.words.range(q.clone()..) {
                    if !w.starts_with(q.as_str()) {
                        break;
                    }
                    docs.extend_from_slice(list);
                }
            }
            docs.sort_unstable();
            docs.dedup();
            found = Some(match found {
                None => docs,
                Some(had) => intersect(&had, &docs),
            });
            if found.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        let mut out: Vec<Doc> = found
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| self.docs.get(n as usize).copied())
            .filter(|d| only.is_none_or(|c| c == d.conversation))
            .collect();
        out.sort_by_key(|d| std::cmp::Reverse(d.wall_ms));
        out
    }

    /// (texts, distinct words, postings): what the index holds.
    pub fn size(&self) -> (usize, usize, usize) {
        (self.docs.len(), self.words.len(), self.postings)
    }
}

/// Both sorted lists' common elements.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_need_every_word_by_prefix_or_inside_a_compound() {
        let c = ConversationId([1; 32]);
        let mut index = SearchIndex::new(Vec::new());
        index.add(c, EventId([1; 32]), 10, true, "Streusalz kommt Dienstag");
        index.add(c, EventId([2; 32]), 20, true, "Salz ist alle");
        index.add(c, EventId([3; 32]), 30, true, "Die Straße ist gesperrt");
        // An edit adds words to its message; the message keeps its own time.
        index.add(c, EventId([1; 32]), 40, false, "Streusalz kommt Mittwoch");
        let ids = |q: &str| -> Vec<u8> {
            index
                .candidates(&super::super::search::words(q), None)
                .iter()
                .map(|d| d.event_id.0[0])
                .collect()
        };
        assert_eq!(ids("salz"), vec![2, 1], "newest first, inside a compound");
        assert_eq!(ids("sal"), vec![2], "short words only at a word's start");
        assert_eq!(ids("STRASSE"), vec![3]);
        assert_eq!(ids("salz mittwoch"), vec![1]);
        assert_eq!(
            ids("salz dienstag"),
            vec![1],
            "an old version proposes; the check decides"
        );
        assert!(ids("salz strasse").is_empty());
        assert!(index.candidates(&[], None).is_empty());
        assert!(
            index
                .candidates(
                    &super::super::search::words("salz"),
                    Some(ConversationId([2; 32]))
                )
                .is_empty()
        );
        assert_eq!(index.size().0, 3);
    }
}
