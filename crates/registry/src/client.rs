//! The blocking registry client.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::Response;
use ureq::{Body, SendBody};

use crate::auth::{self, Credentials};
use crate::digest::{Digest, VerifyingWriter};
use crate::error::{ApiErrors, RegistryError, Result};
use crate::manifest::{self, ImageIndex, Platform};
use crate::reference::{is_localhost, Reference};

/// Default cap on manifest size (4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Settings for one registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Verify TLS certificates (`--tls-verify`).
    pub tls_verify: bool,
    /// Allow plain HTTP when HTTPS does not answer (insecure registry).
    /// Loopback registries and `tls_verify = false` always allow it.
    pub insecure: bool,
    /// Credentials to use instead of the auth file's.
    pub credentials: Option<Credentials>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            tls_verify: true,
            insecure: false,
            credentials: None,
        }
    }
}

/// Client options.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per-registry settings, keyed by `host[:port]`.
    pub registries: HashMap<String, RegistryConfig>,
    /// TLS verification for registries not in `registries`.
    pub tls_verify: bool,
    /// Auth files searched for credentials, in order.
    pub auth_files: Vec<PathBuf>,
    /// `User-Agent` header.
    pub user_agent: String,
    /// How often a transient failure (connection error, 5xx, 429) is retried.
    pub retries: u32,
    /// First retry delay; doubled on each retry.
    pub retry_delay: Duration,
    /// Largest manifest accepted.
    pub max_manifest_size: u64,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for any read or write on a connection.
    pub io_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            registries: HashMap::new(),
            tls_verify: true,
            auth_files: auth::auth_file_candidates(),
            user_agent: format!("barge/{}", env!("CARGO_PKG_VERSION")),
            retries: 3,
            retry_delay: Duration::from_millis(250),
            max_manifest_size: MAX_MANIFEST_SIZE,
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(120),
        }
    }
}

impl ClientOptions {
    /// Sets the settings of one registry.
    #[must_use]
    pub fn registry(mut self, host: &str, config: RegistryConfig) -> Self {
        self.registries.insert(host.to_string(), config);
        self
    }

    /// Uses only this auth file.
    #[must_use]
    pub fn auth_file(mut self, path: &Path) -> Self {
        self.auth_files = vec![path.to_path_buf()];
        self
    }
}

/// A manifest as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestResponse {
    /// Media type (from `Content-Type`, else the JSON `mediaType`).
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The manifest as sent by the registry.
    pub bytes: Vec<u8>,
}

/// The image manifest chosen for a platform.
#[derive(Debug, Clone)]
pub struct PlatformManifest {
    /// The image manifest.
    pub manifest: ManifestResponse,
    /// The index it was selected from, if the reference named an index.
    pub index: Option<ManifestResponse>,
}

/// What [`Client::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The registry had the blob already.
    Existed,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// One blob for [`Client::pull_blobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRequest {
    /// Its digest.
    pub digest: Digest,
    /// Its size from the descriptor.
    pub size: u64,
}

#[derive(Debug, Clone)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug, Default)]
struct RegState {
    base: Option<String>,
    challenge: Option<Challenge>,
    tokens: HashMap<String, String>,
}

enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream(&'a mut dyn Read, u64),
}

impl Payload<'_> {
    fn replayable(&self) -> bool {
        !matches!(self, Payload::Stream(..))
    }
}

/// A blocking client for the OCI distribution API. Cheap to share between
/// threads (`&Client` is `Sync`).
pub struct Client {
    opts: ClientOptions,
    agent: ureq::Agent,
    agent_noverify: ureq::Agent,
    state: Mutex<HashMap<String, RegState>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn pull_scope(r: &Reference) -> Vec<String> {
    vec![format!("repository:{}:pull", r.repository)]
}

fn push_scope(r: &Reference) -> Vec<String> {
    vec![format!("repository:{}:pull,push", r.repository)]
}

fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn content_length(resp: &Response<Body>) -> Option<u64> {
    header(resp, "content-length").and_then(|v| v.trim().parse().ok())
}

fn is_transient(e: &RegistryError) -> bool {
    match e {
        RegistryError::Http { status, .. } => {
            matches!(*status, 408 | 429 | 500 | 502 | 503 | 504)
        }
        RegistryError::Transport { source, .. } => matches!(
            **source,
            ureq::Error::Io(_)
                | ureq::Error::ConnectionFailed
                | ureq::Error::Timeout(_)
                | ureq::Error::Protocol(_)
        ),
        _ => false,
    }
}

fn transient_io(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Parses `Scheme k="v", k2=v2` into the scheme and its parameters.
fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    (scheme.to_ascii_lowercase(), params)
}

impl Client {
    /// A client with these options.
    pub fn new(opts: ClientOptions) -> Self {
        let build = |verify: bool| {
            let cfg = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .user_agent(opts.user_agent.as_str())
                .timeout_connect(Some(opts.connect_timeout))
                .timeout_per_read(Some(opts.io_timeout))
                .timeout_per_write(Some(opts.io_timeout))
                .max_idle_connections_per_host(16)
                .tls_config(
                    ureq::tls::TlsConfig::builder()
                        .disable_verification(!verify)
                        .build(),
                )
                .build();
            ureq::Agent::new_with_config(cfg)
        };
        Self {
            agent: build(true),
            agent_noverify: build(false),
            opts,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    fn config(&self, registry: &str) -> RegistryConfig {
        let mut c = self
            .opts
            .registries
            .get(registry)
            .cloned()
            .unwrap_or_else(|| RegistryConfig {
                tls_verify: self.opts.tls_verify,
                ..RegistryConfig::default()
            });
        c.insecure |= !c.tls_verify || is_localhost(registry);
        c
    }

    fn credentials(&self, r: &Reference) -> Result<Option<Credentials>> {
        if let Some(c) = self.config(&r.registry).credentials {
            return Ok(Some(c));
        }
        auth::lookup(&self.opts.auth_files, &r.registry, &r.repository)
    }

    fn agent(&self, registry: &str) -> &ureq::Agent {
        if self.config(registry).tls_verify {
            &self.agent
        } else {
            &self.agent_noverify
        }
    }

    fn with_state<T>(&self, registry: &str, f: impl FnOnce(&mut RegState) -> T) -> T {
        let mut g = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(g.entry(registry.to_string()).or_default())
    }

    /// `scheme://host` for a registry: HTTPS, or plain HTTP for an insecure
    /// registry whose HTTPS port does not speak TLS.
    fn base(&self, r: &Reference) -> String {
        if let Some(b) = self.with_state(&r.registry, |s| s.base.clone()) {
            return b;
        }
        let host = r.api_host();
        let https = format!("https://{host}");
        let base = if self.config(&r.registry).insecure {
            match self.agent_noverify.get(format!("{https}/v2/")).call() {
                Ok(_) => https,
                Err(_) => format!("http://{host}"),
            }
        } else {
            https
        };
        self.with_state(&r.registry, |s| s.base = Some(base.clone()));
        base
    }

    fn transport(r: &Reference, what: &str, e: ureq::Error) -> RegistryError {
        RegistryError::Transport {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            what: what.to_string(),
            source: Box::new(e),
        }
    }

    /// Turns a non-success response into an error, reading the error body.
    fn http_error(&self, r: &Reference, what: &str, resp: Response<Body>) -> RegistryError {
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let _ = resp
            .into_body()
            .into_reader()
            .take(64 * 1024)
            .read_to_end(&mut body);
        let errors = ApiErrors::parse(&body);
        let hint = match status {
            401 => match self.credentials(r) {
                Ok(Some(_)) => format!(
                    ": unauthorized: the credentials for {} were rejected",
                    r.registry
                ),
                _ => format!(
                    ": unauthorized: authentication required and no credentials for {} were found (log in first)",
                    r.registry
                ),
            },
            403 => ": forbidden: access denied".to_string(),
            404 => ": not found".to_string(),
            429 => ": too many requests".to_string(),
            s if s >= 500 => ": registry server error".to_string(),
            _ => String::new(),
        };
        RegistryError::Http {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            what: what.to_string(),
            status,
            hint,
            errors,
        }
    }

    fn auth_header(&self, r: &Reference, scopes: &[String]) -> Result<Option<String>> {
        let (challenge, token) = self.with_state(&r.registry, |s| {
            (
                s.challenge.clone(),
                s.tokens.get(&scopes.join(" ")).cloned(),
            )
        });
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials(r)?.map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service }) => {
                if let Some(t) = token {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let t = self.fetch_token(r, &realm, service.as_deref(), scopes)?;
                Ok(Some(format!("Bearer {t}")))
            }
        }
    }

    fn fetch_token(
        &self,
        r: &Reference,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String> {
        let what = format!("token from {realm}");
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(s) = service {
            let _ = write!(url, "{sep}service={}", percent_encode(s));
            sep = '&';
        }
        for s in scopes {
            let _ = write!(url, "{sep}scope={}", percent_encode(s));
            sep = '&';
        }
        let mut req = self.agent(&r.registry).get(&url);
        if let Some(c) = self.credentials(r)? {
            req = req.header("Authorization", c.basic_header());
        }
        let resp = req.call().map_err(|e| Self::transport(r, &what, e))?;
        if !resp.status().is_success() {
            return Err(self.http_error(r, &what, resp));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| Self::transport(r, &what, ureq::Error::Io(e)))?;
        let t: Token = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
            subject: what.clone(),
            reason: format!("invalid token response: {e}"),
        })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                subject: what,
                reason: "token response has no token".into(),
            })?;
        self.with_state(&r.registry, |s| {
            s.tokens.insert(scopes.join(" "), token.clone());
        });
        Ok(token)
    }

    /// Learns from a 401's `WWW-Authenticate`; returns whether a retry may
    /// succeed.
    fn learn_challenge(
        &self,
        r: &Reference,
        scopes: &[String],
        header: Option<&str>,
        sent_auth: bool,
    ) -> Result<bool> {
        let Some(h) = header else {
            return Ok(false);
        };
        let (scheme, params) = parse_challenge(h);
        match scheme.as_str() {
            "basic" => {
                if sent_auth || self.credentials(r)?.is_none() {
                    return Ok(false);
                }
                self.with_state(&r.registry, |s| s.challenge = Some(Challenge::Basic));
                Ok(true)
            }
            "bearer" => {
                let Some(realm) = params.get("realm").cloned() else {
                    return Ok(false);
                };
                let service = params.get("service").cloned();
                self.with_state(&r.registry, |s| {
                    s.challenge = Some(Challenge::Bearer {
                        realm: realm.clone(),
                        service: service.clone(),
                    });
                    s.tokens.remove(&scopes.join(" "));
                });
                self.fetch_token(r, &realm, service.as_deref(), scopes)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn raw(
        &self,
        r: &Reference,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        payload: &mut Payload<'_>,
    ) -> std::result::Result<Response<Body>, ureq::Error> {
        let agent = self.agent(&r.registry);
        match method {
            "GET" | "HEAD" | "DELETE" => {
                let mut b = match method {
                    "GET" => agent.get(url),
                    "HEAD" => agent.head(url),
                    _ => agent.delete(url),
                };
                for (k, v) in headers {
                    b = b.header(*k, v);
                }
                if let Some(a) = auth {
                    b = b.header("Authorization", a);
                }
                b.call()
            }
            _ => {
                let mut b = if method == "PUT" {
                    agent.put(url)
                } else {
                    agent.post(url)
                };
                for (k, v) in headers {
                    b = b.header(*k, v);
                }
                if let Some(a) = auth {
                    b = b.header("Authorization", a);
                }
                match payload {
                    Payload::Empty => b.header("Content-Length", "0").send_empty(),
                    Payload::Bytes(d) => b.send(*d),
                    Payload::Stream(reader, len) => b
                        .header("Content-Length", len.to_string())
                        .send(SendBody::from_reader(&mut **reader)),
                }
            }
        }
    }

    /// Sends one request, answering one authentication challenge. Returns the
    /// response whatever its status.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        r: &Reference,
        scopes: &[String],
        what: &str,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        mut payload: Payload<'_>,
    ) -> Result<Response<Body>> {
        let mut attempt = 0;
        loop {
            let auth = self.auth_header(r, scopes)?;
            let resp = self
                .raw(r, method, url, headers, auth.as_deref(), &mut payload)
                .map_err(|e| Self::transport(r, what, e))?;
            if resp.status().as_u16() == 401 && attempt == 0 && payload.replayable() {
                attempt += 1;
                if self.learn_challenge(
                    r,
                    scopes,
                    header(&resp, "www-authenticate"),
                    auth.is_some(),
                )? {
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    fn retrying<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match f() {
                Err(e) if attempt < self.opts.retries && is_transient(&e) => {
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.opts
            .retry_delay
            .saturating_mul(1 << attempt.min(6))
            .min(Duration::from_secs(10))
    }

    /// Checks that the registry answers `/v2/` (authenticating if asked).
    pub fn ping(&self, registry: &str) -> Result<()> {
        let r = Reference {
            registry: registry.to_string(),
            repository: String::new(),
            tag: None,
            digest: None,
        };
        let what = "ping /v2/";
        self.retrying(|| {
            let url = format!("{}/v2/", self.base(&r));
            let resp = self.send(&r, &[], what, "GET", &url, &[], Payload::Empty)?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(self.http_error(&r, what, resp))
            }
        })
    }

    /// Fetches a manifest, accepting `accept` media types (e.g.
    /// [`manifest::DEFAULT_ACCEPT`]). Enforces the size cap and, when the
    /// reference has a digest, verifies it.
    pub fn get_manifest(&self, r: &Reference, accept: &[&str]) -> Result<ManifestResponse> {
        let mref = r.manifest_reference();
        let what = format!("get manifest {mref}");
        let subject = format!("{}/{}:{mref}", r.registry, r.repository);
        let limit = self.opts.max_manifest_size;
        let accept = accept.join(", ");
        self.retrying(|| {
            let url = format!("{}/v2/{}/manifests/{mref}", self.base(r), r.repository);
            let resp = self.send(
                r,
                &pull_scope(r),
                &what,
                "GET",
                &url,
                &[("Accept", accept.clone())],
                Payload::Empty,
            )?;
            if !resp.status().is_success() {
                return Err(self.http_error(r, &what, resp));
            }
            if let Some(len) = content_length(&resp).filter(|l| *l > limit) {
                return Err(RegistryError::ManifestTooLarge {
                    subject: subject.clone(),
                    size: len,
                    limit,
                });
            }
            let content_type = header(&resp, "content-type")
                .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
                .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
            let header_digest = header(&resp, "docker-content-digest").map(str::to_string);
            let mut bytes = Vec::new();
            resp.into_body()
                .into_reader()
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| Self::transport(r, &what, ureq::Error::Io(e)))?;
            if bytes.len() as u64 > limit {
                return Err(RegistryError::ManifestTooLarge {
                    subject: subject.clone(),
                    size: bytes.len() as u64,
                    limit,
                });
            }
            let digest = Digest::of(&bytes);
            let expected = match &r.digest {
                Some(d) => Some(d.to_string()),
                None => header_digest.filter(|h| h.starts_with("sha256:")),
            };
            if let Some(exp) = expected {
                if exp != digest.as_str() {
                    return Err(RegistryError::DigestMismatch {
                        subject: subject.clone(),
                        expected: exp,
                        actual: digest.to_string(),
                    });
                }
            }
            let media_type = match content_type {
                Some(c) => c,
                None => serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
                    .ok_or_else(|| RegistryError::Protocol {
                        subject: subject.clone(),
                        reason: "manifest has no media type".into(),
                    })?,
            };
            Ok(ManifestResponse {
                media_type,
                digest,
                bytes,
            })
        })
    }

    /// Asks (HEAD) for a manifest's digest, media type and size without
    /// fetching it; `None` when the registry does not have it. The digest is
    /// the registry's `Docker-Content-Digest`, if it sends one.
    pub fn head_manifest(
        &self,
        r: &Reference,
        accept: &[&str],
    ) -> Result<Option<(String, Option<Digest>, u64)>> {
        let mref = r.manifest_reference();
        let what = format!("check manifest {mref}");
        let accept = accept.join(", ");
        self.retrying(|| {
            let url = format!("{}/v2/{}/manifests/{mref}", self.base(r), r.repository);
            let resp = self.send(
                r,
                &pull_scope(r),
                &what,
                "HEAD",
                &url,
                &[("Accept", accept.clone())],
                Payload::Empty,
            )?;
            match resp.status().as_u16() {
                200..=299 => Ok(Some((
                    header(&resp, "content-type")
                        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
                        .unwrap_or_default(),
                    header(&resp, "docker-content-digest").and_then(|d| Digest::parse(d).ok()),
                    content_length(&resp).unwrap_or(0),
                ))),
                404 => Ok(None),
                _ => Err(self.http_error(r, &what, resp)),
            }
        })
    }

    /// Fetches the image manifest for `platform`: if the reference names an
    /// index or manifest list, selects the entry and fetches it by digest.
    pub fn get_manifest_for_platform(
        &self,
        r: &Reference,
        platform: &Platform,
    ) -> Result<PlatformManifest> {
        let top = self.get_manifest(r, manifest::DEFAULT_ACCEPT)?;
        if !manifest::is_index(&top.media_type) {
            return Ok(PlatformManifest {
                manifest: top,
                index: None,
            });
        }
        let subject = format!("{}/{}:{}", r.registry, r.repository, r.manifest_reference());
        let index: ImageIndex =
            serde_json::from_slice(&top.bytes).map_err(|e| RegistryError::Protocol {
                subject: subject.clone(),
                reason: format!("invalid index: {e}"),
            })?;
        let entry = manifest::select_platform(&index, platform).map_err(|available| {
            RegistryError::NoMatchingPlatform {
                subject: subject.clone(),
                wanted: platform.to_string(),
                available,
            }
        })?;
        let child = self.get_manifest(
            &r.with_digest(entry.digest.clone()),
            manifest::DEFAULT_ACCEPT,
        )?;
        if child.bytes.len() as u64 != entry.size {
            return Err(RegistryError::SizeMismatch {
                subject: format!("{}@{}", r.name(), entry.digest),
                expected: entry.size,
                actual: child.bytes.len() as u64,
            });
        }
        Ok(PlatformManifest {
            manifest: child,
            index: Some(top),
        })
    }

    /// Whether the repository has a blob; its size if so.
    pub fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<Option<u64>> {
        let what = format!("check blob {digest}");
        self.retrying(|| {
            let url = format!("{}/v2/{}/blobs/{digest}", self.base(r), r.repository);
            let resp = self.send(r, &pull_scope(r), &what, "HEAD", &url, &[], Payload::Empty)?;
            match resp.status().as_u16() {
                200..=299 => Ok(Some(content_length(&resp).unwrap_or(0))),
                404 => Ok(None),
                _ => Err(self.http_error(r, &what, resp)),
            }
        })
    }

    /// Streams a blob into `out`, verifying size (when given) and digest.
    /// Transient failures are retried, resuming with a `Range` request.
    pub fn get_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<u64> {
        self.get_blob_with_progress(r, digest, size, out, &mut |_, _| {})
    }

    /// [`Client::get_blob`], calling `progress(done, total)` as bytes arrive
    /// (`total` is the expected size, or 0 when unknown).
    pub fn get_blob_with_progress(
        &self,
        r: &Reference,
        digest: &Digest,
        size: Option<u64>,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        let subject = format!("{}@{digest}", r.name());
        let what = format!("get blob {digest}");
        let mut w = VerifyingWriter::new(out, digest.clone(), size, subject.clone());
        let mut attempt = 0;
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let start = w.written();
            let mut headers = Vec::new();
            if start > 0 {
                headers.push(("Range", format!("bytes={start}-")));
            }
            let url = format!("{}/v2/{}/blobs/{digest}", self.base(r), r.repository);
            let resp = self.send(
                r,
                &pull_scope(r),
                &what,
                "GET",
                &url,
                &headers,
                Payload::Empty,
            );
            let err = match resp {
                Ok(resp) if resp.status().is_success() => Ok(resp),
                Ok(resp) => Err(self.http_error(r, &what, resp)),
                Err(e) => Err(e),
            };
            let resp = match err {
                Ok(resp) => resp,
                Err(e) if attempt < self.opts.retries && is_transient(&e) => {
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let resp = match resp.status().as_u16() {
                206 if start > 0 => resp,
                206 => {
                    return Err(RegistryError::Protocol {
                        subject,
                        reason: "unexpected partial content".into(),
                    })
                }
                _ if start > 0 => {
                    return Err(RegistryError::Protocol {
                        subject,
                        reason: format!(
                        "download broke off after {start} bytes and the registry cannot resume it"
                    ),
                    })
                }
                _ => resp,
            };
            let total = size
                .or_else(|| content_length(&resp).map(|l| l + start))
                .unwrap_or(0);
            let mut body = resp.into_body().into_reader();
            let broke = loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Some(e),
                };
                if let Some(s) = size {
                    if w.written() + n as u64 > s {
                        return Err(RegistryError::SizeMismatch {
                            subject,
                            expected: s,
                            actual: w.written() + n as u64,
                        });
                    }
                }
                w.write_all(&buf[..n]).map_err(|source| RegistryError::Io {
                    subject: format!("write {subject}"),
                    source,
                })?;
                progress(w.written(), total);
            };
            match broke {
                None => {
                    let done = w.written();
                    w.finish()?;
                    return Ok(done);
                }
                Some(e) if attempt < self.opts.retries && transient_io(&e) => {
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                Some(e) => return Err(Self::transport(r, &what, ureq::Error::Io(e))),
            }
        }
    }

    /// Uploads a blob of `size` bytes read from `reader` (monolithic upload),
    /// unless the repository has it. With `mount_from` (another repository of
    /// the same registry holding it) a cross-repository mount is tried first.
    pub fn push_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        reader: &mut dyn Read,
        mount_from: Option<&Reference>,
    ) -> Result<PushOutcome> {
        if self.blob_exists(r, digest)?.is_some() {
            return Ok(PushOutcome::Existed);
        }
        let what = format!("push blob {digest}");
        let base = self.base(r);
        let mut scopes = push_scope(r);
        let mount = mount_from.filter(|m| m.registry == r.registry && m.repository != r.repository);
        if let Some(m) = mount {
            scopes.push(format!("repository:{}:pull", m.repository));
        }
        let url = match mount {
            Some(m) => format!(
                "{base}/v2/{}/blobs/uploads/?mount={digest}&from={}",
                r.repository,
                percent_encode(&m.repository)
            ),
            None => format!("{base}/v2/{}/blobs/uploads/", r.repository),
        };
        let resp = self.retrying(|| {
            let resp = self.send(r, &scopes, &what, "POST", &url, &[], Payload::Empty)?;
            match resp.status().as_u16() {
                201 | 202 => Ok(resp),
                _ => Err(self.http_error(r, &what, resp)),
            }
        })?;
        if resp.status().as_u16() == 201 && mount.is_some() {
            return Ok(PushOutcome::Mounted);
        }
        let location = header(&resp, "location").ok_or_else(|| RegistryError::Protocol {
            subject: format!("{}@{digest}", r.name()),
            reason: "upload session without Location".into(),
        })?;
        let mut put = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!(
                "{base}{}{location}",
                if location.starts_with('/') { "" } else { "/" }
            )
        };
        put.push(if put.contains('?') { '&' } else { '?' });
        let _ = write!(put, "digest={}", percent_encode(digest.as_str()));
        let mut limited = reader.take(size);
        let resp = self.send(
            r,
            &scopes,
            &what,
            "PUT",
            &put,
            &[("Content-Type", "application/octet-stream".to_string())],
            Payload::Stream(&mut limited, size),
        )?;
        if resp.status().as_u16() != 201 {
            return Err(self.http_error(r, &what, resp));
        }
        Ok(PushOutcome::Uploaded)
    }

    /// Uploads a manifest under the reference's tag (or digest); returns its
    /// digest.
    pub fn push_manifest(&self, r: &Reference, media_type: &str, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let mref = r.manifest_reference();
        let subject = format!("{}/{}:{mref}", r.registry, r.repository);
        if let Some(d) = &r.digest {
            if *d != digest {
                return Err(RegistryError::DigestMismatch {
                    subject,
                    expected: d.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        if bytes.len() as u64 > self.opts.max_manifest_size {
            return Err(RegistryError::ManifestTooLarge {
                subject,
                size: bytes.len() as u64,
                limit: self.opts.max_manifest_size,
            });
        }
        let what = format!("push manifest {mref}");
        self.retrying(|| {
            let url = format!("{}/v2/{}/manifests/{mref}", self.base(r), r.repository);
            let resp = self.send(
                r,
                &push_scope(r),
                &what,
                "PUT",
                &url,
                &[("Content-Type", media_type.to_string())],
                Payload::Bytes(bytes),
            )?;
            if resp.status().as_u16() != 201 {
                return Err(self.http_error(r, &what, resp));
            }
            if let Some(h) = header(&resp, "docker-content-digest") {
                if h.starts_with("sha256:") && h != digest.as_str() {
                    return Err(RegistryError::DigestMismatch {
                        subject: subject.clone(),
                        expected: digest.to_string(),
                        actual: h.to_string(),
                    });
                }
            }
            Ok(digest.clone())
        })
    }

    /// Downloads blobs with up to `jobs` threads. `sink` opens the writer for
    /// a blob; `progress(digest, done, total)` is called as bytes arrive.
    /// Returns the writers in the order of `blobs`; on failure, the first
    /// error (blobs not yet started are skipped).
    pub fn pull_blobs<W, S, P>(
        &self,
        r: &Reference,
        blobs: &[BlobRequest],
        jobs: usize,
        sink: S,
        progress: P,
    ) -> Result<Vec<W>>
    where
        W: Write + Send,
        S: Fn(&Digest) -> io::Result<W> + Sync,
        P: Fn(&Digest, u64, u64) + Sync,
    {
        let results: Mutex<Vec<Option<W>>> = Mutex::new((0..blobs.len()).map(|_| None).collect());
        self.pull_blobs_each(r, blobs, jobs, sink, progress, |i, w| {
            results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(w);
            Ok(())
        })?;
        Ok(results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .into_iter()
            .flatten()
            .collect())
    }

    /// [`Client::pull_blobs`], handing each blob's writer to `done(index,
    /// writer)` on the downloading thread as soon as that blob is complete
    /// (size and digest verified), so the caller can commit it while other
    /// blobs still download. An error from `done` fails the pull like a
    /// download error. A writer whose download fails is dropped.
    pub fn pull_blobs_each<W, S, P, D>(
        &self,
        r: &Reference,
        blobs: &[BlobRequest],
        jobs: usize,
        sink: S,
        progress: P,
        done: D,
    ) -> Result<()>
    where
        W: Write + Send,
        S: Fn(&Digest) -> io::Result<W> + Sync,
        P: Fn(&Digest, u64, u64) + Sync,
        D: Fn(usize, W) -> io::Result<()> + Sync,
    {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let first_err: Mutex<Option<RegistryError>> = Mutex::new(None);
        let jobs = jobs.clamp(1, blobs.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = blobs.get(i) else { break };
                    let res = sink(&b.digest)
                        .map_err(|source| RegistryError::Io {
                            subject: format!("open sink for {}@{}", r.name(), b.digest),
                            source,
                        })
                        .and_then(|mut w| {
                            progress(&b.digest, 0, b.size);
                            self.get_blob_with_progress(
                                r,
                                &b.digest,
                                Some(b.size),
                                &mut w,
                                &mut |d, t| {
                                    progress(&b.digest, d, t);
                                },
                            )
                            .map(|_| w)
                        })
                        .and_then(|w| {
                            done(i, w).map_err(|source| RegistryError::Io {
                                subject: format!("store {}@{}", r.name(), b.digest),
                                source,
                            })
                        });
                    if let Err(e) = res {
                        stop.store(true, Ordering::Relaxed);
                        first_err
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get_or_insert(e);
                        break;
                    }
                });
            }
        });
        match first_err
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Checks `creds` against the registry and stores them in `auth_file`.
    pub fn login(&self, registry: &str, creds: &Credentials, auth_file: &Path) -> Result<()> {
        let mut cfg = self.config(registry);
        cfg.credentials = Some(creds.clone());
        let probe = Client::new(self.opts.clone().registry(registry, cfg));
        probe.ping(registry)?;
        auth::store(auth_file, registry, creds)?;
        self.with_state(registry, |s| {
            s.challenge = None;
            s.tokens.clear();
        });
        Ok(())
    }

    /// Removes the registry's credentials from `auth_file`; returns whether
    /// there were any.
    pub fn logout(&self, registry: &str, auth_file: &Path) -> Result<bool> {
        self.with_state(registry, |s| {
            s.challenge = None;
            s.tokens.clear();
        });
        auth::remove(auth_file, registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_shareable_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<Client>();
    }

    #[test]
    fn challenge_parsing() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "reg.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="basic-realm""#);
        assert_eq!(s, "basic");
        assert_eq!(p["realm"], "basic-realm");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
