//! Who a user is: the Ed25519 signing key (whose libp2p `PeerId` is the user id), the
//! X25519 static key used to seal conversation keys with Noise, and the display name.
//!
//! Secrets never leave this module in printable form: `Debug` shows only public parts,
//! key material is zeroized on drop and key files are created with mode 0600.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;

use blake2::{Blake2b512, Digest};
use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::crypto::{self, LABEL_PROFILE, LABEL_SAFETY_NUMBER};

/// Longest display name we accept, in bytes. Names appear in every chat list row; a
/// longer name is almost surely a mistake or an attack on the layout.
pub const MAX_DISPLAY_NAME_BYTES: usize = 64;

/// Magic at the start of a key file, so a wrong file is recognised as such.
const KEY_FILE_MAGIC: &[u8; 16] = b"FLURFUNK-KEY-V1\n";
/// A key file with retired X25519 keys after the name (written only when there are some,
/// so a file without keeps the first format and older builds still read it).
const KEY_FILE_MAGIC_V2: &[u8; 16] = b"FLURFUNK-KEY-V2\n";
/// X25519 keys replaced by a key update and still kept (`Identity::replace_dh`): beyond
/// this the oldest is deleted at once.
pub const MAX_RETIRED_DH_KEYS: usize = 8;
/// Magic + signing key + X25519 secret + name length + name + count + retired keys.
const KEY_FILE_MAX_BYTES: usize =
    16 + 32 + 32 + 1 + MAX_DISPLAY_NAME_BYTES + 1 + MAX_RETIRED_DH_KEYS * (32 + 8);
/// What protection at rest may add (Windows DPAPI: a header of about 200 bytes, padding).
const PROTECTION_OVERHEAD: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("display name must be 1 to {max} bytes, got {len}")]
    BadName { len: usize, max: usize },
    #[error(
        "display names may not contain control, invisible or text-direction characters (they make two names look alike)"
    )]
    NameCharacters,
    #[error("an identity already exists at {path}; refusing to overwrite it")]
    AlreadyExists { path: String },
    #[error("no identity at {path}; create one first")]
    Missing { path: String },
    #[error("key file {path} is damaged or not a Flurfunk key file")]
    BadKeyFile { path: String },
    #[error("cannot access key file {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("not a valid user id: {input}")]
    BadUserId { input: String },
}

/// A user id: the user's Ed25519 public key. Printed as the libp2p `PeerId` string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(pub [u8; 32]);

impl UserId {
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }

    /// The libp2p peer id of this key. Built from the bytes alone (an Ed25519 peer id
    /// inlines the key), without decompressing the curve point: this runs for every frame
    /// a node sends. A user id that is not a valid key still gets a peer id, which no
    /// node can ever authenticate as (Noise checks the key), so nothing connects to it.
    pub fn to_peer_id(&self) -> Option<libp2p_identity::PeerId> {
        libp2p_identity::PeerId::from_bytes(&self.peer_id_bytes()).ok()
    }

    /// The identity multihash of the protobuf-encoded key: code 0x00, length 36, then
    /// the protobuf (field 1 `KeyType` = 1 for Ed25519, field 2 the 32 key bytes).
    fn peer_id_bytes(&self) -> [u8; PEER_ID_LEN] {
        let mut out = [0u8; PEER_ID_LEN];
        out[..PEER_ID_PREFIX.len()].copy_from_slice(&PEER_ID_PREFIX);
        out[PEER_ID_PREFIX.len()..].copy_from_slice(&self.0);
        out
    }

    /// The user id inside an Ed25519 peer id, read from its bytes (no curve arithmetic:
    /// this runs for every frame a node receives). A connected peer's id was proven by
    /// Noise, so its key is valid; input typed by a person is checked in `from_str`.
    pub fn from_peer_id(peer: &libp2p_identity::PeerId) -> Option<UserId> {
        let bytes = peer.to_bytes();
        let key = bytes.strip_prefix(&PEER_ID_PREFIX)?;
        Some(UserId(key.try_into().ok()?))
    }

    /// A short form for logs and UI hints: the last 8 characters of the peer id.
    pub fn short(&self) -> String {
        let full = self.to_string();
        full[full.len().saturating_sub(8)..].to_string()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_peer_id() {
            Some(peer) => write!(f, "{peer}"),
            None => write!(f, "invalid-{}", hex::encode(self.0)),
        }
    }
}

/// An Ed25519 peer id's bytes before the key: identity multihash (0x00, length 36) and
/// the protobuf header of an Ed25519 public key (0x08 0x01: type 1; 0x12 0x20: 32 bytes).
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
const PEER_ID_LEN: usize = PEER_ID_PREFIX.len() + 32;

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.short())
    }
}

impl FromStr for UserId {
    type Err = IdentityError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = || IdentityError::BadUserId {
            input: input.chars().take(80).collect(),
        };
        let peer = libp2p_identity::PeerId::from_str(input.trim()).map_err(|_| bad())?;
        UserId::from_peer_id(&peer)
            .filter(|u| u.verifying_key().is_some())
            .ok_or_else(bad)
    }
}

/// The public, signed description of a user that travels to everyone: who they are, what
/// they are called and which X25519 key conversation keys are sealed to.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Profile {
    pub user_id: UserId,
    pub display_name: String,
    pub dh_public: [u8; 32],
    /// Author's wall clock when the profile was made; the newest profile wins.
    pub updated_ms: u64,
    pub signature: [u8; 64],
}

impl Profile {
    /// The bytes covered by the signature (purpose label added by `crypto::sign`).
    pub fn signed_bytes(
        user_id: &UserId,
        name: &str,
        dh_public: &[u8; 32],
        updated_ms: u64,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 32 + 8 + 1 + name.len());
        out.extend_from_slice(&user_id.0);
        out.extend_from_slice(dh_public);
        out.extend_from_slice(&updated_ms.to_be_bytes());
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out
    }

    pub fn verify(&self) -> Result<(), crypto::CryptoError> {
        // Only the wire rule (length, no outer spaces): the character rule is for names
        // chosen here. Profiles are signed into group events, so a stricter check of a
        // peer's profile would invalidate history written before the rule, and split
        // nodes of two versions.
        validate_wire_name(&self.display_name).map_err(|_| crypto::CryptoError::BadSignature)?;
        let msg = Self::signed_bytes(
            &self.user_id,
            &self.display_name,
            &self.dh_public,
            self.updated_ms,
        );
        crypto::verify(&self.user_id, LABEL_PROFILE, &msg, &self.signature)?;
        // Checked after the signature, so a forged profile is still `BadSignature`.
        if !crypto::dh_public_is_valid(&self.dh_public) {
            return Err(crypto::CryptoError::WeakKey);
        }
        Ok(())
    }
}

/// A name chosen here (own display name, a group's name): the wire rule, and no
/// control, invisible, direction or odd space characters (an emoji's zero-width joiner
/// between two emoji stays allowed).
pub fn validate_name(name: &str) -> Result<(), IdentityError> {
    validate_wire_name(name)?;
    let chars: Vec<char> = name.chars().collect();
    let symbol = |c: Option<&char>| {
        c.is_some_and(|c| !c.is_alphanumeric() && !c.is_whitespace() && !c.is_ascii())
    };
    for (i, c) in chars.iter().enumerate() {
        if *c == '\u{200D}' {
            // Inside an emoji sequence (👩‍💻): both neighbours are symbols.
            if symbol(i.checked_sub(1).and_then(|j| chars.get(j))) && symbol(chars.get(i + 1)) {
                continue;
            }
            return Err(IdentityError::NameCharacters);
        }
        if c.is_control()
            || is_deceptive_char(*c)
            || is_mark_char(*c)
            || (c.is_whitespace() && *c != ' ')
        {
            return Err(IdentityError::NameCharacters);
        }
    }
    Ok(())
}

/// What every profile on the wire must satisfy: 1 to 64 bytes, no outer spaces.
pub fn validate_wire_name(name: &str) -> Result<(), IdentityError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || name.len() > MAX_DISPLAY_NAME_BYTES || trimmed.len() != name.len() {
        return Err(IdentityError::BadName {
            len: name.len(),
            max: MAX_DISPLAY_NAME_BYTES,
        });
    }
    Ok(())
}

/// Characters that hide text or change the direction it is shown in (zero-width spaces
/// and joiners, bidirectional marks, embeddings, overrides and isolates, the BOM, soft
/// hyphen, invisible operators): with them two different names look alike, and a name
/// can reorder the text after it. Refused in names; shown as U+FFFD by the CLI.
pub fn is_deceptive_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{08E2}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0E}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// The mark after an official name from the network's directory.
pub const OFFICIAL_MARK: char = '\u{2714}';
/// The mark after a self-chosen name that looks like someone else's official one.
pub const DOUBTFUL_MARK: char = '\u{26A0}';

/// Check marks and warning signs: the app puts them after names (directory names, look-
/// alikes), so no chosen name may carry one; from peers' profiles they are dropped.
pub fn is_mark_char(c: char) -> bool {
    matches!(
        c,
        '\u{221A}'
            | '\u{237B}'
            | '\u{2611}'
            | '\u{2705}'
            | '\u{2713}'
            | '\u{2714}'
            | '\u{26A0}'
            | '\u{10102}'
            | '\u{1F5F8}'
            | '\u{1F5F9}'
            | '\u{1F6C6}'
            | '\u{1FBB1}'
    )
}

/// A name from a peer (a profile, a group's name, a directory entry), made fit to show:
/// without marks, control, invisible or direction characters (which could make it look
/// like another name, or reorder the text after it), trimmed.
pub fn clean_peer_name(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|c| !(c.is_control() || is_deceptive_char(*c) || is_mark_char(*c)))
        .collect();
    kept.trim().to_string()
}

/// How a name looks, to find look-alikes of an official name: lower case, letters and
/// digits only, umlauts, accents and ß reduced, Cyrillic and Greek letters that look
/// Latin taken as those ("Bürgermeisteramt", "Buergermeister-Amt", "BURGERMEISTERAMT"
/// and one with a Cyrillic "е" give one key).
pub fn name_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().filter(|c| !is_deceptive_char(*c)) {
        let latin = match c {
            'А' | 'а' | 'Α' | 'α' => 'a',
            'В' | 'Β' | 'β' => 'b',
            'Е' | 'е' | 'Ε' | 'ε' => 'e',
            'Ζ' => 'z',
            'Н' | 'Η' | 'һ' | 'հ' => 'h',
            'І' | 'і' | 'Ι' | 'ι' | 'ӏ' | 'Ӏ' | 'ı' | 'ɪ' | '|' | '1' => 'l',
            'Ј' | 'ј' => 'j',
            'К' | 'к' | 'Κ' | 'κ' => 'k',
            'М' | 'Μ' => 'm',
            'Ν' | 'ν' => 'v',
            'О' | 'о' | 'Ο' | 'ο' | '0' => 'o',
            'Р' | 'р' | 'Ρ' | 'ρ' => 'p',
            'С' | 'с' | 'ϲ' | 'Ϲ' => 'c',
            'Ѕ' | 'ѕ' => 's',
            'Т' | 'Τ' | 'τ' => 't',
            'У' | 'у' | 'Υ' | 'υ' => 'y',
            'Х' | 'х' | 'Χ' | 'χ' => 'x',
            'ԁ' => 'd',
            'ԛ' => 'q',
            'ԝ' | 'Ԝ' => 'w',
            'օ' => 'o',
            'ս' => 'u',
            c => c,
        };
        for l in latin.to_lowercase() {
            let base = match l {
                'ä' | 'á' | 'à' | 'â' | 'ã' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
                'é' | 'è' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
                'í' | 'ì' | 'î' | 'ï' | 'ī' | 'į' | 'i' | 'ł' => 'l',
                'ö' | 'ó' | 'ò' | 'ô' | 'õ' | 'ø' | 'ō' | 'ő' => 'o',
                'ü' | 'ú' | 'ù' | 'û' | 'ū' | 'ů' | 'ŭ' | 'ű' | 'ų' => 'u',
                'ç' | 'ć' | 'č' => 'c',
                'ñ' | 'ń' | 'ň' => 'n',
                'ř' => 'r',
                'ś' | 'š' | 'ş' => 's',
                'ź' | 'ż' | 'ž' => 'z',
                'ý' | 'ÿ' => 'y',
                'ß' => {
                    out.push_str("ss");
                    continue;
                }
                l => l,
            };
            if base.is_alphanumeric() {
                out.push(base);
            }
        }
    }
    // "ae", "oe", "ue" as written for ä, ö, ü.
    out.replace("ae", "a").replace("oe", "o").replace("ue", "u")
}

/// This installation's secret identity.
pub struct Identity {
    signing: SigningKey,
    dh_secret: Zeroizing<[u8; 32]>,
    dh_public: [u8; 32],
    display_name: String,
    /// X25519 keys replaced by a key update, kept for a grace period (rekeys made before
    /// their authors saw the update are wrapped to them), oldest first.
    retired: Vec<RetiredDh>,
    /// Epoch keys opened with an X25519 key since deleted, by rekey: read from the store
    /// (sealed there with `at_rest_key`), never written to the key file.
    recalled: std::collections::BTreeMap<crate::wire::EventId, crate::crypto::EpochKey>,
}

/// An X25519 key replaced by a key update.
struct RetiredDh {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    /// When it was replaced (this node's clock).
    since_ms: u64,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user_id", &self.user_id())
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

impl Identity {
    pub fn generate<R: RngCore + CryptoRng>(
        rng: &mut R,
        display_name: &str,
    ) -> Result<Self, IdentityError> {
        validate_name(display_name)?;
        let signing = SigningKey::generate(rng);
        let mut dh = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(dh.as_mut());
        Ok(Self::from_parts(signing, dh, display_name.to_string()))
    }

    fn from_parts(signing: SigningKey, dh_secret: Zeroizing<[u8; 32]>, name: String) -> Self {
        let dh_public = MontgomeryPoint::mul_base_clamped(*dh_secret).to_bytes();
        Identity {
            signing,
            dh_secret,
            dh_public,
            display_name: name,
            retired: Vec::new(),
            recalled: Default::default(),
        }
    }

    pub fn user_id(&self) -> UserId {
        UserId(self.signing.verifying_key().to_bytes())
    }

    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    pub fn set_display_name(&mut self, name: &str) -> Result<(), IdentityError> {
        validate_name(name)?;
        self.display_name = name.to_string();
        Ok(())
    }

    pub fn dh_public(&self) -> [u8; 32] {
        self.dh_public
    }

    /// The current X25519 key.
    pub fn dh_key(&self) -> crypto::DhKey<'_> {
        crypto::DhKey {
            secret: &self.dh_secret,
            public: self.dh_public,
        }
    }

    /// The X25519 key for `public`: the current key or a retired one still kept.
    pub(crate) fn dh_key_for(&self, public: &[u8; 32]) -> Option<crypto::DhKey<'_>> {
        if *public == self.dh_public {
            return Some(self.dh_key());
        }
        self.retired
            .iter()
            .find(|r| r.public == *public)
            .map(|r| crypto::DhKey {
                secret: &r.secret,
                public: r.public,
            })
    }

    /// Replace the X25519 key (a key update): the old one is kept as retired until
    /// `drop_retired` deletes it, at most `MAX_RETIRED_DH_KEYS` of them.
    pub fn replace_dh(&mut self, secret: Zeroizing<[u8; 32]>, now_ms: u64) {
        let public = MontgomeryPoint::mul_base_clamped(*secret).to_bytes();
        let old_secret = std::mem::replace(&mut self.dh_secret, secret);
        let old_public = std::mem::replace(&mut self.dh_public, public);
        self.retired.push(RetiredDh {
            secret: old_secret,
            public: old_public,
            since_ms: now_ms,
        });
        if self.retired.len() > MAX_RETIRED_DH_KEYS {
            self.retired.remove(0);
        }
    }

    /// Take back the last `replace_dh` (its new key was never saved).
    pub fn undo_replace_dh(&mut self) {
        if let Some(last) = self.retired.pop() {
            self.dh_secret = last.secret;
            self.dh_public = last.public;
        }
    }

    /// The public halves of retired X25519 keys replaced at or before `before_ms`.
    pub fn retired_before(&self, before_ms: u64) -> Vec<[u8; 32]> {
        self.retired
            .iter()
            .filter(|r| r.since_ms <= before_ms)
            .map(|r| r.public)
            .collect()
    }

    /// Delete a retired X25519 key for good (its secret is zeroized).
    pub fn drop_retired(&mut self, public: &[u8; 32]) {
        self.retired.retain(|r| r.public != *public);
    }

    /// How many retired X25519 keys are kept.
    pub fn retired_count(&self) -> usize {
        self.retired.len()
    }

    /// The key that seals this node's opened epoch keys in its store, derived from the
    /// signing key (so it needs no file of its own and is as protected as the key file).
    pub(crate) fn at_rest_key(&self) -> crate::crypto::EpochKey {
        crate::crypto::EpochKey::from_bytes(crate::wire::hash32(&[
            crate::crypto::LABEL_AT_REST,
            &self.signing.to_bytes(),
        ]))
    }

    /// Remember an epoch key opened with a key since deleted (from the store).
    pub(crate) fn recall(&mut self, rekey: crate::wire::EventId, key: crate::crypto::EpochKey) {
        self.recalled.insert(rekey, key);
    }

    /// An epoch key remembered for `rekey` (`recall`).
    pub(crate) fn recalled(
        &self,
        rekey: &crate::wire::EventId,
    ) -> Option<&crate::crypto::EpochKey> {
        self.recalled.get(rekey)
    }

    /// Sign `msg` for one purpose; see `crypto::sign`.
    pub fn sign(&self, label: &[u8], msg: &[u8]) -> [u8; 64] {
        let framed = crypto::labelled(label, msg);
        self.signing.sign(&framed).to_bytes()
    }

    /// A libp2p keypair with the same Ed25519 key, so the network `PeerId` is the user id.
    pub fn libp2p_keypair(&self) -> libp2p_identity::Keypair {
        let mut bytes = Zeroizing::new(self.signing.to_bytes());
        match libp2p_identity::ed25519::SecretKey::try_from_bytes(bytes.as_mut()) {
            Ok(secret) => libp2p_identity::ed25519::Keypair::from(secret).into(),
            // 32 bytes always form a valid Ed25519 secret key.
            Err(_) => unreachable!("32-byte ed25519 secret"),
        }
    }

    pub fn profile(&self, now_ms: u64) -> Profile {
        let user_id = self.user_id();
        let msg = Profile::signed_bytes(&user_id, &self.display_name, &self.dh_public, now_ms);
        Profile {
            user_id,
            display_name: self.display_name.clone(),
            dh_public: self.dh_public,
            updated_ms: now_ms,
            signature: self.sign(LABEL_PROFILE, &msg),
        }
    }

    /// Write a new key file (mode 0600); refuses to replace an existing one.
    pub fn save_new(&self, path: &Path) -> Result<(), IdentityError> {
        let io_err = |source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_FILE_MAX_BYTES));
        bytes.extend_from_slice(if self.retired.is_empty() {
            KEY_FILE_MAGIC
        } else {
            KEY_FILE_MAGIC_V2
        });
        bytes.extend_from_slice(&self.signing.to_bytes());
        bytes.extend_from_slice(self.dh_secret.as_ref());
        bytes.push(self.display_name.len() as u8);
        bytes.extend_from_slice(self.display_name.as_bytes());
        if !self.retired.is_empty() {
            bytes.push(self.retired.len() as u8);
            for r in &self.retired {
                bytes.extend_from_slice(r.secret.as_ref());
                bytes.extend_from_slice(&r.since_ms.to_be_bytes());
            }
        }
        // Protected before the file exists, so a failure leaves no empty key file behind.
        let stored = Zeroizing::new(crate::platform::protect(&bytes).map_err(io_err)?);

        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                IdentityError::AlreadyExists {
                    path: path.display().to_string(),
                }
            } else {
                io_err(source)
            }
        })?;
        file.write_all(&stored).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        Ok(())
    }

    /// Rewrite the key file in place (for a name change), atomically via a temp file.
    pub fn save_replace(&self, path: &Path) -> Result<(), IdentityError> {
        let tmp = path.with_extension("tmp");
        let _ = fs::remove_file(&tmp);
        self.save_new(&tmp)?;
        let io_err = |source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        };
        fs::rename(&tmp, path).map_err(io_err)?;
        // The rename itself durable too: a key update must not be lost in a crash.
        #[cfg(unix)]
        if let Some(dir) = path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err)?;
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let shown = path.display().to_string();
        let mut file = fs::File::open(path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                IdentityError::Missing {
                    path: shown.clone(),
                }
            } else {
                IdentityError::Io {
                    path: shown.clone(),
                    source,
                }
            }
        })?;
        let mut stored = Zeroizing::new(Vec::with_capacity(KEY_FILE_MAX_BYTES));
        // Read one byte past the limit so an oversized file is detected, not truncated.
        Read::by_ref(&mut file)
            .take((KEY_FILE_MAX_BYTES + PROTECTION_OVERHEAD) as u64 + 1)
            .read_to_end(&mut stored)
            .map_err(|source| IdentityError::Io {
                path: shown.clone(),
                source,
            })?;
        let bytes = crate::platform::unprotect(&stored).map_err(|source| IdentityError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::decode_key_file(&bytes).ok_or(IdentityError::BadKeyFile { path: shown })
    }

    fn decode_key_file(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > KEY_FILE_MAX_BYTES || bytes.len() < 16 + 64 + 1 {
            return None;
        }
        let (magic, rest) = bytes.split_at(16);
        let with_retired = match magic {
            m if m == KEY_FILE_MAGIC => false,
            m if m == KEY_FILE_MAGIC_V2 => true,
            _ => return None,
        };
        let mut signing_bytes = Zeroizing::new([0u8; 32]);
        signing_bytes.copy_from_slice(&rest[..32]);
        let mut dh = Zeroizing::new([0u8; 32]);
        dh.copy_from_slice(&rest[32..64]);
        let name_len = rest[64] as usize;
        let name = rest.get(65..65 + name_len)?;
        let tail = &rest[65 + name_len..];
        let name = std::str::from_utf8(name).ok()?.to_string();
        // A name chosen before the character rule still loads (the wire rule holds).
        validate_wire_name(&name).ok()?;
        let signing = SigningKey::from_bytes(&signing_bytes);
        let mut identity = Self::from_parts(signing, dh, name);
        if with_retired {
            let (&count, keys) = tail.split_first()?;
            let count = usize::from(count);
            if count == 0 || count > MAX_RETIRED_DH_KEYS || keys.len() != count * 40 {
                return None;
            }
            for k in keys.chunks_exact(40) {
                let mut secret = Zeroizing::new([0u8; 32]);
                secret.copy_from_slice(&k[..32]);
                let public = MontgomeryPoint::mul_base_clamped(*secret).to_bytes();
                identity.retired.push(RetiredDh {
                    secret,
                    public,
                    since_ms: u64::from_be_bytes(k[32..].try_into().ok()?),
                });
            }
        } else if !tail.is_empty() {
            return None;
        }
        Some(identity)
    }
}

/// A number two people compare in person to be sure they talk to each other's real keys.
/// Both sides compute the same 60 digits (12 groups of 5), in the style of Signal.
pub fn safety_number(a: &UserId, b: &UserId) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let digits = format!(
        "{}{}",
        fingerprint_digits(first),
        fingerprint_digits(second)
    );
    digits
        .as_bytes()
        .chunks(5)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Iterations of the fingerprint hash: makes a brute-forced look-alike key expensive.
const FINGERPRINT_ITERATIONS: usize = 5200;

fn fingerprint_digits(user: &UserId) -> String {
    let mut hash = Blake2b512::new()
        .chain_update(LABEL_SAFETY_NUMBER)
        .chain_update(user.0)
        .finalize();
    for _ in 0..FINGERPRINT_ITERATIONS {
        hash = Blake2b512::new()
            .chain_update(hash)
            .chain_update(user.0)
            .finalize();
    }
    let mut out = String::with_capacity(30);
    for chunk in hash[..30].chunks(5) {
        let mut v: u64 = 0;
        for b in chunk {
            v = (v << 8) | u64::from(*b);
        }
        out.push_str(&format!("{:05}", v % 100_000));
    }
    out
}

/// Write a file only its owner can read (0600 on Unix; on Windows the per-user data
/// directory's ACL does the same). With `replace`, an existing file is replaced atomically
/// through a temporary file; without, an existing file is an `AlreadyExists` error.
pub fn write_private_file(path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    let target = if replace {
        path.with_extension("tmp")
    } else {
        path.to_path_buf()
    };
    if replace {
        let _ = fs::remove_file(&target);
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&target)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if replace {
        fs::rename(&target, path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(7)
    }

    #[test]
    fn look_alike_names_share_a_key_and_marks_are_refused() {
        let key = name_key("Bürgermeisteramt");
        for alike in [
            "Buergermeister-Amt",
            "BURGERMEISTERAMT",
            "Bürgermeist\u{0435}ramt",
            "B\u{00FC}rgermeisteramt ",
            "Вürgermeisteramt",
            "Bürgermeisteramt.",
        ] {
            assert_eq!(name_key(alike), key, "{alike:?}");
        }
        assert_eq!(name_key("Il1|"), name_key("llll"));
        // Invisible letters and look-alikes of I and accents found in review.
        assert_eq!(name_key("Bürgermeisteramt\u{3164}"), key);
        assert_eq!(name_key("\u{04C0}T-Service"), name_key("IT-Service"));
        assert_eq!(name_key("Bűrgermeisteramt"), key);
        assert_eq!(clean_peer_name(" Amt\u{202E}\u{2714} "), "Amt");
        assert_eq!(name_key("Straße"), name_key("Strasse"));
        for other in ["Bürgermeister", "Anna Schmidt", "Bauamt"] {
            assert_ne!(name_key(other), key, "{other:?}");
        }
        for marked in [
            "Anna \u{2714}",
            "IT \u{2705}",
            "Amt \u{26A0}",
            "ok \u{2713}",
        ] {
            assert!(validate_name(marked).is_err(), "{marked:?}");
        }
        assert!(validate_name("Anna 👍").is_ok());
    }

    #[test]
    fn user_id_roundtrips_through_peer_id_string() {
        let id = Identity::generate(&mut rng(), "Anna").unwrap();
        let text = id.user_id().to_string();
        assert!(text.starts_with("12D3KooW"), "{text}");
        assert_eq!(UserId::from_str(&text).unwrap(), id.user_id());
        assert_eq!(
            id.libp2p_keypair().public().to_peer_id(),
            id.user_id().to_peer_id().unwrap()
        );
        assert!(UserId::from_str("not-a-peer").is_err());
        // Read from the bytes, as libp2p's own decoding does.
        let peer = id.libp2p_keypair().public().to_peer_id();
        assert_eq!(UserId::from_peer_id(&peer), Some(id.user_id()));
        assert_eq!(
            UserId::from_peer_id(&libp2p_identity::PeerId::random()),
            None
        );
    }

    #[test]
    fn a_typed_user_id_that_is_no_key_is_refused() {
        // 32 bytes that are not a point on the curve still make a peer id string ...
        let not_a_key = (0u8..=255)
            .map(|b| UserId([b; 32]))
            .find(|u| u.verifying_key().is_none())
            .expect("some byte pattern is not a point");
        let text = not_a_key.to_string();
        assert!(text.starts_with("12D3KooW"), "{text}");
        // ... which a person may not use as a user id.
        assert!(UserId::from_str(&text).is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let id = Identity::generate(&mut rng(), "Anna").unwrap();
        let shown = format!("{id:?}");
        assert!(!shown.contains(&hex::encode(id.dh_key().secret)));
        assert!(!shown.contains(&format!("{:?}", id.dh_key().secret)));
        assert!(shown.contains("Anna"));
    }

    #[test]
    fn key_file_is_private_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let id = Identity::generate(&mut rng(), "Anna").unwrap();
        id.save_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let loaded = Identity::load(&path).unwrap();
        assert_eq!(loaded.user_id(), id.user_id());
        assert_eq!(loaded.dh_public(), id.dh_public());
        assert!(matches!(
            id.save_new(&path),
            Err(IdentityError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn a_key_file_keeps_replaced_keys_and_an_old_file_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let mut id = Identity::generate(&mut rng(), "Anna").unwrap();
        // A file without replaced keys keeps the first format.
        id.save_new(&path).unwrap();
        let stored = fs::read(&path).unwrap();
        let plain = crate::platform::unprotect(&stored).unwrap();
        assert!(plain.starts_with(KEY_FILE_MAGIC));
        let first = id.dh_public();
        id.replace_dh(Zeroizing::new([3; 32]), 500);
        id.replace_dh(Zeroizing::new([4; 32]), 600);
        id.save_replace(&path).unwrap();
        let loaded = Identity::load(&path).unwrap();
        assert_eq!(loaded.dh_public(), id.dh_public());
        assert_eq!(loaded.retired_count(), 2);
        assert!(loaded.dh_key_for(&first).is_some());
        assert_eq!(loaded.retired_before(500), vec![first]);
        // Deleted for good: gone from the next file too.
        id.drop_retired(&first);
        id.save_replace(&path).unwrap();
        let loaded = Identity::load(&path).unwrap();
        assert!(loaded.dh_key_for(&first).is_none());
        assert_eq!(loaded.retired_count(), 1);
        // At most `MAX_RETIRED_DH_KEYS` are kept.
        for i in 0..20 {
            id.replace_dh(Zeroizing::new([10 + i; 32]), 700);
        }
        assert_eq!(id.retired_count(), MAX_RETIRED_DH_KEYS);
        id.save_replace(&path).unwrap();
        assert_eq!(
            Identity::load(&path).unwrap().retired_count(),
            MAX_RETIRED_DH_KEYS
        );
    }

    #[test]
    fn damaged_or_missing_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::Missing { .. })
        ));
        fs::write(&path, b"hello").unwrap();
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::BadKeyFile { .. })
        ));
        fs::write(&path, vec![0u8; 10_000]).unwrap();
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::BadKeyFile { .. })
        ));
    }

    #[test]
    fn profile_signature_binds_every_field() {
        let id = Identity::generate(&mut rng(), "Anna").unwrap();
        let profile = id.profile(1000);
        profile.verify().unwrap();
        let mut renamed = profile.clone();
        renamed.display_name = "Mallory".into();
        assert!(renamed.verify().is_err());
        let mut rekeyed = profile.clone();
        rekeyed.dh_public[0] ^= 1;
        assert!(rekeyed.verify().is_err());
    }

    /// The seven encodings libsodium refuses as X25519 public keys (each of small order).
    fn small_order_encodings() -> Vec<[u8; 32]> {
        let mut out = vec![[0u8; 32], [0u8; 32]];
        out[1][0] = 1;
        out.push([
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ]);
        out.push([
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
            0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
            0xd0, 0x9f, 0x11, 0x57,
        ]);
        for low in [0xec, 0xed, 0xee] {
            let mut p = [0xffu8; 32];
            p[0] = low;
            p[31] = 0x7f;
            out.push(p);
        }
        out
    }

    /// Regression (issue 19, item 4): a profile's X25519 key was never checked, so a member
    /// could publish a small-order key; the wrap for it is readable from public bytes
    /// alone (the shared secret is fixed), so the group key became public.
    #[test]
    fn profiles_with_small_order_or_non_canonical_keys_are_refused() {
        use curve25519_dalek::scalar::Scalar;
        let id = Identity::generate(&mut rng(), "Mallory").unwrap();
        let with_key = |dh: [u8; 32]| {
            let msg = Profile::signed_bytes(&id.user_id(), "Mallory", &dh, 1000);
            Profile {
                user_id: id.user_id(),
                display_name: "Mallory".into(),
                dh_public: dh,
                updated_ms: 1000,
                signature: id.sign(LABEL_PROFILE, &msg),
            }
        };
        for weak in small_order_encodings() {
            // The list is what it says: eight times each point is the identity (u = 0).
            assert_eq!(
                (MontgomeryPoint(weak) * Scalar::from(8u8)).to_bytes(),
                [0u8; 32],
                "{}",
                hex::encode(weak)
            );
            assert!(!crypto::dh_public_is_valid(&weak));
            assert_eq!(
                with_key(weak).verify(),
                Err(crypto::CryptoError::WeakKey),
                "{}",
                hex::encode(weak)
            );
        }
        // The same honest key with the (ignored) high bit set is another encoding of it.
        let mut high = id.dh_public();
        high[31] |= 0x80;
        assert_eq!(with_key(high).verify(), Err(crypto::CryptoError::WeakKey));
        // A point on the twist (u = 2 is not on the curve): refused too.
        let mut two = [0u8; 32];
        two[0] = 2;
        assert!(MontgomeryPoint(two).to_edwards(0).is_none());
        assert_eq!(with_key(two).verify(), Err(crypto::CryptoError::WeakKey));
        // Honest keys pass, many of them.
        let mut r = rng();
        for n in 0..64 {
            let honest = Identity::generate(&mut r, &format!("H{n}")).unwrap();
            assert!(crypto::dh_public_is_valid(&honest.dh_public()));
            honest.profile(1).verify().unwrap();
        }
        with_key(id.dh_public()).verify().unwrap();
    }

    #[test]
    fn safety_number_is_symmetric_and_distinct() {
        let mut r = rng();
        let a = Identity::generate(&mut r, "A").unwrap().user_id();
        let b = Identity::generate(&mut r, "B").unwrap().user_id();
        let c = Identity::generate(&mut r, "C").unwrap().user_id();
        let ab = safety_number(&a, &b);
        assert_eq!(ab, safety_number(&b, &a));
        assert_ne!(ab, safety_number(&a, &c));
        assert_eq!(ab.split(' ').count(), 12);
        assert!(ab.split(' ').all(|g| g.len() == 5));
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("").is_err());
        assert!(validate_name(" Anna").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
        assert!(validate_name("Jürgen Müller").is_ok());
        assert!(validate_name("Anna ❤️ 👍🏽 👩\u{200D}💻").is_ok());
        // A peer's profile is held to the wire rule only (history signed before stays).
        assert!(validate_wire_name("Bürger\u{200B}meister").is_ok());
        // Two names that would look alike, or reorder what follows them: refused.
        for bad in [
            "Bürger\u{200B}meister",
            "IT-Service\u{202E}ecivres",
            "Anna\u{2066}",
            "Anna\u{200F}",
            "Anna\u{FEFF}",
            "Anna\u{0007}",
            "Anna\u{001B}[31m",
            "An\u{00AD}na",
            "Bürger\u{200D}meister",
            "Anna\u{2002}Meier",
            "Anna\u{00A0}Meier",
            "Anna\u{2028}IT removed Bernd",
        ] {
            assert!(
                matches!(validate_name(bad), Err(IdentityError::NameCharacters)),
                "{bad:?}"
            );
        }
    }
}
