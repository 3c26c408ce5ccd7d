//! A full disk gives a clear error, and what was saved before survives. Uses a tiny tmpfs,
//! so it needs root (as in CI); elsewhere it says so and passes only when `CI` is unset.

mod support;

use flurfunk::identity::Identity;
use flurfunk::store::SledStore;
use flurfunk::sync::{Config, Engine, RngSeed};
use rand::SeedableRng;
use std::process::Command;

fn id(seed: u64, name: &str) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed), name).unwrap()
}

struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still in use (a test that failed with a node running): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn full_disk_is_a_clear_error_and_saved_messages_survive() {
    let dir = tempfile::tempdir().unwrap();
    if !mount_tmpfs(dir.path(), "3m") {
        return;
    }
    let _guard = Mount(dir.path().to_path_buf());
    let db = dir.path().join("db");
    let peer = id(2, "Bernd").profile(0);
    let mut engine = Engine::new(
        id(1, "Anna"),
        SledStore::open(&db).unwrap(),
        Config::default(),
        RngSeed::fixed(1),
        0,
    )
    .unwrap();
    let conv = engine.open_direct(0, &peer).unwrap();
    engine.commit(0).unwrap();
    let text = "x".repeat(8000);
    let mut saved = 0u64;
    let mut error = None;
    for i in 0..10_000u64 {
        let r = engine
            .send_text(i, conv, &text)
            .and_then(|_| engine.commit(i));
        match r {
            Ok(()) => saved = i + 1,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let error = error.expect("a 3 MiB disk must fill up");
    assert!(saved > 10, "saved only {saved} before the error");
    eprintln!("after {saved} saved messages: {error}");
    // Closing flushes; sled's flush on a full disk can wait until there is space again
    // (about one run in ten here). The admin then frees space and the close finishes.
    let (closed_tx, closed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(engine);
        let _ = closed_tx.send(());
    });
    let grow = || {
        let grown = Command::new("mount")
            .args(["-o", "remount,size=16m"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(grown.success());
    };
    let wait = std::time::Duration::from_secs(10);
    if closed.recv_timeout(wait).is_ok() {
        // While the disk stays full, opening is a clear error too.
        if let Err(e) = SledStore::open(&db) {
            assert!(
                e.to_string().contains("No space left"),
                "unclear error: {e}"
            );
        }
        grow();
    } else {
        eprintln!("closing waits for free space");
        grow();
        closed
            .recv_timeout(wait * 3)
            .expect("closing finishes once there is space");
    }
    // Reopen with space: every message acknowledged before the error is there.
    let store = SledStore::open(&db).unwrap();
    let engine = Engine::new(
        id(1, "Anna"),
        store,
        Config::default(),
        RngSeed::fixed(2),
        0,
    )
    .unwrap();
    let held = engine.messages(&conv).unwrap().len() as u64;
    assert!(held >= saved, "held {held} of {saved} saved messages");
}

/// A tmpfs of `size` mounted at `dir`; false where that is not allowed (not root).
fn mount_tmpfs(dir: &std::path::Path, size: &str) -> bool {
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (run as root)"
        );
        eprintln!("skipping: cannot mount a tmpfs here (not root)");
    }
    mounted
}

/// Files sent to a node whose files directory fills up: the user is told once, what was
/// fetched before stays whole, texts keep flowing, and the file continues once there is
/// room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_a_download_is_told_keeps_what_was_saved_and_continues_later() {
    use flurfunk::node::NodeEvent;
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    if !mount_tmpfs(&files, "4m") {
        return;
    }
    let _guard = Mount(files.clone());
    let anna = support::spawn("Anna", &[]).await;
    let ben = support::spawn_in(dir, "Ben", &[&anna]).await;
    anna.knows(&[&ben]).await;
    let mut events = ben.handle.subscribe();
    let direct = anna.handle.open_direct(ben.user()).await.unwrap();
    let send = |name: &str, len: usize, seed: u8| {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ seed).collect();
        let path = anna.dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    };
    let here = |name: &'static str| {
        let ben = &ben;
        move || async move {
            ben.handle
                .messages(direct, None, 100)
                .await
                .unwrap()
                .into_iter()
                .find(|m| m.file.as_ref().is_some_and(|f| f.name == name && f.here))
        }
    };
    // 1 MB fits.
    let (path, small) = send("Klein.bin", 1_000_000, 1);
    anna.handle
        .send_file(direct, path, String::new())
        .await
        .unwrap();
    let first = support::eventually("the small file at Ben", here("Klein.bin")).await;
    // 8 MB does not fit in what is left of 4 MiB.
    let (path, big) = send("Gross.bin", 8_000_000, 2);
    anna.handle
        .send_file(direct, path, String::new())
        .await
        .unwrap();
    let told = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Ok(NodeEvent::DiskFull { what }) => return what,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .expect("the full disk is reported");
    eprintln!("told: {told}");
    // While it is full, every download waits: nothing more is pulled from Anna.
    let fetched = || async { ben.handle.status().await.unwrap().load.file_bytes_fetched };
    let at_first = fetched().await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let later = fetched().await;
    assert!(
        later - at_first <= 2 << 20,
        "{} bytes fetched while the disk was full",
        later - at_first
    );
    // What was fetched before is whole.
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("Klein.bin");
    ben.handle
        .save_file(direct, first.event_id.parse().unwrap(), dest.clone())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), small);
    // Texts keep flowing (the database is elsewhere; the node runs on).
    anna.handle
        .send_text(direct, "Noch da?".into())
        .await
        .unwrap();
    support::wait_text(&ben, direct, "Noch da?").await;
    // Room again: the big file continues and arrives whole.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=32m"])
        .arg(&files)
        .status()
        .unwrap();
    assert!(grown.success());
    let second = support::eventually("the big file at Ben", here("Gross.bin")).await;
    let dest = out.path().join("Gross.bin");
    ben.handle
        .save_file(direct, second.event_id.parse().unwrap(), dest.clone())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), big);
    // Told once, not once per try.
    let mut told = 0;
    while let Ok(event) = events.try_recv() {
        told += usize::from(matches!(event, NodeEvent::DiskFull { .. }));
    }
    assert_eq!(told, 0, "the full disk was told again within ten minutes");
    ben.handle.shutdown().await.unwrap();
    drop(ben);
    drop(_guard);
}
