//! Digests and a writer that verifies one while content streams through it.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{RegistryError, Result};

/// A content digest `algorithm:hex`. Only `sha256` can be verified; other
/// algorithms are rejected when parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| RegistryError::InvalidDigest {
            digest: s.to_string(),
            reason: reason.to_string(),
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| bad("missing algorithm prefix"))?;
        if alg != "sha256" {
            return Err(bad("only sha256 is supported"));
        }
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("expected 64 lowercase hex digits"));
        }
        Ok(Self(s.to_string()))
    }

    /// The sha256 digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(data))
    }

    fn from_hasher(h: Sha256) -> Self {
        Self(format!("sha256:{}", hex(&h.finalize())))
    }

    /// The full string `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, h)| h)
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes and counts what passes through it, to check the
/// digest and size at the end with [`VerifyingWriter::finish`].
pub struct VerifyingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
    expected: Digest,
    expected_size: Option<u64>,
    subject: String,
}

impl<W: Write> VerifyingWriter<W> {
    /// Wraps `inner`; `subject` names the content in errors.
    pub fn new(inner: W, expected: Digest, expected_size: Option<u64>, subject: String) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
            expected,
            expected_size,
            subject,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and checks size and digest; gives back the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.inner.flush().map_err(|source| RegistryError::Io {
            subject: self.subject.clone(),
            source,
        })?;
        if let Some(expected) = self.expected_size {
            if expected != self.written {
                return Err(RegistryError::SizeMismatch {
                    subject: self.subject,
                    expected,
                    actual: self.written,
                });
            }
        }
        let actual = Digest::from_hasher(self.hasher);
        if actual != self.expected {
            return Err(RegistryError::DigestMismatch {
                subject: self.subject,
                expected: self.expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for VerifyingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(expected) = self.expected_size {
            if self.written + buf.len() as u64 > expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: more than the expected {expected} bytes received",
                        self.subject
                    ),
                ));
            }
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_digest() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse("md5:00").is_err());
        assert!(Digest::parse(&d.as_str().to_uppercase()).is_err());
    }

    #[test]
    fn verifying_writer_accepts_right_content() {
        let mut w = VerifyingWriter::new(Vec::new(), Digest::of(b"hello"), Some(5), "t".into());
        w.write_all(b"hel").unwrap();
        w.write_all(b"lo").unwrap();
        assert_eq!(w.finish().unwrap(), b"hello");
    }

    #[test]
    fn verifying_writer_names_expected_and_actual_digest() {
        let wrong = Digest::of(b"other");
        let mut w = VerifyingWriter::new(Vec::new(), wrong.clone(), None, "blob x".into());
        w.write_all(b"hello").unwrap();
        let err = w.finish().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(wrong.as_str()), "{msg}");
        assert!(msg.contains(Digest::of(b"hello").as_str()), "{msg}");
        assert!(msg.contains("blob x"), "{msg}");
    }

    #[test]
    fn verifying_writer_checks_size() {
        let mut w = VerifyingWriter::new(Vec::new(), Digest::of(b"hello"), Some(4), "s".into());
        assert!(w.write_all(b"hello").is_err());
        let w = VerifyingWriter::new(Vec::new(), Digest::of(b""), Some(4), "s".into());
        assert!(matches!(
            w.finish(),
            Err(RegistryError::SizeMismatch {
                expected: 4,
                actual: 0,
                ..
            })
        ));
    }
}
