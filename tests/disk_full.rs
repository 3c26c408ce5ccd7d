//! A full disk gives a clear error, and what was saved before survives. Uses a tiny tmpfs,
//! so it needs root (as in CI); elsewhere it says so and passes only when `CI` is unset.

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
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_a_clear_error_and_saved_messages_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (run as root)"
        );
        eprintln!("skipping: cannot mount a tmpfs here (not root)");
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
