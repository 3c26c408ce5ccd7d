//! Group receipts: "delivered" and "read" for a group message go to its author alone.
//!
//! In a 1:1 chat a receipt is an event like any other (two members, so it costs nothing
//! extra, and a relay carries it to a sender who is away). In a group of n, receipts as
//! events would make every member store every other member's receipts: n² per message.
//! Instead a reader signs a `wire::Receipt` per author ("I hold your events up to seq s and
//! have read up to here") and sends it straight to the author when connected, else one hop
//! back along the way that author's events came (`routes`), where the next node does the
//! same, at most `MAX_RECEIPT_HOPS` times. Nobody but the author stores it. Receipts are
//! cumulative, so a lost one is made good by the next; a receipt with no route yet waits
//! (own ones only, latest per author) until one appears.

use super::*;
use crate::crypto::LABEL_RECEIPT;
use crate::store::ReaderPosition;

/// Hops a group receipt may travel. Routes follow the paths events took, which in a mesh
/// of bounded degree are about log(n) long; 8 covers a few thousand nodes with room to spare.
pub const MAX_RECEIPT_HOPS: u8 = 8;
/// Own receipts waiting for a route, at most (one per conversation and author).
pub const MAX_RECEIPTS_OUT: usize = 4096;
/// Newest receipt passed on per (conversation, author, reader): anything not newer is
/// dropped, so replays and routing cycles end at once.
pub const MAX_RECEIPTS_SEEN: usize = 16 * 1024;
/// Stored events scanned to find whose messages a "read" covers.
const MAX_READ_SCAN_EVENTS: usize = 4096;

/// Texts looked at per group at start-up to acknowledge again (see `receipts_after_start`).
const RESTART_RECEIPT_EVENTS: usize = 64;

impl<S: Store> Engine<S> {
    /// Group receipts are not stored by the reader, so one held back when the node stopped
    /// would be lost: at start-up each group's recent authors are acknowledged again.
    pub(super) fn receipts_after_start(&mut self) -> Result<(), SyncError> {
        let me = self.me.user_id();
        let groups: Vec<ConversationId> = self
            .convs
            .iter()
            .filter(|(_, s)| {
                s.kind() == Some(ConversationKind::Group) && s.membership.is_member(&me)
            })
            .map(|(c, _)| *c)
            .collect();
        for conv in groups {
            let recent = self
                .store
                .events_before(&conv, None, RESTART_RECEIPT_EVENTS)?;
            let authors: BTreeSet<UserId> = recent
                .iter()
                .filter(|e| e.header.kind == EventKind::Text && e.header.author != me)
                .map(|e| e.header.author)
                .collect();
            if !authors.is_empty() {
                self.receipt_due.insert(conv);
                self.receipt_authors
                    .entry(conv)
                    .or_default()
                    .extend(authors);
            }
        }
        Ok(())
    }

    /// After a commit: tell each author whose texts arrived since the last receipt how far
    /// this node durably holds its events.
    pub(super) fn send_group_receipts(&mut self, conv: ConversationId) -> Result<(), SyncError> {
        let authors = self.receipt_authors.remove(&conv).unwrap_or_default();
        let read = if self.policy().read_receipts {
            self.store.read_marker(&conv)?
        } else {
            None
        };
        let me = self.me.user_id();
        for author in authors {
            if author == me {
                continue;
            }
            let Some(state) = self.convs.get(&conv) else {
                return Ok(());
            };
            let delivered_seq = state.vv.get(&author).copied().unwrap_or(0);
            let receipt = self.sign_receipt(conv, author, delivered_seq, read);
            self.route_receipt(None, receipt);
        }
        Ok(())
    }

    /// After the own read marker moved from `old` to `upto`: tell the authors of the texts
    /// in between.
    pub(super) fn send_read_receipts(
        &mut self,
        conv: ConversationId,
        old: Option<OrderKey>,
        upto: OrderKey,
    ) -> Result<(), SyncError> {
        let me = self.me.user_id();
        let mut authors = BTreeSet::new();
        let mut after = old;
        let mut scanned = 0;
        'pages: while scanned < MAX_READ_SCAN_EVENTS {
            let page = self.store.events_after_key(&conv, after, 256)?;
            let Some(last) = page.last() else { break };
            after = Some(last.order_key());
            for e in &page {
                scanned += 1;
                if e.order_key() > upto {
                    break 'pages;
                }
                if e.header.kind == EventKind::Text && e.header.author != me {
                    authors.insert(e.header.author);
                }
            }
        }
        let Some(state) = self.convs.get(&conv) else {
            return Ok(());
        };
        let positions: Vec<(UserId, u64)> = authors
            .into_iter()
            .map(|a| (a, state.vv.get(&a).copied().unwrap_or(0)))
            .collect();
        for (author, delivered_seq) in positions {
            let receipt = self.sign_receipt(conv, author, delivered_seq, Some(upto));
            self.route_receipt(None, receipt);
        }
        Ok(())
    }

    fn sign_receipt(
        &self,
        conversation: ConversationId,
        author: UserId,
        delivered_seq: u64,
        read: Option<OrderKey>,
    ) -> Receipt {
        let mut receipt = Receipt {
            conversation,
            author,
            reader: self.me.user_id(),
            delivered_seq,
            read,
            hops_left: MAX_RECEIPT_HOPS,
            signature: [0; 64],
        };
        receipt.signature = self.me.sign(LABEL_RECEIPT, &receipt.signed_bytes());
        receipt
    }

    /// Send a receipt one hop closer to its author: straight to it when connected, else
    /// back the way its events came. Own receipts without a route wait for one; others'
    /// are dropped (the reader's next receipt covers them). Whether it went on its way.
    fn route_receipt(&mut self, from: Option<UserId>, receipt: Receipt) -> bool {
        let key = (receipt.conversation, receipt.author);
        let direct = self
            .peers
            .get(&receipt.author)
            .is_some_and(|p| p.role.is_some());
        let next = if direct {
            Some(receipt.author)
        } else {
            self.routes.get(&key).copied().filter(|p| {
                Some(*p) != from
                    && self.peers.contains_key(p)
                    && self.is_shareable(&receipt.conversation, p)
            })
        };
        match (next, from) {
            (Some(peer), _) => {
                if from.is_some() {
                    self.stats.receipts_forwarded += 1;
                } else {
                    self.stats.receipts_sent += 1;
                }
                // Sent with the next forward tick, all receipts for one peer in one frame.
                let queue = self.receipts_next.entry(peer).or_default();
                if queue.len() < wire::MAX_RECEIPTS_PER_FRAME {
                    queue.push(receipt);
                    true
                } else {
                    self.stats.receipts_dropped += 1;
                    false
                }
            }
            (None, None) => {
                if self.receipts_out.len() < MAX_RECEIPTS_OUT
                    || self.receipts_out.contains_key(&key)
                {
                    self.receipts_out.insert(key, receipt);
                } else {
                    self.stats.receipts_dropped += 1;
                }
                false
            }
            (None, Some(_)) => {
                self.stats.receipts_dropped += 1;
                false
            }
        }
    }

    /// Own receipts that had no route: try again; then send what is queued per peer.
    pub(super) fn retry_receipts(&mut self) {
        if !self.receipts_out.is_empty() {
            let waiting = std::mem::take(&mut self.receipts_out);
            for (_, receipt) in waiting {
                self.route_receipt(None, receipt);
            }
        }
        for (peer, receipts) in std::mem::take(&mut self.receipts_next) {
            self.send(peer, SyncMessage::Receipts { receipts });
        }
    }

    /// Whether this receipt says more than the newest one passed on for the same reader
    /// and author.
    fn receipt_would_be_news(&self, receipt: &Receipt) -> bool {
        let key = (receipt.conversation, receipt.author, receipt.reader);
        self.receipts_seen
            .get(&key)
            .is_none_or(|(seq, read)| receipt.delivered_seq > *seq || receipt.read > *read)
    }

    /// Remember the newest receipt passed on per reader and author.
    fn record_receipt(&mut self, receipt: &Receipt) {
        let key = (receipt.conversation, receipt.author, receipt.reader);
        make_room(&mut self.receipts_seen, &key, MAX_RECEIPTS_SEEN);
        let entry = self.receipts_seen.entry(key).or_insert((0, None));
        entry.0 = entry.0.max(receipt.delivered_seq);
        entry.1 = entry.1.max(receipt.read);
    }

    /// Whether a receipt for one of our own messages moves the reader's position on.
    fn position_is_news(state: &ConversationState, me: &UserId, receipt: &Receipt) -> bool {
        let (delivered, read) = state.reader_position(me, &receipt.reader);
        receipt.delivered_seq > delivered || receipt.read > read
    }

    /// Receipts from a peer: those for own messages update the delivery state (and are
    /// stored), the others go on towards their author. A receipt whose signature does not
    /// verify is an error of the peer that sent it: honest nodes check before passing on.
    pub(super) fn handle_receipts(
        &mut self,
        now_ms: u64,
        peer: UserId,
        receipts: Vec<Receipt>,
    ) -> Result<(), SyncError> {
        if !self.knows_role(&peer) {
            return Ok(());
        }
        let me = self.me.user_id();
        let mut forged = false;
        let mut positions: Vec<ReaderPosition> = Vec::new();
        for receipt in receipts {
            let Some(state) = self.convs.get(&receipt.conversation) else {
                continue;
            };
            // Views of membership may differ for a moment; such a receipt is just not used.
            if !state.membership.is_member(&receipt.reader)
                || !state.membership.is_member(&receipt.author)
                || self.is_revoked(&receipt.reader)
            {
                continue;
            }
            // Only a receipt that would change something is worth a signature check
            // (most copies a node is passed say nothing new); news is recorded only
            // once it verifies, so a forged one cannot shadow the real one.
            let mine = receipt.author == me;
            let useful = if mine {
                Self::position_is_news(state, &me, &receipt)
            } else {
                receipt.hops_left > 0 && self.receipt_would_be_news(&receipt)
            };
            if !useful {
                if !mine {
                    self.stats.receipts_dropped += 1;
                }
                continue;
            }
            if crypto::verify(
                &receipt.reader,
                LABEL_RECEIPT,
                &receipt.signed_bytes(),
                &receipt.signature,
            )
            .is_err()
            {
                forged = true;
                continue;
            }
            if mine {
                // The reader, a member (checked above, and it signed this), durably holds
                // our events up to here, so it can pass them on: they leave the outbox,
                // also when the receipt came the long way round (a later direct copy at
                // the same seq would be no news, and not looked at).
                self.outbox_held(receipt.conversation, receipt.delivered_seq)?;
                positions.push(ReaderPosition {
                    conversation: receipt.conversation,
                    reader: receipt.reader,
                    delivered_seq: receipt.delivered_seq,
                    read: receipt.read,
                });
            } else {
                let mut passed_on = receipt.clone();
                // The hop count is not signed: a peer may claim any, we allow ours.
                passed_on.hops_left = receipt.hops_left.min(MAX_RECEIPT_HOPS) - 1;
                // Seen only once passed on: a copy that arrives when a route exists must
                // not be dropped as old news because this one found none.
                if self.route_receipt(Some(peer), passed_on) {
                    self.record_receipt(&receipt);
                }
            }
        }
        if !positions.is_empty() {
            let mut stored = Vec::with_capacity(positions.len());
            let mut changed = BTreeSet::new();
            for p in positions {
                let Some(state) = self.convs.get_mut(&p.conversation) else {
                    continue;
                };
                state.apply_reader_position(&me, &p.reader, p.delivered_seq, p.read);
                let (delivered_seq, read) = state.reader_position(&me, &p.reader);
                let merged = ReaderPosition {
                    delivered_seq,
                    read,
                    ..p
                };
                stored.push(merged);
                changed.insert(p.conversation);
            }
            self.store.apply(Batch {
                reader_positions: stored,
                ..Batch::default()
            })?;
            self.positions_pending_since.get_or_insert(now_ms);
            for conversation in changed {
                self.notifications
                    .push_back(Notification::ReceiptsChanged { conversation });
            }
        }
        if forged {
            self.stats.malformed_frames += 1;
            return Err(SyncError::Wire(WireError::Invalid {
                what: "receipt signature",
            }));
        }
        Ok(())
    }
}
