//! Re-deciding a conversation from its events in total order: after a control event
//! arrived late, after an equivocation was settled, and at start-up (paged).

use super::*;

impl ConversationState {
    /// Re-decide a whole conversation from its events in total order. Returns the state
    /// and the events that are no longer valid (each author's chain is cut at its first
    /// invalid event, so version vectors stay contiguous).
    pub fn rebuild(
        id: ConversationId,
        events: impl IntoIterator<Item = Event>,
        me: Option<&Identity>,
    ) -> (Self, Vec<Event>) {
        Self::rebuild_with(id, events, me, Arc::default())
    }

    /// `rebuild`, remembering checked profiles in `profiles`.
    pub fn rebuild_with(
        id: ConversationId,
        events: impl IntoIterator<Item = Event>,
        me: Option<&Identity>,
        profiles: Arc<VerifiedProfiles>,
    ) -> (Self, Vec<Event>) {
        let mut events: Vec<Event> = events.into_iter().collect();
        events.sort_by_key(|e| e.order_key());
        // Which removals hold is decided over the membership events first; events the
        // replay then finds invalid may have taken part, so decide again over what was
        // kept until the decision stands (it shrinks the set each time, so this ends).
        let mut authority = Authority::from_events(&events);
        let mut all_dropped = Vec::new();
        loop {
            let mut rebuild = Rebuild::new(id, authority.clone(), profiles.clone());
            for event in &events {
                rebuild.push(event.clone(), me);
            }
            let (state, dropped) = rebuild.finish();
            let gone: BTreeSet<EventId> = dropped.iter().map(Event::id).collect();
            events.retain(|e| !gone.contains(&e.id()));
            // Decide again over what was kept (events kept outside included).
            let kept = Authority::from_events(&events);
            let settled = dropped.is_empty() || kept.same_decision(&authority);
            all_dropped.extend(dropped);
            if settled {
                return (state, all_dropped);
            }
            authority = kept;
        }
    }
}

/// Replays a conversation from events fed in total order, one at a time, so a caller can
/// page through a large store without holding it all (see `ConversationState::rebuild`).
pub struct Rebuild {
    state: ConversationState,
    cut: BTreeSet<UserId>,
    dropped: Vec<Event>,
    deferred: Vec<Event>,
}

impl Rebuild {
    /// `authority`: decided over the conversation's membership events beforehand
    /// (`Authority::from_events`), since a removal late in the order decides about events
    /// before it.
    pub fn new(id: ConversationId, authority: Authority, profiles: Arc<VerifiedProfiles>) -> Self {
        let mut state = ConversationState::new(id);
        state.authority = authority;
        state.profiles = profiles;
        Rebuild {
            state,
            cut: BTreeSet::new(),
            dropped: Vec::new(),
            deferred: Vec::new(),
        }
    }

    /// The next event; events must come in ascending order key.
    pub fn push(&mut self, event: Event, me: Option<&Identity>) {
        if self.cut.contains(&event.header.author) {
            self.dropped.push(event);
            return;
        }
        match self.state.check(&event, None) {
            Ok(_) => {
                self.state.apply(&event, me);
            }
            // A gap in total order can happen when an author's earlier event sorts
            // later (clock skew is impossible here since lamport advances per author),
            // so treat gaps and anything else as invalid.
            Err(_) => {
                self.cut.insert(event.header.author);
                self.deferred.push(event);
            }
        }
    }

    /// The rebuilt state and the events that are no longer valid.
    pub fn finish(mut self) -> (ConversationState, Vec<Event>) {
        self.dropped.extend(self.deferred);
        (self.state, self.dropped)
    }
}
