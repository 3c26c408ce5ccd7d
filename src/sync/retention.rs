//! Message retention (docs/PROTOCOL.md, "Retention"): with the network's policy
//! `keep_messages_s` (the organisation's maximum) or a group's own period (admin
//! statement kind 6, `GroupRetention`), every node deletes the text, file, edits and reactions of a message
//! once it is older than that by its signed `wall_ms`, as a deletion for everyone does,
//! and takes a copy whose body a peer dropped for that reason. What the conversation needs
//! to stay whole (membership, keys, deletions, the authors' chains) stays.

use super::*;

/// A whole pass over the stored history starts this often (a period is a day at least;
/// each pass reads every stored event).
pub const RETENTION_SWEEP_MS: u64 = 60 * 60_000;
/// Events one turn of a pass reads at most (the pass goes on a second later).
pub const RETENTION_TURN_EVENTS: usize = 20_000;
/// Messages one turn deletes at most (each with its edits, reactions and file).
pub const RETENTION_TURN_MESSAGES: u64 = 256;
/// A copy whose body was dropped for its age is taken this long before the message is
/// due by this node's own clock (clocks differ; a quarter of the period at most).
pub const RETENTION_SKEW_MS: u64 = 24 * 3600 * 1000;

/// How far a `dropped_before_ms` lies behind this node's clock at least: the tools raise
/// it to now less a period plus its margin, at most three quarters of a day.
pub const RETENTION_FLOOR_LAG_MS: u64 = 18 * 3600 * 1000;

/// Where the pass over the history is (in memory: a restart starts a new one).
#[derive(Debug, Default)]
pub(super) struct RetentionState {
    next_ms: u64,
    /// Conversations this pass has still to read; the last is being read.
    queue: Vec<ConversationId>,
    /// The last event read in it.
    cursor: Option<OrderKey>,
}

impl<S: Store> Engine<S> {
    /// Seconds messages of `conv` are kept: the shorter of the network's period (the
    /// organisation's maximum, policy tag 8) and the group's own (statement kind 6);
    /// `None`: kept for good.
    pub fn keep_messages_s(&self, conv: &ConversationId) -> Option<u64> {
        let network = self.admin.policy.keep_messages_s;
        match (network, self.admin.group_retention.keep_s(conv)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The group's own period (statement kind 6), also where the network's is shorter.
    pub fn group_keep_messages_s(&self, conv: &ConversationId) -> Option<u64> {
        self.admin.group_retention.keep_s(conv)
    }

    fn keep_ms(&self, conv: &ConversationId) -> Option<u64> {
        self.keep_messages_s(conv).map(|s| s.saturating_mul(1000))
    }

    /// Whether a message of `conv` sent at `wall_ms` is past the retention at `now_ms`.
    pub(super) fn is_expired(&self, conv: &ConversationId, wall_ms: u64, now_ms: u64) -> bool {
        self.keep_ms(conv)
            .is_some_and(|keep| wall_ms.saturating_add(keep) < now_ms)
    }

    /// Whether a peer's copy of a message of `conv` sent at `wall_ms`, its body dropped,
    /// is explained by its age: past the retention less a margin for clocks that differ,
    /// or older than what an earlier, shorter retention (the network's or a group's) may
    /// have dropped.
    pub(super) fn expired_for_peer(
        &self,
        conv: &ConversationId,
        wall_ms: u64,
        now_ms: u64,
    ) -> bool {
        // No honest tool sets it later than now less the receivers' margin for the
        // shortest period (three quarters of a day): an admin machine's clock far ahead
        // must not open the whole history to emptied copies.
        let dropped_before = self
            .admin
            .policy
            .dropped_before_ms
            .max(self.admin.group_retention.dropped_before_ms(conv))
            .map(|t| t.min(now_ms.saturating_sub(RETENTION_FLOOR_LAG_MS)));
        dropped_before.is_some_and(|t| wall_ms < t)
            || self.keep_ms(conv).is_some_and(|keep| {
                let margin = RETENTION_SKEW_MS.min(keep / 4);
                wall_ms.saturating_add(keep) < now_ms.saturating_add(margin)
            })
    }

    /// Delete what has grown too old: a pass over every conversation's stored events
    /// every `RETENTION_SWEEP_MS`, in turns of about `RETENTION_TURN_EVENTS` events or
    /// `RETENTION_TURN_MESSAGES` deleted messages (checked per page of 256), a second
    /// apart. Messages that arrive
    /// already too old are dealt with on arrival (`purge_on_arrival`). An error is logged
    /// and the conversation being read is left to the next pass; nothing of the turn is
    /// kept.
    pub(super) fn expire_messages(&mut self, now_ms: u64) {
        if now_ms < self.admin.retention.next_ms {
            return;
        }
        if self.admin.retention.queue.is_empty() {
            // The conversations with a period: all under the network's, else the groups
            // named by their own.
            self.admin.retention.queue = self
                .convs
                .keys()
                .filter(|c| self.keep_ms(c).is_some())
                .copied()
                .collect();
            self.admin.retention.cursor = None;
            if self.admin.retention.queue.is_empty() {
                self.admin.retention.next_ms = now_ms.saturating_add(RETENTION_SWEEP_MS);
                return;
            }
        }
        let told = self.notifications.len();
        let mut batch = Batch::default();
        let (mut read, mut expired) = (0usize, 0u64);
        let mut queue = std::mem::take(&mut self.admin.retention.queue);
        let mut cursor = self.admin.retention.cursor;
        let turn: Result<(), SyncError> = (|| {
            while let Some(&conv) = queue.last() {
                if read >= RETENTION_TURN_EVENTS || expired >= RETENTION_TURN_MESSAGES {
                    break;
                }
                // The period as it is now (a statement may have changed it mid-pass).
                let Some(keep) = self.keep_ms(&conv) else {
                    queue.pop();
                    cursor = None;
                    continue;
                };
                let cutoff = now_ms.saturating_sub(keep);
                let page = self.store.events_after_key(&conv, cursor, 256)?;
                if page.is_empty() {
                    queue.pop();
                    cursor = None;
                    continue;
                }
                for e in &page {
                    read += 1;
                    cursor = Some(e.order_key());
                    // `has_body`: a text signed without one (kept outside a removed
                    // member's chain) has nothing to drop, and would be "dropped" again
                    // at every pass.
                    if e.header.kind == EventKind::Text
                        && e.has_body()
                        && !e.is_purged()
                        && e.header.wall_ms < cutoff
                    {
                        self.purge_message(e, &mut batch)?;
                        expired += 1;
                    }
                }
            }
            if !batch.insert_events.is_empty() {
                self.store.apply(std::mem::take(&mut batch))?;
            }
            Ok(())
        })();
        match turn {
            Ok(()) => {
                if expired > 0 {
                    tracing::info!(
                        messages = expired,
                        "deleted messages older than the organisation keeps them"
                    );
                    self.flush_due = true;
                    self.stats.messages_expired += expired;
                }
                let more = !queue.is_empty();
                self.admin.retention.queue = queue;
                self.admin.retention.cursor = cursor;
                self.admin.retention.next_ms =
                    now_ms.saturating_add(if more { 1_000 } else { RETENTION_SWEEP_MS });
            }
            Err(e) => {
                // What the turn said about messages it did not delete is taken back; the
                // conversation it was reading waits for the next pass (one that cannot be
                // read must not stop the others).
                self.notifications.truncate(told);
                let skipped = queue.pop();
                tracing::warn!(error = %e, conversation = ?skipped, "could not delete old messages there; trying again at the next pass");
                let more = !queue.is_empty();
                self.admin.retention = RetentionState {
                    next_ms: now_ms.saturating_add(if more { 1_000 } else { RETENTION_SWEEP_MS }),
                    queue,
                    cursor: None,
                };
            }
        }
    }
}
