//! Frames inside sealed datagrams: a whole chitchat message, or a fragment.
//!
//! Chitchat fills datagrams up to the UDP limit (65 507 bytes); sealing adds
//! [`crate::keyring::OVERHEAD`] bytes, so a full-size message no longer fits
//! one datagram. Such a message is cut into fragments, each sealed on its
//! own (own nonce, own timestamp), and put back together by the receiver:
//!
//! ```text
//! whole:    0x00 | chitchat bytes
//! fragment: 0x01 | message id (u32 LE) | index (u8) | count (u8) | chunk
//! ```
//!
//! Only datagrams that opened under an installed key reach the reassembler,
//! and it is bounded: at most [`MAX_PENDING`] incomplete messages (the oldest
//! is dropped first), at most [`MAX_FRAGMENTS`] fragments per message, and a
//! reassembled message never exceeds [`MAX_MESSAGE`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

const WHOLE: u8 = 0;
const FRAGMENT: u8 = 1;
const FRAGMENT_HEADER: usize = 1 + 4 + 1 + 1;
pub const MAX_FRAGMENTS: u8 = 4;
pub const MAX_PENDING: usize = 64;
/// Largest chitchat message (chitchat's own UDP payload limit).
pub const MAX_MESSAGE: usize = 65_507;

/// Frame `message` into one or more plaintexts, none longer than `max_plaintext`.
pub fn frame(message: &[u8], message_id: u32, max_plaintext: usize) -> Option<Vec<Vec<u8>>> {
    if message.len() < max_plaintext {
        let mut out = Vec::with_capacity(1 + message.len());
        out.push(WHOLE);
        out.extend_from_slice(message);
        return Some(vec![out]);
    }
    let chunk = max_plaintext.checked_sub(FRAGMENT_HEADER).filter(|c| *c > 0)?;
    let count = message.len().div_ceil(chunk);
    let count = u8::try_from(count).ok().filter(|c| *c <= MAX_FRAGMENTS)?;
    Some(
        message
            .chunks(chunk)
            .enumerate()
            .map(|(index, part)| {
                let mut out = Vec::with_capacity(FRAGMENT_HEADER + part.len());
                out.push(FRAGMENT);
                out.extend_from_slice(&message_id.to_le_bytes());
                out.push(index as u8);
                out.push(count);
                out.extend_from_slice(part);
                out
            })
            .collect(),
    )
}

/// What one opened plaintext means.
#[derive(Debug, PartialEq, Eq)]
pub enum Unframed {
    /// A complete chitchat message.
    Message(Vec<u8>),
    /// A fragment was stored; the message is not complete yet.
    Pending,
    /// Not a valid frame (counted by the caller).
    Invalid,
}

/// Reassembles fragmented messages, bounded in memory.
#[derive(Default)]
pub struct Reassembler {
    pending: HashMap<(SocketAddr, u32), Vec<Option<Vec<u8>>>>,
    order: VecDeque<(SocketAddr, u32)>,
}

impl Reassembler {
    pub fn accept(&mut self, from: SocketAddr, plaintext: Vec<u8>) -> Unframed {
        match plaintext.first() {
            Some(&WHOLE) => {
                let mut message = plaintext;
                message.remove(0);
                Unframed::Message(message)
            }
            Some(&FRAGMENT) if plaintext.len() > FRAGMENT_HEADER => self.fragment(from, &plaintext),
            _ => Unframed::Invalid,
        }
    }

    fn fragment(&mut self, from: SocketAddr, plaintext: &[u8]) -> Unframed {
        let id = u32::from_le_bytes([plaintext[1], plaintext[2], plaintext[3], plaintext[4]]);
        let (index, count) = (plaintext[5], plaintext[6]);
        if !(2..=MAX_FRAGMENTS).contains(&count) || index >= count {
            return Unframed::Invalid;
        }
        let key = (from, id);
        if !self.pending.contains_key(&key) {
            if self.order.len() >= MAX_PENDING {
                if let Some(oldest) = self.order.pop_front() {
                    self.pending.remove(&oldest);
                }
            }
            self.order.push_back(key);
            self.pending.insert(key, vec![None; usize::from(count)]);
        }
        let Some(parts) = self.pending.get_mut(&key) else {
            return Unframed::Invalid;
        };
        if parts.len() != usize::from(count) {
            return Unframed::Invalid;
        }
        parts[usize::from(index)] = Some(plaintext[FRAGMENT_HEADER..].to_vec());
        if parts.iter().any(Option::is_none) {
            return Unframed::Pending;
        }
        let parts = self.pending.remove(&key).unwrap_or_default();
        self.order.retain(|k| *k != key);
        let message: Vec<u8> = parts.into_iter().flatten().flatten().collect();
        if message.len() > MAX_MESSAGE {
            return Unframed::Invalid;
        }
        Unframed::Message(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn small_messages_travel_whole() {
        let framed = frame(b"hello", 1, 100).unwrap();
        assert_eq!(framed.len(), 1);
        assert_eq!(Reassembler::default().accept(addr(), framed[0].clone()), Unframed::Message(b"hello".to_vec()));
    }

    #[test]
    fn large_messages_are_cut_and_put_back_together_in_any_order() {
        let message: Vec<u8> = (0..65_000u32).map(|i| (i % 251) as u8).collect();
        let mut framed = frame(&message, 7, 40_000).unwrap();
        assert_eq!(framed.len(), 2);
        assert!(framed.iter().all(|f| f.len() <= 40_000));
        framed.reverse();
        let mut r = Reassembler::default();
        assert_eq!(r.accept(addr(), framed[0].clone()), Unframed::Pending);
        assert_eq!(r.accept(addr(), framed[1].clone()), Unframed::Message(message));
        assert!(r.pending.is_empty() && r.order.is_empty());
    }

    #[test]
    fn bad_frames_are_invalid_and_pending_state_is_bounded() {
        let mut r = Reassembler::default();
        assert_eq!(r.accept(addr(), vec![]), Unframed::Invalid);
        assert_eq!(r.accept(addr(), vec![9, 1, 2]), Unframed::Invalid);
        assert_eq!(r.accept(addr(), vec![FRAGMENT, 0, 0, 0, 0, 3, 2, 1]), Unframed::Invalid); // index >= count
        assert_eq!(r.accept(addr(), vec![FRAGMENT, 0, 0, 0, 0, 0, 9, 1]), Unframed::Invalid); // too many
        for id in 0..(MAX_PENDING as u32 + 10) {
            let mut f = vec![FRAGMENT];
            f.extend_from_slice(&id.to_le_bytes());
            f.extend_from_slice(&[0, 2, 42]);
            assert_eq!(r.accept(addr(), f), Unframed::Pending);
        }
        assert_eq!(r.pending.len(), MAX_PENDING);
        assert!(frame(&vec![0; 1_000_000], 1, 1000).is_none(), "more than MAX_FRAGMENTS is refused");
    }
}
