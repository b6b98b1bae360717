//! The guest's stdout and stderr: an in-memory pipe the host drains after every request, so
//! that an instance serving many requests hands each request exactly its own output.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Bounded between two [`LogPipe::take`]s: a guest that writes more sees a closed stream (it
/// cannot block or trap on it) until the host drains the pipe.
#[derive(Clone, Debug)]
pub(crate) struct LogPipe {
    capacity: usize,
    buffer: Arc<Mutex<BytesMut>>,
}

impl LogPipe {
    pub(crate) fn new(capacity: usize) -> LogPipe {
        LogPipe {
            capacity,
            buffer: Arc::new(Mutex::new(BytesMut::new())),
        }
    }

    /// Everything written since the last call, as lossy UTF-8; empties the pipe.
    pub(crate) fn take(&self) -> String {
        let bytes = self
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .split()
            .freeze();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn room(&self) -> usize {
        let used = self
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        self.capacity.saturating_sub(used)
    }

    fn append(&self, bytes: &[u8]) -> usize {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        let n = bytes.len().min(self.capacity.saturating_sub(buffer.len()));
        buffer.extend_from_slice(bytes.get(..n).unwrap_or_default());
        n
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        // `check_write` granted at most the room left; anything beyond it is dropped.
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        match self.room() {
            0 => Err(StreamError::Closed),
            n => Ok(n),
        }
    }
}

impl AsyncWrite for LogPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(self.append(buf)))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_drains_and_capacity_is_per_take() {
        let mut pipe = LogPipe::new(8);
        assert_eq!(pipe.check_write().ok(), Some(8));
        pipe.write(Bytes::from_static(b"hello ")).ok();
        assert_eq!(pipe.check_write().ok(), Some(2));
        pipe.write(Bytes::from_static(b"world")).ok();
        assert!(matches!(pipe.check_write(), Err(StreamError::Closed)));
        assert_eq!(pipe.take(), "hello wo");
        assert_eq!(pipe.take(), "");
        assert_eq!(pipe.check_write().ok(), Some(8));
    }
}
