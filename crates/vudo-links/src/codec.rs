//! The wire format of a request or a response: a 4-byte big-endian length,
//! then that many payload bytes, one message per stream.
//!
//! The length comes first so that a stream closed early (the remote gave up)
//! is an error, never an empty message, and so that an oversize message is
//! refused before a byte of it is buffered: the reader checks the length
//! against its own `max_size`, whatever the remote's limit is.

use std::io;
use std::sync::Arc;

use futures::prelude::*;
use libp2p::request_response::Codec;
use libp2p::StreamProtocol;

use crate::stats::Stats;

/// Raw-bytes codec with a hard bound on every message it reads or writes.
#[derive(Clone)]
pub(crate) struct RawCodec {
    max_size: usize,
    stats: Arc<Stats>,
}

impl RawCodec {
    pub(crate) fn new(max_size: usize, stats: Arc<Stats>) -> Self {
        Self { max_size, stats }
    }

    async fn read_bounded<T>(&self, io: &mut T, what: &str) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut prefix = [0u8; 4];
        io.read_exact(&mut prefix).await?;
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_size {
            self.stats.bump(&self.stats.oversize_refused);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("remote sent a {what} of {len} bytes, over the {} byte limit", self.max_size),
            ));
        }
        let mut buf = vec![0u8; len];
        io.read_exact(&mut buf).await?;
        Ok(buf)
    }

    async fn write_bounded<T>(&self, io: &mut T, payload: Vec<u8>, what: &str) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if payload.len() > self.max_size {
            // Callers check sizes before queueing; this guards the invariant.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("local {what} of {} bytes exceeds the {} byte limit", payload.len(), self.max_size),
            ));
        }
        let len = u32::try_from(payload.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message over 4 GiB"))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&payload).await?;
        io.close().await
    }
}

impl Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_bounded(io, "request").await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_bounded(io, "response").await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_bounded(io, req, "request").await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_bounded(io, res, "response").await
    }
}
