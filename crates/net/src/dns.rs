//! Name resolution for containers without a DNS daemon: every container on
//! a network gets an `/etc/hosts` (a bind-mounted file the engine owns)
//! listing its peers, rewritten in place (same inode, so the bind mount
//! sees it) when members join or leave; and a `resolv.conf` derived from
//! the host's.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use crate::{NetError, Result};

/// One hosts-file line: an address and its names (first is canonical).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub ip: IpAddr,
    pub names: Vec<String>,
}

/// The lines every container's hosts file starts with when no base is given.
pub const DEFAULT_HOSTS_BASE: &str =
    "127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// Renders a hosts file: `base` (the image's or host's hosts file, or
/// [`DEFAULT_HOSTS_BASE`] when `None`), then one line per entry. Names with
/// whitespace or `#` are dropped, entries without names are skipped.
pub fn render_hosts(base: Option<&str>, entries: &[HostEntry]) -> String {
    let mut out = String::from(base.unwrap_or(DEFAULT_HOSTS_BASE));
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for e in entries {
        let names: Vec<&str> = e
            .names
            .iter()
            .map(String::as_str)
            .filter(|n| !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || c == '#'))
            .collect();
        if names.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}\t{}", e.ip, names.join(" "));
    }
    out
}

/// Replaces a file's content without replacing the file (bind mounts of it
/// keep seeing the new content): under an exclusive `flock`, write from
/// offset 0 then truncate to the new length. Readers never see an empty
/// file, though one racing a rewrite may see a mix for an instant.
pub fn write_in_place(path: &Path, content: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| NetError::file(path, "open for writing", e))?;
    flock(&f, FlockOperation::LockExclusive).map_err(|e| NetError::file(path, "lock", e.into()))?;
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.write_all(content.as_bytes()))
        .and_then(|()| f.set_len(content.len() as u64))
        .map_err(|e| NetError::file(path, "rewrite in place", e))
}

/// [`render_hosts`] then [`write_in_place`].
pub fn update_hosts_file_in_place(
    path: &Path,
    base: Option<&str>,
    entries: &[HostEntry],
) -> Result<()> {
    write_in_place(path, &render_hosts(base, entries))
}

/// What the engine asks for a container's `resolv.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvOptions {
    /// `--dns`: replaces the host's nameservers when not empty.
    pub servers: Vec<IpAddr>,
    /// `--dns-search`: replaces the host's search domains when not empty.
    pub search: Vec<String>,
    /// `--dns-option`: replaces the host's options when not empty.
    pub options: Vec<String>,
}

/// The host's resolver configuration as a container should see it:
/// `/etc/resolv.conf`, or systemd-resolved's upstream list
/// (`/run/systemd/resolve/resolv.conf`) when the former names only
/// loopback servers (a local stub the container cannot reach).
pub fn host_resolv_conf() -> String {
    let main = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if !nameservers(&main).is_empty() || !has_loopback_server(&main) {
        return main;
    }
    match std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
        Ok(upstream) if !nameservers(&upstream).is_empty() => upstream,
        _ => main,
    }
}

fn parse_server(line: &str) -> Option<IpAddr> {
    let mut words = line.split_whitespace();
    if words.next() != Some("nameserver") {
        return None;
    }
    let w = words.next()?;
    // Drop an IPv6 zone (fe80::1%eth0): meaningless in the container.
    w.split('%').next()?.parse().ok()
}

fn has_loopback_server(conf: &str) -> bool {
    conf.lines()
        .filter_map(parse_server)
        .any(|ip| ip.is_loopback())
}

/// The non-loopback nameservers of a resolv.conf.
pub fn nameservers(conf: &str) -> Vec<IpAddr> {
    conf.lines()
        .filter_map(parse_server)
        .filter(|ip| !ip.is_loopback())
        .collect()
}

/// Renders a container's resolv.conf from the host's (`host`, e.g.
/// [`host_resolv_conf`]) and the overrides: nameservers are the overrides
/// or the host's non-loopback ones (none at all if the host has only
/// loopback servers: the container then resolves only via its hosts file);
/// `search`/`domain` and `options` lines are kept unless overridden.
pub fn render_resolv_conf(host: &str, opts: &ResolvOptions) -> String {
    let servers = if opts.servers.is_empty() {
        nameservers(host)
    } else {
        opts.servers.clone()
    };
    let mut search: Vec<String> = opts.search.clone();
    let mut options: Vec<String> = opts.options.clone();
    if search.is_empty() {
        for line in host.lines() {
            let mut w = line.split_whitespace();
            if matches!(w.next(), Some("search" | "domain")) {
                search = w.map(str::to_string).collect();
            }
        }
    }
    if options.is_empty() {
        for line in host.lines() {
            let mut w = line.split_whitespace();
            if w.next() == Some("options") {
                options.extend(w.map(str::to_string));
            }
        }
    }
    let mut out = String::new();
    if !search.is_empty() && search != ["."] {
        let _ = writeln!(out, "search {}", search.join(" "));
    }
    for s in servers {
        let _ = writeln!(out, "nameserver {s}");
    }
    if !options.is_empty() {
        let _ = writeln!(out, "options {}", options.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn entry(ip: &str, names: &[&str]) -> HostEntry {
        HostEntry {
            ip: ip.parse().expect("ip"),
            names: names.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    #[test]
    fn renders_hosts() {
        let h = render_hosts(
            None,
            &[
                entry("10.90.0.2", &["web", "abc123"]),
                entry("10.90.0.3", &["bad name", "db"]),
                entry("10.90.0.4", &[]),
            ],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost"));
        assert!(h.contains("10.90.0.2\tweb abc123\n"));
        assert!(h.contains("10.90.0.3\tdb\n"));
        assert!(!h.contains("10.90.0.4"));
        assert_eq!(render_hosts(Some("1.1.1.1 x"), &[]), "1.1.1.1 x\n");
    }

    #[test]
    fn rewrites_in_place_keeping_the_inode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("hosts");
        update_hosts_file_in_place(&p, None, &[entry("10.0.0.2", &["a-very-long-name"])])
            .expect("first");
        let ino = std::fs::metadata(&p).expect("meta").ino();
        update_hosts_file_in_place(&p, Some(""), &[entry("10.0.0.3", &["b"])]).expect("second");
        assert_eq!(std::fs::metadata(&p).expect("meta").ino(), ino);
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "10.0.0.3\tb\n");
    }

    #[test]
    fn resolv_conf_drops_loopback_and_honours_overrides() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nsearch example.com lan\noptions edns0 trust-ad\n";
        let r = render_resolv_conf(host, &ResolvOptions::default());
        assert_eq!(
            r,
            "search example.com lan\nnameserver 192.0.2.1\nnameserver fe80::1\noptions edns0 trust-ad\n"
        );
        let r = render_resolv_conf(
            host,
            &ResolvOptions {
                servers: vec!["198.51.100.7".parse().expect("ip")],
                search: vec!["corp".into()],
                options: vec!["ndots:2".into()],
            },
        );
        assert_eq!(r, "search corp\nnameserver 198.51.100.7\noptions ndots:2\n");
        assert_eq!(
            render_resolv_conf("nameserver 127.0.0.1\n", &ResolvOptions::default()),
            ""
        );
    }
}
