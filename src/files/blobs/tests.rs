use super::*;
use crate::files::{RECORD_PLAIN_BYTES, ciphertext_len};

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    Setup { _dir: dir, root }
}

fn store(s: &Setup, name: &str) -> BlobStore {
    BlobStore::open(&s.root.join(name)).unwrap()
}

fn import(s: &Setup, store: &BlobStore, plain: &[u8]) -> Imported {
    let path = s.root.join(format!("source-{}", rand::random::<u32>()));
    fs::write(&path, plain).unwrap();
    store.import(&path, u64::MAX).unwrap()
}

/// `to` fetches `wanted` from `from` in one response.
fn fetch(from: &BlobStore, to: &BlobStore, blob: &BlobRef, wanted: &Blocks) -> Received {
    let mut response = Vec::new();
    let served = from.encode(blob, wanted, &mut response).unwrap();
    to.receive(blob, &served, &response).unwrap()
}

#[test]
fn a_file_imported_and_fetched_block_by_block_decrypts_to_the_original() {
    let s = setup();
    let (a, b) = (store(&s, "a"), store(&s, "b"));
    for len in [0, 1, RECORD_PLAIN_BYTES, 5 * RECORD_PLAIN_BYTES + 77] {
        let plain = sample(len);
        let imported = import(&s, &a, &plain);
        let n = imported.blob.blocks();
        assert!(a.is_complete(&imported.blob));
        // Backwards, one block per response: the last block (with the size proof) first.
        for block in (0..n).rev() {
            let got = fetch(&a, &b, &imported.blob, &Blocks::range(block, block + 1));
            assert_eq!(got.added, Blocks::range(block, block + 1), "len {len}");
            assert_eq!(got.refused, None);
            assert_eq!(got.complete, block == 0);
        }
        let out = s.root.join(format!("out-{len}"));
        b.export(&imported.blob, len as u64, &imported.key, &out)
            .unwrap();
        assert_eq!(fs::read(&out).unwrap(), plain, "len {len}");
    }
}

#[test]
fn a_partial_copy_serves_what_it_holds_and_nothing_else() {
    let s = setup();
    let (a, b, c) = (store(&s, "a"), store(&s, "b"), store(&s, "c"));
    let plain = sample(8 * RECORD_PLAIN_BYTES);
    let imported = import(&s, &a, &plain);
    let n = imported.blob.blocks();
    assert_eq!(n, 8, "8 records of ciphertext");
    fetch(&a, &b, &imported.blob, &Blocks::range(2, 5));
    // C asks B for everything and gets blocks 2..5 only, verified.
    let got = fetch(&b, &c, &imported.blob, &Blocks::all(n));
    assert_eq!(got.added, Blocks::range(2, 5));
    assert!(!got.complete);
    // The rest from A; then C's copy is whole and opens.
    let missing = Blocks::all(n).minus(&c.held(&imported.blob));
    assert_eq!(missing, Blocks(vec![(0, 2), (5, 8)]));
    let got = fetch(&a, &c, &imported.blob, &missing);
    assert!(got.complete);
    let out = s.root.join("out");
    c.export(&imported.blob, plain.len() as u64, &imported.key, &out)
        .unwrap();
    assert_eq!(fs::read(&out).unwrap(), plain);
    // B cannot open what it does not wholly hold.
    assert!(matches!(
        b.export(&imported.blob, plain.len() as u64, &imported.key, &out),
        Err(FileError::Incomplete)
    ));
}

#[test]
fn a_corrupt_block_is_refused_and_the_blocks_before_it_are_kept() {
    let s = setup();
    let (a, b) = (store(&s, "a"), store(&s, "b"));
    let plain = sample(4 * RECORD_PLAIN_BYTES);
    let imported = import(&s, &a, &plain);
    let ct_len = ciphertext_len(plain.len() as u64).unwrap();
    let wanted = Blocks::all(blocks(ct_len));
    let mut response = Vec::new();
    let served = a.encode(&imported.blob, &wanted, &mut response).unwrap();
    // A byte in the middle of the third block, then the response cut short, then extra
    // bytes, then garbage for another hash.
    let mut flipped = response.clone();
    let at = response.len() - 2 * RECORD_BYTES;
    flipped[at] ^= 0x40;
    let got = b.receive(&imported.blob, &served, &flipped).unwrap();
    assert!(got.refused.is_some());
    assert!(!got.added.contains(2) && !got.complete);
    assert!(got.added.contains(0));
    let held = b.held(&imported.blob);
    assert!(
        !held.contains(2),
        "a block that failed its hash is not held"
    );

    let c = store(&s, "c");
    let got = c
        .receive(&imported.blob, &served, &response[..response.len() / 2])
        .unwrap();
    assert!(got.refused.is_some() && !got.complete);

    let d = store(&s, "d");
    let mut longer = response.clone();
    longer.extend_from_slice(b"more");
    let got = d.receive(&imported.blob, &served, &longer).unwrap();
    assert!(got.complete, "the blocks verified and are kept");
    assert_eq!(got.refused.as_deref(), Some("extra bytes after the blocks"));

    let e = store(&s, "e");
    let other = BlobRef {
        hash: [7; 32],
        ct_len,
    };
    let got = e.receive(&other, &served, &response).unwrap();
    assert!(got.added.is_empty() && got.refused.is_some());
    assert!(e.held(&other).is_empty());
}

#[test]
fn a_damaged_record_of_blocks_held_means_fetching_again_not_trusting_it() {
    let s = setup();
    let a = store(&s, "a");
    let plain = sample(3 * RECORD_PLAIN_BYTES);
    let imported = import(&s, &a, &plain);
    let ct_len = ciphertext_len(plain.len() as u64).unwrap();
    let have = a.path(&imported.blob, "have");
    let mut bytes = fs::read(&have).unwrap();
    bytes[20] ^= 1;
    fs::write(&have, &bytes).unwrap();
    assert!(a.held(&imported.blob).is_empty());
    fs::write(&have, b"short").unwrap();
    assert!(a.held(&imported.blob).is_empty());
    // A record claiming more ranges than it holds is not taken either.
    let mut claim = Vec::from(&HAVE_MAGIC[..]);
    claim.extend_from_slice(&ct_len.to_be_bytes());
    claim.extend_from_slice(&1_000u64.to_be_bytes());
    let sum = blake3::hash(&claim);
    claim.extend_from_slice(sum.as_bytes());
    fs::write(&have, &claim).unwrap();
    assert!(a.held(&imported.blob).is_empty());
}

#[test]
fn a_file_over_the_limit_or_missing_is_a_clear_error_and_leaves_nothing() {
    let s = setup();
    let a = store(&s, "a");
    let path = s.root.join("big");
    fs::write(&path, sample(1000)).unwrap();
    assert!(matches!(
        a.import(&path, 999),
        Err(FileError::TooLarge {
            size: 1000,
            limit: 999
        })
    ));
    assert!(matches!(
        a.import(&s.root.join("nope"), u64::MAX),
        Err(FileError::Io { .. })
    ));
    assert!(matches!(
        a.import(&s.root, u64::MAX),
        Err(FileError::Io { .. })
    ));
    let left: Vec<_> = fs::read_dir(s.root.join("a/tmp")).unwrap().collect();
    assert!(left.is_empty());
}

#[test]
fn a_peers_ranges_must_be_sorted_and_disjoint() {
    assert_eq!(
        Blocks::from_ranges(vec![(0, 2), (3, 9)], 5),
        Some(Blocks(vec![(0, 2), (3, 5)]))
    );
    assert_eq!(Blocks::from_ranges(vec![(3, 9), (0, 2)], 5), None);
    assert_eq!(Blocks::from_ranges(vec![(0, 3), (2, 5)], 5), None);
    assert_eq!(Blocks::from_ranges(vec![(2, 2)], 5), None);
    assert_eq!(
        Blocks::from_ranges(vec![(0, 2), (7, 9)], 5),
        Some(Blocks(vec![(0, 2)]))
    );
}

#[test]
fn block_sets_add_cut_and_take_as_sets() {
    let x = Blocks(vec![(0, 3), (5, 8)]);
    let y = Blocks(vec![(2, 6), (9, 10)]);
    assert_eq!(x.union(&y), Blocks(vec![(0, 8), (9, 10)]));
    assert_eq!(x.intersect(&y), Blocks(vec![(2, 3), (5, 6)]));
    assert_eq!(x.minus(&y), Blocks(vec![(0, 2), (6, 8)]));
    assert_eq!(y.minus(&x), Blocks(vec![(3, 5), (9, 10)]));
    assert_eq!(x.take(4), Blocks(vec![(0, 3), (5, 6)]));
    assert_eq!(x.take(u64::MAX), x);
    let scattered = Blocks((0..100).map(|i| (2 * i, 2 * i + 1)).collect());
    assert_eq!(scattered.take(u64::MAX).ranges().len(), MAX_RANGES);
    assert_eq!(x.count(), 6);
    assert!(Blocks::all(0).is_empty());
}

#[test]
fn a_known_hash_announced_with_another_length_cannot_touch_the_real_file() {
    let s = setup();
    let (a, b) = (store(&s, "a"), store(&s, "b"));
    let plain = sample(3 * RECORD_PLAIN_BYTES);
    let imported = import(&s, &a, &plain);
    let real = imported.blob;
    fetch(&a, &b, &real, &Blocks::all(real.blocks()));
    assert!(b.is_complete(&real));
    // A member announces the same hash one byte longer: every block but the last
    // verifies under that length too. B fetches them (from a copy made for it).
    let fake = BlobRef {
        hash: real.hash,
        ct_len: real.ct_len + 1,
    };
    let mut response = Vec::new();
    let served = a
        .encode(&real, &Blocks::range(0, 2), &mut response)
        .unwrap();
    let got = b.receive(&fake, &served, &response).unwrap();
    assert!(!got.complete);
    // The real file is untouched, whole, and still opens and serves.
    assert!(b.is_complete(&real));
    let out = s.root.join("out");
    b.export(&real, plain.len() as u64, &imported.key, &out)
        .unwrap();
    assert_eq!(fs::read(&out).unwrap(), plain);
}

#[test]
fn saving_never_replaces_a_file_and_leaves_no_part_file() {
    let s = setup();
    let a = store(&s, "a");
    let plain = sample(RECORD_PLAIN_BYTES + 10);
    let imported = import(&s, &a, &plain);
    let dest = s.root.join("Scan.pdf");
    fs::write(&dest, b"the first scan").unwrap();
    let result = a.export(&imported.blob, plain.len() as u64, &imported.key, &dest);
    assert!(matches!(result, Err(FileError::Io { .. })), "{result:?}");
    assert_eq!(fs::read(&dest).unwrap(), b"the first scan");
    let other = s.root.join("Scan (2).pdf");
    a.export(&imported.blob, plain.len() as u64, &imported.key, &other)
        .unwrap();
    assert_eq!(fs::read(&other).unwrap(), plain);
    let leftovers: Vec<_> = fs::read_dir(&s.root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn over_the_quota_the_least_recently_used_fetched_files_go_first_never_own_ones() {
    let s = setup();
    let (a, b) = (store(&s, "a"), store(&s, "b"));
    let block = RECORD_PLAIN_BYTES;
    // Four files of 10 blocks each fetched by b from a, and one b sent itself.
    let fetched: Vec<Imported> = (0..4)
        .map(|_| import(&s, &a, &sample(10 * block)))
        .collect();
    for f in &fetched {
        let got = fetch(&a, &b, &f.blob, &Blocks::all(f.blob.blocks()));
        assert!(got.complete);
    }
    let own = import(&s, &b, &sample(10 * block));
    // Used hours ago in this order: 2, 0, 3, 1; b's own file oldest of all.
    let ago = |secs: u64| std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    for (i, secs) in [(2, 40_000), (0, 30_000), (3, 20_000), (1, 10_000)] {
        let file = OpenOptions::new()
            .write(true)
            .open(b.path(&fetched[i].blob, "data"))
            .unwrap();
        file.set_modified(ago(secs)).unwrap();
    }
    OpenOptions::new()
        .write(true)
        .open(b.path(&own.blob, "data"))
        .unwrap()
        .set_modified(ago(90_000))
        .unwrap();
    let each = fetched[0].blob.ct_len;
    let total: u64 = b.stored().iter().map(|s| s.bytes).sum();
    assert_eq!(total, 5 * each);

    // Within the quota: nothing goes.
    assert!(b.evict(5 * each, &Default::default()).is_empty());
    // Room for 3.5 files: down to 90 % of it means three files stay (own + two).
    let keep: std::collections::HashSet<BlobRef> = [fetched[0].blob].into_iter().collect();
    let removed = b.evict(7 * each / 2, &keep);
    assert_eq!(removed, vec![fetched[2].blob, fetched[3].blob]);
    assert!(!b.is_complete(&fetched[2].blob) && !b.is_complete(&fetched[3].blob));
    assert!(b.is_complete(&own.blob), "own files are never evicted");
    assert!(b.is_complete(&fetched[0].blob), "kept: in use");
    assert!(b.is_complete(&fetched[1].blob));
    // Fetched again on demand, it is whole again.
    assert!(
        fetch(
            &a,
            &b,
            &fetched[2].blob,
            &Blocks::all(fetched[2].blob.blocks())
        )
        .complete
    );
    // Saving a file counts as using it; files used in the last hour (1 saved, 2 just
    // fetched) stay even over the quota, the others go.
    let dest = s.root.join("saved");
    b.export(&fetched[1].blob, 10 * block as u64, &fetched[1].key, &dest)
        .unwrap();
    let removed = b.evict(2 * each, &Default::default());
    assert_eq!(removed, vec![fetched[0].blob]);
    assert!(b.is_complete(&fetched[1].blob) && b.is_complete(&fetched[2].blob));
    assert!(b.is_complete(&own.blob));
    // A file only partly here is never evicted (it may be fetched on).
    let partial = import(&s, &a, &sample(10 * block));
    assert!(!fetch(&a, &b, &partial.blob, &Blocks::range(0, 3)).complete);
    OpenOptions::new()
        .write(true)
        .open(b.path(&partial.blob, "data"))
        .unwrap()
        .set_modified(ago(100_000))
        .unwrap();
    assert!(b.evict(0, &Default::default()).is_empty());
    assert_eq!(b.held(&partial.blob).count(), 3);
}

#[test]
fn blocks_taken_from_a_place_wrap_round_and_keep_the_range_limit() {
    let set = Blocks::from_ranges(vec![(0, 10), (20, 30), (40, 50)], 50).unwrap();
    assert_eq!(set.take_from(0, 5).ranges(), &[(0, 5)]);
    assert_eq!(set.take_from(25, 8).ranges(), &[(25, 30), (40, 43)]);
    assert_eq!(set.take_from(45, 8).ranges(), &[(0, 3), (45, 50)]);
    assert_eq!(set.take_from(45, 8).count(), 8);
    assert_eq!(set.take_from(60, 4).ranges(), &[(0, 4)]);
    assert_eq!(set.take_from(3, 100).count(), 30);
    // Many small ranges: never more than MAX_RANGES.
    let holes: Vec<(u64, u64)> = (0..100).map(|i| (2 * i, 2 * i + 1)).collect();
    let holey = Blocks::from_ranges(holes, 200).unwrap();
    assert!(holey.take_from(150, 64).ranges().len() <= MAX_RANGES);
}

/// A copy damaged on disk (a bad sector, an edit): serving or opening it finds the
/// damaged blocks, which are then no longer held (never served, fetched again); the
/// others stay, and the repaired copy opens.
#[test]
fn a_copy_damaged_on_disk_drops_the_damaged_blocks_and_is_repaired_from_another() {
    let s = setup();
    let (a, b) = (store(&s, "a"), store(&s, "b"));
    let plain = sample(8 * RECORD_PLAIN_BYTES);
    let imported = import(&s, &a, &plain);
    let blob = imported.blob;
    fetch(&a, &b, &blob, &Blocks::all(8));
    let damage = |block: u64| {
        let path = b.path(&blob, "data");
        let mut bytes = fs::read(&path).unwrap();
        bytes[block as usize * RECORD_BYTES + 100] ^= 0x40;
        fs::write(&path, bytes).unwrap();
    };
    // Serving: the request fails, block 5 is dropped, the rest is held.
    damage(5);
    let mut out = Vec::new();
    assert!(matches!(
        b.encode(&blob, &Blocks::range(4, 7), &mut out),
        Err(FileError::Corrupt(_))
    ));
    assert_eq!(b.held(&blob), Blocks(vec![(0, 5), (6, 8)]));
    assert_eq!(b.take_damaged(), vec![(blob, true)]);
    assert!(b.take_damaged().is_empty(), "told once");
    let mut out = Vec::new();
    assert_eq!(
        b.encode(&blob, &Blocks::range(4, 7), &mut out).unwrap(),
        Blocks(vec![(4, 5), (6, 7)]),
        "what is sound is still served"
    );
    // Opening: block 1 damaged too (after block 5 came back) is found the same way.
    fetch(&a, &b, &blob, &Blocks::range(5, 6));
    damage(1);
    let dest = s.root.join("out");
    let e = b
        .export(&blob, plain.len() as u64, &imported.key, &dest)
        .unwrap_err();
    assert!(matches!(e, FileError::Corrupt(_)), "{e}");
    assert_eq!(b.held(&blob), Blocks(vec![(0, 1), (2, 8)]));
    assert_eq!(b.take_damaged(), vec![(blob, true)]);
    assert!(fetch(&a, &b, &blob, &Blocks::range(1, 2)).complete);
    b.export(&blob, plain.len() as u64, &imported.key, &dest)
        .unwrap();
    assert_eq!(fs::read(&dest).unwrap(), plain);
    // A wrong key is not damage: nothing is dropped.
    let other = import(&s, &a, &sample(100));
    let e = b
        .export(&blob, plain.len() as u64, &other.key, &s.root.join("x"))
        .unwrap_err();
    assert!(matches!(e, FileError::Decrypt { .. }), "{e}");
    assert!(b.is_complete(&blob) && b.take_damaged().is_empty());
}
