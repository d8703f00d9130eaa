//! A bounded reader and writer of chitchat 0.13's datagram format.
//!
//! chitchat keeps its own codec crate-private, so the open-gossip transport
//! reads datagrams with this module to learn which node identities a
//! datagram would make chitchat record, and writes a copy without the
//! identities the admission policy refuses. Layout (integers little-endian,
//! strings `u16 length | UTF-8`):
//!
//! ```text
//! datagram : magic u16 = 45139 | protocol u8 (0, 1) | kind u8 | body
//! Syn      : digest | cluster_id string
//! SynAck   : digest | delta
//! Ack      : delta
//! BadCluster: (empty)
//! id       : node_id string | generation u64 | ip (4 | 4 bytes, or 6 | 16 bytes) | port u16
//! digest   : protocol 0: count u16 | count x (id | heartbeat u64 | last_gc u64 | max_version u64)
//!            protocol 1: stream of the same entries
//! delta    : stream of operations, grouped by node:
//!            0 Node      id | last_gc u64 | from_version u64
//!            1 KeyValue  key string | value string | version u64 | status u8 (0, 1, 2)
//!            2 MaxVersion u64
//! stream   : blocks until tag 0; tag 1 = zstd block (len u16 | bytes), tag 2 = raw block (len u16 | bytes);
//!            the items are read from the concatenation of the blocks' contents
//! ```
//!
//! Everything is bounded: a stream block expands to at most 64 KiB and a
//! whole message to at most [`MAX_EXPANDED`] bytes; trailing bytes, unknown
//! tags and malformed items are errors. What cannot be parsed is never
//! handed to chitchat.
//!
//! chitchat fills a delta up to its datagram size *compressed*, so a peer
//! relaying highly compressible values can send a delta that expands beyond
//! [`MAX_EXPANDED`]. Such a delta is not an error: its blocks past the bound
//! are skipped without being decompressed, the operations read up to there
//! are kept and the rest is cut ([`Message::truncated`]), as chitchat itself
//! cuts a delta at its size limit. The receiver asks again for what was cut.
//! A digest past the bound is an error (chitchat's digest always fits).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

const MAGIC: u16 = 45_139;
const DIGEST_TAIL: usize = 24;
/// Largest expansion of a zstd stream block (chitchat's own limit).
const MAX_BLOCK: usize = u16::MAX as usize;
/// Largest expansion of all the streams of one datagram.
pub const MAX_EXPANDED: usize = 1 << 20;
/// Raw bytes per block when writing a stream (chitchat's own choice).
const BLOCK_THRESHOLD: usize = 16_384;

/// A node identity as chitchat names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident {
    pub node_id: String,
    pub generation: u64,
    pub addr: SocketAddr,
}

impl Ident {
    pub fn new(node_id: impl Into<String>, generation: u64, addr: SocketAddr) -> Self {
        Self { node_id: node_id.into(), generation, addr }
    }
}

impl From<&chitchat::ChitchatId> for Ident {
    fn from(id: &chitchat::ChitchatId) -> Self {
        Self::new(id.node_id.to_string(), id.generation_id, id.gossip_advertise_addr)
    }
}

/// Why a datagram could not be read.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum WireError {
    Truncated,
    BadMagic,
    UnknownVersion,
    UnknownKind,
    BadItem,
    TooLarge,
    TrailingBytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Syn = 0,
    SynAck = 1,
    Ack = 2,
    BadCluster = 3,
}

/// One digest entry or one delta section: the identity it is about, the
/// highest version it names, and where its bytes are.
#[derive(Debug, Clone)]
pub struct Part {
    pub id: Ident,
    /// Digest: the sender's max version for the node. Delta: the highest version of its operations.
    pub max_version: u64,
    /// Delta: the section's key-value operations, in order (empty for a digest entry).
    pub kvs: Vec<KeyValueOp>,
    range: Range<usize>,
}

/// One key-value operation of a delta section (a set, or a deletion tombstone).
#[derive(Debug, Clone)]
pub struct KeyValueOp {
    pub key: String,
    /// Length of the value in bytes.
    pub value_len: usize,
    range: Range<usize>,
}

/// One parsed datagram: each identity with the bytes that carry it.
#[derive(Debug)]
pub struct Message {
    pub version: u8,
    pub kind: Kind,
    /// Digest entries.
    pub digest: Vec<Part>,
    digest_bytes: Vec<u8>,
    /// Encoded cluster id string of a Syn (length prefix included).
    cluster_id: Vec<u8>,
    /// Delta sections: one node's operations each.
    pub delta: Vec<Part>,
    delta_bytes: Vec<u8>,
    /// The delta expanded beyond [`MAX_EXPANDED`] and was cut after its last
    /// whole operation within the bound: pass on [`Message::encode`], never the original bytes.
    pub truncated: bool,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self) -> Result<&'a str, WireError> {
        let len = usize::from(self.u16()?);
        std::str::from_utf8(self.take(len)?).map_err(|_| WireError::BadItem)
    }

    fn ident(&mut self) -> Result<Ident, WireError> {
        let node_id = self.string()?.to_owned();
        let generation = self.u64()?;
        let ip: IpAddr = match self.u8()? {
            4 => {
                let b = self.take(4)?;
                Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16)?);
                Ipv6Addr::from(a).into()
            }
            _ => return Err(WireError::BadItem),
        };
        let port = self.u16()?;
        Ok(Ident { node_id, generation, addr: SocketAddr::new(ip, port) })
    }

    fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Read a block stream; returns the concatenated contents and whether the
/// budget ran out. Once it has, the remaining blocks are only stepped over
/// (not decompressed) and the contents end with the last block that fit.
fn read_stream(r: &mut Reader<'_>, budget: &mut usize) -> Result<(Vec<u8>, bool), WireError> {
    let mut out = Vec::new();
    let mut block = vec![0u8; MAX_BLOCK];
    let mut truncated = false;
    loop {
        let tag = r.u8()?;
        if tag == 0 {
            return Ok((out, truncated));
        }
        let len = usize::from(r.u16()?);
        let bytes = r.take(len)?;
        if truncated {
            if tag > 2 {
                return Err(WireError::BadItem);
            }
            continue;
        }
        let contents = match tag {
            1 => {
                let n = zstd::bulk::decompress_to_buffer(bytes, &mut block[..]).map_err(|_| WireError::BadItem)?;
                &block[..n]
            }
            2 => bytes,
            _ => return Err(WireError::BadItem),
        };
        match budget.checked_sub(contents.len()) {
            Some(left) => {
                *budget = left;
                out.extend_from_slice(contents);
            }
            None => truncated = true,
        }
    }
}

/// Write `data` as a block stream (zstd blocks where that is shorter).
fn write_stream(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(BLOCK_THRESHOLD) {
        match zstd::bulk::compress(chunk, 0) {
            Ok(compressed) if compressed.len() < chunk.len() => {
                out.push(1);
                out.extend_from_slice(&(compressed.len() as u16).to_le_bytes());
                out.extend_from_slice(&compressed);
            }
            _ => {
                out.push(2);
                out.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
                out.extend_from_slice(chunk);
            }
        }
    }
    out.push(0);
}

fn digest_entries(bytes: &[u8], count: Option<usize>) -> Result<Vec<Part>, WireError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while count.map_or(!r.is_empty(), |c| out.len() < c) {
        let start = r.pos;
        let id = r.ident()?;
        r.u64()?; // heartbeat
        r.u64()?; // last gc version
        let max_version = r.u64()?;
        out.push(Part { id, max_version, kvs: Vec::new(), range: start..r.pos });
    }
    if !r.is_empty() {
        return Err(WireError::TrailingBytes);
    }
    Ok(out)
}

/// The delta's sections. A `truncated` delta (its stream was cut at the
/// expansion bound) ends at its last whole operation: the returned length is
/// where that operation ends.
fn delta_sections(bytes: &[u8], truncated: bool) -> Result<(Vec<Part>, usize), WireError> {
    let mut r = Reader::new(bytes);
    let mut out: Vec<Part> = Vec::new();
    while !r.is_empty() {
        let start = r.pos;
        match delta_op(&mut r, &mut out) {
            Ok(()) => {}
            Err(WireError::Truncated) if truncated => return Ok((out, start)),
            Err(err) => return Err(err),
        }
    }
    Ok((out, bytes.len()))
}

/// Read one delta operation into `out` (a node opens a section; the others extend the last one).
fn delta_op(r: &mut Reader<'_>, out: &mut Vec<Part>) -> Result<(), WireError> {
    let start = r.pos;
    let mut version = 0;
    let mut kv = None;
    match r.u8()? {
        0 => {
            let id = r.ident()?;
            r.u64()?; // last gc version
            r.u64()?; // from version (excluded)
            out.push(Part { id, max_version: 0, kvs: Vec::new(), range: start..start });
        }
        1 => {
            let key = r.string()?.to_owned();
            let value_len = r.string()?.len();
            version = r.u64()?;
            if r.u8()? > 2 {
                return Err(WireError::BadItem);
            }
            kv = Some(KeyValueOp { key, value_len, range: start..r.pos });
        }
        2 => {
            version = r.u64()?;
        }
        _ => return Err(WireError::BadItem),
    }
    // Every operation belongs to the node opened before it.
    let last = out.last_mut().ok_or(WireError::BadItem)?;
    last.range.end = r.pos;
    last.max_version = last.max_version.max(version);
    last.kvs.extend(kv);
    Ok(())
}

/// Parse one datagram.
pub fn parse(datagram: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader::new(datagram);
    if r.u16()? != MAGIC {
        return Err(WireError::BadMagic);
    }
    let version = r.u8()?;
    if version > 1 {
        return Err(WireError::UnknownVersion);
    }
    let kind = match r.u8()? {
        0 => Kind::Syn,
        1 => Kind::SynAck,
        2 => Kind::Ack,
        3 => Kind::BadCluster,
        _ => return Err(WireError::UnknownKind),
    };
    let mut budget = MAX_EXPANDED;
    let mut message = Message {
        version,
        kind,
        digest: Vec::new(),
        digest_bytes: Vec::new(),
        cluster_id: Vec::new(),
        delta: Vec::new(),
        delta_bytes: Vec::new(),
        truncated: false,
    };
    if matches!(kind, Kind::Syn | Kind::SynAck) {
        if version == 0 {
            let count = usize::from(r.u16()?);
            let start = r.pos;
            let mut probe = Reader::new(&datagram[start..]);
            for _ in 0..count {
                probe.ident()?;
                probe.take(DIGEST_TAIL)?;
            }
            message.digest_bytes = r.take(probe.pos)?.to_vec();
            message.digest = digest_entries(&message.digest_bytes, Some(count))?;
        } else {
            let (digest, truncated) = read_stream(&mut r, &mut budget)?;
            if truncated {
                return Err(WireError::TooLarge);
            }
            message.digest_bytes = digest;
            message.digest = digest_entries(&message.digest_bytes, None)?;
        }
    }
    match kind {
        Kind::Syn => {
            let start = r.pos;
            r.string()?;
            message.cluster_id = datagram[start..r.pos].to_vec();
        }
        Kind::SynAck | Kind::Ack => {
            let (mut delta, truncated) = read_stream(&mut r, &mut budget)?;
            let (sections, whole) = delta_sections(&delta, truncated)?;
            delta.truncate(whole);
            message.delta_bytes = delta;
            message.delta = sections;
            message.truncated = truncated;
        }
        Kind::BadCluster => {}
    }
    if !r.is_empty() {
        return Err(WireError::TrailingBytes);
    }
    Ok(message)
}

impl Message {
    /// Every identity the datagram names (digest entries, then delta sections).
    pub fn idents(&self) -> impl Iterator<Item = &Ident> {
        self.digest.iter().chain(self.delta.iter()).map(|p| &p.id)
    }

    /// Write the datagram again, keeping only the digest entries and delta
    /// sections whose flag is set (in their original order).
    pub fn encode(&self, keep_digest: &[bool], keep_delta: &[bool]) -> Vec<u8> {
        self.encode_cut(keep_digest, keep_delta, &[])
    }

    /// Like [`Message::encode`], and within kept delta section `i` keep only
    /// the key-value operations whose flag in `keep_kvs[i]` is set (a
    /// section without flags keeps them all). A section that loses some ends
    /// with a max-version operation at its original max version, so the
    /// receiver's engine moves past the cut operations instead of asking
    /// for them again.
    pub fn encode_cut(&self, keep_digest: &[bool], keep_delta: &[bool], keep_kvs: &[Vec<bool>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.digest_bytes.len() + self.delta_bytes.len() + 64);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.push(self.version);
        out.push(self.kind as u8);
        let kept = |parts: &[Part], keep: &[bool], bytes: &[u8]| -> (usize, Vec<u8>) {
            let mut data = Vec::with_capacity(bytes.len());
            let mut n = 0;
            for (part, _) in parts.iter().zip(keep).filter(|(_, k)| **k) {
                data.extend_from_slice(&bytes[part.range.clone()]);
                n += 1;
            }
            (n, data)
        };
        if matches!(self.kind, Kind::Syn | Kind::SynAck) {
            let (n, data) = kept(&self.digest, keep_digest, &self.digest_bytes);
            if self.version == 0 {
                out.extend_from_slice(&(n as u16).to_le_bytes());
                out.extend_from_slice(&data);
            } else {
                write_stream(&data, &mut out);
            }
        }
        match self.kind {
            Kind::Syn => out.extend_from_slice(&self.cluster_id),
            Kind::SynAck | Kind::Ack => write_stream(&self.kept_delta(keep_delta, keep_kvs), &mut out),
            Kind::BadCluster => {}
        }
        out
    }

    fn kept_delta(&self, keep_delta: &[bool], keep_kvs: &[Vec<bool>]) -> Vec<u8> {
        let mut data = Vec::with_capacity(self.delta_bytes.len());
        for (i, (part, _)) in self.delta.iter().zip(keep_delta).enumerate().filter(|(_, (_, k))| **k) {
            let Some(flags) = keep_kvs.get(i).filter(|f| f.iter().any(|k| !k)) else {
                data.extend_from_slice(&self.delta_bytes[part.range.clone()]);
                continue;
            };
            let mut cursor = part.range.start;
            for (kv, _) in part.kvs.iter().zip(flags).filter(|(_, k)| !**k) {
                data.extend_from_slice(&self.delta_bytes[cursor..kv.range.start]);
                cursor = kv.range.end;
            }
            data.extend_from_slice(&self.delta_bytes[cursor..part.range.end]);
            data.push(2);
            data.extend_from_slice(&part.max_version.to_le_bytes());
        }
        data
    }
}

/// Test helpers: build datagrams the way a chitchat peer would.
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    pub fn ident(out: &mut Vec<u8>, id: &Ident) {
        out.extend_from_slice(&(id.node_id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.node_id.as_bytes());
        out.extend_from_slice(&id.generation.to_le_bytes());
        match id.addr.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&id.addr.port().to_le_bytes());
    }

    pub fn digest_entry(out: &mut Vec<u8>, id: &Ident, heartbeat: u64) {
        ident(out, id);
        for v in [heartbeat, 0, 3] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    pub fn delta_section(out: &mut Vec<u8>, id: &Ident, kvs: &[(&str, &str)]) {
        out.push(0);
        ident(out, id);
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        for (i, (k, v)) in kvs.iter().enumerate() {
            out.push(1);
            for s in [k, v] {
                out.extend_from_slice(&(s.len() as u16).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            out.extend_from_slice(&(i as u64 + 1).to_le_bytes());
            out.push(0);
        }
    }

    /// A SynAck (protocol 0) naming `ids` in its digest and delta.
    pub fn syn_ack(ids: &[Ident]) -> Vec<u8> {
        let mut out = MAGIC.to_le_bytes().to_vec();
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&(ids.len() as u16).to_le_bytes());
        for (i, id) in ids.iter().enumerate() {
            digest_entry(&mut out, id, i as u64 + 10);
        }
        let mut delta = Vec::new();
        for id in ids {
            delta_section(&mut delta, id, &[("announcement", "x"), ("gradient", "y")]);
        }
        write_stream(&delta, &mut out);
        out
    }

    /// An Ack (protocol 0) with one delta section per `(id, key-values)`.
    pub fn ack(sections: &[(Ident, Vec<(String, String)>)]) -> Vec<u8> {
        let mut out = MAGIC.to_le_bytes().to_vec();
        out.extend_from_slice(&[0, 2]);
        let mut delta = Vec::new();
        for (id, kvs) in sections {
            let kvs: Vec<(&str, &str)> = kvs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            delta_section(&mut delta, id, &kvs);
        }
        write_stream(&delta, &mut out);
        out
    }

    /// A Syn (protocol 1: compressed digest) naming `ids`.
    pub fn syn_v1(ids: &[Ident], cluster: &str) -> Vec<u8> {
        let mut out = MAGIC.to_le_bytes().to_vec();
        out.extend_from_slice(&[1, 0]);
        let mut digest = Vec::new();
        for id in ids {
            digest_entry(&mut digest, id, 5);
        }
        write_stream(&digest, &mut out);
        out.extend_from_slice(&(cluster.len() as u16).to_le_bytes());
        out.extend_from_slice(cluster.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn ids(n: usize) -> Vec<Ident> {
        (0..n).map(|i| Ident::new(format!("node-{i}"), 1, format!("127.0.0.1:{}", 7000 + i).parse().unwrap())).collect()
    }

    #[test]
    fn a_syn_ack_is_read_and_written_back_unchanged_when_everything_is_kept() {
        let ids = ids(5);
        let datagram = syn_ack(&ids);
        let message = parse(&datagram).unwrap();
        assert_eq!(message.kind, Kind::SynAck);
        assert_eq!(message.digest.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), ids);
        assert_eq!(message.delta.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), ids);
        assert!(message.digest.iter().all(|p| p.max_version == 3), "the builder's digest max version");
        assert!(message.delta.iter().all(|p| p.max_version == 2), "two key-values, versions 1 and 2");
        assert_eq!(message.encode(&[true; 5], &[true; 5]), datagram);
    }

    #[test]
    fn refused_identities_vanish_from_digest_and_delta() {
        let ids = ids(6);
        let message = parse(&syn_ack(&ids)).unwrap();
        let keep: Vec<bool> = ids.iter().map(|id| id.node_id.ends_with('1') || id.node_id.ends_with('4')).collect();
        let rewritten = parse(&message.encode(&keep, &keep)).unwrap();
        let kept: Vec<&str> = rewritten.idents().map(|id| id.node_id.as_str()).collect();
        assert_eq!(kept, ["node-1", "node-4", "node-1", "node-4"]);
        let expected = syn_ack(&[ids[1].clone(), ids[4].clone()]);
        // Heartbeats differ (position-based in the builder), so compare structure: same sizes.
        assert_eq!(parse(&expected).unwrap().delta_bytes, rewritten.delta_bytes);
    }

    /// The message chitchat's own codec decodes from `datagram` (its Debug text).
    fn chitchat_decodes(datagram: &[u8]) -> String {
        use chitchat::transport::{Socket, UdpSocket as CodecSocket};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut codec = CodecSocket::open("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sender.send_to(datagram, codec.local_addr().unwrap()).await.unwrap();
            format!("{:?}", codec.recv().await.unwrap().envelope.message)
        })
    }

    #[test]
    fn cut_key_values_vanish_and_the_section_keeps_its_max_version() {
        let kvs: Vec<(String, String)> =
            ["keep-a", "cut-b", "keep-c", "cut-d"].iter().map(|k| (k.to_string(), format!("value of {k}"))).collect();
        let datagram = ack(&[(ids(1)[0].clone(), kvs)]);
        let message = parse(&datagram).unwrap();
        let keys: Vec<&str> = message.delta[0].kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["keep-a", "cut-b", "keep-c", "cut-d"]);
        assert_eq!(message.delta[0].kvs[1].value_len, "value of cut-b".len());
        let flags = vec![vec![true, false, true, false]];
        let cut = message.encode_cut(&[], &[true], &flags);
        let reread = parse(&cut).unwrap();
        let keys: Vec<&str> = reread.delta[0].kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["keep-a", "keep-c"]);
        assert_eq!(reread.delta[0].max_version, 4, "the cut operations' versions are skipped, not asked for again");
        assert_eq!(message.encode_cut(&[], &[true], &[vec![true; 4]]), datagram, "nothing cut: unchanged");
        // chitchat's own decoder accepts the rewritten datagram.
        let received = chitchat_decodes(&cut);
        assert!(received.contains("keep-a") && received.contains("keep-c"), "{received}");
        assert!(!received.contains("cut-") && received.contains("max_version: 4"), "{received}");
    }

    #[test]
    fn compressed_digests_are_read_and_filtered() {
        let ids = ids(300);
        let datagram = syn_v1(&ids, "vudo");
        let message = parse(&datagram).unwrap();
        assert_eq!((message.version, message.kind, message.digest.len()), (1, Kind::Syn, 300));
        let keep: Vec<bool> = ids.iter().map(|id| id.node_id == "node-7").collect();
        let rewritten = parse(&message.encode(&keep, &[])).unwrap();
        assert_eq!(rewritten.digest.len(), 1);
        assert_eq!(rewritten.cluster_id, message.cluster_id);
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        let good = syn_ack(&ids(3));
        assert_eq!(parse(&[]).unwrap_err(), WireError::Truncated);
        assert_eq!(parse(&[1, 2, 0, 0]).unwrap_err(), WireError::BadMagic);
        let mut v = good.clone();
        v[2] = 9;
        assert_eq!(parse(&v).unwrap_err(), WireError::UnknownVersion);
        let mut k = good.clone();
        k[3] = 77;
        assert_eq!(parse(&k).unwrap_err(), WireError::UnknownKind);
        for cut in [5, 20, good.len() - 1] {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(parse(&trailing).unwrap_err(), WireError::TrailingBytes);
        // A delta whose first operation is not a node.
        let mut orphan = MAGIC.to_le_bytes().to_vec();
        orphan.extend_from_slice(&[0, 2]);
        write_stream(&[2, 1, 0, 0, 0, 0, 0, 0, 0], &mut orphan);
        assert_eq!(parse(&orphan).unwrap_err(), WireError::BadItem);
        // A bad IP version byte inside an id.
        let mut bad_ip = MAGIC.to_le_bytes().to_vec();
        bad_ip.extend_from_slice(&[0, 0, 1, 0, 1, 0, b'a', 1, 0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(parse(&bad_ip).unwrap_err(), WireError::BadItem);
    }

    /// Blocks that each expand to 64 KiB of zeros, until far past [`MAX_EXPANDED`].
    fn zero_bomb_stream(out: &mut Vec<u8>) {
        let zeros = vec![0u8; MAX_BLOCK];
        let block = zstd::bulk::compress(&zeros, 19).unwrap();
        for _ in 0..(MAX_EXPANDED / MAX_BLOCK + 2) {
            out.push(1);
            out.extend_from_slice(&(block.len() as u16).to_le_bytes());
            out.extend_from_slice(&block);
        }
        out.push(0);
    }

    #[test]
    fn a_digest_bomb_is_refused() {
        let mut bomb = MAGIC.to_le_bytes().to_vec();
        bomb.extend_from_slice(&[1, 0]); // protocol 1 Syn: a compressed digest
        zero_bomb_stream(&mut bomb);
        bomb.extend_from_slice(&4u16.to_le_bytes());
        bomb.extend_from_slice(b"vudo");
        assert!(bomb.len() < 65_507);
        assert_eq!(parse(&bomb).unwrap_err(), WireError::TooLarge);
    }

    #[test]
    fn a_delta_bomb_is_not_decompressed_past_the_bound() {
        // Zeros are not delta operations: the part within the bound is read and refused.
        let mut bomb = MAGIC.to_le_bytes().to_vec();
        bomb.extend_from_slice(&[0, 2]);
        zero_bomb_stream(&mut bomb);
        assert!(bomb.len() < 65_507);
        assert_eq!(parse(&bomb).unwrap_err(), WireError::BadItem);
    }

    #[test]
    fn a_delta_expanding_past_the_bound_is_cut_after_its_last_whole_operation() {
        // 300 values of 4 000 'x' (1.2 MB expanded) compress to a few KB: chitchat
        // would send them in one datagram.
        let kvs: Vec<(String, String)> = (0..300).map(|i| (format!("k{i:03}"), "x".repeat(4000))).collect();
        let datagram = ack(&[(ids(1)[0].clone(), kvs)]);
        assert!(datagram.len() < 65_507, "{}", datagram.len());
        let message = parse(&datagram).unwrap();
        assert!(message.truncated);
        assert!(message.delta_bytes.len() <= MAX_EXPANDED);
        let kept = message.delta[0].kvs.len();
        assert!((200..300).contains(&kept), "{kept} whole operations within 1 MiB");
        for (i, kv) in message.delta[0].kvs.iter().enumerate() {
            assert_eq!((kv.key.as_str(), kv.value_len), (format!("k{i:03}").as_str(), 4000));
        }
        assert_eq!(message.delta[0].max_version, kept as u64, "no version beyond the cut is claimed");
        // Written again, it is a whole delta of the kept operations, which chitchat's own decoder reads.
        let cut = message.encode(&[], &[true]);
        let reread = parse(&cut).unwrap();
        assert!(!reread.truncated);
        assert_eq!(reread.delta[0].kvs.len(), kept);
        let received = chitchat_decodes(&cut);
        let (last, next) = (format!("k{:03}", kept - 1), format!("k{kept:03}"));
        assert!(received.contains(&last) && !received.contains(&next), "cut after {last}");
    }

    #[test]
    fn datagrams_chitchat_itself_encodes_are_read() {
        use chitchat::transport::{Socket, UdpSocket as CodecSocket};
        use chitchat::{ChitchatEnvelope, ChitchatMessage, ProtocolVersion};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut codec = CodecSocket::open("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let to = sink.local_addr().unwrap();
            let messages = [
                (ProtocolVersion::V0, ChitchatMessage::Syn { cluster_id: "vudo".into(), digest: Default::default() }, Kind::Syn),
                (ProtocolVersion::V1, ChitchatMessage::Syn { cluster_id: "vudo".into(), digest: Default::default() }, Kind::Syn),
                (ProtocolVersion::V0, ChitchatMessage::SynAck { digest: Default::default(), delta: Default::default() }, Kind::SynAck),
                (ProtocolVersion::V0, ChitchatMessage::Ack { delta: Default::default() }, Kind::Ack),
                (ProtocolVersion::V0, ChitchatMessage::BadCluster, Kind::BadCluster),
            ];
            for (version, message, kind) in messages {
                codec.send(to, ChitchatEnvelope { version, message }).await.unwrap();
                let mut buf = vec![0u8; 70_000];
                let (n, _) = sink.recv_from(&mut buf).await.unwrap();
                let parsed = parse(&buf[..n]).unwrap();
                assert_eq!(parsed.kind, kind);
                assert_eq!(parsed.encode(&[], &[]), buf[..n].to_vec(), "{kind:?} is written back byte for byte");
            }
        });
    }
}

