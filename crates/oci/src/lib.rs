//! OCI runtime-spec handling for barge: loading and validating a bundle's
//! `config.json`, container ids, the default spec (`barge-runtime spec`) and
//! the runtime's feature report.
//!
//! The spec types themselves come from the `oci-spec` crate and are
//! re-exported as [`spec`]; this crate adds the checks a runtime must make
//! before it touches the system.

pub mod default;
pub mod features;
mod validate;

pub use oci_spec::runtime as spec;
pub use validate::{validate, validate_id};

use std::path::{Path, PathBuf};

/// The runtime-spec version barge implements and writes into new specs.
pub const OCI_VERSION: &str = "1.2.0";

/// Errors about a bundle's configuration or a container id.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} does not match the OCI runtime spec at `{field}`: {message}")]
    Schema {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
}

/// Load `config.json` from a bundle directory.
///
/// Syntax errors and schema errors are told apart, and a schema error names
/// the JSON path of the offending field (e.g. `linux.namespaces[2].type`).
pub fn load_config(bundle: &Path) -> Result<spec::Spec, SpecError> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    parse_config(&text, &path)
}

/// Parse the bytes of a `config.json`; `path` is used for messages only.
pub fn parse_config(text: &[u8], path: &Path) -> Result<spec::Spec, SpecError> {
    // First check that it is JSON at all, so that the message says so.
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|source| SpecError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        let field = err.path().to_string();
        SpecError::Schema {
            path: path.to_path_buf(),
            field,
            message: err.into_inner().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_is_reported_as_json() {
        let err = parse_config(b"{not json", Path::new("c.json")).unwrap_err();
        assert!(matches!(err, SpecError::Json { .. }), "{err}");
        assert!(err.to_string().contains("not valid JSON"));
    }

    #[test]
    fn schema_error_names_the_field() {
        let text = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":5}"#;
        let err = parse_config(text, Path::new("c.json")).unwrap_err();
        assert!(err.to_string().contains("`process`"), "{err}");
    }

    #[test]
    fn unknown_namespace_names_the_field() {
        let text = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#;
        let err = parse_config(text, Path::new("c.json")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("linux.namespaces[1].type"), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn default_spec_parses() {
        let text = serde_json::to_vec(&default::spec(false)).unwrap();
        parse_config(&text, Path::new("c.json")).unwrap();
        let text = serde_json::to_vec(&default::spec(true)).unwrap();
        parse_config(&text, Path::new("c.json")).unwrap();
    }
}
