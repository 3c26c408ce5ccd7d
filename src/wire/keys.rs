//! Rekeys and complaints: the public parts that carry a conversation's epoch keys, the
//! commitment every recipient checks, and the proof that a wrap does not hold it.

use super::codec::{Reader, Writer};
use super::{ConversationId, Event, EventId, MAX_MEMBERS, WireError, hash32};
use crate::identity::UserId;

/// Public part of a rekey event: the new epoch key wrapped for each member with one
/// ephemeral key (`crypto::KeyWrapper`; 96 bytes a member: id, X25519 key, wrap), and a commitment
/// to that key (`key_commitment`) that every recipient checks on opening. A recipient
/// whose wrap does not match the commitment proves it (`ComplaintBody`), and then nobody
/// writes under that key: every recipient gets the same key, or no one accepts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RekeyBody {
    pub commitment: [u8; 32],
    /// The wrap's ephemeral key (a torsion-free Edwards25519 point, compressed).
    pub ephemeral: [u8; 32],
    /// Proof that the author knows the ephemeral secret (`crypto::prove_possession`),
    /// bound to conversation, author, epoch and commitment.
    pub possession: [u8; 64],
    pub recipients: Vec<Wrap>,
}

/// One recipient's wrap, with the X25519 key it was made for: a complaint is judged
/// against that key alone (so by the two events alone), and a rekey counts as sealed to
/// the members only if each key is the member's profile key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrap {
    pub user: UserId,
    pub dh: [u8; 32],
    pub wrapped: [u8; 32],
}

impl RekeyBody {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(130 + self.recipients.len() * 96);
        w.bytes(&self.commitment);
        w.bytes(&self.ephemeral);
        w.bytes(&self.possession);
        w.u16(self.recipients.len() as u16);
        for r in &self.recipients {
            w.bytes(&r.user.0);
            w.bytes(&r.dh);
            w.bytes(&r.wrapped);
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let commitment = r.array()?;
        let ephemeral = r.array()?;
        let possession = r.array()?;
        let n = r.count16("rekey recipients", MAX_MEMBERS, 96)?;
        let mut recipients = Vec::with_capacity(n);
        for _ in 0..n {
            recipients.push(Wrap {
                user: UserId(r.array()?),
                dh: r.array()?,
                wrapped: r.array()?,
            });
        }
        r.finish()?;
        Ok(RekeyBody {
            commitment,
            ephemeral,
            possession,
            recipients,
        })
    }

    /// Wrap `key` for each of `members` (id, X25519 key) and commit to it.
    pub fn seal<R: rand::RngCore + rand::CryptoRng>(
        rng: &mut R,
        conversation: &ConversationId,
        author: &UserId,
        epoch: u32,
        key: &[u8; 32],
        members: impl IntoIterator<Item = (UserId, [u8; 32])>,
    ) -> Self {
        let wrapper = crate::crypto::KeyWrapper::new(rng);
        let context = wrap_context(conversation, author, epoch);
        let commitment = key_commitment(conversation, author, epoch, key);
        let possession = wrapper.prove_possession(rng, &possession_context(&context, &commitment));
        RekeyBody {
            commitment,
            ephemeral: wrapper.ephemeral,
            possession,
            // A member whose key is not valid cannot be sent the key safely (anyone could
            // read its wrap); profiles with such keys are refused, so this skips nobody.
            recipients: members
                .into_iter()
                .filter_map(|(user, dh)| {
                    Some(Wrap {
                        user,
                        dh,
                        wrapped: wrapper.wrap(&context, &dh, key)?,
                    })
                })
                .collect(),
        }
    }

    /// Whether the ephemeral key is a valid point its author proved it made (a rekey is
    /// invalid otherwise).
    pub fn ephemeral_is_proven(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        epoch: u32,
    ) -> bool {
        let context = wrap_context(conversation, author, epoch);
        crate::crypto::verify_possession(
            &self.ephemeral,
            &possession_context(&context, &self.commitment),
            &self.possession,
        )
    }

    /// The wrap for `user`, if it is a recipient.
    pub fn wrap_for(&self, user: &UserId) -> Option<&Wrap> {
        self.recipients.iter().find(|r| r.user == *user)
    }

    /// The key wrapped for `me`, if there is one and it matches the commitment.
    pub fn open(
        &self,
        me: &crate::identity::Identity,
        conversation: &ConversationId,
        author: &UserId,
        epoch: u32,
    ) -> Result<[u8; 32], OpenError> {
        // A wrap made for a key of ours since deleted (or never ours) is not ours to open.
        let wrap = self
            .wrap_for(&me.user_id())
            .ok_or(OpenError::NotRecipient)?;
        let dh = me.dh_key_for(&wrap.dh).ok_or(OpenError::NotRecipient)?;
        let context = wrap_context(conversation, author, epoch);
        let key = crate::crypto::unwrap_key(dh, &context, &self.ephemeral, &wrap.wrapped)
            .ok_or(OpenError::Mismatch)?;
        if !self.commits_to(conversation, author, epoch, &key) {
            return Err(OpenError::Mismatch);
        }
        Ok(key)
    }

    /// Whether `key` is the key this rekey committed to.
    pub fn commits_to(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        epoch: u32,
        key: &[u8; 32],
    ) -> bool {
        key_commitment(conversation, author, epoch, key) == self.commitment
    }

    /// Whether `complaint`, signed by `complainer`, proves that its wrap (for the X25519
    /// key named in it) does not hold the committed key. `rekey` is the event this body is
    /// of. Depends on the two events alone.
    pub fn complaint_holds(
        &self,
        rekey: &Event,
        complainer: &UserId,
        complaint: &ComplaintBody,
    ) -> bool {
        let h = &rekey.header;
        let (conversation, author, epoch) = (&h.conversation, &h.author, h.epoch);
        if complaint.rekey != rekey.id() {
            return false;
        }
        let Some(wrap) = self.wrap_for(complainer) else {
            return false;
        };
        let Some(shared) = crate::crypto::verify_shared(
            &wrap.dh,
            &complaint_context(&complaint.rekey, complainer),
            &self.ephemeral,
            &complaint.shared,
        ) else {
            return false;
        };
        let context = wrap_context(conversation, author, epoch);
        let key = crate::crypto::unwrap_with_shared(
            &shared,
            &context,
            &self.ephemeral,
            &wrap.dh,
            &wrap.wrapped,
        );
        key_commitment(conversation, author, epoch, &key) != self.commitment
    }
}

/// Why a rekey did not open for this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Not sealed to this node.
    NotRecipient,
    /// Sealed to this node, but not the committed key: worth a complaint.
    Mismatch,
}

/// Public part of a complaint: the wrap a recipient got from `rekey` does not hold the
/// key its commitment names, proven by disclosing that wrap's shared secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComplaintBody {
    pub rekey: EventId,
    pub shared: crate::crypto::SharedProof,
}

impl ComplaintBody {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.bytes(&self.rekey.0);
        w.bytes(&self.shared.point);
        w.bytes(&self.shared.proof);
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let rekey = EventId(r.array()?);
        let point = r.array()?;
        let proof = r.array()?;
        r.finish()?;
        Ok(ComplaintBody {
            rekey,
            shared: crate::crypto::SharedProof { point, proof },
        })
    }
}

/// The public commitment to a rekey's key: binds it to conversation, author and epoch.
pub fn key_commitment(
    conversation: &ConversationId,
    author: &UserId,
    epoch: u32,
    key: &[u8; 32],
) -> [u8; 32] {
    hash32(&[
        crate::crypto::LABEL_KEY_COMMITMENT,
        &conversation.0,
        &author.0,
        &epoch.to_be_bytes(),
        key,
    ])
}

/// What a rekey's proof of its ephemeral key is bound to: the wraps' context and the
/// commitment.
pub fn possession_context(wrap_context: &[u8], commitment: &[u8; 32]) -> Vec<u8> {
    let mut out = wrap_context.to_vec();
    out.extend_from_slice(commitment);
    out
}

/// What a complaint's proof is bound to: the rekey and the complainer.
pub fn complaint_context(rekey: &EventId, complainer: &UserId) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&rekey.0);
    out.extend_from_slice(&complainer.0);
    out
}

/// What a rekey's wraps are bound to: conversation, author and epoch.
pub fn wrap_context(conversation: &ConversationId, author: &UserId, epoch: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(68);
    out.extend_from_slice(&conversation.0);
    out.extend_from_slice(&author.0);
    out.extend_from_slice(&epoch.to_be_bytes());
    out
}
