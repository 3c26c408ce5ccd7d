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
        "02",
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        "0000000000000003",
        "6666666666666666666666666666666666666666666666666666666666666666",
        "0000000000000007",
        "0000019ab697e800",
        "00000002",
        "01",
        "00000001aa",
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
            "0205",
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
            "0202",
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
    };
    assert_eq!(hex::encode(c.encode()), "01000000044d6f696e");
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
        }
    }

    #[test]
    fn content_roundtrip(text in ".{0,100}", vv in proptest::collection::btree_map(arb_user(), any::<u64>(), 0..6)) {
        for c in [Content::Text { text: text.clone() }, Content::Delivered { upto: vv }] {
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
