//! The small message limit before WELCOME, for WebSocket, enforced on the byte stream
//! under tungstenite: tungstenite's own limit is fixed per connection (the transport's
//! limit, for welcomed sessions), and it reserves a whole frame's length as soon as it
//! has read the frame's header. [`Guarded`] watches the bytes it hands to tungstenite:
//! it skips the HTTP upgrade request (everything up to the first empty line), then
//! follows the WebSocket frame headers (RFC 6455, section 5.2) and, while a limit is
//! set, fails the read that brings the header of a data message longer than the
//! limit, so its body is never read or allocated. Control frames do not count;
//! fragments of one message add up.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The end of the HTTP request.
const END_OF_HEAD: &[u8; 4] = b"\r\n\r\n";
/// Longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// A data message longer than the limit was announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "message of at least {len} bytes exceeds the maximum of {max} before WELCOME (limits.max_message_size_before_welcome)"
)]
pub struct TooLong {
    /// Bytes the message's frames announced so far.
    pub len: u64,
    /// The limit.
    pub max: usize,
}

/// Follows the frames of a WebSocket byte stream from the server's side.
#[derive(Debug, Default)]
struct Scanner {
    /// Bytes of [`END_OF_HEAD`] matched; 4 once in the frames.
    head_matched: usize,
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame still to skip.
    remaining: u64,
    /// Length of the data message being received, over its fragments so far.
    message: u64,
}

impl Scanner {
    /// Follows `bytes`; fails when a data message exceeds `limit`.
    fn scan(&mut self, mut bytes: &[u8], limit: Option<usize>) -> Result<(), TooLong> {
        while self.head_matched < END_OF_HEAD.len() {
            let Some((&b, rest)) = bytes.split_first() else { return Ok(()) };
            bytes = rest;
            self.head_matched = match b {
                _ if END_OF_HEAD.get(self.head_matched) == Some(&b) => self.head_matched + 1,
                b'\r' => 1,
                _ => 0,
            };
        }
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(bytes.len());
                self.remaining -= n as u64;
                bytes = bytes.get(n..).unwrap_or_default();
                continue;
            }
            let need = self.header_needed();
            let n = (need - self.header_len).min(bytes.len());
            let (take, rest) = bytes.split_at(n);
            if let Some(slot) = self.header.get_mut(self.header_len..self.header_len + n) {
                slot.copy_from_slice(take);
            }
            self.header_len += n;
            bytes = rest;
            if self.header_len == self.header_needed() {
                self.frame_complete(limit)?;
            }
        }
        Ok(())
    }

    /// Bytes of the current header: 2 until its second byte is known.
    fn header_needed(&self) -> usize {
        if self.header_len < 2 {
            return 2;
        }
        let second = self.header[1];
        let ext = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if second & 0x80 != 0 { 4 } else { 0 }
    }

    fn frame_complete(&mut self, limit: Option<usize>) -> Result<(), TooLong> {
        let [first, second, ext @ ..] = self.header;
        let len = match second & 0x7f {
            126 => u64::from(u16::from_be_bytes([ext[0], ext[1]])),
            127 => u64::from_be_bytes([ext[0], ext[1], ext[2], ext[3], ext[4], ext[5], ext[6], ext[7]]),
            n => u64::from(n),
        };
        self.header_len = 0;
        self.remaining = len;
        match first & 0x0f {
            0 => self.message = self.message.saturating_add(len),
            1 | 2 => self.message = len,
            _ => return Ok(()),
        }
        match limit {
            Some(max) if self.message > max as u64 => Err(TooLong { len: self.message, max }),
            _ => Ok(()),
        }
    }
}

/// A server-side stream whose incoming WebSocket messages are held to a limit while
/// one is set.
pub struct Guarded<S> {
    inner: S,
    scanner: Scanner,
    limit: Option<usize>,
    exceeded: Option<TooLong>,
}

impl<S> Guarded<S> {
    /// Wraps a fresh connection (before the HTTP upgrade) with `limit` set.
    pub fn new(inner: S, limit: Option<usize>) -> Guarded<S> {
        Guarded { inner, scanner: Scanner::default(), limit, exceeded: None }
    }

    /// Sets or lifts the limit.
    pub fn set_limit(&mut self, limit: Option<usize>) {
        self.limit = limit;
    }

    /// The message that exceeded the limit, once one did (the stream then fails).
    pub fn exceeded(&self) -> Option<TooLong> {
        self.exceeded
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.exceeded {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let new = buf.filled().get(before..).unwrap_or_default();
        if let Err(e) = this.scanner.scan(new, this.limit) {
            this.exceeded = Some(e);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";

    /// A masked client frame header for `len` payload bytes.
    fn header(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
        let first = opcode | if fin { 0x80 } else { 0 };
        let mut h = match len {
            0..=125 => vec![first, 0x80 | len as u8],
            126..=65535 => [vec![first, 0x80 | 126], (len as u16).to_be_bytes().to_vec()].concat(),
            _ => [vec![first, 0x80 | 127], len.to_be_bytes().to_vec()].concat(),
        };
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn frame(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
        [header(opcode, fin, len as u64), vec![0x18; len]].concat()
    }

    /// Scans `stream` in chunks of `chunk` bytes.
    fn scan(stream: &[u8], chunk: usize, limit: Option<usize>) -> Result<(), TooLong> {
        let mut s = Scanner::default();
        stream.chunks(chunk).try_for_each(|c| s.scan(c, limit))
    }

    #[test]
    fn messages_within_the_limit_pass_whatever_the_chunking() {
        let stream =
            [HEAD.to_vec(), frame(1, true, 100), frame(9, true, 5), frame(2, true, 70_000 - 1)].concat();
        for chunk in [1, 3, 7, 4096, stream.len()] {
            assert_eq!(scan(&stream, chunk, Some(70_000)), Ok(()), "chunk {chunk}");
        }
    }

    #[test]
    fn a_long_message_fails_on_its_header() {
        let stream = [HEAD.to_vec(), frame(1, true, 10), header(1, true, 16 << 20)].concat();
        for chunk in [1, 5, stream.len()] {
            assert_eq!(scan(&stream, chunk, Some(65536)), Err(TooLong { len: 16 << 20, max: 65536 }));
        }
        assert_eq!(scan(&stream, 7, None), Ok(()), "no limit once welcomed");
    }

    #[test]
    fn fragments_of_one_message_add_up() {
        let stream = [
            HEAD.to_vec(),
            frame(2, false, 600),
            frame(9, true, 100),
            frame(0, false, 600),
            frame(0, true, 600),
        ]
        .concat();
        assert_eq!(scan(&stream, 64, Some(1500)), Err(TooLong { len: 1800, max: 1500 }));
        assert_eq!(scan(&stream, 64, Some(1800)), Ok(()));
        let next = [HEAD.to_vec(), frame(2, false, 600), frame(0, true, 600), frame(1, true, 600)].concat();
        assert_eq!(scan(&next, 64, Some(1200)), Ok(()), "a new message starts from zero");
    }

    #[test]
    fn the_http_head_is_skipped_even_with_a_frame_in_the_same_read() {
        let stream = [HEAD.to_vec(), header(2, true, 1 << 20)].concat();
        assert!(scan(&stream, stream.len(), Some(1024)).is_err());
        let only_head = b"GET / HTTP/1.1\r\nX: \x82\x7f\r\n\r";
        assert_eq!(scan(only_head, 3, Some(1)), Ok(()), "header-like bytes in the request are not frames");
    }
}
