//! Credentials in the containers `auth.json` format
//! (`{"auths":{"host":{"auth":"base64(user:pass)"}}}`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{RegistryError, Result};

/// A user name and password (or token) for basic auth and token requests.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or identity token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// New credentials.
    pub fn new(username: &str, password: &str) -> Self {
        Self {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    /// The value of an `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        format!("Basic {}", self.encoded())
    }

    fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password))
    }

    fn decode(auth: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some(Self::new(u, p))
    }
}

/// The auth file that `login` writes to: `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `~/.config/containers/auth.json`.
pub fn default_auth_file() -> Option<PathBuf> {
    if let Some(p) = env_path("REGISTRY_AUTH_FILE") {
        return Some(p);
    }
    if let Some(d) = env_path("XDG_RUNTIME_DIR") {
        return Some(d.join("containers/auth.json"));
    }
    env_path("HOME").map(|h| h.join(".config/containers/auth.json"))
}

/// The files searched for credentials, in order: [`default_auth_file`]'s
/// candidates, then `~/.config/containers/auth.json` and `~/.docker/config.json`.
pub fn auth_file_candidates() -> Vec<PathBuf> {
    if let Some(p) = env_path("REGISTRY_AUTH_FILE") {
        return vec![p];
    }
    let mut v = Vec::new();
    if let Some(d) = env_path("XDG_RUNTIME_DIR") {
        v.push(d.join("containers/auth.json"));
    }
    if let Some(h) = env_path("HOME") {
        v.push(h.join(".config/containers/auth.json"));
        v.push(h.join(".docker/config.json"));
    }
    v
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Normalises an `auths` key: drops a scheme and `/v1/`-style suffixes, maps
/// Docker Hub aliases to `docker.io`.
fn normalise_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    let (host, rest) = k.split_once('/').map_or((k, ""), |(h, r)| (h, r));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    if rest.is_empty() {
        host.to_string()
    } else {
        format!("{host}/{rest}")
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    let err = |reason: String| RegistryError::AuthFile {
        path: path.display().to_string(),
        reason,
    };
    match fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Some(Value::Object(Map::new()))),
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| err(format!("invalid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Looks up credentials for `registry` (and optionally a repository, for
/// repository-scoped entries like `host/namespace`) in one auth file.
pub fn lookup_in(path: &Path, registry: &str, repository: &str) -> Result<Option<Credentials>> {
    let Some(json) = read_json(path)? else {
        return Ok(None);
    };
    let Some(auths) = json.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let want_host = normalise_key(registry);
    let full = format!("{want_host}/{repository}");
    let mut best: Option<(usize, Credentials)> = None;
    for (key, entry) in auths {
        let k = normalise_key(key);
        let matches = k == want_host
            || (!repository.is_empty() && (full == k || full.starts_with(&format!("{k}/"))));
        if !matches {
            continue;
        }
        let creds = entry
            .get("auth")
            .and_then(Value::as_str)
            .and_then(Credentials::decode)
            .or_else(|| {
                let u = entry.get("username")?.as_str()?;
                let p = entry.get("password")?.as_str()?;
                Some(Credentials::new(u, p))
            });
        if let Some(c) = creds {
            if best.as_ref().is_none_or(|(len, _)| k.len() > *len) {
                best = Some((k.len(), c));
            }
        }
    }
    Ok(best.map(|(_, c)| c))
}

/// Looks up credentials in the first of `files` that has an entry.
pub fn lookup(files: &[PathBuf], registry: &str, repository: &str) -> Result<Option<Credentials>> {
    for f in files {
        if let Some(c) = lookup_in(f, registry, repository)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Stores credentials for `registry` in `path` (created 0600, written
/// atomically; other entries and fields are kept).
pub fn store(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut json = read_json(path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let key = normalise_key(registry);
    let obj = json
        .as_object_mut()
        .ok_or_else(|| RegistryError::AuthFile {
            path: path.display().to_string(),
            reason: "not a JSON object".into(),
        })?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    if let Some(a) = auths.as_object_mut() {
        a.retain(|k, _| normalise_key(k) != key);
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(creds.encoded()));
        a.insert(key, Value::Object(entry));
    }
    write_atomic(path, &json)
}

/// Removes the entry for `registry`; returns whether there was one.
pub fn remove(path: &Path, registry: &str) -> Result<bool> {
    let Some(mut json) = read_json(path)? else {
        return Ok(false);
    };
    let key = normalise_key(registry);
    let removed = json
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .is_some_and(|a| {
            let before = a.len();
            a.retain(|k, _| normalise_key(k) != key);
            a.len() != before
        });
    if removed {
        write_atomic(path, &json)?;
    }
    Ok(removed)
}

fn write_atomic(path: &Path, json: &Value) -> Result<()> {
    let err = |reason: String| RegistryError::AuthFile {
        path: path.display().to_string(),
        reason,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| err(format!("create {}: {e}", dir.display())))?;
    let mut data = serde_json::to_vec_pretty(json).map_err(|e| err(e.to_string()))?;
    data.push(b'\n');
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("auth.json"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err(e.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn store_lookup_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth.json");
        fs::create_dir_all(dir.path().join("sub")).unwrap();
        fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"credHelpers":{}}"#,
        )
        .unwrap();
        assert_eq!(
            lookup_in(&path, "docker.io", "library/x").unwrap(),
            Some(Credentials::new("u", "p"))
        );
        store(&path, "127.0.0.1:5000", &Credentials::new("a", "b:c")).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            lookup_in(&path, "127.0.0.1:5000", "r").unwrap(),
            Some(Credentials::new("a", "b:c"))
        );
        let json: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert!(json.get("credHelpers").is_some());
        assert!(remove(&path, "127.0.0.1:5000").unwrap());
        assert!(!remove(&path, "127.0.0.1:5000").unwrap());
        assert_eq!(lookup_in(&path, "127.0.0.1:5000", "r").unwrap(), None);
        assert!(lookup_in(&path, "docker.io", "x").unwrap().is_some());
    }

    #[test]
    fn repository_scoped_entries_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let host = Credentials::new("h", "1").encoded();
        let ns = Credentials::new("n", "2").encoded();
        fs::write(
            &path,
            format!(
                r#"{{"auths":{{"quay.io":{{"auth":"{host}"}},"quay.io/team":{{"auth":"{ns}"}}}}}}"#
            ),
        )
        .unwrap();
        assert_eq!(
            lookup_in(&path, "quay.io", "team/app")
                .unwrap()
                .unwrap()
                .username,
            "n"
        );
        assert_eq!(
            lookup_in(&path, "quay.io", "other/app")
                .unwrap()
                .unwrap()
                .username,
            "h"
        );
        assert_eq!(
            lookup_in(&path, "quay.io", "teamx/app")
                .unwrap()
                .unwrap()
                .username,
            "h"
        );
    }
}
