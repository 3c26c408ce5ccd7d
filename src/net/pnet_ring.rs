//! The pnet handshake with more than one network key: during a network key rotation
//! (docs/PROTOCOL.md, "Network key rotation") a node accepts the old and the new key on
//! the same port and dials with the one the phase asks for.
//!
//! The bytes on the wire are those of libp2p's pnet (24-byte nonces, then XSalsa20 each
//! way), so a node with one key and a stock pnet peer still talk. A pnet stream names no
//! key, but every multistream-select dialer sends the same 20 bytes first
//! (`MSS_HEADER`): the listener tries each key it accepts on them and drops the socket
//! when none gives the header, so a node with a key no longer accepted fails at once,
//! before Noise, under any identity.
//!
//! This module must never decide which keys are valid: the node sets them from the
//! admin's statement (`set_keys`).

use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::{Multiaddr, PeerId};
use rand::RngCore;
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroizing;

const NONCE_LEN: usize = 24;
/// What every multistream-select dialer sends first: varint(19) ‖ "/multistream/1.0.0\n".
const MSS_HEADER: [u8; 20] = *b"\x13/multistream/1.0.0\n";
/// Addresses remembered as "answers to the other key" at most: beyond this the record is
/// cleared (a redial then costs one rejected attempt per address).
const MAX_FLIPPED_ADDRESSES: usize = 4096;
/// Connections being made with the old key during a rotation, at most: each is taken
/// when its peer is known, or when it fails. Half-open connections are at most 64 in
/// (`MAX_PENDING_INCOMING`) plus this node's own dials; beyond this many at once a new
/// one is refused (never one pushed out, which would let its peer past the check).
const MAX_OLD_KEY_POINTS: usize = 1024;
/// The nonce and the dialer's first bytes must come within this: a peer that sends
/// nothing holds one of the 64 half-open places only this long, not the 20 s the whole
/// upgrade may take.
pub const HANDSHAKE_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A node accepts the old key this long after the overlap ended by its own clock: nodes'
/// clocks differ (the same tolerance relay certificates get). A short overlap (minutes,
/// as in tests) gets a quarter of its length at most.
pub const OLD_KEY_GRACE_MS: u64 = 10 * 60 * 1000;

/// Until when (by a node's clock) the old key of a rotation with these phases is still
/// accepted.
pub fn old_key_until_ms(switch_at_ms: u64, overlap_until_ms: u64) -> u64 {
    let overlap = overlap_until_ms.saturating_sub(switch_at_ms);
    overlap_until_ms.saturating_add(OLD_KEY_GRACE_MS.min(overlap / 4))
}

impl NextKey {
    /// Until when (by this node's clock) the old key is still accepted.
    pub fn old_key_until_ms(&self) -> u64 {
        old_key_until_ms(self.switch_at_ms, self.overlap_until_ms)
    }
}

/// The next network key and when it takes over.
#[derive(Clone)]
pub struct NextKey {
    pub key: Zeroizing<[u8; 32]>,
    /// From here on, dial with the new key (the old one where it was refused).
    pub switch_at_ms: u64,
    /// From here on, dial with the new key only; accept the old one for
    /// `OLD_KEY_GRACE_MS` more.
    pub overlap_until_ms: u64,
}

struct RingState {
    current: Zeroizing<[u8; 32]>,
    next: Option<NextKey>,
    /// Addresses whose listener refused the new key during the overlap: dialled with the
    /// old one.
    flipped: HashMap<Multiaddr, ()>,
    /// Set to end every connection made with the current key so far: when the ring
    /// stops using that key, or at the overlap's end (`retire_current`).
    current_abort: Arc<AtomicBool>,
    /// The same for the next key (it becomes the current key's flag).
    next_abort: Arc<AtomicBool>,
    /// Connections being made with the old key during a rotation, until their peer is
    /// known (`admits`); an entry goes with its connection's stream.
    old_key_points: HashMap<ConnectedPoint, u64>,
    /// Tells one note from a later one at the same point.
    next_token: u64,
    /// Whom the new key was sealed to: the only peers a connection made with the old key
    /// is taken from during a rotation. `None`: nobody is refused for the key it uses.
    recipients: Option<Arc<HashSet<PeerId>>>,
    /// Dials in a row whose listener closed right after the key exchange, before its
    /// first byte (what a listener that takes no key of ours does).
    refused_in_a_row: u32,
}

/// The wire keys a node accepts and dials with, shared by every connection's handshake
/// and the node's event loop (cheap to clone).
#[derive(Clone)]
pub struct KeyRing(Arc<Mutex<RingState>>);

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing(..)")
    }
}

impl KeyRing {
    pub fn new(current: [u8; 32]) -> Self {
        KeyRing(Arc::new(Mutex::new(RingState {
            current: Zeroizing::new(current),
            next: None,
            flipped: HashMap::new(),
            current_abort: Arc::new(AtomicBool::new(false)),
            next_abort: Arc::new(AtomicBool::new(false)),
            old_key_points: HashMap::new(),
            next_token: 0,
            recipients: None,
            refused_in_a_row: 0,
        })))
    }

    /// Dials in a row refused right after the key exchange (0 once one gets an answer):
    /// several, with nobody reachable, mean this node's network key is out of date.
    pub fn refused_in_a_row(&self) -> u32 {
        self.state().refused_in_a_row
    }

    /// Whom the new key was sealed to (`None`: refuse nobody for the key it uses).
    pub fn set_recipients(&self, recipients: Option<HashSet<PeerId>>) {
        self.state().recipients = recipients.map(Arc::new);
    }

    /// Whether a connection at `point`, authenticated as `peer`, is taken: one made with
    /// the old key during a rotation only from a peer the new key was sealed to. Asked
    /// once per connection, in the transport, before the swarm sees it.
    pub fn admits(&self, point: &ConnectedPoint, peer: &PeerId) -> bool {
        let mut s = self.state();
        if s.old_key_points.remove(point).is_none() {
            return true;
        }
        s.recipients.as_ref().is_none_or(|r| r.contains(peer))
    }

    /// End every connection made with the current key so far: its next read or write
    /// fails (pings write every 15 s), and libp2p closes it. At the overlap's end, for
    /// the old key; connections it makes in its grace end when the ring drops it.
    /// Nothing without a rotation in the ring (then the current key is the only one).
    pub fn retire_current(&self) {
        let mut s = self.state();
        if s.next.is_none() {
            return;
        }
        s.current_abort.store(true, Ordering::Relaxed);
        s.current_abort = Arc::new(AtomicBool::new(false));
    }

    /// A handshake used `key`: the flag that ends it, and, for the old key of a
    /// rotation, a note for `admits` (refused when too many are being made at once:
    /// honest ones are a few, as half-open connections are).
    fn bind(
        &self,
        key: &[u8; 32],
        point: &ConnectedPoint,
    ) -> Result<(Arc<AtomicBool>, Option<u64>), RingError> {
        let mut s = self.state();
        if s.next.as_ref().is_some_and(|n| *n.key == *key) {
            return Ok((s.next_abort.clone(), None));
        }
        if s.next.is_none() {
            return Ok((s.current_abort.clone(), None));
        }
        if s.old_key_points.len() >= MAX_OLD_KEY_POINTS {
            return Err(RingError::Busy);
        }
        s.next_token = s.next_token.wrapping_add(1);
        let token = s.next_token;
        s.old_key_points.insert(point.clone(), token);
        Ok((s.current_abort.clone(), Some(token)))
    }

    /// A connection made with the old key went (before its peer was known, or after).
    fn forget(&self, point: &ConnectedPoint, token: u64) {
        let mut s = self.state();
        if s.old_key_points.get(point) == Some(&token) {
            s.old_key_points.remove(point);
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RingState> {
        // A handshake that panicked holding the lock left nothing half-written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key in use and the next one (or none). Changing them forgets which addresses
    /// answered to which key; a key the ring no longer holds ends its connections.
    pub fn set_keys(&self, current: [u8; 32], next: Option<NextKey>) {
        let mut s = self.state();
        let next = next.filter(|n| *n.key != current);
        let same = *s.current == current
            && match (&s.next, &next) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    *a.key == *b.key
                        && a.switch_at_ms == b.switch_at_ms
                        && a.overlap_until_ms == b.overlap_until_ms
                }
                _ => false,
            };
        if same {
            return;
        }
        let next_kept = |k: &[u8; 32]| *k == current || next.as_ref().is_some_and(|n| *n.key == *k);
        let (old_current, old_next) = (
            (*s.current, s.current_abort.clone()),
            s.next.as_ref().map(|n| (*n.key, s.next_abort.clone())),
        );
        let flag_of = |k: &[u8; 32]| -> Arc<AtomicBool> {
            if *k == old_current.0 {
                old_current.1.clone()
            } else if let Some((key, flag)) = &old_next
                && key == k
            {
                flag.clone()
            } else {
                Arc::new(AtomicBool::new(false))
            }
        };
        if !next_kept(&old_current.0) {
            old_current.1.store(true, Ordering::Relaxed);
        }
        if let Some((key, flag)) = &old_next
            && !next_kept(key)
        {
            flag.store(true, Ordering::Relaxed);
        }
        s.current_abort = flag_of(&current);
        s.next_abort = next
            .as_ref()
            .map_or_else(|| Arc::new(AtomicBool::new(false)), |n| flag_of(&n.key));
        s.current = Zeroizing::new(current);
        s.next = next;
        s.flipped.clear();
        if s.next.is_none() {
            s.old_key_points.clear();
        }
    }

    /// The keys an inbound connection may use now.
    pub fn accepting(&self, now_ms: u64) -> Vec<Zeroizing<[u8; 32]>> {
        let s = self.state();
        match &s.next {
            None => vec![s.current.clone()],
            Some(n) if now_ms >= n.old_key_until_ms() => {
                vec![n.key.clone()]
            }
            Some(n) => vec![s.current.clone(), n.key.clone()],
        }
    }

    /// The key to dial `addr` with now, and whether a refusal should be noted (the new
    /// key during the overlap: a listener that refuses it has not heard of the rotation
    /// yet, and is dialled with the old one next time). Before the switch the old key,
    /// after the overlap the new one, whatever a listener did: a refusal there teaches
    /// nothing (and a peer must not make us show it the new key's handshake early).
    fn dial_key(&self, addr: &Multiaddr, now_ms: u64) -> (Zeroizing<[u8; 32]>, bool) {
        let s = self.state();
        let Some(n) = &s.next else {
            return (s.current.clone(), false);
        };
        if now_ms >= n.overlap_until_ms {
            return (n.key.clone(), false);
        }
        if now_ms < n.switch_at_ms {
            return (s.current.clone(), false);
        }
        if s.flipped.contains_key(addr) {
            (s.current.clone(), false)
        } else {
            (n.key.clone(), true)
        }
    }

    /// The listener at `addr` closed the connection before its first byte: counted, and
    /// if we dialed with the new key during the overlap (`flip`), dialled with the old
    /// one next time.
    fn refused(&self, addr: &Multiaddr, flip: bool) {
        let mut s = self.state();
        s.refused_in_a_row = s.refused_in_a_row.saturating_add(1);
        if s.next.is_none() || !flip {
            return;
        }
        if s.flipped.len() >= MAX_FLIPPED_ADDRESSES && !s.flipped.contains_key(addr) {
            s.flipped.clear();
        }
        s.flipped.insert(addr.clone(), ());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("pnet handshake: {0}")]
    Io(#[from] io::Error),
    #[error("the peer's network key is not one this node accepts")]
    NoKeyMatches,
    #[error("the peer sent no pnet handshake in time")]
    TimedOut,
    #[error("too many connections with the old network key at once")]
    Busy,
    #[error("the old network key, from a peer the new one was not sealed to")]
    NotSealed,
}

/// The pnet handshake: nonces both ways (ours first, or a dialer never gets past its
/// own), then, as the listener, the dialer's first 20 bytes tell which key it used.
/// `now_ms` is read once the peer's bytes are in (a peer that sends them late gets the
/// keys of that moment, not of when it connected).
pub async fn handshake<S>(
    socket: S,
    point: ConnectedPoint,
    ring: KeyRing,
    now_ms: impl Fn() -> u64,
) -> Result<RingOutput<S>, RingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // One deadline for everything the peer must send: a silent peer holds one of the
    // half-open places this long at most.
    match tokio::time::timeout(
        HANDSHAKE_READ_TIMEOUT,
        exchange(socket, point, ring, now_ms),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(RingError::TimedOut),
    }
}

async fn exchange<S>(
    mut socket: S,
    point: ConnectedPoint,
    ring: KeyRing,
    now_ms: impl Fn() -> u64,
) -> Result<RingOutput<S>, RingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut local = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut local);
    socket.write_all(&local).await?;
    socket.flush().await?;
    let mut remote = [0u8; NONCE_LEN];
    socket.read_exact(&mut remote).await?;
    let dialed = match &point {
        ConnectedPoint::Dialer {
            address,
            role_override: Endpoint::Dialer,
            ..
        } => Some(address.clone()),
        _ => None,
    };
    if let Some(address) = dialed {
        let (key, watch) = ring.dial_key(&address, now_ms());
        let (abort, noted) = ring.bind(&key, &point)?;
        return Ok(RingOutput {
            write: XSalsa20::new(key.as_ref().into(), &local.into()),
            read: XSalsa20::new(key.as_ref().into(), &remote.into()),
            inner: socket,
            pending: Vec::new(),
            replay: Vec::new(),
            watch: Some((ring.clone(), address, watch)),
            abort,
            noted: noted.map(|token| (ring, point, token)),
        });
    }
    // A dialer sends the header without waiting for us (multistream-select's listener
    // never writes first), so these 20 bytes come.
    let mut first = [0u8; MSS_HEADER.len()];
    socket.read_exact(&mut first).await?;
    for key in ring.accepting(now_ms()) {
        let mut read = XSalsa20::new(key.as_ref().into(), &remote.into());
        let mut plain = first;
        read.apply_keystream(&mut plain);
        if plain == MSS_HEADER {
            let (abort, noted) = ring.bind(&key, &point)?;
            return Ok(RingOutput {
                write: XSalsa20::new(key.as_ref().into(), &local.into()),
                read,
                inner: socket,
                pending: Vec::new(),
                replay: plain.to_vec(),
                watch: None,
                abort,
                noted: noted.map(|token| (ring, point, token)),
            });
        }
    }
    // Dropping the socket closes it: the dialer sees the end at once, not a 20 s timeout.
    Err(RingError::NoKeyMatches)
}

/// A connection after the handshake: XSalsa20 each way, as libp2p's `PnetOutput`.
pub struct RingOutput<S> {
    inner: S,
    write: XSalsa20,
    read: XSalsa20,
    /// Encrypted bytes not yet taken by the socket (a write reported done owns them).
    pending: Vec<u8>,
    /// What the listener already read and decrypted, handed up first.
    replay: Vec<u8>,
    /// As the dialer, until the first byte arrives: the ring, the address dialled and
    /// whether it was the new key during the overlap, to note a refusal.
    watch: Option<(KeyRing, Multiaddr, bool)>,
    /// Set when the ring no longer holds the key this connection was made with.
    abort: Arc<AtomicBool>,
    /// Made with the old key during a rotation: the note `admits` takes, removed with
    /// the connection if it never got that far.
    noted: Option<(KeyRing, ConnectedPoint, u64)>,
}

impl<S> Drop for RingOutput<S> {
    fn drop(&mut self) {
        if let Some((ring, point, token)) = self.noted.take() {
            ring.forget(&point, token);
        }
    }
}

fn retired(abort: &Arc<AtomicBool>) -> bool {
    abort.load(Ordering::Relaxed)
}

fn retired_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "made with a network key no longer accepted",
    )
}

impl<S: AsyncWrite + Unpin> RingOutput<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the connection took no bytes",
                    )));
                }
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n);
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RingOutput<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if retired(&this.abort) {
            return Poll::Ready(Err(retired_error()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !this.replay.is_empty() {
            let n = buf.len().min(this.replay.len());
            buf[..n].copy_from_slice(&this.replay[..n]);
            this.replay.drain(..n);
            return Poll::Ready(Ok(n));
        }
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(n)) => {
                this.read.apply_keystream(&mut buf[..*n]);
                if let Some((ring, addr, flip)) = this.watch.take() {
                    if *n == 0 {
                        ring.refused(&addr, flip);
                    } else {
                        ring.state().refused_in_a_row = 0;
                    }
                }
            }
            Poll::Ready(Err(e)) => {
                if let Some((ring, addr, flip)) = this.watch.take()
                    && matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::UnexpectedEof
                    )
                {
                    ring.refused(&addr, flip);
                }
            }
            Poll::Pending => {}
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RingOutput<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if retired(&this.abort) {
            return Poll::Ready(Err(retired_error()));
        }
        futures::ready!(this.poll_drain(cx))?;
        let start = this.pending.len();
        this.pending.extend_from_slice(buf);
        this.write.apply_keystream(&mut this.pending[start..]);
        // Handed on at once where the socket takes it; what it does not take goes out
        // with the next write or flush (the bytes are ours to deliver now).
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if retired(&this.abort) {
            return Poll::Ready(Err(retired_error()));
        }
        futures::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        futures::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::transport::PortUse;
    use libp2p::pnet::{PnetConfig, PreSharedKey};

    fn dialer(addr: &Multiaddr) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: addr.clone(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::New,
        }
    }

    fn listener() -> ConnectedPoint {
        ConnectedPoint::Listener {
            local_addr: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            send_back_addr: "/ip4/127.0.0.1/tcp/2".parse().unwrap(),
        }
    }

    fn duplex() -> (
        impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
        impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    ) {
        use tokio_util_compat::Compat;
        let (a, b) = tokio::io::duplex(64 * 1024);
        (Compat::new(a), Compat::new(b))
    }

    /// Small futures <-> tokio adapter for the tests (tokio-util is not a dependency).
    mod tokio_util_compat {
        use super::*;
        pub struct Compat<T>(T);
        impl<T> Compat<T> {
            pub fn new(t: T) -> Self {
                Compat(t)
            }
        }
        impl<T: tokio::io::AsyncRead + Unpin> AsyncRead for Compat<T> {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                let mut b = tokio::io::ReadBuf::new(buf);
                futures::ready!(Pin::new(&mut self.0).poll_read(cx, &mut b))?;
                Poll::Ready(Ok(b.filled().len()))
            }
        }
        impl<T: tokio::io::AsyncWrite + Unpin> AsyncWrite for Compat<T> {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.0).poll_write(cx, buf)
            }
            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.0).poll_flush(cx)
            }
            fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.0).poll_shutdown(cx)
            }
        }
    }

    const OLD: [u8; 32] = [1; 32];
    const NEW: [u8; 32] = [2; 32];
    const OTHER: [u8; 32] = [3; 32];

    fn rotating(switch_at_ms: u64, overlap_until_ms: u64) -> KeyRing {
        let ring = KeyRing::new(OLD);
        ring.set_keys(
            OLD,
            Some(NextKey {
                key: Zeroizing::new(NEW),
                switch_at_ms,
                overlap_until_ms,
            }),
        );
        ring
    }

    /// A stock pnet dialer with `key` against our listener: the listener's result, and
    /// on success the text the dialer's first write carried.
    async fn stock_dialer_to(
        ring: KeyRing,
        key: [u8; 32],
        now_ms: u64,
    ) -> Result<Vec<u8>, RingError> {
        let (a, b) = duplex();
        let dial = async move {
            let mut out = PnetConfig::new(PreSharedKey::new(key))
                .handshake(a)
                .await
                .unwrap();
            out.write_all(&MSS_HEADER).await.unwrap();
            out.write_all(b"hello").await.unwrap();
            out.flush().await.unwrap();
            out
        };
        let listen = async move {
            let mut out = handshake(b, listener(), ring, move || now_ms).await?;
            let mut got = vec![0u8; MSS_HEADER.len() + 5];
            out.read_exact(&mut got).await?;
            Ok::<_, RingError>(got)
        };
        let (_dialer, listened) = futures::join!(dial, listen);
        listened
    }

    #[tokio::test]
    async fn a_listener_accepts_either_key_of_a_rotation_and_refuses_a_third() {
        let ring = rotating(100, 200);
        for key in [OLD, NEW] {
            let got = stock_dialer_to(ring.clone(), key, 150).await.unwrap();
            assert_eq!(&got[..20], &MSS_HEADER);
            assert_eq!(&got[20..], b"hello");
        }
        assert!(matches!(
            stock_dialer_to(ring.clone(), OTHER, 150).await,
            Err(RingError::NoKeyMatches)
        ));
        // After the overlap and its grace (a quarter of a short overlap), the old key is
        // refused.
        assert!(stock_dialer_to(ring.clone(), OLD, 224).await.is_ok());
        let late = 225;
        assert!(stock_dialer_to(ring.clone(), NEW, late).await.is_ok());
        assert!(matches!(
            stock_dialer_to(ring, OLD, late).await,
            Err(RingError::NoKeyMatches)
        ));
        // Without a rotation: one key, as stock pnet.
        let single = KeyRing::new(OLD);
        assert!(stock_dialer_to(single.clone(), OLD, 0).await.is_ok());
        assert!(stock_dialer_to(single, NEW, 0).await.is_err());
    }

    #[tokio::test]
    async fn our_dialer_talks_to_a_stock_listener_and_both_ways_carry_data() {
        let ring = KeyRing::new(OLD);
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/47110".parse().unwrap();
        let (a, b) = duplex();
        let dial = async {
            let mut out = handshake(a, dialer(&addr), ring.clone(), || 0)
                .await
                .unwrap();
            // Larger than one duplex buffer: the pending bytes must all go out.
            let big = vec![7u8; 200 * 1024];
            out.write_all(&big).await.unwrap();
            out.flush().await.unwrap();
            let mut back = [0u8; 4];
            out.read_exact(&mut back).await.unwrap();
            back
        };
        let listen = async {
            let mut out = PnetConfig::new(PreSharedKey::new(OLD))
                .handshake(b)
                .await
                .unwrap();
            let mut got = vec![0u8; 200 * 1024];
            out.read_exact(&mut got).await.unwrap();
            assert!(got.iter().all(|b| *b == 7));
            out.write_all(b"done").await.unwrap();
            out.flush().await.unwrap();
            out
        };
        let (back, _listener) = futures::join!(dial, listen);
        assert_eq!(&back, b"done");
    }

    #[test]
    fn the_dial_key_follows_the_phase_and_a_refusal_flips_it_for_that_address() {
        let ring = rotating(100, 200);
        let a: Multiaddr = "/ip4/10.0.0.1/tcp/47110".parse().unwrap();
        let b: Multiaddr = "/ip4/10.0.0.2/tcp/47110".parse().unwrap();
        assert_eq!(*ring.dial_key(&a, 50).0, OLD);
        assert_eq!(*ring.dial_key(&a, 150).0, NEW);
        assert_eq!(*ring.dial_key(&a, 250).0, NEW);
        // Only a refusal of the new key during the overlap flips it.
        assert!(!ring.dial_key(&a, 50).1 && ring.dial_key(&a, 150).1 && !ring.dial_key(&a, 250).1);
        // A listener that has not heard of the rotation refuses the new key.
        ring.refused(&a, true);
        ring.refused(&b, false);
        assert_eq!(*ring.dial_key(&a, 150).0, OLD);
        assert_eq!(*ring.dial_key(&b, 150).0, NEW);
        // Before the switch and after the overlap, whatever was refused.
        assert_eq!(*ring.dial_key(&a, 50).0, OLD);
        assert_eq!(*ring.dial_key(&a, 200).0, NEW);
        // New keys forget the flips.
        ring.set_keys(NEW, None);
        assert_eq!(*ring.dial_key(&a, 150).0, NEW);
        assert_eq!(ring.accepting(0).len(), 1);
    }

    #[tokio::test]
    async fn a_refused_dial_is_noted_for_its_address() {
        let ring = rotating(100, 200);
        let addr: Multiaddr = "/ip4/10.0.0.1/tcp/47110".parse().unwrap();
        let listener_ring = KeyRing::new(OLD);
        let (a, b) = duplex();
        let dial = async {
            let mut out = handshake(a, dialer(&addr), ring.clone(), || 150)
                .await
                .unwrap();
            out.write_all(&MSS_HEADER).await.unwrap();
            out.flush().await.unwrap();
            let mut byte = [0u8; 1];
            out.read(&mut byte).await
        };
        let listen = async { handshake(b, listener(), listener_ring, || 150).await.err() };
        let (read, refused) = futures::join!(dial, listen);
        assert!(matches!(refused, Some(RingError::NoKeyMatches)));
        assert!(matches!(read, Ok(0) | Err(_)));
        assert_eq!(*ring.dial_key(&addr, 150).0, OLD);
        assert_eq!(ring.refused_in_a_row(), 1);
    }

    /// A stock libp2p pnet dialer with `key` that sends the multistream header, against
    /// our listener with `ring` at 150 ms: the dialer's end and the listener's result.
    async fn stock_dial(
        ring: &KeyRing,
        key: [u8; 32],
    ) -> (
        impl Sized,
        Result<RingOutput<impl AsyncRead + AsyncWrite + Unpin>, RingError>,
    ) {
        let (a, b) = duplex();
        let dial = async move {
            let mut out = PnetConfig::new(PreSharedKey::new(key))
                .handshake(a)
                .await
                .unwrap();
            out.write_all(&MSS_HEADER).await.unwrap();
            out.flush().await.unwrap();
            out
        };
        futures::join!(dial, handshake(b, listener(), ring.clone(), || 150))
    }

    #[tokio::test]
    async fn a_connection_made_with_the_old_key_ends_when_the_ring_retires_it() {
        let ring = rotating(100, 200);
        for (key, ends) in [(OLD, true), (NEW, false)] {
            let (_dialer, listened) = stock_dial(&ring, key).await;
            let mut out = listened.unwrap();
            let mut header = [0u8; 20];
            out.read_exact(&mut header).await.unwrap();
            ring.retire_current();
            let write = out.write_all(b"x").await;
            assert_eq!(write.is_err(), ends, "{write:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_sends_nothing_is_dropped_after_a_few_seconds() {
        let (_a, b) = duplex();
        let listen = handshake(b, listener(), KeyRing::new(OLD), || 0);
        assert!(matches!(listen.await, Err(RingError::TimedOut)));
    }

    #[tokio::test]
    async fn a_connection_with_the_old_key_is_admitted_only_from_a_recipient() {
        let ring = rotating(100, 200);
        let (anna, mallory) = (PeerId::random(), PeerId::random());
        ring.set_recipients(Some([anna].into_iter().collect()));
        for (key, peer, admitted) in [
            (OLD, anna, true),
            (OLD, mallory, false),
            (NEW, mallory, true),
        ] {
            let (_dialer, listened) = stock_dial(&ring, key).await;
            let out = listened.unwrap();
            assert_eq!(ring.admits(&listener(), &peer), admitted, "{peer}");
            // Asked once: a second look finds no note.
            assert!(ring.admits(&listener(), &peer));
            drop(out);
        }
        // A connection that goes before its peer is known leaves no note behind.
        let (_dialer, listened) = stock_dial(&ring, OLD).await;
        drop(listened.unwrap());
        assert!(ring.admits(&listener(), &mallory));
    }

    #[test]
    fn a_key_the_ring_drops_ends_its_connections() {
        let ring = rotating(100, 200);
        let point = listener();
        let (old_flag, _) = ring.bind(&OLD, &point).unwrap();
        let (new_flag, _) = ring.bind(&NEW, &point).unwrap();
        // The grace is over: the new key alone; the old key's connections end.
        ring.set_keys(NEW, None);
        assert!(old_flag.load(Ordering::Relaxed));
        assert!(!new_flag.load(Ordering::Relaxed));
        let (now_flag, _) = ring.bind(&NEW, &point).unwrap();
        assert!(Arc::ptr_eq(&now_flag, &new_flag));
        // Without a rotation in the ring, retiring "the old key" ends nothing.
        ring.retire_current();
        assert!(!new_flag.load(Ordering::Relaxed));
    }
}
