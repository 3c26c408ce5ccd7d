//! Attachments between real nodes on 127.0.0.1 (mDNS off): a file sent to a group is
//! fetched by every member, also from a colleague when the sender has gone home; a large
//! file is fetched on request, and the wish survives a restart.

mod support;

use flurfunk::node::{AUTO_DOWNLOAD_BYTES, MessageItem};
use flurfunk::wire::ConversationId;
use support::{TestNode, eventually, spawn};

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
        .send_file(group, path, "Schild an der B27".into(), u64::MAX)
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
    let big = sample(AUTO_DOWNLOAD_BYTES as usize + 100_000, 3);
    let path = anna.dir.path().join("Plan.pdf");
    std::fs::write(&path, &big).unwrap();
    anna.handle
        .send_file(direct, path, String::new(), u64::MAX)
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
