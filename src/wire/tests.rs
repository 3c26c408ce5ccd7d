use super::*;
use proptest::prelude::*;

fn header(kind: EventKind) -> EventHeader {
    EventHeader {
        conversation: ConversationId([0x11; 32]),
        author: UserId([0x22; 32]),
        seq: 3,
        prev: EventId([0x66; 32]),
        lamport: 7,
        wall_ms: 1_764_000_000_000,
        epoch: 2,
        key: EventId([0x99; 32]),
        kind,
    }
}

fn profile(name: &str) -> Profile {
    Profile {
        user_id: UserId([0x33; 32]),
        display_name: name.into(),
        dh_public: [0x44; 32],
        updated_ms: 5,
        signature: [0x55; 64],
    }
}

/// Pins the event byte layout. Changing it breaks every stored database and every
/// peer on the network: bump WIRE_VERSION instead.
#[test]
fn event_layout_snapshot() {
    let e = Event::new(
        header(EventKind::Text),
        vec![0xAA],
        vec![0xBB, 0xCC],
        [0x77; 64],
    );
    let hex = hex::encode(e.encode());
    let expected = concat!(
        "05",
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        "0000000000000003",
        "6666666666666666666666666666666666666666666666666666666666666666",
        "0000000000000007",
        "0000019ab697e800",
        "00000002",
        "9999999999999999999999999999999999999999999999999999999999999999",
        "01",
        "00000001aa",
        "00",
        "00000002bbcc",
        "77777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777",
    );
    assert_eq!(hex, expected);
}

#[test]
fn sync_digest_layout_snapshot() {
    let msg = SyncMessage::Digest {
        conversations: vec![(ConversationId([0x0f; 32]), [0xd1; DIGEST_BYTES])],
    };
    assert_eq!(
        hex::encode(msg.encode()),
        concat!(
            "0505",
            "00000001",
            "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",
            "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1",
        )
    );
}

#[test]
fn digests_differ_when_vectors_do() {
    let mut a = VersionVector::new();
    a.insert(UserId([1; 32]), 5);
    let mut b = a.clone();
    assert_eq!(vv_digest(&a), vv_digest(&b));
    b.insert(UserId([1; 32]), 6);
    assert_ne!(vv_digest(&a), vv_digest(&b));
    assert_ne!(vv_digest(&a), vv_digest(&VersionVector::new()));
    // Same seqs, another event at the head: another digest.
    let h1: Heads = [(UserId([1; 32]), [1u8; 8])].into();
    let h2: Heads = [(UserId([1; 32]), [2u8; 8])].into();
    assert_ne!(vv_heads_digest(&a, &h1), vv_heads_digest(&a, &h2));
    assert_eq!(vv_heads_digest(&a, &h1), vv_heads_digest(&a, &h1.clone()));
}

#[test]
fn sync_summary_layout_snapshot() {
    let mut vv = VersionVector::new();
    vv.insert(UserId([0x01; 32]), 9);
    let mut heads = Heads::new();
    heads.insert(UserId([0x01; 32]), [0xab; 8]);
    let msg = SyncMessage::Summary {
        conversations: vec![(ConversationId([0x0f; 32]), vv, heads)],
    };
    assert_eq!(
        hex::encode(msg.encode()),
        concat!(
            "0502",
            "00000001",
            "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",
            "0001",
            "0101010101010101010101010101010101010101010101010101010101010101",
            "0000000000000009",
            "abababababababab"
        )
    );
}

#[test]
fn hello_rejects_overlong_names() {
    let hello = SyncMessage::Hello {
        role: Role::Member,
        profile: profile("Anna"),
    };
    assert_eq!(SyncMessage::decode(&hello.encode()).unwrap(), hello);
    let long = SyncMessage::Hello {
        role: Role::Member,
        profile: profile(&"x".repeat(MAX_DISPLAY_NAME_BYTES + 1)),
    };
    assert!(matches!(
        SyncMessage::decode(&long.encode()),
        Err(WireError::TooLarge { .. })
    ));
}

#[test]
fn content_layout_snapshot() {
    let c = Content::Text {
        text: "Moin".into(),
        reply_to: None,
        mentions: vec![],
    };
    assert_eq!(hex::encode(c.encode()), "01000000044d6f696e000000");
    let c = Content::Text {
        text: "Ja".into(),
        reply_to: Some(EventId([0xab; 32])),
        mentions: vec![UserId([0x01; 32])],
    };
    assert_eq!(
        hex::encode(c.encode()),
        concat!(
            "01",
            "000000024a61",
            "01abababababababababababababababababababababababababababababababab",
            "0001",
            "0101010101010101010101010101010101010101010101010101010101010101",
        )
    );
    let c = Content::Reaction {
        emoji: "👍".into()
    };
    assert_eq!(
        hex::encode(c.encode()),
        format!("0604f09f918d{}", "00".repeat(MAX_EMOJI_BYTES - 4))
    );
    // Every reaction is one size, taken back or not.
    let none = Content::Reaction {
        emoji: String::new(),
    };
    assert_eq!(none.encode().len(), c.encode().len());
}

/// A purged event (a message deleted for everyone) keeps its id and its signature: the
/// signature covers the body's hash, not the body.
#[test]
fn a_purged_event_keeps_id_and_signature_and_its_layout_is_pinned() {
    let signer = crate::identity::Identity::generate(&mut rand::thread_rng(), "Anna").unwrap();
    let mut h = header(EventKind::Text);
    h.author = signer.user_id();
    let sealed = vec![0xBB, 0xCC];
    let sig = signer.sign(
        crate::crypto::LABEL_EVENT_SIGNATURE,
        &Event::signed_bytes_of(&h, &[], &sealed),
    );
    let e = Event::new(h, vec![], sealed, sig);
    let p = e.purge();
    assert_eq!(p.id(), e.id());
    assert!(p.is_purged() && p.sealed.is_empty() && p.has_body());
    assert_eq!(p.signed_bytes(), e.signed_bytes());
    assert!(
        crate::crypto::verify(
            &signer.user_id(),
            crate::crypto::LABEL_EVENT_SIGNATURE,
            &p.signed_bytes(),
            &p.signature
        )
        .is_ok()
    );
    let back = Event::decode(&p.encode()).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.id(), e.id());
    // Body flag 1, then the 32-byte hash where the body was.
    let bytes = p.encode();
    let body = EVENT_HEADER_LEN + 4;
    assert_eq!(bytes[body], 1);
    assert_eq!(bytes.len(), EVENT_HEADER_LEN + 4 + 1 + 32 + 64);
    // A flag that is neither is refused.
    let mut bad = bytes.clone();
    bad[body] = 2;
    assert!(Event::decode(&bad).is_err());
    // An event signed without a body cannot pass for a purged one (it would be valid
    // one way and invalid the other under one id): purging leaves it as it is (a
    // deletion's copy stays readable), and a copy marked purged anyway is refused.
    let empty = Event::new(header(EventKind::Text), vec![], vec![], [0; 64]);
    assert!(!empty.has_body() && !empty.purge().is_purged());
    assert!(Event::decode(&empty.purge().encode()).is_ok());
    let mut marked = empty.clone();
    marked.purged = true;
    assert!(Event::decode(&marked.encode()).is_err());
}

#[test]
fn oversized_and_truncated_inputs_are_rejected() {
    let big = vec![0u8; MAX_EVENT_BYTES + 1];
    assert!(matches!(
        Event::decode(&big),
        Err(WireError::TooLarge { .. })
    ));
    let e = Event::new(header(EventKind::Text), vec![], vec![1, 2, 3], [0; 64]);
    let bytes = e.encode();
    for cut in 0..bytes.len() {
        assert!(Event::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(
        Event::decode(&extra),
        Err(WireError::TrailingBytes { extra: 1 })
    );
    // A frame that claims 8192 events but carries none must not allocate for them.
    let mut lying = vec![WIRE_VERSION, 3];
    lying.extend_from_slice(&8192u32.to_be_bytes());
    assert!(matches!(
        SyncMessage::decode(&lying),
        Err(WireError::Truncated { .. })
    ));
    let mut huge_len = vec![WIRE_VERSION, 3, 0, 0, 0, 1];
    huge_len.extend_from_slice(&u32::MAX.to_be_bytes());
    huge_len.extend_from_slice(&[0u8; 200]);
    assert!(matches!(
        SyncMessage::decode(&huge_len),
        Err(WireError::TooLarge { .. })
    ));
}

#[test]
fn unknown_kinds_survive_a_roundtrip() {
    let e = Event::new(header(EventKind::Unknown(42)), vec![], vec![], [0; 64]);
    let back = Event::decode(&e.encode()).unwrap();
    assert_eq!(back.header.kind, EventKind::Unknown(42));
    assert_eq!(back.id(), e.id());
}

fn arb_user() -> impl Strategy<Value = UserId> {
    any::<[u8; 32]>().prop_map(UserId)
}

fn arb_profile() -> impl Strategy<Value = Profile> {
    (
        arb_user(),
        "[a-zA-Zäöü ]{1,20}",
        any::<[u8; 32]>(),
        any::<u64>(),
    )
        .prop_map(|(user_id, name, dh_public, updated_ms)| Profile {
            user_id,
            display_name: name,
            dh_public,
            updated_ms,
            signature: [9; 64],
        })
}

fn arb_event() -> impl Strategy<Value = Event> {
    (
        any::<[u8; 32]>(),
        arb_user(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(any::<u8>(), 0..200),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(c, author, seq, lamport, wall_ms, epoch, kind, public, sealed, sig)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&sig);
                Event::new(
                    EventHeader {
                        conversation: ConversationId(c),
                        author,
                        seq,
                        prev: EventId(c),
                        lamport,
                        wall_ms,
                        epoch,
                        key: EventId(sig),
                        kind: EventKind::from_code(kind),
                    },
                    public,
                    sealed,
                    signature,
                )
            },
        )
}

proptest! {
    #[test]
    fn event_roundtrip(e in arb_event()) {
        let bytes = e.encode();
        prop_assert_eq!(bytes.len(), e.encoded_len());
        let back = Event::decode(&bytes).unwrap();
        prop_assert_eq!(back.id(), e.id());
        prop_assert_eq!(back, e);
    }

    #[test]
    fn sync_message_roundtrip(
        events in proptest::collection::vec(arb_event(), 0..5),
        vv in proptest::collection::btree_map(arb_user(), any::<u64>(), 0..6),
        conv in any::<[u8; 32]>(),
        p in arb_profile(),
        seq in any::<u64>(),
        read in proptest::option::of((any::<u64>(), any::<u64>())),
    ) {
        let author = vv.keys().next().copied().unwrap_or(UserId([3; 32]));
        let announce = Announce { conversation: ConversationId(conv), author, seq };
        let receipt = Receipt {
            conversation: ConversationId(conv),
            author,
            reader: p.user_id,
            delivered_seq: seq,
            read: read.map(|(lamport, s)| OrderKey { lamport, author, seq: s }),
            hops_left: 3,
            signature: [7; 64],
        };
        for msg in [
            SyncMessage::Digest { conversations: vec![(ConversationId(conv), vv_digest(&vv))] },
            SyncMessage::Have { items: vec![announce, announce] },
            SyncMessage::Want { items: vec![announce] },
            SyncMessage::ProfileDigest { digest: vv_digest(&vv) },
            SyncMessage::Receipts { receipts: vec![receipt.clone(), receipt] },
            SyncMessage::Events { events },
            SyncMessage::Summary { conversations: vec![(ConversationId(conv), vv.clone(), vv.keys().map(|u| (*u, [7u8; 8])).collect())] },
            SyncMessage::Hello { role: Role::Relay, profile: p.clone() },
            SyncMessage::Profiles { profiles: vec![p.clone(), p] },
        ] {
            prop_assert_eq!(SyncMessage::decode(&msg.encode()).unwrap(), msg);
        }
    }

    #[test]
    fn membership_roundtrip(members in proptest::collection::vec(arb_profile(), 0..4), nonce in any::<[u8;16]>(), u in arb_user()) {
        let admins = members.iter().map(|p| p.user_id).collect();
        for op in [
            MembershipOp::Create { nonce, members: members.clone(), admins },
            MembershipOp::Remove { user: u, seen: 7 },
            MembershipOp::Leave,
            MembershipOp::Promote { user: u },
            MembershipOp::Rename,
        ] {
            prop_assert_eq!(MembershipOp::decode(&op.encode()).unwrap(), op);
        }
        if let Some(p) = members.first() {
            let op = MembershipOp::Add { profile: p.clone(), seen: 3 };
            prop_assert_eq!(MembershipOp::decode(&op.encode()).unwrap(), op);
            let op = MembershipOp::KeyUpdate { profile: p.clone() };
            prop_assert_eq!(MembershipOp::decode(&op.encode()).unwrap(), op);
        }
    }

    #[test]
    fn content_roundtrip(text in ".{0,100}", vv in proptest::collection::btree_map(arb_user(), any::<u64>(), 0..6)) {
        let texts = [
            Content::Text { text: text.clone(), reply_to: None, mentions: vec![] },
            Content::Text {
                text: text.clone(),
                reply_to: Some(EventId([7; 32])),
                mentions: vv.keys().copied().collect(),
            },
            Content::Reaction { emoji: text.chars().take(4).collect() },
        ];
        for c in texts.into_iter().chain([Content::Delivered { upto: vv }]) {
            prop_assert_eq!(Content::decode(&c.encode()).unwrap(), c);
        }
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Event::decode(&bytes);
        let _ = SyncMessage::decode(&bytes);
        let _ = MembershipOp::decode(&bytes);
        let _ = RekeyBody::decode(&bytes);
        let _ = Content::decode(&bytes);
    }
}

/// Pins the rekey and complaint layouts (public parts of events: inside the event's
/// version): commitment, ephemeral key, its proof, then (id, wrap) per recipient.
#[test]
fn rekey_and_complaint_layout_snapshot() {
    let body = RekeyBody {
        commitment: [0x01; 32],
        ephemeral: [0x02; 32],
        possession: [0x03; 64],
        recipients: vec![Wrap {
            user: UserId([0x04; 32]),
            dh: [0x09; 32],
            wrapped: [0x05; 32],
        }],
    };
    let bytes = body.encode();
    assert_eq!(bytes.len(), 32 + 32 + 64 + 2 + 96);
    assert_eq!(&bytes[130..162], &[0x04; 32]);
    assert_eq!(&bytes[162..194], &[0x09; 32]);
    assert_eq!(&bytes[194..226], &[0x05; 32]);
    assert_eq!(&bytes[128..130], &[0, 1]);
    assert_eq!(RekeyBody::decode(&bytes).unwrap(), body);
    // One byte short or long: refused.
    assert!(RekeyBody::decode(&bytes[..bytes.len() - 1]).is_err());
    let mut long = bytes.clone();
    long.push(0);
    assert!(RekeyBody::decode(&long).is_err());
    let complaint = ComplaintBody {
        rekey: EventId([0x06; 32]),
        shared: crate::crypto::SharedProof {
            point: [0x07; 32],
            proof: [0x08; 64],
        },
    };
    let bytes = complaint.encode();
    assert_eq!(
        hex::encode(&bytes),
        format!("{}{}{}", "06".repeat(32), "07".repeat(32), "08".repeat(64))
    );
    assert_eq!(ComplaintBody::decode(&bytes).unwrap(), complaint);
    assert!(ComplaintBody::decode(&bytes[..127]).is_err());
}

/// A creation of `MAX_MEMBERS` members with the longest names, and a rekey to all of
/// them, fit in one event.
#[test]
fn a_group_of_max_members_fits_in_one_event() {
    let members: Vec<Profile> = (0..MAX_MEMBERS)
        .map(|i| {
            let mut p = profile(&"x".repeat(crate::identity::MAX_DISPLAY_NAME_BYTES));
            p.user_id = UserId({
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                id
            });
            p
        })
        .collect();
    let admins: Vec<UserId> = members.iter().take(16).map(|p| p.user_id).collect();
    let create = MembershipOp::Create {
        nonce: [0; 16],
        members: members.clone(),
        admins,
    }
    .encode();
    let rekey = RekeyBody {
        commitment: [0; 32],
        ephemeral: [0; 32],
        possession: [0; 64],
        recipients: members
            .iter()
            .map(|p| Wrap {
                user: p.user_id,
                dh: [0; 32],
                wrapped: [0; 32],
            })
            .collect(),
    }
    .encode();
    for public in [create, rekey] {
        let e = Event::new(header(EventKind::Membership), public, vec![], [0; 64]);
        let encoded = e.encode();
        assert!(encoded.len() <= MAX_EVENT_BYTES, "{} bytes", encoded.len());
        assert_eq!(Event::decode(&encoded).unwrap(), e);
    }
}
