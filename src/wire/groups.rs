//! Admin statements about groups (docs/PROTOCOL.md, "Admin statements"): the
//! organisation groups (kind 5) and the retention of single groups (kind 6).

use super::{ConversationId, Reader, WireError, Writer};
use crate::identity::UserId;

/// Organisation groups one statement names at most ("Alle" and one per department).
pub const MAX_ORG_GROUPS: usize = 256;

/// One organisation group: a group conversation the steward's node created, and whom it
/// holds: every colleague in the directory (`department` empty) or those of one
/// department.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgGroup {
    pub conversation: ConversationId,
    pub department: String,
}

/// The body of an organisation-groups statement (docs/PROTOCOL.md, "Organisation
/// groups"): the groups whose membership the directory decides, and the node that keeps
/// it so (`steward`, the only admin of each). Nodes mark these groups and refuse to leave
/// them; the steward adds and removes colleagues as the directory changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgGroups {
    pub steward: UserId,
    pub groups: Vec<OrgGroup>,
}

impl OrgGroups {
    /// The group of `conversation`, if it is one.
    pub fn group(&self, conversation: &ConversationId) -> Option<&OrgGroup> {
        self.groups.iter().find(|g| g.conversation == *conversation)
    }

    /// Encoded with the groups in ascending conversation order (canonical).
    pub fn encode(&self) -> Vec<u8> {
        let mut groups: Vec<&OrgGroup> = self.groups.iter().collect();
        groups.sort_by_key(|g| g.conversation);
        let mut w = Writer::with_capacity(34 + 48 * groups.len());
        w.bytes(&self.steward.0);
        w.u16(groups.len() as u16);
        for g in groups {
            w.bytes(&g.conversation.0);
            w.u8(g.department.len() as u8);
            w.bytes(g.department.as_bytes());
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let invalid = |what| WireError::Invalid { what };
        let mut r = Reader::new(bytes);
        let steward = UserId(r.array()?);
        let n = r.count16("organisation groups", MAX_ORG_GROUPS, 32 + 1)?;
        let mut groups: Vec<OrgGroup> = Vec::with_capacity(n);
        let mut departments = std::collections::BTreeSet::new();
        for _ in 0..n {
            let conversation = ConversationId(r.array()?);
            if groups
                .last()
                .is_some_and(|l| l.conversation >= conversation)
            {
                return Err(invalid("organisation group order"));
            }
            let department = std::str::from_utf8(r.var_bytes_u8()?)
                .map_err(|_| invalid("organisation group department"))?
                .to_string();
            if !department.is_empty() {
                crate::identity::validate_wire_name(&department)
                    .map_err(|_| invalid("organisation group department"))?;
            }
            // One group per department (and one for everyone).
            if !departments.insert(department.clone()) {
                return Err(invalid("organisation group department twice"));
            }
            groups.push(OrgGroup {
                conversation,
                department,
            });
        }
        r.finish()?;
        Ok(OrgGroups { steward, groups })
    }
}

/// Groups one retention statement names at most (48 bytes each), those whose own period
/// was taken away but whose `dropped_before_ms` stays included.
pub const MAX_RETENTION_GROUPS: usize = 1024;
/// The version of the group-retention body this build writes and applies. A statement
/// with a higher one (correctly signed) is held and passed on, not applied.
pub const GROUP_RETENTION_VERSION: u8 = 1;

/// One group's entry in a group-retention statement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupKeep {
    /// Seconds the group keeps its messages (at least `MIN_KEEP_MESSAGES_S`; `None`: no
    /// period of its own, the network's holds).
    pub keep_s: Option<u64>,
    /// This group's messages stamped before this (ms) may have lost their bodies to an
    /// earlier, shorter period of the group: nodes take such copies from peers (as
    /// policy tag 9 does for the network's period; `GroupRetention::carry`). Only ever
    /// raised.
    pub dropped_before_ms: Option<u64>,
}

/// The body of a group-retention statement (kind 6; docs/PROTOCOL.md, "Retention"):
/// for single groups, a period after which every node deletes a message's text, file,
/// edits and reactions. A group's period is the shorter of its own and the network's
/// (policy tag 8, the organisation's maximum).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupRetention {
    pub groups: std::collections::BTreeMap<ConversationId, GroupKeep>,
}

impl GroupRetention {
    /// The group's own period, if it has one.
    pub fn keep_s(&self, conv: &ConversationId) -> Option<u64> {
        self.groups.get(conv).and_then(|g| g.keep_s)
    }

    /// Before when the group's messages may have lost their bodies to an earlier period.
    pub fn dropped_before_ms(&self, conv: &ConversationId) -> Option<u64> {
        self.groups.get(conv).and_then(|g| g.dropped_before_ms)
    }

    /// The next statement after `before` at `now_ms`: where a group's period gets longer
    /// or is taken away, its messages older than the old one may already have lost their
    /// bodies on some nodes, so that group's `dropped_before_ms` is raised (and kept
    /// after its period is gone). `Policy::carry_retention` does the same for the
    /// network's period.
    pub fn carry(mut self, before: &GroupRetention, now_ms: u64) -> GroupRetention {
        for (conv, old) in &before.groups {
            let entry = self.groups.entry(*conv).or_default();
            entry.dropped_before_ms = entry.dropped_before_ms.max(old.dropped_before_ms);
            if let Some(old_keep) = old.keep_s
                && entry.keep_s.is_none_or(|new| new > old_keep)
            {
                let floor = super::retention_floor(old_keep, now_ms);
                entry.dropped_before_ms = Some(entry.dropped_before_ms.unwrap_or(0).max(floor));
            }
        }
        self.groups
            .retain(|_, g| g.keep_s.is_some() || g.dropped_before_ms.is_some());
        self
    }

    /// Encoded with the groups in ascending conversation order (canonical); at most
    /// `MAX_RETENTION_GROUPS` (the admin tools refuse more).
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.groups.len() <= MAX_RETENTION_GROUPS);
        let mut w = Writer::with_capacity(3 + 48 * self.groups.len());
        w.u8(GROUP_RETENTION_VERSION);
        w.u16(self.groups.len().min(MAX_RETENTION_GROUPS) as u16);
        for (conv, g) in self.groups.iter().take(MAX_RETENTION_GROUPS) {
            w.bytes(&conv.0);
            w.u64(g.keep_s.unwrap_or(0));
            w.u64(g.dropped_before_ms.unwrap_or(0));
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let invalid = |what| WireError::Invalid { what };
        let mut r = Reader::new(bytes);
        if r.u8()? != GROUP_RETENTION_VERSION {
            return Err(invalid("group retention version"));
        }
        let n = r.count16("retention groups", MAX_RETENTION_GROUPS, 48)?;
        let mut groups = std::collections::BTreeMap::new();
        let mut last: Option<ConversationId> = None;
        for _ in 0..n {
            let conv = ConversationId(r.array()?);
            if last.is_some_and(|l| l >= conv) {
                return Err(invalid("retention group order"));
            }
            last = Some(conv);
            let keep_s = Some(r.u64()?).filter(|s| *s > 0);
            let dropped_before_ms = Some(r.u64()?).filter(|t| *t > 0);
            if keep_s.is_some_and(|s| s < super::MIN_KEEP_MESSAGES_S) {
                return Err(invalid("retention period under a day"));
            }
            if keep_s.is_none() && dropped_before_ms.is_none() {
                return Err(invalid("empty retention group"));
            }
            groups.insert(
                conv,
                GroupKeep {
                    keep_s,
                    dropped_before_ms,
                },
            );
        }
        r.finish()?;
        Ok(GroupRetention { groups })
    }

    /// The check of a signed statement's body: well formed, or of a newer version (held
    /// and passed on, not applied: not an offence of the peer that sent it).
    pub fn check_body(bytes: &[u8]) -> Result<(), WireError> {
        match bytes.first() {
            Some(&v) if v > GROUP_RETENTION_VERSION => Ok(()),
            _ => Self::decode(bytes).map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_groups_are_canonical_and_bounded() {
        let groups = OrgGroups {
            steward: UserId([7; 32]),
            groups: vec![
                OrgGroup {
                    conversation: ConversationId([2; 32]),
                    department: "Bauamt".into(),
                },
                OrgGroup {
                    conversation: ConversationId([1; 32]),
                    department: String::new(),
                },
            ],
        };
        let bytes = groups.encode();
        let back = OrgGroups::decode(&bytes).unwrap();
        // Sorted by conversation on the wire.
        assert_eq!(back.groups[0].department, "");
        assert_eq!(
            back.group(&ConversationId([2; 32])).unwrap().department,
            "Bauamt"
        );
        assert_eq!(back.encode(), bytes);
        // Out of order: refused.
        let mut swapped = OrgGroups {
            steward: groups.steward,
            groups: Vec::new(),
        }
        .encode();
        swapped[32..34].copy_from_slice(&[0, 2]);
        swapped.extend_from_slice(&[2; 32]);
        swapped.push(0);
        swapped.extend_from_slice(&[1; 32]);
        swapped.extend_from_slice(&[3, b'I', b'T', b'S']);
        assert!(OrgGroups::decode(&swapped).is_err());
        // One department twice: refused.
        let twice = OrgGroups {
            steward: groups.steward,
            groups: vec![
                OrgGroup {
                    conversation: ConversationId([1; 32]),
                    department: "IT".into(),
                },
                OrgGroup {
                    conversation: ConversationId([2; 32]),
                    department: "IT".into(),
                },
            ],
        };
        assert!(OrgGroups::decode(&twice.encode()).is_err());
        // A department that is no UTF-8, a count beyond the bytes, trailing bytes.
        let mut bad = bytes.clone();
        let at = bytes.len() - 1;
        bad[at] = 0xff;
        assert!(OrgGroups::decode(&bad).is_err());
        let mut count = bytes.clone();
        count[32..34].copy_from_slice(&[0xff, 0xff]);
        assert!(OrgGroups::decode(&count).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(OrgGroups::decode(&trailing).is_err());
    }

    #[test]
    fn group_retention_is_canonical_bounded_and_carried() {
        let keep = |s: u64| GroupKeep {
            keep_s: Some(s),
            dropped_before_ms: None,
        };
        let (a, b) = (ConversationId([1; 32]), ConversationId([2; 32]));
        let mut retention = GroupRetention::default();
        retention.groups.insert(b, keep(30 * 86_400));
        retention.groups.insert(a, keep(86_400));
        let bytes = retention.encode();
        assert_eq!(bytes.len(), 3 + 2 * 48);
        assert_eq!(GroupRetention::decode(&bytes), Ok(retention.clone()));
        // Out of order, under a day, an empty entry, a count beyond the bytes, trailing
        // bytes, an unknown version: refused; a newer version passes the check (held,
        // not applied).
        let mut swapped = bytes.clone();
        swapped[3..51].copy_from_slice(&bytes[51..99]);
        swapped[51..99].copy_from_slice(&bytes[3..51]);
        assert!(GroupRetention::decode(&swapped).is_err());
        let mut short = bytes.clone();
        short[35..43].copy_from_slice(&86_399u64.to_be_bytes());
        assert!(GroupRetention::decode(&short).is_err());
        let mut empty = bytes.clone();
        empty[35..43].copy_from_slice(&0u64.to_be_bytes());
        assert!(GroupRetention::decode(&empty).is_err());
        let mut count = bytes.clone();
        count[1..3].copy_from_slice(&[0xff, 0xff]);
        assert!(GroupRetention::decode(&count).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(GroupRetention::decode(&trailing).is_err());
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert!(GroupRetention::decode(&newer).is_err());
        assert!(GroupRetention::check_body(&newer).is_ok());
        assert!(GroupRetention::check_body(&trailing).is_err());

        // Carried: shortening raises nothing; lengthening or taking a group's period
        // away raises that group's `dropped_before_ms` to now less the old period plus
        // the margin (a day, a quarter of the period at most), kept after the period is
        // gone, never lowered, and no other group's.
        let now = 100 * 86_400_000u64;
        let mut shorter = retention.clone();
        shorter.groups.insert(b, keep(10 * 86_400));
        assert_eq!(shorter.clone().carry(&retention, now), shorter);
        let mut removed = retention.clone();
        removed.groups.remove(&a);
        let carried = removed.carry(&retention, now);
        assert_eq!(
            carried.groups.get(&a),
            Some(&GroupKeep {
                keep_s: None,
                dropped_before_ms: Some(now - 86_400_000 + 86_400_000 / 4),
            })
        );
        assert_eq!(carried.dropped_before_ms(&b), None);
        assert_eq!(
            GroupRetention::decode(&carried.encode()).as_ref(),
            Ok(&carried)
        );
        let mut longer = retention.clone();
        longer.groups.insert(b, keep(60 * 86_400));
        assert_eq!(
            longer.carry(&retention, now).dropped_before_ms(&b),
            Some(now - 30 * 86_400_000 + 86_400_000)
        );
        let mut again = carried.clone();
        again.groups.insert(a, keep(86_400));
        let later = again.carry(&carried, now + 86_400_000);
        assert_eq!(later.dropped_before_ms(&a), carried.dropped_before_ms(&a));
        assert_eq!(later.keep_s(&a), Some(86_400));
    }
}
