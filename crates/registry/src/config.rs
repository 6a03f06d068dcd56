//! `registries.conf` (containers-registries.conf(5), version 2, and the
//! deprecated version 1 tables) with `registries.conf.d` drop-ins:
//! unqualified-search registries, short-name mode and aliases, and
//! `[[registry]]` tables (prefix, location, insecure, blocked, mirrors).
//!
//! Which files are read ([`ConfigPaths::discover`]), as podman does:
//! `$CONTAINERS_REGISTRIES_CONF` if set, else
//! `$HOME/.config/containers/registries.conf` if it exists, else
//! `/etc/containers/registries.conf`; then the `*.conf` files of
//! `/etc/containers/registries.conf.d` and of
//! `$HOME/.config/containers/registries.conf.d`, each directory in lexical
//! order (only the user directory when the user file is the main file).
//! A later file overrides what it sets: the search list and the short-name
//! mode as a whole, `[[registry]]` tables by prefix, aliases one by one (an
//! empty alias value removes the alias).
//!
//! When none of the files exists, [`RegistriesConf::found`] is false and
//! short names keep resolving to Docker Hub (`docker.io`), as barge did
//! before it read registries.conf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{RegistryError, Result};
use crate::reference::{Reference, DOCKER_HUB};

/// The environment variable naming the main registries.conf.
pub const CONF_ENV: &str = "CONTAINERS_REGISTRIES_CONF";
/// The system-wide main file.
pub const SYSTEM_CONF: &str = "/etc/containers/registries.conf";
/// The system-wide drop-in directory.
pub const SYSTEM_CONF_DIR: &str = "/etc/containers/registries.conf.d";

/// The main file and the drop-in directories to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPaths {
    /// The main file (it need not exist).
    pub file: PathBuf,
    /// Drop-in directories, read in this order; each one's `*.conf` files in
    /// lexical order.
    pub dirs: Vec<PathBuf>,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn user_dir() -> Option<PathBuf> {
    env_path("HOME").map(|h| h.join(".config/containers/registries.conf.d"))
}

impl ConfigPaths {
    /// The files podman would read (see the module documentation).
    pub fn discover() -> Self {
        if let Some(p) = env_path(CONF_ENV) {
            return Self::for_file(p);
        }
        let user_file = env_path("HOME").map(|h| h.join(".config/containers/registries.conf"));
        if let Some(f) = user_file.filter(|f| f.exists()) {
            return Self {
                file: f,
                dirs: user_dir().into_iter().collect(),
            };
        }
        Self::for_file(SYSTEM_CONF)
    }

    /// An explicit main file (`$CONTAINERS_REGISTRIES_CONF`,
    /// `--registries-conf`) with the system and user drop-in directories.
    pub fn for_file(file: impl Into<PathBuf>) -> Self {
        let mut dirs = vec![PathBuf::from(SYSTEM_CONF_DIR)];
        dirs.extend(user_dir());
        Self {
            file: file.into(),
            dirs,
        }
    }

    /// Only this file, no drop-in directories.
    pub fn only(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            dirs: Vec::new(),
        }
    }
}

/// `short-name-mode`: what happens when a short name has several
/// unqualified-search candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShortNameMode {
    /// Several candidates need a choice; without a prompt that is an error.
    Enforcing,
    /// Several candidates are tried in order when nobody can be asked (the
    /// default). barge never prompts, so it always tries them in order.
    #[default]
    Permissive,
    /// Candidates are tried in order.
    Disabled,
}

/// `pull-from-mirror` of a mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullFromMirror {
    /// Tag and digest pulls (the default).
    #[default]
    All,
    /// Only pulls by digest.
    DigestOnly,
    /// Only pulls by tag.
    TagOnly,
}

/// One `[[registry.mirror]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `host[:port][/namespace…]` replacing the matched prefix.
    pub location: String,
    /// Plain HTTP and unverified TLS allowed.
    pub insecure: bool,
    /// Which pulls use it.
    pub pull_from_mirror: PullFromMirror,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// What image names it applies to: `host[:port][/namespace…][/repo[:tag|@digest]]`
    /// or `*.domain`.
    pub prefix: String,
    /// Where the prefix-rooted namespace really is (empty for a wildcard
    /// prefix: no rewrite).
    pub location: String,
    /// Plain HTTP and unverified TLS allowed for `location`.
    pub insecure: bool,
    /// Pulls (and pushes and logins) of matching names are refused.
    pub blocked: bool,
    /// Mirrors only for pulls by digest.
    pub mirror_by_digest_only: bool,
    /// Mirrors, tried in order before `location` (pulls only).
    pub mirrors: Vec<Mirror>,
    /// The file that defined it.
    pub origin: PathBuf,
}

/// A short-name alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The fully-qualified name (no tag or digest), normalised
    /// (`docker.io/library/alpine`).
    pub value: String,
    /// The file that defined it.
    pub origin: PathBuf,
}

/// The merged registries configuration.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConf {
    /// Whether any file was read. When not, short names resolve to
    /// `docker.io` (barge's behaviour without registries.conf).
    pub found: bool,
    /// The main file (read or not).
    pub main_file: PathBuf,
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
    /// `unqualified-search-registries`, in order.
    pub search: Vec<String>,
    /// The file that set the search list (the main file if none did).
    pub search_origin: Option<PathBuf>,
    /// `short-name-mode`.
    pub short_name_mode: ShortNameMode,
    /// `[[registry]]` tables.
    pub registries: Vec<RegistryEntry>,
    /// `[aliases]`, by short name.
    pub aliases: BTreeMap<String, Alias>,
}

// ------------------------------------------------------------- raw TOML

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    unqualified_search_registries: Option<Vec<String>>,
    short_name_mode: Option<String>,
    #[serde(default)]
    registry: Vec<RawRegistry>,
    aliases: Option<BTreeMap<String, String>>,
    /// Version 1: `[registries.search]`, `[registries.insecure]`,
    /// `[registries.block]`.
    registries: Option<RawV1>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: String,
}

#[derive(Deserialize, Default)]
struct RawV1 {
    search: Option<RawList>,
    insecure: Option<RawList>,
    block: Option<RawList>,
}

#[derive(Deserialize, Default)]
struct RawList {
    #[serde(default)]
    registries: Vec<String>,
}

/// One file, validated.
#[derive(Debug, Default)]
struct Parsed {
    search: Option<Vec<String>>,
    mode: Option<ShortNameMode>,
    registries: Vec<RegistryEntry>,
    aliases: BTreeMap<String, String>,
}

fn config_error(path: &Path, reason: impl Into<String>) -> RegistryError {
    RegistryError::Config {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// `line N, column M: message` for a TOML error.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> RegistryError {
    let reason = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message().trim())
        }
        None => e.message().trim().to_string(),
    };
    config_error(path, reason)
}

/// Checks a location (`host[:port][/path]`): no URL scheme, no trailing
/// slash.
fn location(path: &Path, what: &str, loc: &str) -> Result<String> {
    let loc = loc.trim().trim_end_matches('/');
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return Err(config_error(
            path,
            format!("invalid {what} {loc:?}: URI schemes are not supported"),
        ));
    }
    if loc.chars().any(char::is_whitespace) {
        return Err(config_error(path, format!("invalid {what} {loc:?}")));
    }
    Ok(loc.to_string())
}

/// Whether the first component of `name` is a registry host.
fn has_domain(name: &str) -> bool {
    match name.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// Whether `name` is a short name: no registry host (`busybox`,
/// `library/busybox:1`).
pub fn is_short_name(name: &str) -> bool {
    !has_domain(name)
}

/// Splits `name[:tag][@digest]` into the name and the `:tag`/`@digest`
/// suffix.
fn split_suffix(input: &str) -> (&str, &str) {
    let name_end = input.find('@').unwrap_or(input.len());
    let last_slash = input[..name_end].rfind('/').map_or(0, |i| i + 1);
    let end = input[last_slash..name_end]
        .find(':')
        .map_or(name_end, |i| last_slash + i);
    (&input[..end], &input[end..])
}

fn parse_file(path: &Path, text: &str, drop_in: bool) -> Result<Parsed> {
    let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
    let mut out = Parsed::default();
    let v2 = raw.unqualified_search_registries.is_some()
        || !raw.registry.is_empty()
        || raw.aliases.is_some()
        || raw.short_name_mode.is_some();
    if let Some(v1) = raw.registries {
        if drop_in {
            return Err(config_error(
                path,
                "drop-in files must use the version 2 format (found a [registries] table)",
            ));
        }
        if v2 {
            return Err(config_error(
                path,
                "mixing the version 1 ([registries.*]) and version 2 formats is not supported",
            ));
        }
        if let Some(s) = v1.search {
            out.search = Some(s.registries);
        }
        let mut table = |host: &str, insecure: bool, blocked: bool| -> Result<()> {
            let host = location(path, "registry", host)?;
            match out.registries.iter_mut().find(|r| r.prefix == host) {
                Some(r) => {
                    r.insecure |= insecure;
                    r.blocked |= blocked;
                }
                None => out.registries.push(RegistryEntry {
                    prefix: host.clone(),
                    location: host,
                    insecure,
                    blocked,
                    mirror_by_digest_only: false,
                    mirrors: Vec::new(),
                    origin: path.to_path_buf(),
                }),
            }
            Ok(())
        };
        for h in v1.insecure.map(|l| l.registries).unwrap_or_default() {
            table(&h, true, false)?;
        }
        for h in v1.block.map(|l| l.registries).unwrap_or_default() {
            table(&h, false, true)?;
        }
    }
    if let Some(search) = raw.unqualified_search_registries {
        out.search = Some(search);
    }
    for s in out.search.iter().flatten() {
        if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
            return Err(config_error(
                path,
                format!("invalid unqualified-search-registries entry {s:?}: want host[:port]"),
            ));
        }
    }
    out.mode = match raw.short_name_mode.as_deref() {
        None | Some("") => None,
        Some("enforcing") => Some(ShortNameMode::Enforcing),
        Some("permissive") => Some(ShortNameMode::Permissive),
        Some("disabled") => Some(ShortNameMode::Disabled),
        Some(m) => {
            return Err(config_error(
                path,
                format!("invalid short-name-mode {m:?}: want enforcing, permissive or disabled"),
            ))
        }
    };
    for r in raw.registry {
        out.registries.push(registry_entry(path, r)?);
    }
    for (i, r) in out.registries.iter().enumerate() {
        if out.registries[..i].iter().any(|o| o.prefix == r.prefix) {
            return Err(config_error(
                path,
                format!("[[registry]] prefix {:?} is defined twice", r.prefix),
            ));
        }
    }
    for (name, value) in raw.aliases.unwrap_or_default() {
        out.aliases
            .insert(name.clone(), alias(path, &name, &value)?);
    }
    Ok(out)
}

fn registry_entry(path: &Path, r: RawRegistry) -> Result<RegistryEntry> {
    let loc = location(path, "location", &r.location)?;
    let mut prefix = location(path, "prefix", &r.prefix)?;
    if prefix.is_empty() {
        prefix.clone_from(&loc);
    }
    if let Some(domain) = prefix.strip_prefix("*.") {
        if domain.is_empty() || domain.contains(['/', '*', ':', '@']) {
            return Err(config_error(
                path,
                format!("invalid prefix {prefix:?}: a wildcard prefix must be *.domain"),
            ));
        }
        if !loc.is_empty() {
            return Err(config_error(
                path,
                format!("[[registry]] {prefix:?}: a wildcard prefix takes no location"),
            ));
        }
    } else if loc.is_empty() {
        return Err(config_error(
            path,
            format!(
                "[[registry]] {prefix:?}: location is unset and prefix is not in the format *.example.com"
            ),
        ));
    }
    if prefix.is_empty() {
        return Err(config_error(
            path,
            "[[registry]] table without prefix or location",
        ));
    }
    if prefix.contains('*') && !prefix.starts_with("*.") {
        return Err(config_error(
            path,
            format!("invalid prefix {prefix:?}: a wildcard is only allowed as a leading *."),
        ));
    }
    let mut mirrors = Vec::new();
    for m in r.mirror {
        let ml = location(path, "mirror location", &m.location)?;
        if ml.is_empty() {
            return Err(config_error(
                path,
                format!("[[registry]] {prefix:?}: a mirror without location"),
            ));
        }
        let pull_from_mirror = match m.pull_from_mirror.as_str() {
            "" | "all" => PullFromMirror::All,
            "digest-only" => PullFromMirror::DigestOnly,
            "tag-only" => PullFromMirror::TagOnly,
            other => {
                return Err(config_error(
                    path,
                    format!(
                        "[[registry]] {prefix:?}: invalid pull-from-mirror {other:?}: want all, digest-only or tag-only"
                    ),
                ))
            }
        };
        if r.mirror_by_digest_only && !m.pull_from_mirror.is_empty() {
            return Err(config_error(
                path,
                format!(
                    "[[registry]] {prefix:?}: pull-from-mirror is not allowed together with mirror-by-digest-only"
                ),
            ));
        }
        mirrors.push(Mirror {
            location: ml,
            insecure: m.insecure,
            pull_from_mirror,
        });
    }
    Ok(RegistryEntry {
        prefix,
        location: loc,
        insecure: r.insecure,
        blocked: r.blocked,
        mirror_by_digest_only: r.mirror_by_digest_only,
        mirrors,
        origin: path.to_path_buf(),
    })
}

/// Validates an alias; returns the normalised value ("" erases).
fn alias(path: &Path, name: &str, value: &str) -> Result<String> {
    let bad = |why: &str| config_error(path, format!("alias {name:?} = {value:?}: {why}"));
    if has_domain(name) {
        return Err(bad("the name must be a short name (no registry)"));
    }
    if !split_suffix(name).1.is_empty() {
        return Err(bad("the name must not have a tag or digest"));
    }
    if Reference::parse(name).is_err() {
        return Err(bad("invalid name"));
    }
    if value.is_empty() {
        return Ok(String::new());
    }
    if !has_domain(value) {
        return Err(bad(
            "the value must be fully qualified (registry/repository)",
        ));
    }
    if !split_suffix(value).1.is_empty() {
        return Err(bad("the value must not have a tag or digest"));
    }
    let r = Reference::parse(value).map_err(|e| bad(&e.to_string()))?;
    Ok(r.name())
}

// ------------------------------------------------------------- loading

fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(config_error(dir, e.to_string())),
    };
    let mut files = Vec::new();
    for e in entries {
        let e = e.map_err(|e| config_error(dir, e.to_string()))?;
        let p = e.path();
        if p.extension().is_some_and(|x| x == "conf") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(config_error(path, e.to_string())),
    }
}

impl RegistriesConf {
    /// Reads the files podman would read ([`ConfigPaths::discover`]).
    pub fn load_default() -> Result<Self> {
        Self::load(&ConfigPaths::discover())
    }

    /// Reads and merges the main file and the drop-ins. Missing files are
    /// skipped; an unreadable or invalid one is an error naming it (and
    /// the line, for TOML syntax errors).
    pub fn load(paths: &ConfigPaths) -> Result<Self> {
        let mut conf = Self {
            main_file: paths.file.clone(),
            ..Self::default()
        };
        if let Some(text) = read(&paths.file)? {
            conf.merge(parse_file(&paths.file, &text, false)?, &paths.file);
        }
        for dir in &paths.dirs {
            for f in drop_ins(dir)? {
                if let Some(text) = read(&f)? {
                    conf.merge(parse_file(&f, &text, true)?, &f);
                }
            }
        }
        Ok(conf)
    }

    /// Parses one file's text as the main file (for tests and callers that
    /// hold the text).
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut conf = Self {
            main_file: path.to_path_buf(),
            ..Self::default()
        };
        conf.merge(parse_file(path, text, false)?, path);
        Ok(conf)
    }

    fn merge(&mut self, p: Parsed, origin: &Path) {
        self.found = true;
        self.files.push(origin.to_path_buf());
        if let Some(s) = p.search {
            self.search = s;
            self.search_origin = Some(origin.to_path_buf());
        }
        if let Some(m) = p.mode {
            self.short_name_mode = m;
        }
        for r in p.registries {
            match self.registries.iter_mut().find(|o| o.prefix == r.prefix) {
                Some(o) => *o = r,
                None => self.registries.push(r),
            }
        }
        for (name, value) in p.aliases {
            if value.is_empty() {
                self.aliases.remove(&name);
            } else {
                self.aliases.insert(
                    name,
                    Alias {
                        value,
                        origin: origin.to_path_buf(),
                    },
                );
            }
        }
    }

    fn search_origin(&self) -> String {
        self.search_origin
            .as_ref()
            .unwrap_or(&self.main_file)
            .display()
            .to_string()
    }

    /// The `[[registry]]` table for an image name (`registry/repo[:tag][@digest]`
    /// or a bare host): the longest matching prefix; on a tie a plain prefix
    /// wins over a wildcard.
    pub fn find_registry(&self, name: &str) -> Option<&RegistryEntry> {
        let mut best: Option<(usize, bool, &RegistryEntry)> = None;
        for r in &self.registries {
            let Some(len) = match_prefix(name, &r.prefix) else {
                continue;
            };
            let plain = !r.prefix.starts_with("*.");
            let better = match best {
                None => true,
                Some((l, p, _)) => len > l || (len == l && plain && !p),
            };
            if better {
                best = Some((len, plain, r));
            }
        }
        best.map(|(_, _, r)| r)
    }

    /// Refuses a blocked reference; otherwise says whether its registry is
    /// insecure (for pushes and logins, which are not redirected).
    pub fn access(&self, name: &str) -> Result<bool> {
        match self.find_registry(name) {
            Some(r) if r.blocked => Err(RegistryError::Blocked {
                prefix: r.prefix.clone(),
                origin: r.origin.display().to_string(),
                reference: name.to_string(),
            }),
            Some(r) => Ok(r.insecure),
            None => Ok(false),
        }
    }

    /// Where a pull of a fully-qualified reference goes: the usable mirrors
    /// in order, then the (possibly rewritten) location. Blocked references
    /// are refused.
    pub fn pull_endpoints(&self, r: &Reference) -> Result<Vec<Endpoint>> {
        let name = r.to_string();
        let Some(entry) = self.find_registry(&name) else {
            return Ok(vec![Endpoint {
                reference: r.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if entry.blocked {
            return Err(RegistryError::Blocked {
                prefix: entry.prefix.clone(),
                origin: entry.origin.display().to_string(),
                reference: name,
            });
        }
        let matched = match_prefix(&name, &entry.prefix).unwrap_or(0);
        let rest = &name[matched..];
        let by_digest = r.digest.is_some();
        let mut out = Vec::new();
        for m in &entry.mirrors {
            let usable = if entry.mirror_by_digest_only {
                by_digest
            } else {
                match m.pull_from_mirror {
                    PullFromMirror::All => true,
                    PullFromMirror::DigestOnly => by_digest,
                    PullFromMirror::TagOnly => !by_digest,
                }
            };
            if usable {
                out.push(Endpoint {
                    reference: Reference::parse(&format!("{}{rest}", m.location))?,
                    insecure: m.insecure,
                    mirror: true,
                });
            }
        }
        let primary = if entry.location.is_empty() {
            r.clone()
        } else {
            Reference::parse(&format!("{}{rest}", entry.location))?
        };
        out.push(Endpoint {
            reference: primary,
            insecure: entry.insecure,
            mirror: false,
        });
        Ok(out)
    }

    /// The fully-qualified references a pull of `input` tries, in order.
    ///
    /// A fully-qualified input is itself. A short name uses its alias if
    /// there is one, else the unqualified-search registries (an error when
    /// there are none; with `short-name-mode = "enforcing"` and several of
    /// them, an error, as barge cannot prompt). Without any registries.conf
    /// a short name resolves to `docker.io`.
    pub fn resolve_pull(&self, input: &str, interactive: bool) -> Result<Resolution> {
        // Validates the syntax (and gives the usual message for bad names).
        let normalised = Reference::parse(input)?;
        if !is_short_name(input) || !self.found {
            return Ok(Resolution {
                candidates: vec![normalised],
                description: None,
            });
        }
        let (short, suffix) = split_suffix(input);
        if let Some(a) = self.aliases.get(short) {
            return Ok(Resolution {
                candidates: vec![Reference::parse(&format!("{}{suffix}", a.value))?],
                description: Some(format!(
                    "Resolved {short:?} as an alias ({})",
                    a.origin.display()
                )),
            });
        }
        if self.search.is_empty() {
            return Err(RegistryError::ShortName(format!(
                "short-name {input:?} did not resolve to an alias and no unqualified-search registries are defined in {:?}",
                self.search_origin()
            )));
        }
        let candidates = self
            .search
            .iter()
            .map(|reg| Reference::parse(&format!("{reg}/{input}")))
            .collect::<Result<Vec<_>>>()?;
        if candidates.len() > 1 && self.short_name_mode == ShortNameMode::Enforcing {
            let listed = candidates
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(RegistryError::ShortName(if interactive {
                format!(
                    "short-name resolution enforced for {input:?} and barge does not prompt: use a fully-qualified name (one of {listed}) or define an alias in {}",
                    self.search_origin()
                )
            } else {
                format!(
                    "short-name resolution enforced but cannot prompt without a TTY (short name {input:?}, candidates {listed})"
                )
            }));
        }
        Ok(Resolution {
            candidates,
            description: Some(format!(
                "Resolving {short:?} using unqualified-search registries ({})",
                self.search_origin()
            )),
        })
    }

    /// The names a short name may have in local storage, in order: its
    /// alias, `localhost/<name>`, then `<search registry>/<name>` (or
    /// `docker.io/<name>` without any registries.conf). A fully-qualified
    /// name is only itself.
    pub fn local_candidates(&self, input: &str) -> Vec<Reference> {
        if !is_short_name(input) {
            return Reference::parse(input).into_iter().collect();
        }
        let (short, suffix) = split_suffix(input);
        let mut out = Vec::new();
        if let Some(a) = self.aliases.get(short) {
            out.extend(Reference::parse(&format!("{}{suffix}", a.value)));
        }
        let docker = [DOCKER_HUB.to_string()];
        let search = if self.found {
            &self.search[..]
        } else {
            &docker[..]
        };
        for reg in std::iter::once("localhost").chain(search.iter().map(String::as_str)) {
            if let Ok(r) = Reference::parse(&format!("{reg}/{input}")) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out
    }
}

/// One place a pull may fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The physical reference.
    pub reference: Reference,
    /// Plain HTTP and unverified TLS allowed.
    pub insecure: bool,
    /// Whether it is a mirror (else the primary location).
    pub mirror: bool,
}

/// The result of [`RegistriesConf::resolve_pull`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Fully-qualified references to try, in order.
    pub candidates: Vec<Reference>,
    /// What podman prints about the resolution (`Resolved "x" as an alias
    /// (file)`, `Resolving "x" using unqualified-search registries (file)`),
    /// none for a fully-qualified name.
    pub description: Option<String>,
}

/// How much of `name` a `[[registry]]` prefix matches, if it matches: the
/// prefix followed by the end, `/`, `@` or (after a repository) `:`. A
/// `*.domain` prefix matches any subdomain of the host.
pub fn match_prefix(name: &str, prefix: &str) -> Option<usize> {
    if prefix.is_empty() {
        return None;
    }
    if let Some(domain) = prefix.strip_prefix('*') {
        // domain = ".example.com"
        let host_end = name.find(['/', '@']).unwrap_or(name.len());
        let host = &name[..host_end];
        let host_only = host.split(':').next().unwrap_or(host);
        if host_only.len() > domain.len() && host_only.ends_with(domain) {
            return Some(host_only.len());
        }
        return None;
    }
    if !name.starts_with(prefix) {
        return None;
    }
    match name.as_bytes().get(prefix.len()) {
        None | Some(b'/' | b'@') => Some(prefix.len()),
        Some(b':') if prefix.contains('/') => Some(prefix.len()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> RegistriesConf {
        RegistriesConf::parse(Path::new("/test/registries.conf"), text).expect("parse")
    }

    fn err(text: &str) -> String {
        RegistriesConf::parse(Path::new("/test/registries.conf"), text)
            .expect_err("should fail")
            .to_string()
    }

    fn refs(v: &[Reference]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn parses_v2() {
        let c = conf(
            r#"
unqualified-search-registries = ["quay.io", "docker.io"]
short-name-mode = "enforcing"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/bar/"
insecure = true

[[registry.mirror]]
location = "mirror-0.local/m"

[[registry.mirror]]
location = "mirror-1.local"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
location = "blocked.io"
blocked = true

[[registry]]
prefix = "*.wild.example"

[aliases]
"bb" = "docker.io/busybox"
"#,
        );
        assert!(c.found);
        assert_eq!(c.search, ["quay.io", "docker.io"]);
        assert_eq!(c.short_name_mode, ShortNameMode::Enforcing);
        assert_eq!(c.registries.len(), 3);
        let r = &c.registries[0];
        assert_eq!(r.location, "internal.example.net/bar");
        assert!(r.insecure);
        assert_eq!(r.mirrors.len(), 2);
        assert_eq!(r.mirrors[1].pull_from_mirror, PullFromMirror::DigestOnly);
        assert_eq!(c.registries[1].prefix, "blocked.io");
        assert_eq!(c.registries[2].location, "");
        assert_eq!(c.aliases["bb"].value, "docker.io/library/busybox");
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e =
            err("unqualified-search-registries = [\"a.io\"]\n\n[[registry]\nlocation = \"x\"\n");
        assert!(e.contains("/test/registries.conf"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let e = err("short-name-mode = \"enforcing\"\ninsecure-thing = \n");
        assert!(e.contains("line 2"), "{e}");
        // A type error points at the value.
        let e = err("[[registry]]\nlocation = \"a.io\"\ninsecure = \"yes\"\n");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn semantic_errors() {
        for (text, want) in [
            ("short-name-mode = \"strict\"", "invalid short-name-mode"),
            ("[[registry]]\nprefix = \"a.io\"\n", "location is unset"),
            ("[[registry]]\nlocation = \"https://a.io\"\n", "URI schemes"),
            (
                "[[registry]]\nlocation = \"a.io\"\n[[registry]]\nlocation = \"a.io\"\n",
                "defined twice",
            ),
            (
                "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"some\"\n",
                "invalid pull-from-mirror",
            ),
            (
                "[[registry]]\nlocation = \"a.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"all\"\n",
                "mirror-by-digest-only",
            ),
            ("[[registry]]\nprefix = \"*.a.io/x\"\n", "wildcard"),
            ("[[registry]]\nprefix = \"a.*.io\"\nlocation = \"b.io\"\n", "wildcard"),
            ("unqualified-search-registries = [\"a.io/ns\"]", "host[:port]"),
            ("[aliases]\n\"quay.io/x\" = \"quay.io/x\"\n", "short name"),
            ("[aliases]\n\"x:1\" = \"quay.io/x\"\n", "tag or digest"),
            ("[aliases]\n\"x\" = \"x\"\n", "fully qualified"),
            ("[aliases]\n\"x\" = \"quay.io/x:1\"\n", "tag or digest"),
            (
                "unqualified-search-registries = []\n[registries.search]\nregistries = [\"a.io\"]\n",
                "mixing",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
            assert!(e.contains("/test/registries.conf"), "{e}");
        }
    }

    #[test]
    fn parses_v1() {
        let c = conf(
            "[registries.search]\nregistries = ['r1.io', 'r2.io']\n[registries.insecure]\nregistries = ['r3.io']\n[registries.block]\nregistries = ['bad.io']\n",
        );
        assert_eq!(c.search, ["r1.io", "r2.io"]);
        assert!(c.find_registry("r3.io/a/b:1").expect("r3").insecure);
        assert!(c.access("bad.io/x").is_err());
        assert!(!c.access("r1.io/x").expect("ok"));
    }

    #[test]
    fn prefix_matching() {
        assert_eq!(
            match_prefix("example.com/foo/bar:1", "example.com"),
            Some(11)
        );
        assert_eq!(
            match_prefix("example.com/foo/bar:1", "example.com/foo"),
            Some(15)
        );
        assert_eq!(
            match_prefix("example.com/foobar:1", "example.com/foo"),
            None
        );
        assert_eq!(
            match_prefix("example.com/foo:1", "example.com/foo"),
            Some(15)
        );
        assert_eq!(match_prefix("example.com:5000/foo", "example.com"), None);
        assert_eq!(match_prefix("example.com.evil/x", "example.com"), None);
        assert_eq!(match_prefix("a.b.example.com/x", "*.example.com"), Some(15));
        assert_eq!(
            match_prefix("a.example.com:5000/x", "*.example.com"),
            Some(13)
        );
        assert_eq!(match_prefix("example.com/x", "*.example.com"), None);
        assert_eq!(match_prefix("aexample.com/x", "*.example.com"), None);
        assert_eq!(match_prefix("q.io/a.example.com", "*.example.com"), None);

        let c = conf(
            r#"
[[registry]]
location = "example.com"
insecure = true
[[registry]]
prefix = "example.com/foo"
location = "other.io/bar"
[[registry]]
prefix = "*.example.com"
blocked = true
[[registry]]
prefix = "x.example.com"
location = "x.example.com"
"#,
        );
        assert_eq!(
            c.find_registry("example.com/foo/img:1")
                .map(|r| r.prefix.as_str()),
            Some("example.com/foo")
        );
        assert_eq!(
            c.find_registry("example.com/fooo:1")
                .map(|r| r.prefix.as_str()),
            Some("example.com")
        );
        // Plain beats wildcard on a tie.
        assert_eq!(
            c.find_registry("x.example.com/i")
                .map(|r| r.prefix.as_str()),
            Some("x.example.com")
        );
        assert!(c.find_registry("other.io/i").is_none());
        let e = c.access("y.example.com/i:1").expect_err("blocked");
        assert!(e.to_string().contains("*.example.com"), "{e}");
        assert!(e.to_string().contains("/test/registries.conf"), "{e}");
        assert!(c.access("example.com/i").expect("ok"));
    }

    #[test]
    fn endpoints_with_mirrors_and_rewrites() {
        let c = conf(
            r#"
[[registry]]
prefix = "example.com/foo"
location = "internal.net/bar"
[[registry.mirror]]
location = "m0.local/mirror-for-foo"
[[registry.mirror]]
location = "m1.local/mirrors/foo"
insecure = true
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "m2.local"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "docker.io/library"
location = "hub-cache.local:5000/lib"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m3.local"
"#,
        );
        let r = Reference::parse("example.com/foo/image:latest").expect("ref");
        let e = c.pull_endpoints(&r).expect("endpoints");
        assert_eq!(
            e.iter()
                .map(|e| e.reference.to_string())
                .collect::<Vec<_>>(),
            [
                "m0.local/mirror-for-foo/image:latest",
                "m1.local/mirrors/foo/image:latest",
                "internal.net/bar/image:latest"
            ]
        );
        assert_eq!(
            e.iter().map(|e| (e.insecure, e.mirror)).collect::<Vec<_>>(),
            [(false, true), (true, true), (false, false)]
        );
        let d = crate::Digest::of(b"x");
        let r = Reference::parse(&format!("example.com/foo/image@{d}")).expect("ref");
        let e = c.pull_endpoints(&r).expect("endpoints");
        assert_eq!(
            e.iter()
                .map(|e| e.reference.to_string())
                .collect::<Vec<_>>(),
            [
                format!("m0.local/mirror-for-foo/image@{d}"),
                format!("m2.local/image@{d}"),
                format!("internal.net/bar/image@{d}"),
            ]
        );
        // mirror-by-digest-only: a tag pull goes to the location only.
        let r = Reference::parse("busybox:1").expect("ref");
        let e = c.pull_endpoints(&r).expect("endpoints");
        assert_eq!(
            refs(&[e[0].reference.clone()]),
            ["hub-cache.local:5000/lib/busybox:1"]
        );
        assert_eq!(e.len(), 1);
        let r = Reference::parse(&format!("busybox@{d}")).expect("ref");
        assert_eq!(c.pull_endpoints(&r).expect("endpoints").len(), 2);
        // Unmatched: as is.
        let r = Reference::parse("quay.io/a/b").expect("ref");
        assert_eq!(
            c.pull_endpoints(&r).expect("endpoints"),
            [Endpoint {
                reference: r,
                insecure: false,
                mirror: false
            }]
        );
    }

    #[test]
    fn short_names() {
        let c = conf(
            "unqualified-search-registries = [\"reg1.local:5000\", \"docker.io\"]\n[aliases]\n\"bb\" = \"quay.io/x/busybox\"\n",
        );
        let r = c.resolve_pull("busybox", false).expect("resolve");
        assert_eq!(
            refs(&r.candidates),
            [
                "reg1.local:5000/busybox:latest",
                "docker.io/library/busybox:latest"
            ]
        );
        assert_eq!(
            r.description.as_deref(),
            Some(
                "Resolving \"busybox\" using unqualified-search registries (/test/registries.conf)"
            )
        );
        let r = c.resolve_pull("library/busybox:1", false).expect("resolve");
        assert_eq!(
            refs(&r.candidates),
            [
                "reg1.local:5000/library/busybox:1",
                "docker.io/library/busybox:1"
            ]
        );
        let r = c.resolve_pull("bb:2", false).expect("alias");
        assert_eq!(refs(&r.candidates), ["quay.io/x/busybox:2"]);
        assert!(r
            .description
            .as_deref()
            .is_some_and(|d| d.starts_with("Resolved \"bb\" as an alias")));
        let r = c.resolve_pull("quay.io/a/b", false).expect("qualified");
        assert_eq!(refs(&r.candidates), ["quay.io/a/b:latest"]);
        assert_eq!(r.description, None);
        assert!(c.resolve_pull("UPPER", false).is_err());
        assert_eq!(
            refs(&c.local_candidates("bb")),
            [
                "quay.io/x/busybox:latest",
                "localhost/bb:latest",
                "reg1.local:5000/bb:latest",
                "docker.io/library/bb:latest"
            ]
        );

        // Enforcing with several candidates cannot prompt.
        let c = conf(
            "short-name-mode = \"enforcing\"\nunqualified-search-registries = [\"a.io\", \"b.io\"]\n",
        );
        let e = c
            .resolve_pull("x", false)
            .expect_err("enforcing")
            .to_string();
        assert!(e.contains("cannot prompt without a TTY"), "{e}");
        assert!(e.contains("a.io/x:latest, b.io/x:latest"), "{e}");
        let e = c
            .resolve_pull("x", true)
            .expect_err("enforcing")
            .to_string();
        assert!(e.contains("does not prompt"), "{e}");
        // One candidate: no ambiguity.
        let c =
            conf("short-name-mode = \"enforcing\"\nunqualified-search-registries = [\"a.io\"]\n");
        assert_eq!(
            refs(&c.resolve_pull("x", false).expect("one").candidates),
            ["a.io/x:latest"]
        );

        // No search registries.
        let c = conf("");
        let e = c.resolve_pull("x:1", false).expect_err("none").to_string();
        assert_eq!(
            e,
            "short-name \"x:1\" did not resolve to an alias and no unqualified-search registries are defined in \"/test/registries.conf\""
        );
        // No registries.conf at all: docker.io as before.
        let c = RegistriesConf::default();
        let r = c.resolve_pull("x", false).expect("docker hub");
        assert_eq!(refs(&r.candidates), ["docker.io/library/x:latest"]);
        assert_eq!(
            refs(&c.local_candidates("x")),
            ["localhost/x:latest", "docker.io/library/x:latest"]
        );
    }

    #[test]
    fn drop_ins_merge_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("registries.conf");
        std::fs::write(
            &main,
            "unqualified-search-registries = [\"a.io\"]\n[[registry]]\nlocation = \"x.io\"\ninsecure = true\n[[registry]]\nlocation = \"keep.io\"\n[aliases]\n\"one\" = \"a.io/one\"\n\"two\" = \"a.io/two\"\n",
        )
        .expect("write");
        let d = dir.path().join("registries.conf.d");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::write(
            d.join("20-b.conf"),
            "unqualified-search-registries = [\"c.io\"]\n[aliases]\n\"two\" = \"\"\n",
        )
        .expect("write");
        std::fs::write(
            d.join("10-a.conf"),
            "unqualified-search-registries = [\"b.io\"]\nshort-name-mode = \"disabled\"\n[[registry]]\nlocation = \"x.io\"\nblocked = true\n[aliases]\n\"one\" = \"b.io/one\"\n",
        )
        .expect("write");
        std::fs::write(d.join("ignored.txt"), "not toml [").expect("write");
        let c = RegistriesConf::load(&ConfigPaths {
            file: main.clone(),
            dirs: vec![d.clone(), dir.path().join("missing")],
        })
        .expect("load");
        assert_eq!(
            c.files,
            [main.clone(), d.join("10-a.conf"), d.join("20-b.conf")]
        );
        assert_eq!(c.search, ["c.io"]);
        assert_eq!(
            c.search_origin.as_deref(),
            Some(d.join("20-b.conf").as_path())
        );
        assert_eq!(c.short_name_mode, ShortNameMode::Disabled);
        let x = c.find_registry("x.io/i").expect("x.io");
        assert!(x.blocked && !x.insecure, "replaced by prefix: {x:?}");
        assert!(c.find_registry("keep.io/i").is_some());
        assert_eq!(c.aliases["one"].value, "b.io/one");
        assert!(!c.aliases.contains_key("two"));

        // A bad drop-in is an error naming it.
        std::fs::write(d.join("30-bad.conf"), "[[registry]\n").expect("write");
        let e = RegistriesConf::load(&ConfigPaths {
            file: main.clone(),
            dirs: vec![d.clone()],
        })
        .expect_err("bad")
        .to_string();
        assert!(e.contains("30-bad.conf") && e.contains("line 1"), "{e}");
        std::fs::write(
            d.join("30-bad.conf"),
            "[registries.search]\nregistries = []\n",
        )
        .expect("write");
        let e = RegistriesConf::load(&ConfigPaths {
            file: main,
            dirs: vec![d],
        })
        .expect_err("v1 drop-in")
        .to_string();
        assert!(e.contains("version 2"), "{e}");

        // Nothing there: not found.
        let c =
            RegistriesConf::load(&ConfigPaths::only(dir.path().join("none.conf"))).expect("load");
        assert!(!c.found);
    }
}
