//! The error type of the registry client.

use std::fmt;

/// One entry of a registry's error body (`{"errors":[{"code":…,"message":…}]}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiError {
    /// Machine-readable code, e.g. `MANIFEST_UNKNOWN`.
    #[serde(default)]
    pub code: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
}

/// The registry's error entries, formatted for messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiErrors(pub Vec<ApiError>);

impl ApiErrors {
    /// Parses a registry error body; anything unparsable gives no entries.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<ApiError>,
        }
        Self(
            serde_json::from_slice::<Body>(body)
                .map(|b| b.errors)
                .unwrap_or_default(),
        )
    }

    /// Whether one of the entries has this code.
    pub fn has_code(&self, code: &str) -> bool {
        self.0.iter().any(|e| e.code == code)
    }
}

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => write!(f, "{} ({})", e.code, e.message)?,
                (false, true) => f.write_str(&e.code)?,
                (true, _) => f.write_str(&e.message)?,
            }
        }
        Ok(())
    }
}

/// Errors of the registry client. Each names the registry, the repository and
/// the reference or digest concerned.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The input.
        reference: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A digest string was malformed or uses an unsupported algorithm.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The input.
        digest: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The registry answered with an unexpected HTTP status.
    #[error("{registry}/{repository}: {what}: HTTP {status}{hint}{errors}")]
    Http {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// The operation and object, e.g. `get manifest latest`.
        what: String,
        /// The HTTP status.
        status: u16,
        /// A short explanation of the status (may be empty), starting with `: `.
        hint: String,
        /// The registry's error entries.
        errors: ApiErrors,
    },
    /// The connection failed (after retries, where the operation is retried).
    #[error("{registry}/{repository}: {what}: {source}")]
    Transport {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// The operation and object.
        what: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// Content did not hash to the digest it was requested or announced by.
    #[error("{subject}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// `registry/repo@digest` or another description of the content.
        subject: String,
        /// The digest the content should have.
        expected: String,
        /// The digest the content has.
        actual: String,
    },
    /// Content had another size than announced.
    #[error("{subject}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// `registry/repo@digest` or another description of the content.
        subject: String,
        /// The announced size.
        expected: u64,
        /// The size received (or at least received, when over the limit).
        actual: u64,
    },
    /// A manifest was larger than the limit.
    #[error("{subject}: manifest of {size} bytes exceeds the limit of {limit} bytes")]
    ManifestTooLarge {
        /// `registry/repo:reference`.
        subject: String,
        /// Size (at least).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An index or manifest list has no entry for the wanted platform.
    #[error("{subject}: no image for platform {wanted} in the index (available: {available})")]
    NoMatchingPlatform {
        /// `registry/repo:reference`.
        subject: String,
        /// The wanted platform.
        wanted: String,
        /// The platforms the index offers.
        available: String,
    },
    /// The registry sent something that breaks the protocol.
    #[error("{subject}: {reason}")]
    Protocol {
        /// What was being done.
        subject: String,
        /// What was wrong.
        reason: String,
    },
    /// Reading or writing the auth file failed.
    #[error("auth file {path}: {reason}")]
    AuthFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A registries.conf file could not be read, parsed or validated.
    #[error("loading registries configuration {path:?}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What was wrong (with the line for syntax errors).
        reason: String,
    },
    /// registries.conf blocks the registry or namespace.
    #[error("registry {prefix} is blocked in {origin} (refusing {reference})")]
    Blocked {
        /// The `prefix` of the blocking `[[registry]]` table.
        prefix: String,
        /// The file that defines it.
        origin: String,
        /// The reference that was refused.
        reference: String,
    },
    /// A short name could not be resolved to fully-qualified references.
    #[error("{0}")]
    ShortName(String),
    /// Local I/O (the sink or source of a blob) failed.
    #[error("{subject}: {source}")]
    Io {
        /// What was being done.
        subject: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// The HTTP status, for [`RegistryError::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is a 404 (or a registry `*_UNKNOWN` code).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Http { status: 404, .. })
    }
}

/// Result alias of this crate.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
