//! Epoch keys of a conversation: which rekey is current, opening rekeys, complaints and
//! the rekeys they blame, and when this node must rotate or complain.

use super::*;

impl ConversationState {
    /// Whether a rekey was sealed to exactly the current members, each for its key now
    /// or one it replaced after the rekey (`Member::holds_key`).
    pub(super) fn sealed_to_members(&self, rekey: &Event) -> bool {
        let place = rekey.order_key();
        RekeyBody::decode(&rekey.public).is_ok_and(|body| {
            body.recipients.len() == self.membership.members.len()
                && body.recipients.iter().all(|r| {
                    self.membership
                        .members
                        .get(&r.user)
                        .is_some_and(|m| m.holds_key(&r.dh, &place))
                })
        })
    }

    /// The keys this node opened with its X25519 key `dh`, by rekey (inside or read-only).
    pub fn opened_with<'a>(
        &'a self,
        dh: &'a [u8; 32],
    ) -> impl Iterator<Item = (&'a EventId, &'a EpochKey)> + 'a {
        self.opened_with
            .iter()
            .filter(move |(_, d)| *d == dh)
            .filter_map(|(id, _)| Some((id, self.keys.get(id)?)))
    }

    /// The key this node opened from `rekey` (its commitment checked), if any.
    pub(super) fn opened(&self, rekey: &Event) -> Option<&EpochKey> {
        self.keys.get(&rekey.id())
    }

    /// Whether the key `event` names reached every member at its place: a rekey held
    /// inside (blame is looked up when shown) whose recipients include its own author and
    /// every member there, with that member's profile key. Where the rekey sorts does not
    /// matter (a member who pushed the clock can make the current key sort after texts
    /// written under it). Memoised per rekey and place among the control events.
    pub(super) fn key_reaches_members(&mut self, event: &Event) -> bool {
        let place = event.order_key();
        let Some(i) = self
            .control
            .iter()
            .rposition(|e| e.header.kind == EventKind::Rekey && e.id() == event.header.key)
        else {
            return false;
        };
        let before = self.control.partition_point(|e| e.order_key() < place);
        let memo = (event.header.key, before);
        if let Some(covers) = self.coverage.get(&memo) {
            return *covers;
        }
        let covers = if before == self.control.len() {
            Self::covers(&self.control[i], &self.membership)
        } else {
            // A text that sorts before a later change (it came late, or its writer's clock
            // lags): the members at its place, once per place.
            let membership = self.membership_before(&place).into_owned();
            Self::covers(&self.control[i], &membership)
        };
        self.coverage.insert(memo, covers);
        covers
    }

    /// Whether `rekey` was sealed to its author and to every member of `membership` (for
    /// that member's key, or one it replaced after the rekey).
    fn covers(rekey: &Event, membership: &Membership) -> bool {
        let Ok(body) = RekeyBody::decode(&rekey.public) else {
            return false;
        };
        let place = rekey.order_key();
        let sealed: BTreeMap<&UserId, &[u8; 32]> =
            body.recipients.iter().map(|r| (&r.user, &r.dh)).collect();
        sealed.contains_key(&rekey.header.author)
            && membership
                .members
                .iter()
                .all(|(user, m)| sealed.get(user).is_some_and(|dh| m.holds_key(dh, &place)))
    }

    /// The current key, the one to write with: that of the last valid rekey in the total
    /// order that was sealed to exactly the current members and that this node opened.
    /// Rekeys sealed to others (made before a leave or removal, or concurrently with one)
    /// are passed over: nobody writes under a key someone gone may hold. None: the key is
    /// stale and a writer must rekey first.
    /// Returns the rekey's id (which a body names), its epoch and the key.
    pub fn current_key(&self) -> Option<(EventId, u32, &EpochKey)> {
        self.control
            .iter()
            .rev()
            .filter(|e| self.usable_rekey(e))
            .find_map(|e| Some((e.id(), e.header.epoch, self.opened(e)?)))
    }

    /// A rekey sealed to exactly the current members, its author among them, that no
    /// recipient proved wrong. An author who is not among its own recipients is out (or
    /// planted the key for a membership to come: sealed to the members it expects after
    /// its removal, it would otherwise become current once they are the members, and the
    /// removed author would read what they write), so its rekey never becomes current.
    pub(super) fn usable_rekey(&self, e: &Event) -> bool {
        e.header.kind == EventKind::Rekey
            && !self.blamed.contains(&e.id())
            && self.membership.is_member(&e.header.author)
            && self.sealed_to_members(e)
    }

    /// Rekeys a recipient proved wrong, with their authors (whose devices sent them).
    pub fn blamed_rekeys(&self) -> Vec<(EventId, UserId)> {
        self.control
            .iter()
            .filter(|e| self.blamed.contains(&e.id()))
            .map(|e| (e.id(), e.header.author))
            .collect()
    }

    /// Rekeys whose wrap for `me` (made for `me`'s key) did not hold the committed key and
    /// that `me` has not yet proved wrong: each needs a complaint from `me`. Also for a
    /// rekey no longer sealed to the members: others may have written under it while it
    /// was. (Each such rekey is an event of its author's: one complaint per event.)
    pub fn complaints_due(&self, me: &UserId) -> Vec<EventId> {
        if !self.membership.is_member(me) {
            return Vec::new();
        }
        self.mismatched
            .iter()
            .filter(|id| !self.blamed.contains(id) && !self.complained(me, id))
            // (A rekey whose ephemeral key another rekey reuses is blamed, so never here:
            // `register_ephemeral`.)
            .filter(|id| self.rekey_event(id).is_some())
            .copied()
            .collect()
    }

    /// How many steps (`sync::COMPLAINT_STEP_MS`) `me` waits before complaining about
    /// `rekey`: a rekey with many wrong wraps must not make every victim complain at once.
    /// The recipients other than its author are ranked by a hash of the rekey's id and
    /// their user id (every rekey ranks them differently, so nobody is always first); rank
    /// r waits r steps. The first complaint that holds blames the rekey everywhere, and
    /// whoever is still waiting then never complains, so however the author chose its
    /// victims, about (time for a complaint to spread) / step of them complain. (Waits by
    /// rank level, log2(1 + r) steps, let an author who wrongs only the highest level,
    /// half the recipients, have them all complain at once.) None for a rekey not held or
    /// not sealed to `me`.
    pub fn complaint_wait_steps(&self, me: &UserId, rekey: &EventId) -> Option<u32> {
        let event = self.rekey_event(rekey)?;
        let body = RekeyBody::decode(&event.public).ok()?;
        let rank_of =
            |u: &UserId| crate::wire::hash32(&[b"flurfunk/complaint-order", &rekey.0, &u.0]);
        let mine = rank_of(&body.recipients.iter().find(|r| r.user == *me)?.user);
        let rank = body
            .recipients
            .iter()
            .filter(|r| r.user != event.header.author && rank_of(&r.user) < mine)
            .count() as u64;
        Some(u32::try_from(rank).unwrap_or(u32::MAX))
    }

    /// Whether `user` complained about `rekey` (inside or outside its chain).
    pub(super) fn complained(&self, user: &UserId, rekey: &EventId) -> bool {
        self.complaints
            .get(rekey)
            .is_some_and(|cs| cs.iter().any(|c| c.header.author == *user))
    }

    /// A rekey held inside (in the order), by id.
    pub fn rekey_event(&self, id: &EventId) -> Option<&Event> {
        self.control
            .iter()
            .find(|e| e.header.kind == EventKind::Rekey && e.id() == *id)
    }

    /// Whether `complaint` proves `rekey` wrong: the complainer is a recipient, its
    /// disclosed shared secret (for the key its wrap names) is proven, and its wrap does
    /// not hold the committed key. The two events alone decide.
    fn complaint_holds(rekey: &Event, complaint: &Event) -> bool {
        let (Ok(body), Ok(c)) = (
            RekeyBody::decode(&rekey.public),
            ComplaintBody::decode(&complaint.public),
        ) else {
            return false;
        };
        body.complaint_holds(rekey, &complaint.header.author, &c)
    }

    /// Take a complaint in: blame its rekey if it is held and the complaint holds. Blame
    /// depends only on the two events, not on their order or arrival. Each (rekey,
    /// complaint) pair is judged once per build of the state; one complaint per author and
    /// rekey counts (`check`).
    pub(super) fn take_complaint(&mut self, event: &Event) {
        let Ok(body) = ComplaintBody::decode(&event.public) else {
            return;
        };
        if self.complained(&event.header.author, &body.rekey) {
            return;
        }
        self.complaints
            .entry(body.rekey)
            .or_default()
            .push(event.clone());
        if let Some(rekey) = self.rekey_event(&body.rekey)
            && !self.blamed.contains(&body.rekey)
            && Self::complaint_holds(rekey, event)
        {
            let author = rekey.header.author;
            self.blamed.insert(body.rekey);
            self.newly_blamed.push((body.rekey, author));
        }
    }

    /// A rekey came in: blame it if a complaint held already proves it wrong.
    pub(super) fn blame_from_complaints(&mut self, rekey: &Event) {
        let id = rekey.id();
        if !self.blamed.contains(&id)
            && self
                .complaints
                .get(&id)
                .is_some_and(|cs| cs.iter().any(|c| Self::complaint_holds(rekey, c)))
        {
            self.blamed.insert(id);
            self.newly_blamed.push((id, rekey.header.author));
        }
    }

    /// Rekeys blamed since the last call, with their authors (whose devices handed
    /// members different keys): for telling the user once.
    pub fn take_newly_blamed(&mut self) -> Vec<(EventId, UserId)> {
        std::mem::take(&mut self.newly_blamed)
    }

    /// Rekeys blamed, by id.
    pub fn is_blamed(&self, rekey: &EventId) -> bool {
        self.blamed.contains(rekey)
    }

    /// Whether no rekey sealed to exactly the current members has been opened here.
    pub fn key_is_stale(&self) -> bool {
        self.current_key().is_none()
    }

    /// Whether `me` should rotate the key now: no usable key and `me` is the admin with
    /// the lowest id; or the last rekey sealed to exactly the members did not open here
    /// (a split key) and `me` has not already rotated for these members.
    pub fn rekey_needed_by(&self, me: &UserId) -> bool {
        if !self.membership.is_member(me) || self.kind().is_none() {
            return false;
        }
        let first_admin = self.members().find(|m| m.admin).map(|m| m.profile.user_id);
        if self.key_is_stale() && first_admin == Some(*me) {
            return true;
        }
        let last_exact = self.control.iter().rev().find(|e| self.usable_rekey(e));
        // Already answered for these members: a rekey of ours sealed to exactly them
        // (it may sort before a split key with a far-ahead clock; rekeying again would
        // not change that, and would loop).
        let answered = self
            .control
            .iter()
            .any(|e| e.header.author == *me && self.usable_rekey(e));
        // A rekey whose wrap for us is wrong is answered by a complaint (ours, or another
        // victim's first: `complaint_wait_steps`), not by a rekey of every victim.
        last_exact.is_some_and(|last| {
            self.opened(last).is_none() && !answered && !self.mismatched.contains(&last.id())
        })
    }

    /// The epoch for `author`'s next rekey: one above every rekey before its place in the
    /// order, saturating. The epoch is only a label that narrows which keys to try (the
    /// current key is chosen by order); a member announcing `u32::MAX` switches nothing
    /// off, and making it a rule of validity would tie one author's rekeys to another's.
    pub fn next_epoch(&self, author: &UserId) -> u32 {
        let key = OrderKey {
            lamport: self.next_lamport(author),
            author: *author,
            seq: self.next_seq(author),
        };
        self.epoch_before(&key).saturating_add(1)
    }

    /// The highest epoch of a valid rekey before `key` in the total order.
    pub(super) fn epoch_before(&self, key: &OrderKey) -> u32 {
        self.control
            .iter()
            .take_while(|e| e.order_key() < *key)
            .filter(|e| e.header.kind == EventKind::Rekey)
            .map(|e| e.header.epoch)
            .max()
            .unwrap_or(0)
    }

    /// Open a rekey `check` found valid (its ephemeral key proven, its recipients distinct).
    /// A rekey kept outside was not checked: `open_read_only`.
    pub(super) fn open_rekey(&mut self, event: &Event, me: &Identity) {
        let Ok(body) = RekeyBody::decode(&event.public) else {
            return;
        };
        let h = &event.header;
        // Opened before with an X25519 key since replaced and deleted (kept sealed in the
        // store): checked against the commitment like any other.
        if let Some(key) = me.recalled(&event.id())
            && body.commits_to(&self.id, &h.author, h.epoch, key.as_bytes())
        {
            self.keys.insert(event.id(), key.clone());
            return;
        }
        // The key must match the public commitment, so every recipient holds the same.
        match body.open(me, &self.id, &h.author, h.epoch) {
            Ok(key) => {
                self.keys.insert(event.id(), EpochKey::from_bytes(key));
                if let Some(w) = body.wrap_for(&me.user_id()) {
                    self.opened_with.insert(event.id(), w.dh);
                }
            }
            Err(OpenError::Mismatch) => {
                self.mismatched.insert(event.id());
            }
            Err(OpenError::NotRecipient) => {}
        }
    }

    /// Open a rekey kept outside (read-only), only if it passes the same checks as one
    /// inside: otherwise its mismatch could later call for a complaint about an unproven
    /// ephemeral key, and a complaint about such a key is a static Diffie-Hellman oracle.
    /// Also for a rekey that lost an equivocation (kept apart by the engine): what was
    /// written under its key before the equivocation was settled stays readable.
    pub fn open_read_only(&mut self, event: &Event, me: Option<&Identity>) {
        if Self::rekey_rules(&self.id, event).is_ok() {
            self.register_ephemeral(event);
            if let Some(me) = me {
                self.open_rekey(event, me);
            }
        }
    }

    /// Note a well-formed rekey's ephemeral key. An author who uses one ephemeral key in
    /// two rekeys (only its author can prove it) is blamed for both, by every node that
    /// holds both: a complaint about one would disclose the complainer's shared secret
    /// with that key and so open its wrap in the other for anyone, so a member with a
    /// wrong wrap there cannot complain, and without this rule the split would never be
    /// blamed. Depends on the two events alone.
    pub(super) fn register_ephemeral(&mut self, rekey: &Event) {
        let Ok(body) = RekeyBody::decode(&rekey.public) else {
            return;
        };
        let id = rekey.id();
        let list = self.ephemerals.entry(body.ephemeral).or_default();
        if list.iter().any(|(r, _)| *r == id) {
            return;
        }
        list.push((id, rekey.header.author));
        if list.len() < 2 {
            return;
        }
        let reused: Vec<(EventId, UserId)> = list.clone();
        for (r, author) in reused {
            if self.blamed.insert(r) {
                self.newly_blamed.push((r, author));
            }
        }
    }
}
