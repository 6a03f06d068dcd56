//! The container log: podman's `k8s-file` or Docker's `json-file` format.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::args::LogDriver;
use crate::text;

/// Which container stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static [u8] {
        match self {
            Stream::Stdout => b"stdout",
            Stream::Stderr => b"stderr",
        }
    }
}

pub struct Log {
    driver: LogDriver,
    file: Option<File>,
    size: u64,
    max: u64,
    buf: Vec<u8>,
}

impl Log {
    /// Open (append to) the log at `path`; `max` 0 means no size limit.
    pub fn open(driver: LogDriver, path: Option<&Path>, max: u64) -> std::io::Result<Log> {
        let file = match (driver, path) {
            (LogDriver::None, _) | (_, None) => None,
            (_, Some(p)) => Some(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::CLOEXEC.bits() as i32)
                    .open(p)?,
            ),
        };
        let size = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(Log {
            driver,
            file,
            size,
            max,
            buf: Vec::new(),
        })
    }

    /// Log one chunk of output, one entry per line; a chunk that does not
    /// end in a newline ends with a partial entry.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        if self.file.is_none() || data.is_empty() {
            return;
        }
        let (secs, nanos) = text::now();
        // Entry by entry, so that --log-size-max holds for every entry.
        for line in data.split_inclusive(|&b| b == b'\n') {
            self.buf.clear();
            format_entries(&mut self.buf, self.driver, stream, line, secs, nanos);
            self.append();
        }
    }

    fn append(&mut self) {
        let Some(f) = self.file.as_mut() else { return };
        let len = self.buf.len() as u64;
        if self.max > 0 && self.size + len > self.max {
            // Like conmon: start over rather than grow past the limit.
            if f.set_len(0).is_ok() {
                self.size = 0;
            }
        }
        // A full disk must not stop the container: drop the entry.
        if f.write_all(&self.buf).is_ok() {
            self.size += len;
        }
    }
}

/// Format `data` as log entries into `out`.
pub fn format_entries(
    out: &mut Vec<u8>,
    driver: LogDriver,
    stream: Stream,
    data: &[u8],
    secs: u64,
    nanos: u32,
) {
    for line in data.split_inclusive(|&b| b == b'\n') {
        match driver {
            LogDriver::K8sFile => {
                let (text, full) = match line.strip_suffix(b"\n") {
                    Some(t) => (t, true),
                    None => (line, false),
                };
                text::push_rfc3339(out, secs, nanos, false);
                out.push(b' ');
                out.extend_from_slice(stream.name());
                out.extend_from_slice(if full { b" F " } else { b" P " });
                out.extend_from_slice(text);
                out.push(b'\n');
            }
            LogDriver::JsonFile => {
                out.extend_from_slice(b"{\"log\":\"");
                text::push_json_escaped(out, line);
                out.extend_from_slice(b"\",\"stream\":\"");
                out.extend_from_slice(stream.name());
                out.extend_from_slice(b"\",\"time\":\"");
                text::push_rfc3339(out, secs, nanos, true);
                out.extend_from_slice(b"\"}\n");
            }
            LogDriver::None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_796_090_584;

    #[test]
    fn k8s_file_lines_and_partials() {
        let mut v = Vec::new();
        format_entries(
            &mut v,
            LogDriver::K8sFile,
            Stream::Stdout,
            b"a\n\nb c",
            T,
            123_456_789,
        );
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            "2026-12-01T02:03:04.123456789+00:00 stdout F a\n\
             2026-12-01T02:03:04.123456789+00:00 stdout F \n\
             2026-12-01T02:03:04.123456789+00:00 stdout P b c\n"
        );
    }

    #[test]
    fn json_file_lines() {
        let mut v = Vec::new();
        format_entries(
            &mut v,
            LogDriver::JsonFile,
            Stream::Stderr,
            b"x \"q\"\ny",
            T,
            1,
        );
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            "{\"log\":\"x \\\"q\\\"\\n\",\"stream\":\"stderr\",\"time\":\"2026-12-01T02:03:04.000000001Z\"}\n\
             {\"log\":\"y\",\"stream\":\"stderr\",\"time\":\"2026-12-01T02:03:04.000000001Z\"}\n"
        );
    }

    #[test]
    fn size_limit_truncates() {
        let dir = tempfile_dir();
        let p = dir.join("log");
        let mut log = Log::open(LogDriver::K8sFile, Some(&p), 200).unwrap();
        for _ in 0..10 {
            log.write(
                Stream::Stdout,
                b"0123456789012345678901234567890123456789\n",
            );
        }
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 200 && len > 0, "len {len}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("barge-monitor-log-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
