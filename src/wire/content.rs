//! What a sealed body holds (`Content`): texts with replies and mentions, files
//! (`Attachment`, with an image's preview), reactions, receipts, group names; encoded
//! and decoded within the wire's limits.

use super::*;

pub use crate::files::BlobRef;

/// A file sent in a text event (sealed); its ciphertext is the blob of the event's
/// `BlobRef`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The name it was sent under (shown; made safe before it names a file here).
    pub name: String,
    /// Media type, e.g. `image/jpeg` (as the sender guessed it; never trusted to open).
    pub mime: String,
    /// Bytes of plaintext.
    pub size: u64,
    pub key: crate::files::FileKey,
    /// Text sent with it (may be empty).
    pub caption: String,
    /// For a picture: its size and a small preview, shown before the file is here.
    pub image: Option<ImageInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    /// A small JPEG or PNG (at most `MAX_THUMBNAIL_BYTES`); decoded with limits.
    pub thumbnail: Vec<u8>,
}

impl Attachment {
    fn encode(&self, w: &mut Writer) {
        w.var_bytes(self.name.as_bytes());
        w.var_bytes(self.mime.as_bytes());
        w.u64(self.size);
        w.bytes(self.key.as_bytes());
        w.var_bytes(self.caption.as_bytes());
        match &self.image {
            None => w.u8(0),
            Some(image) => {
                w.u8(1);
                w.u32(image.width);
                w.u32(image.height);
                w.var_bytes(&image.thumbnail);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let name = r.string(MAX_FILE_NAME_BYTES)?;
        let mime = r.string(MAX_MIME_BYTES)?;
        let size = r.u64()?;
        if size > crate::files::MAX_FILE_BYTES {
            return Err(WireError::Invalid {
                what: "attachment size",
            });
        }
        let key = crate::files::FileKey::from_bytes(r.array()?);
        let caption = r.string(MAX_TEXT_BYTES)?;
        let image = match r.u8()? {
            0 => None,
            1 => Some(ImageInfo {
                width: r.u32()?,
                height: r.u32()?,
                thumbnail: r.var_bytes(MAX_THUMBNAIL_BYTES)?.to_vec(),
            }),
            _ => return Err(WireError::Invalid { what: "image info" }),
        };
        Ok(Attachment {
            name,
            mime,
            size,
            key,
            caption,
            image,
        })
    }

    /// Whether this sealed description fits the event's public blob reference.
    pub fn fits(&self, blob: &BlobRef) -> bool {
        crate::files::ciphertext_len(self.size) == Some(blob.ct_len)
    }
}

/// The decrypted sealed part of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A message, or (in an `Edit`) the new text of one.
    Text {
        text: String,
        /// The message this one answers (its quote is drawn from the target as held).
        reply_to: Option<EventId>,
        /// Colleagues called with @ (at most `MAX_MENTIONS`).
        mentions: Vec<UserId>,
    },
    GroupName {
        name: String,
    },
    /// "I hold, durably, every event up to these sequence numbers."
    Delivered {
        upto: VersionVector,
    },
    /// "I have read everything up to and including this event."
    Read {
        upto: OrderKey,
    },
    /// A file, in a text event whose public part is its `BlobRef`.
    Attachment(Box<Attachment>),
    /// In a `Reaction` event: one emoji (empty: the reaction is taken back).
    Reaction {
        emoji: String,
    },
    Unknown {
        tag: u8,
    },
}

impl Content {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32);
        match self {
            Content::Text {
                text,
                reply_to,
                mentions,
            } => {
                w.u8(1);
                w.var_bytes(text.as_bytes());
                match reply_to {
                    None => w.u8(0),
                    Some(id) => {
                        w.u8(1);
                        w.bytes(&id.0);
                    }
                }
                w.u16(mentions.len().min(MAX_MENTIONS) as u16);
                for user in mentions.iter().take(MAX_MENTIONS) {
                    w.bytes(&user.0);
                }
            }
            Content::GroupName { name } => {
                w.u8(2);
                w.var_bytes(name.as_bytes());
            }
            Content::Delivered { upto } => {
                w.u8(3);
                encode_vv(&mut w, upto);
            }
            Content::Read { upto } => {
                w.u8(4);
                w.bytes(&upto.encode());
            }
            Content::Attachment(attachment) => {
                w.u8(5);
                attachment.encode(&mut w);
            }
            Content::Reaction { emoji } => {
                // Padded to one length: a relay cannot tell 👍 from ❤️ or a reaction taken
                // back by the size of the body.
                w.u8(6);
                let bytes = &emoji.as_bytes()[..emoji.len().min(MAX_EMOJI_BYTES)];
                w.u8(bytes.len() as u8);
                w.bytes(bytes);
                w.bytes(&[0u8; MAX_EMOJI_BYTES][bytes.len()..]);
            }
            Content::Unknown { tag } => w.u8(*tag),
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let content = match r.u8()? {
            1 => {
                let text = r.string(MAX_TEXT_BYTES)?;
                let reply_to = match r.u8()? {
                    0 => None,
                    1 => Some(EventId(r.array()?)),
                    _ => return Err(WireError::Invalid { what: "reply" }),
                };
                let n = r.count16("mentions", MAX_MENTIONS, 32)?;
                let mut mentions = Vec::with_capacity(n);
                for _ in 0..n {
                    mentions.push(UserId(r.array()?));
                }
                Content::Text {
                    text,
                    reply_to,
                    mentions,
                }
            }
            2 => Content::GroupName {
                name: r.string(MAX_DISPLAY_NAME_BYTES)?,
            },
            3 => Content::Delivered {
                upto: decode_vv(&mut r)?,
            },
            4 => Content::Read {
                upto: OrderKey::decode(r.take(48)?)
                    .ok_or(WireError::Invalid { what: "order key" })?,
            },
            5 => Content::Attachment(Box::new(Attachment::decode(&mut r)?)),
            6 => {
                let len = r.u8()? as usize;
                let padded = r.take(MAX_EMOJI_BYTES)?;
                let emoji = padded
                    .get(..len)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .ok_or(WireError::Invalid { what: "reaction" })?;
                Content::Reaction {
                    emoji: emoji.to_string(),
                }
            }
            tag => return Ok(Content::Unknown { tag }),
        };
        r.finish()?;
        Ok(content)
    }
}
