//! Unpacking a layer while it downloads: the download thread writes each
//! chunk to the blob's temp file and passes a copy through a bounded
//! channel to an unpack thread reading it as a stream.
//!
//! The stream ends (`Ok(0)`) only after the download thread has verified
//! the blob and committed it to the store ([`LayerSink::finish`]); any other
//! end (download failed, writer dropped) is a read error, so the unpack
//! fails and its temp dir goes. The unpack side reads on to the end after a
//! failure of its own, so the caller can tell a bad download (the blob's
//! digest is wrong) from bad layer content (the blob is fine); if it stops
//! reading anyway, the download's next write fails.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use barge_image::store::BlobWriter;
use barge_image::StoreError;

/// Chunks in flight per layer (each up to the download buffer, 128 KiB).
const CHANNEL_CHUNKS: usize = 32;

enum Msg {
    Data(Vec<u8>),
    /// The blob is complete, verified and committed.
    End,
}

/// The download side: the blob writer, plus the channel to an unpacker.
pub(crate) struct LayerSink {
    blob: BlobWriter,
    tx: Option<SyncSender<Msg>>,
    /// Chunks the reader is done with, for reuse.
    spent: Option<Receiver<Vec<u8>>>,
}

/// The unpack side: a [`Read`] over the downloaded bytes.
pub(crate) struct StreamReader {
    rx: Receiver<Msg>,
    spent: SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    ended: bool,
    /// The stream broke off because the download side went away.
    pub(crate) aborted: bool,
}

/// A sink writing only the blob (for layers that need no unpacking).
pub(crate) fn blob_only(blob: BlobWriter) -> LayerSink {
    LayerSink {
        blob,
        tx: None,
        spent: None,
    }
}

/// A sink writing the blob and feeding the returned reader.
pub(crate) fn tee(blob: BlobWriter) -> (LayerSink, StreamReader) {
    let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
    // One more than can be in flight, so returning a chunk never blocks.
    let (spent_tx, spent_rx) = sync_channel(CHANNEL_CHUNKS + 2);
    (
        LayerSink {
            blob,
            tx: Some(tx),
            spent: Some(spent_rx),
        },
        StreamReader {
            rx,
            spent: spent_tx,
            chunk: Vec::new(),
            pos: 0,
            ended: false,
            aborted: false,
        },
    )
}

impl LayerSink {
    /// Commits the blob (fsync, digest check, rename), then ends the
    /// unpacker's stream.
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        let Self { blob, tx, .. } = self;
        blob.commit()?;
        if let Some(tx) = tx {
            // A gone unpacker has its own error to report.
            let _ = tx.send(Msg::End);
        }
        Ok(())
    }
}

impl Write for LayerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.blob.write_all(buf)?;
        if let Some(tx) = &self.tx {
            let mut chunk = self
                .spent
                .as_ref()
                .and_then(|r| r.try_recv().ok())
                .unwrap_or_default();
            chunk.clear();
            chunk.extend_from_slice(buf);
            if tx.send(Msg::Data(chunk)).is_err() {
                return Err(io::Error::other("layer unpack stopped"));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.blob.flush()
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos == self.chunk.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Msg::Data(v)) => {
                    let done = std::mem::replace(&mut self.chunk, v);
                    if done.capacity() > 0 {
                        // Full or gone sender: the chunk is simply freed.
                        let _ = self.spent.try_send(done);
                    }
                    self.pos = 0;
                }
                Ok(Msg::End) => self.ended = true,
                Err(_) => {
                    self.aborted = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "layer download did not complete",
                    ));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_image::{Digest, Store};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("s")).unwrap();
        (dir, s)
    }

    #[test]
    fn stream_ends_only_after_commit() {
        let (_d, s) = store();
        let data = vec![7u8; 300_000];
        let w = s.blob_writer(Some(Digest::of(&data))).unwrap();
        let (mut sink, mut reader) = tee(w);
        let t = std::thread::spawn(move || {
            let mut got = Vec::new();
            let r = reader.read_to_end(&mut got);
            (r.is_ok(), got)
        });
        for c in data.chunks(100_000) {
            sink.write_all(c).unwrap();
        }
        sink.finish().unwrap();
        let (ok, got) = t.join().unwrap();
        assert!(ok);
        assert_eq!(got, data);
        assert!(s.has_blob(&Digest::of(&data)));
    }

    #[test]
    fn bad_digest_is_a_read_error() {
        let (_d, s) = store();
        let w = s.blob_writer(Some(Digest::of(b"other"))).unwrap();
        let (mut sink, mut reader) = tee(w);
        let t = std::thread::spawn(move || {
            let mut got = Vec::new();
            let r = reader.read_to_end(&mut got);
            (r.is_err(), reader.aborted)
        });
        sink.write_all(b"content").unwrap();
        assert!(sink.finish().is_err());
        assert_eq!(t.join().unwrap(), (true, true));
        assert!(s.list_blobs().unwrap().is_empty());
    }

    #[test]
    fn dropped_download_is_a_read_error() {
        let (_d, s) = store();
        let w = s.blob_writer(None).unwrap();
        let (mut sink, mut reader) = tee(w);
        sink.write_all(b"partial").unwrap();
        drop(sink);
        let mut got = Vec::new();
        assert!(reader.read_to_end(&mut got).is_err());
        assert!(reader.aborted);
        assert_eq!(got, b"partial");
    }

    #[test]
    fn gone_unpacker_fails_the_write() {
        let (_d, s) = store();
        let w = s.blob_writer(None).unwrap();
        let (mut sink, reader) = tee(w);
        drop(reader);
        assert!(sink.write_all(b"x").is_err());
    }
}
