//! Attachments between real nodes on 127.0.0.1 (mDNS off): a file sent to a group is
//! fetched by every member, also from a colleague when the sender has gone home; a large
//! file is fetched on request, and the wish survives a restart.

mod support;

use flurfunk::node::{DEFAULT_AUTO_DOWNLOAD_BYTES, MessageItem};
use flurfunk::wire::ConversationId;
use support::{TestNode, eventually, spawn, spawn_with_quota};

fn sample(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// The message carrying a file, once `node` holds it.
async fn file_message(node: &TestNode, conv: ConversationId) -> MessageItem {
    eventually(&format!("{} has the message", node.name), || async {
        node.handle
            .messages(conv, None, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.file.is_some())
    })
    .await
}

/// Wait until `node` knows it is a member of `conv`.
async fn in_group(node: &TestNode, conv: ConversationId) {
    eventually(&format!("{} is in the group", node.name), || async {
        node.handle
            .conversations()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.conversation == conv.to_string() && c.is_member)
    })
    .await;
}

/// Wait until `node` holds the whole file of `message`.
async fn file_here(node: &TestNode, conv: ConversationId) -> MessageItem {
    eventually(&format!("{} has the file", node.name), || async {
        let m = node
            .handle
            .messages(conv, None, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.file.is_some())?;
        m.file.as_ref()?.here.then_some(m)
    })
    .await
}

async fn saved(node: &TestNode, conv: ConversationId, m: &MessageItem) -> Vec<u8> {
    let dest = node.dir.path().join("saved");
    node.handle
        .save_file(conv, m.event_id.parse().unwrap(), dest.clone())
        .await
        .unwrap();
    std::fs::read(dest).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_reaches_every_member_also_after_the_sender_went_home() {
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    let cora = spawn("Cora", &[&ben]).await;
    anna.knows(&[&ben, &cora]).await;
    let group = anna
        .handle
        .create_group("Bauhof".into(), vec![ben.user(), cora.user()])
        .await
        .unwrap();
    // Cora goes home before the photo is sent.
    let cora = cora.stop().await;
    let photo = sample(300_000, 7);
    let path = anna.dir.path().join("Straßenschild.jpg");
    std::fs::write(&path, &photo).unwrap();
    anna.handle
        .send_file(group, path, "Schild an der B27".into())
        .await
        .unwrap();

    let at_ben = file_here(&ben, group).await;
    let file = at_ben.file.clone().unwrap();
    assert_eq!(
        (file.name.as_str(), file.mime.as_str(), file.size),
        ("Straßenschild.jpg", "image/jpeg", photo.len() as u64)
    );
    assert_eq!(at_ben.text, "Schild an der B27");
    assert_eq!(saved(&ben, group, &at_ben).await, photo);

    // Anna goes home; Cora comes back, connected only to Ben, and gets the file from him.
    anna.stop().await;
    let cora = cora.start(&[&ben]).await;
    let at_cora = file_here(&cora, group).await;
    assert_eq!(saved(&cora, group, &at_cora).await, photo);
    // Nothing decrypted is left in the files directories.
    for node in [&ben, &cora] {
        for entry in std::fs::read_dir(node.dir.path().join("files")).unwrap() {
            let entry = entry.unwrap();
            if entry.path().is_file() {
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(
                    !bytes.windows(64).any(|w| w == &photo[1000..1064]),
                    "{} holds plaintext in {:?}",
                    node.name,
                    entry.path()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_is_fetched_on_request_and_the_wish_survives_a_restart() {
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    anna.knows(&[&ben]).await;
    let direct = anna.handle.open_direct(ben.user()).await.unwrap();
    let big = sample(DEFAULT_AUTO_DOWNLOAD_BYTES as usize + 100_000, 3);
    let path = anna.dir.path().join("Plan.pdf");
    std::fs::write(&path, &big).unwrap();
    anna.handle
        .send_file(direct, path, String::new())
        .await
        .unwrap();
    let message = file_message(&ben, direct).await;
    assert!(
        !message.file.as_ref().unwrap().here,
        "not fetched by itself"
    );
    assert!(ben.handle.downloads().await.unwrap().is_empty());

    // Anna goes home; Ben asks for the file, and it waits for her.
    let anna = anna.stop().await;
    ben.handle
        .download(direct, message.event_id.parse().unwrap())
        .await
        .unwrap();
    let waiting = ben.handle.downloads().await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].blocks_held, 0);

    // Ben restarts; the wish is still there; Anna comes back and the file arrives.
    let ben = ben.stop().await.start(&[]).await;
    assert_eq!(ben.handle.downloads().await.unwrap().len(), 1);
    let anna = anna.start(&[&ben]).await;
    let at_ben = file_here(&ben, direct).await;
    assert_eq!(saved(&ben, direct, &at_ben).await, big);
    assert!(ben.handle.downloads().await.unwrap().is_empty());
    drop(anna);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_quota_a_node_evicts_the_least_recently_used_files_and_fetches_one_again() {
    let anna = spawn("Anna", &[]).await;
    let quota = 2_500_000;
    let ben = spawn_with_quota("Ben", &[&anna], quota).await;
    anna.knows(&[&ben]).await;
    let direct = anna.handle.open_direct(ben.user()).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..4u8 {
        let bytes = sample(1_000_000, i);
        let path = anna.dir.path().join(format!("Aufmass {i}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        anna.handle
            .send_file(direct, path, String::new())
            .await
            .unwrap();
        sent.push(bytes);
    }
    async fn files_here(node: &TestNode, conv: ConversationId) -> usize {
        node.handle
            .messages(conv, None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.file.as_ref().is_some_and(|f| f.here))
            .count()
    }
    // All four arrive by themselves; just fetched, they all stay (used in the last hour)
    // although they are over the quota.
    eventually("all four fetched", || async {
        (files_here(&ben, direct).await == 4).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(files_here(&ben, direct).await, 4, "recent files stay");
    // Two hours later (the files' times set back), at the next start, the two least
    // recently used go: down to 90 % of the quota.
    let files = ben.dir.path().join("files");
    let data: Vec<std::path::PathBuf> = std::fs::read_dir(&files)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    assert_eq!(data.len(), 4);
    for (k, path) in data.iter().enumerate() {
        let ago = std::time::Duration::from_secs(7200 + 60 * k as u64);
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - ago)
            .unwrap();
    }
    let ben = ben.stop().await.start_with_quota(&[&anna], quota).await;
    eventually("two evicted", || async {
        (files_here(&ben, direct).await == 2).then_some(())
    })
    .await;
    let on_disk: u64 = std::fs::read_dir(&files)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".data"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(on_disk <= quota, "{on_disk} bytes kept, quota {quota}");
    // The ones used longest ago went (set back furthest: the last two listed).
    for path in &data[2..] {
        assert!(!path.exists(), "{} should be evicted", path.display());
    }
    // Anna's own files are never evicted at her end.
    let at_anna = anna.handle.messages(direct, None, 100).await.unwrap();
    assert!(
        at_anna
            .iter()
            .all(|m| m.file.as_ref().is_none_or(|f| f.here))
    );

    // An evicted file is fetched again on request, whole and correct.
    let messages = ben.handle.messages(direct, None, 100).await.unwrap();
    let gone = messages
        .iter()
        .find(|m| m.file.as_ref().is_some_and(|f| !f.here))
        .unwrap();
    ben.handle
        .download(direct, gone.event_id.parse().unwrap())
        .await
        .unwrap();
    let again = eventually("fetched again", || async {
        ben.handle
            .messages(direct, None, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.event_id == gone.event_id && m.file.as_ref().is_some_and(|f| f.here))
    })
    .await;
    let bytes = saved(&ben, direct, &again).await;
    assert!(sent.contains(&bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_gets_no_file_sent_after_its_removal() {
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    let clara = spawn("Clara", &[&anna, &ben]).await;
    anna.knows(&[&ben, &clara]).await;
    let group = anna
        .handle
        .create_group("Bauhof".into(), vec![ben.user(), clara.user()])
        .await
        .unwrap();
    anna.handle.send_text(group, "Vorher".into()).await.unwrap();
    support::wait_texts(&clara, group, &["Vorher"]).await;
    anna.handle
        .remove_member(group, clara.user())
        .await
        .unwrap();
    eventually("Clara knows she was removed", || async {
        clara
            .handle
            .conversations()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.conversation == group.to_string() && !c.is_member)
    })
    .await;
    let plan = sample(300_000, 9);
    let path = anna.dir.path().join("Nachher.pdf");
    std::fs::write(&path, &plan).unwrap();
    anna.handle
        .send_file(group, path, "Nur für euch".into())
        .await
        .unwrap();
    let at_ben = file_here(&ben, group).await;
    assert_eq!(saved(&ben, group, &at_ben).await, plan);
    // Clara, still connected to both, gets neither the file's message nor its data.
    anna.handle.send_text(group, "Danach".into()).await.unwrap();
    support::wait_text(&ben, group, "Danach").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let at_clara = clara.handle.messages(group, None, 100).await.unwrap();
    assert!(at_clara.iter().any(|m| m.text == "Vorher"));
    assert!(
        at_clara
            .iter()
            .all(|m| m.file.is_none() && m.text != "Danach")
    );
    let data = std::fs::read_dir(clara.dir.path().join("files"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".data"))
        .count();
    assert_eq!(data, 0, "no ciphertext of the file at Clara");
}

/// A member whose node serves blocks with a byte changed: the downloader refuses the
/// answer at its first hash pair, writes none of it, penalises the liar and gets the file
/// whole from another member. (The lie comes from the feature `fault-injection`, which
/// only the tests build.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_serving_corrupt_blocks_is_caught_and_the_file_comes_from_another() {
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    let dora = spawn("Dora", &[&anna, &ben]).await;
    let cora = spawn("Cora", &[&anna, &ben]).await;
    anna.knows(&[&ben, &cora, &dora]).await;
    let group = anna
        .handle
        .create_group("Bauhof".into(), vec![ben.user(), cora.user(), dora.user()])
        .await
        .unwrap();
    in_group(&cora, group).await;
    let cora = cora.stop().await;
    let plan = sample(3_000_000, 5);
    let path = anna.dir.path().join("Lageplan.pdf");
    std::fs::write(&path, &plan).unwrap();
    anna.handle
        .send_file(group, path, String::new())
        .await
        .unwrap();
    file_here(&ben, group).await;
    file_here(&dora, group).await;
    // The sender goes home and Dora too; Ben starts to lie. Cora comes back and meets
    // only Ben.
    anna.stop().await;
    let dora = dora.stop().await;
    ben.handle.lie_in_served_blocks().await.unwrap();
    let cora = cora.start(&[&ben]).await;
    file_message(&cora, group).await;
    eventually("Cora refuses Ben's blocks", || async {
        let load = cora.handle.status().await.unwrap().load;
        (load.file_answers_refused >= 1).then_some(())
    })
    .await;
    // Nothing of his answers was kept: no block of the file is here.
    let downloads = cora.handle.downloads().await.unwrap();
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    assert_eq!(downloads[0].blocks_held, 0, "{downloads:?}");
    // Dora comes back: the file comes from her, whole.
    let dora = dora.start(&[&cora]).await;
    let at_cora = file_here(&cora, group).await;
    assert_eq!(saved(&cora, group, &at_cora).await, plan);
    let load = cora.handle.status().await.unwrap().load;
    assert!(load.file_answers_refused >= 1);
    drop((ben, dora));
}

/// The settings for files, changed while the nodes run: the largest file sent, and the
/// size up to which files are fetched by themselves (0: only on request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_for_files_are_obeyed_and_can_change_while_the_node_runs() {
    use flurfunk::node::FileLimits;
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    anna.knows(&[&ben]).await;
    let direct = anna.handle.open_direct(ben.user()).await.unwrap();
    let defaults = anna.handle.file_limits().await.unwrap();
    assert_eq!(defaults, FileLimits::default());
    let file = |name: &str, seed: u8| {
        let path = anna.dir.path().join(name);
        std::fs::write(&path, sample(300_000, seed)).unwrap();
        path
    };

    // Anna may send at most 100 KB: the file is refused with a clear error.
    let small = FileLimits {
        max_send_bytes: 100_000,
        ..defaults
    };
    anna.handle.set_file_limits(small).await.unwrap();
    let err = anna
        .handle
        .send_file(direct, file("Zu groß.pdf", 1), String::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 98 KB"), "{err}");
    anna.handle.set_file_limits(defaults).await.unwrap();

    // Ben fetches nothing by himself.
    let manual = FileLimits {
        auto_download_bytes: 0,
        ..defaults
    };
    ben.handle.set_file_limits(manual).await.unwrap();
    assert_eq!(ben.handle.file_limits().await.unwrap(), manual);
    anna.handle
        .send_file(direct, file("Erster.pdf", 2), "eins".into())
        .await
        .unwrap();
    support::wait_text(&ben, direct, "eins").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let first = file_message(&ben, direct).await;
    assert!(!first.file.as_ref().unwrap().here);
    assert!(ben.handle.downloads().await.unwrap().is_empty());

    // Up to 25 MB again: the next file comes by itself, the first still waits for a click.
    ben.handle.set_file_limits(defaults).await.unwrap();
    anna.handle
        .send_file(direct, file("Zweiter.pdf", 3), "zwei".into())
        .await
        .unwrap();
    eventually("the second file is here", || async {
        let messages = ben.handle.messages(direct, None, 100).await.unwrap();
        let second = messages.iter().find(|m| m.text == "zwei")?;
        second.file.as_ref()?.here.then_some(())
    })
    .await;
    let messages = ben.handle.messages(direct, None, 100).await.unwrap();
    let first = messages.iter().find(|m| m.text == "eins").unwrap();
    assert!(!first.file.as_ref().unwrap().here);
}

/// A managed network: the certified relay keeps what its conversations carry. A file sent
/// to a group while the other member is away reaches him from the relay after the sender
/// went home (the relay fetched the ciphertext; it holds no key to read it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_relay_keeps_a_groups_file_and_serves_it_after_the_sender_left() {
    let admin = flurfunk::admin::AdminKey::generate(&mut rand::rngs::OsRng);
    let key = support::test_key().with_admin(admin.public());
    let anna = support::spawn_with("Anna", &[], key, flurfunk::wire::Role::Member).await;
    let relay = support::spawn_certified_relay("Relay", &[&anna], key, &admin).await;
    a_relay_keeps_a_groups_file(anna, relay, key).await;
}

/// An unmanaged network (no admin key): a relay is trusted as it says, for files as for
/// events, so it keeps them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_of_an_unmanaged_network_keeps_a_groups_file_too() {
    let key = support::test_key();
    let anna = support::spawn_with("Anna", &[], key, flurfunk::wire::Role::Member).await;
    let relay = support::spawn_with("Relay", &[&anna], key, flurfunk::wire::Role::Relay).await;
    a_relay_keeps_a_groups_file(anna, relay, key).await;
}

async fn a_relay_keeps_a_groups_file(
    anna: TestNode,
    relay: TestNode,
    key: flurfunk::net::NetworkKey,
) {
    let ben = support::spawn_with("Ben", &[&anna], key, flurfunk::wire::Role::Member).await;
    anna.knows(&[&ben]).await;
    let group = anna
        .handle
        .create_group("Bauhof".into(), vec![ben.user()])
        .await
        .unwrap();
    in_group(&ben, group).await;
    let ben = ben.stop().await;
    let plan = sample(1_500_000, 11);
    let path = anna.dir.path().join("Winterdienst.pdf");
    std::fs::write(&path, &plan).unwrap();
    anna.handle
        .send_file(group, path, "Plan".into())
        .await
        .unwrap();
    eventually("the relay holds the file", || async {
        let load = relay.handle.status().await.unwrap().load;
        (load.file_bytes_fetched >= plan.len() as u64
            && relay.handle.downloads().await.unwrap().is_empty())
        .then_some(())
    })
    .await;
    anna.stop().await;
    let ben = ben.start_with_key(&[&relay], key).await;
    let at_ben = file_here(&ben, group).await;
    assert_eq!(saved(&ben, group, &at_ben).await, plan);
    let served = relay.handle.status().await.unwrap().load.file_bytes_served;
    assert!(served >= plan.len() as u64, "served {served} bytes");
}

/// Ben's copy of a file is damaged on disk: saving it fails with a clear error, the
/// damaged blocks are fetched again from Anna, and then it saves whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_damaged_on_disk_is_fetched_again_and_then_saves_whole() {
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    anna.knows(&[&ben]).await;
    let direct = anna.handle.open_direct(ben.user()).await.unwrap();
    let plan = sample(2_000_000, 5);
    let path = anna.dir.path().join("Dienstplan.pdf");
    std::fs::write(&path, &plan).unwrap();
    anna.handle
        .send_file(direct, path, String::new())
        .await
        .unwrap();
    let at_ben = file_here(&ben, direct).await;
    let data = std::fs::read_dir(ben.dir.path().join("files"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "data"))
        .unwrap();
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1_000_000] ^= 0x08;
    std::fs::write(&data, bytes).unwrap();

    let dest = ben.dir.path().join("saved");
    let e = ben
        .handle
        .save_file(direct, at_ben.event_id.parse().unwrap(), dest.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("damaged"), "{e}");
    assert!(!dest.exists());
    let again = file_here(&ben, direct).await;
    assert_eq!(saved(&ben, direct, &again).await, plan);
}
