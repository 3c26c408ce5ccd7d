//! What travels in one request: a sync message, or addresses of peers we know.
//!
//! Versioned, tagged and size-limited like everything in [`crate::wire`]; decoding never
//! allocates more than the checked counts allow.

use libp2p::{Multiaddr, PeerId};

use crate::wire::{Reader, SyncMessage, WireError, Writer};

/// Peers listed in one address frame: a town hall's desktops fit.
pub const MAX_PEER_RECORDS: usize = 512;
/// Addresses per peer: a desktop with a few interfaces.
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Longest multiaddr or peer id accepted, in bytes.
const MAX_ADDR_BYTES: usize = 255;

const FRAME_VERSION: u8 = 1;

/// Where a peer can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetFrame {
    Sync(SyncMessage),
    /// "These are the peers I know and where they listen", so one explicit link between
    /// two subnets is enough for everyone to find everyone.
    Peers(Vec<PeerRecord>),
}

impl NetFrame {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            NetFrame::Sync(msg) => {
                let body = msg.encode();
                let mut out = Vec::with_capacity(body.len() + 2);
                out.push(FRAME_VERSION);
                out.push(1);
                out.extend_from_slice(&body);
                out
            }
            NetFrame::Peers(records) => {
                let mut w = Writer::with_capacity(64 * records.len() + 8);
                w.u8(FRAME_VERSION);
                w.u8(2);
                let records = &records[..records.len().min(MAX_PEER_RECORDS)];
                w.u32(records.len() as u32);
                for rec in records {
                    let id = rec.peer.to_bytes();
                    w.u8(id.len() as u8);
                    w.bytes(&id);
                    let addrs: Vec<Vec<u8>> = rec
                        .addrs
                        .iter()
                        .map(|a| a.to_vec())
                        .filter(|a| a.len() <= MAX_ADDR_BYTES)
                        .take(MAX_ADDRS_PER_PEER)
                        .collect();
                    w.u8(addrs.len() as u8);
                    for a in addrs {
                        w.u8(a.len() as u8);
                        w.bytes(&a);
                    }
                }
                w.into_bytes()
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != FRAME_VERSION {
            return Err(WireError::Version { version });
        }
        match r.u8()? {
            1 => Ok(NetFrame::Sync(SyncMessage::decode(&bytes[2..])?)),
            2 => {
                // Each record is at least an id length, one id byte and an address count.
                let n = r.count32("peer records", MAX_PEER_RECORDS, 3)?;
                let mut records = Vec::with_capacity(n);
                for _ in 0..n {
                    let id_len = r.u8()? as usize;
                    let peer =
                        PeerId::from_bytes(r.take(id_len)?).map_err(|_| WireError::Invalid {
                            what: "peer id in address frame",
                        })?;
                    let count = r.u8()? as usize;
                    if count > MAX_ADDRS_PER_PEER {
                        return Err(WireError::Invalid {
                            what: "too many addresses for one peer",
                        });
                    }
                    let mut addrs = Vec::with_capacity(count);
                    for _ in 0..count {
                        let len = r.u8()? as usize;
                        let addr = Multiaddr::try_from(r.take(len)?.to_vec()).map_err(|_| {
                            WireError::Invalid {
                                what: "address in address frame",
                            }
                        })?;
                        addrs.push(addr);
                    }
                    records.push(PeerRecord { peer, addrs });
                }
                r.finish()?;
                Ok(NetFrame::Peers(records))
            }
            tag => Err(WireError::UnknownTag {
                what: "net frame",
                tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PeerRecord {
        PeerRecord {
            peer: libp2p::identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id(),
            addrs: vec![
                "/ip4/10.77.1.2/tcp/47110".parse().unwrap(),
                "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn peers_frame_roundtrips() {
        let frame = NetFrame::Peers(vec![record(), record()]);
        assert_eq!(NetFrame::decode(&frame.encode()).unwrap(), frame);
    }

    #[test]
    fn sync_frame_roundtrips() {
        let frame = NetFrame::Sync(SyncMessage::Summary {
            conversations: vec![],
        });
        assert_eq!(NetFrame::decode(&frame.encode()).unwrap(), frame);
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors() {
        let bytes = NetFrame::Peers(vec![record()]).encode();
        for cut in 0..bytes.len() {
            assert!(NetFrame::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(NetFrame::decode(&[1, 2, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(NetFrame::decode(&[9, 1]).is_err());
        let mut bad_addr = bytes.clone();
        let last = bad_addr.len() - 1;
        bad_addr[last] ^= 0xff;
        // Either a different valid address or an error, never a panic.
        let _ = NetFrame::decode(&bad_addr);
    }
}
