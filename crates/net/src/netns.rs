use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::mount::{mount_bind, unmount, UnmountFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::netlink::{self, Socket};
use crate::{NetError, Result};

/// A persistent network namespace kept alive by a bind mount of its
/// `nsfs` file on [`Netns::path`] (as `ip netns add` does). Containers join
/// it through the OCI config's `linux.namespaces[type=network].path`.
///
/// Dropping a `Netns` does not remove the namespace; call [`Netns::remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    path: PathBuf,
}

impl Netns {
    /// Creates a new network namespace bind-mounted at `path` (the parent
    /// directory is created if needed; `path` itself must not exist), with
    /// `lo` up and `net.ipv4.conf.default.arp_notify=1` (the container
    /// interface announces itself when it comes up; best effort). A short-lived thread enters the new namespace; the calling
    /// thread never changes namespace.
    pub fn create(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| NetError::netns(path, "create parent directory", e))?;
        }
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| NetError::netns(path, "create mount point", e))?;
        let made = std::thread::scope(|s| {
            s.spawn(|| -> Result<()> {
                barge_sys::unshare_namespaces(libc::CLONE_NEWNET as u32)
                    .map_err(|e| NetError::netns(path, "unshare(CLONE_NEWNET)", e))?;
                mount_bind("/proc/thread-self/ns/net", path)
                    .map_err(|e| NetError::netns(path, "bind mount", io::Error::from(e)))?;
                // Interfaces created in the namespace later (eth0) announce
                // their address with a gratuitous ARP when brought up, so
                // neighbours that cached the MAC of an earlier holder of
                // the same IP may update at once. Best effort: that ARP is
                // lost when it leaves before the carrier is active.
                crate::sysctl::ensure("/proc/sys/net/ipv4/conf/default/arp_notify", "1")?;
                let mut sock =
                    Socket::open().map_err(|e| NetError::netlink("open socket", "lo", e))?;
                // lo is always ifindex 1 in a new namespace.
                netlink::set_up(&mut sock, 1).map_err(|e| NetError::netlink("set up", "lo", e))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetError::NetnsThread {
                    path: path.to_path_buf(),
                })
            })
        });
        if let Err(e) = made {
            let _ = Netns::remove(path);
            return Err(e);
        }
        Ok(Netns {
            path: path.to_path_buf(),
        })
    }

    /// A handle on an existing namespace mount (not checked).
    pub fn at(path: impl Into<PathBuf>) -> Netns {
        Netns { path: path.into() }
    }

    /// The bind mount's path (what goes into the OCI config).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts and unlinks a namespace created by [`Netns::create`].
    /// Idempotent: a missing mount or file is not an error. The namespace
    /// itself lives on while processes are still in it.
    pub fn remove(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        match unmount(path, UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(NetError::netns(path, "unmount", e.into())),
        }
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::netns(path, "unlink", e)),
        }
    }
}

impl Netns {
    /// Runs `f` on a short-lived thread inside the namespace mounted at
    /// `path` (processes it spawns, such as `nft`, start there too); the
    /// calling thread never changes namespace. (A thread could not always
    /// come back: returning to the host's namespace from a user namespace
    /// needs privileges there.)
    pub fn run_in<T: Send, E: Send>(
        path: impl AsRef<Path>,
        f: impl FnOnce() -> std::result::Result<T, E> + Send,
    ) -> Result<std::result::Result<T, E>> {
        let path = path.as_ref();
        let ns = std::fs::File::open(path).map_err(|e| NetError::netns(path, "open", e))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                    .map_err(|e| NetError::netns(path, "setns", e.into()))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetError::NetnsThread {
                    path: path.to_path_buf(),
                })
            })
        })
    }
}

/// Opens a route netlink socket inside the namespace mounted at `path`
/// (a netlink socket stays bound to the namespace it was created in, so
/// only the socket creation happens in the helper thread).
pub(crate) fn socket_in(path: &Path) -> Result<Socket> {
    let ns = std::fs::File::open(path).map_err(|e| NetError::netns(path, "open", e))?;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<Socket> {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                .map_err(|e| NetError::netns(path, "setns", e.into()))?;
            Socket::open().map_err(|e| NetError::netns(path, "open netlink socket", e))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::NetnsThread {
                path: path.to_path_buf(),
            })
        })
    })
}

/// The IPv4 configuration of a namespace's outward interface, as a
/// user-mode network helper (pasta, slirp4netns) set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsAddress {
    /// The interface (`eth0`, `tap0`).
    pub ifname: String,
    /// Its first IPv4 address.
    pub ip: std::net::Ipv4Addr,
    /// That address's prefix length.
    pub prefix_len: u8,
    /// The default route's gateway, if there is one.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// The interface's MAC address (`aa:bb:…`), empty if it has none.
    pub mac: String,
}

/// Reads the IPv4 address of the namespace mounted at `path`: that of the
/// default route's interface, else of the first interface other than `lo`
/// that has one. `None` when no interface has an IPv4 address.
pub fn netns_address(path: &Path) -> Result<Option<NetnsAddress>> {
    let mut sock = socket_in(path)?;
    let target = path.display().to_string();
    let links =
        netlink::dump_links(&mut sock).map_err(|e| NetError::netlink("list links", &*target, e))?;
    let addrs = netlink::dump_ipv4_addresses(&mut sock)
        .map_err(|e| NetError::netlink("list addresses", &*target, e))?;
    let route = netlink::ipv4_default_route(&mut sock)
        .map_err(|e| NetError::netlink("list routes", &*target, e))?;
    let not_lo = |index: u32| links.iter().any(|l| l.index == index && l.name != "lo");
    let chosen = route
        .and_then(|(_, oif)| addrs.iter().find(|a| a.index == oif))
        .or_else(|| addrs.iter().find(|a| not_lo(a.index)));
    Ok(chosen.map(|a| {
        let link = links.iter().find(|l| l.index == a.index);
        NetnsAddress {
            ifname: link.map(|l| l.name.clone()).unwrap_or_default(),
            ip: a.ip,
            prefix_len: a.prefix_len,
            gateway: route
                .filter(|(_, oif)| *oif == a.index)
                .and_then(|(g, _)| g),
            mac: link
                .and_then(|l| l.mac)
                .map(|m| crate::link::format_mac(&m))
                .unwrap_or_default(),
        }
    }))
}
