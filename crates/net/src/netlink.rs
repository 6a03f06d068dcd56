//! A minimal blocking rtnetlink client: just the messages barge needs
//! (links, addresses, routes), encoded by hand. One request is one
//! `send` and usually one `recv`; there is no runtime and no thread.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::sockopt::{set_socket_timeout, Timeout};
use rustix::net::{
    connect, recv, send, socket_with, AddressFamily, Protocol, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};

// nlmsghdr
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = 0x300;

// rtnetlink message types
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWNEIGH: u16 = 28;

// link attributes
pub const IFLA_ADDRESS: u16 = 1;
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_MTU: u16 = 4;
pub const IFLA_MASTER: u16 = 10;
pub const IFLA_OPERSTATE: u16 = 16;
pub const IFLA_LINKINFO: u16 = 18;
pub const IFLA_IFALIAS: u16 = 20;
pub const IFLA_NET_NS_FD: u16 = 28;
pub const IFLA_INFO_KIND: u16 = 1;
pub const IFLA_INFO_DATA: u16 = 2;
pub const IFLA_INFO_SLAVE_DATA: u16 = 5;
pub const VETH_INFO_PEER: u16 = 1;
pub const IFLA_BRPORT_MODE: u16 = 4;
pub const IFF_UP: u32 = 0x1;

// address attributes
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
pub const IFA_BROADCAST: u16 = 4;

// route attributes
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_TABLE: u16 = 15;
pub const RT_TABLE_MAIN: u8 = 254;
pub const RTPROT_STATIC: u8 = 4;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RTN_UNICAST: u8 = 1;

const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;

/// One rtnetlink message under construction.
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl Msg {
    /// A request of type `ty` answered by an ack (or an error);
    /// `NLM_F_REQUEST | NLM_F_ACK` are added to `flags`.
    pub fn new(ty: u16, flags: u16) -> Self {
        Self::with_flags(ty, flags | NLM_F_REQUEST | NLM_F_ACK)
    }

    /// A dump request of type `ty`, answered by messages up to `NLMSG_DONE`.
    /// (`NLM_F_DUMP` shares bits with `NLM_F_REPLACE | NLM_F_EXCL`, hence
    /// two constructors rather than a flag test.)
    pub fn dump(ty: u16) -> Self {
        Self::with_flags(ty, NLM_F_REQUEST | NLM_F_DUMP)
    }

    /// A message with exactly `flags` (batch markers, batched requests).
    pub fn plain(ty: u16, flags: u16) -> Self {
        Self::with_flags(ty, flags)
    }

    fn with_flags(ty: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[0; 4]); // length, filled by finish
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&[0; 8]); // seq, pid
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn pad(&mut self) {
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// Raw bytes (a fixed header such as `ifinfomsg`), padded to 4.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    /// `struct ifinfomsg`.
    pub fn ifinfo(&mut self, family: u8, index: u32, flags: u32, change: u32) -> &mut Self {
        let mut h = [0u8; 16];
        h[0] = family;
        h[4..8].copy_from_slice(&index.to_ne_bytes());
        h[8..12].copy_from_slice(&flags.to_ne_bytes());
        h[12..16].copy_from_slice(&change.to_ne_bytes());
        self.raw(&h)
    }

    pub fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    pub fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    pub fn attr_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v)
    }

    pub fn attr_ipv4(&mut self, ty: u16, ip: Ipv4Addr) -> &mut Self {
        self.attr(ty, &ip.octets())
    }

    pub fn begin(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// Iterates over the attributes in `data` as `(type, payload)`.
pub fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let ty = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        data = &data[align4(len).min(data.len())..];
        Some((ty, payload))
    })
}

/// A NUL-terminated string attribute.
pub fn attr_string(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

pub fn attr_u32(payload: &[u8]) -> Option<u32> {
    payload
        .get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// A route netlink socket, bound to the network namespace of the thread
/// that opened it.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Socket {
    /// A route netlink socket.
    pub fn open() -> io::Result<Self> {
        Self::open_protocol(None) // protocol 0 is NETLINK_ROUTE
    }

    /// A netlink socket of another family (`NETLINK_NETFILTER`, ...).
    /// Receives time out after 10 s rather than hang on a missing reply.
    pub fn open_protocol(protocol: Option<Protocol>) -> io::Result<Self> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            protocol,
        )?;
        set_socket_timeout(&fd, Timeout::Recv, Some(Duration::from_secs(10)))?;
        connect(&fd, &SocketAddrNetlink::new(0, 0))?;
        Ok(Socket {
            fd,
            seq: 1,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Sends `msgs` in one datagram (a netfilter batch) and waits for the
    /// ack of every message that asked for one (`NLM_F_ACK`), or the first
    /// error.
    pub fn batch(&mut self, msgs: &mut [Msg]) -> io::Result<()> {
        let mut bytes = Vec::new();
        let mut pending = Vec::new();
        for m in msgs.iter_mut() {
            self.seq = self.seq.wrapping_add(1);
            let wants_ack = u16::from_ne_bytes([m.buf[6], m.buf[7]]) & NLM_F_ACK != 0;
            if wants_ack {
                pending.push(self.seq);
            }
            bytes.extend_from_slice(m.finish(self.seq));
        }
        let sent = send(&self.fd, &bytes, SendFlags::empty())?;
        if sent != bytes.len() {
            return Err(io::Error::other("short netlink send"));
        }
        while !pending.is_empty() {
            let (n, _) = recv(&self.fd, &mut self.buf[..], RecvFlags::empty())?;
            let mut data = &self.buf[..n];
            while data.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                let ty = u16::from_ne_bytes([data[4], data[5]]);
                let mseq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                if len < NLMSG_HDRLEN || len > data.len() {
                    return Err(io::Error::other("malformed netlink reply"));
                }
                let payload = &data[NLMSG_HDRLEN..len];
                data = &data[align4(len).min(data.len())..];
                if ty == NLMSG_ERROR {
                    let code = payload
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    if code < 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    pending.retain(|s| *s != mseq);
                }
            }
        }
        Ok(())
    }

    /// Sends `msg` and collects the payloads (everything after `nlmsghdr`)
    /// of the replies until the ack (requests) or `NLMSG_DONE` (dumps).
    pub fn call(&mut self, msg: &mut Msg) -> io::Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        let sent = send(&self.fd, bytes, SendFlags::empty())?;
        if sent != bytes.len() {
            return Err(io::Error::other("short netlink send"));
        }
        let mut out = Vec::new();
        loop {
            let (n, _) = recv(&self.fd, &mut self.buf[..], RecvFlags::empty())?;
            let mut data = &self.buf[..n];
            while data.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                let ty = u16::from_ne_bytes([data[4], data[5]]);
                let mseq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                if len < NLMSG_HDRLEN || len > data.len() {
                    return Err(io::Error::other("malformed netlink reply"));
                }
                let payload = &data[NLMSG_HDRLEN..len];
                data = &data[align4(len).min(data.len())..];
                if mseq != seq {
                    continue; // a late reply to an earlier request
                }
                match ty {
                    NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if code < 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        return Ok(out);
                    }
                    NLMSG_DONE => {
                        let code = payload
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if code < 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        return Ok(out);
                    }
                    _ => {
                        // Replies to a plain request are followed by the ack;
                        // dumps end with NLMSG_DONE.
                        out.push(payload.to_vec());
                    }
                }
            }
        }
    }
}

/// What barge reads back about a link.
#[derive(Debug, Clone, Default)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub kind: Option<String>,
    pub mtu: u32,
    pub master: Option<u32>,
    /// RFC 2863 state (`IF_OPER_UP` = 6), set once the kernel's link
    /// watcher has processed a carrier change (qdisc and bridge port live).
    pub operstate: u8,
    /// The hardware address, when it is an Ethernet one.
    pub mac: Option<[u8; 6]>,
}

/// `IF_OPER_UP`.
pub const IF_OPER_UP: u8 = 6;

/// Parses an `RTM_NEWLINK` payload (ifinfomsg + attributes).
pub fn parse_link(payload: &[u8]) -> Option<LinkInfo> {
    if payload.len() < 16 {
        return None;
    }
    let index = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]);
    let mut info = LinkInfo {
        index,
        ..LinkInfo::default()
    };
    for (ty, data) in attrs(&payload[16..]) {
        match ty {
            IFLA_IFNAME => info.name = attr_string(data),
            IFLA_IFALIAS => info.alias = Some(attr_string(data)),
            IFLA_MTU => info.mtu = attr_u32(data).unwrap_or(0),
            IFLA_MASTER => info.master = attr_u32(data),
            IFLA_OPERSTATE => info.operstate = data.first().copied().unwrap_or(0),
            IFLA_ADDRESS => info.mac = <[u8; 6]>::try_from(data).ok(),
            IFLA_LINKINFO => {
                for (ity, idata) in attrs(data) {
                    if ity == IFLA_INFO_KIND {
                        info.kind = Some(attr_string(idata));
                    }
                }
            }
            _ => {}
        }
    }
    Some(info)
}

/// Looks a link up by name; `Ok(None)` when it does not exist.
pub fn get_link(sock: &mut Socket, name: &str) -> io::Result<Option<LinkInfo>> {
    let mut msg = Msg::new(RTM_GETLINK, 0);
    msg.ifinfo(AF_UNSPEC, 0, 0, 0).attr_str(IFLA_IFNAME, name);
    match sock.call(&mut msg) {
        Ok(replies) => Ok(replies.iter().find_map(|p| parse_link(p))),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Waits (polling, up to `timeout`) until link `name` is operationally up.
/// Returns false on timeout.
pub fn wait_oper_up(sock: &mut Socket, name: &str, timeout: Duration) -> io::Result<bool> {
    let start = std::time::Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        if get_link(sock, name)?.is_some_and(|l| l.operstate == IF_OPER_UP) {
            return Ok(true);
        }
        if start.elapsed() > timeout {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Every link of the socket's namespace.
pub fn dump_links(sock: &mut Socket) -> io::Result<Vec<LinkInfo>> {
    let mut msg = Msg::dump(RTM_GETLINK);
    msg.ifinfo(AF_UNSPEC, 0, 0, 0);
    Ok(sock
        .call(&mut msg)?
        .iter()
        .filter_map(|p| parse_link(p))
        .collect())
}

/// An IPv4 address of a link, as `RTM_GETADDR` dumps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrInfo {
    pub index: u32,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
}

fn ipv4_of(data: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(data).ok().map(Ipv4Addr::from)
}

/// Every IPv4 address of the socket's namespace.
pub fn dump_ipv4_addresses(sock: &mut Socket) -> io::Result<Vec<AddrInfo>> {
    let mut msg = Msg::dump(RTM_GETADDR);
    // struct ifaddrmsg: family, prefixlen, flags, scope, index
    msg.raw(&[AF_INET, 0, 0, 0, 0, 0, 0, 0]);
    Ok(sock
        .call(&mut msg)?
        .iter()
        .filter_map(|p| {
            if p.len() < 8 || p[0] != AF_INET {
                return None;
            }
            let index = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
            let mut local = None;
            let mut address = None;
            for (ty, data) in attrs(&p[8..]) {
                match ty {
                    IFA_LOCAL => local = ipv4_of(data),
                    IFA_ADDRESS => address = ipv4_of(data),
                    _ => {}
                }
            }
            Some(AddrInfo {
                index,
                ip: local.or(address)?,
                prefix_len: p[1],
            })
        })
        .collect())
}

/// The IPv4 default route of the main table: (gateway, output link).
pub fn ipv4_default_route(sock: &mut Socket) -> io::Result<Option<(Option<Ipv4Addr>, u32)>> {
    let mut msg = Msg::dump(RTM_GETROUTE);
    msg.raw(&[AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    Ok(sock.call(&mut msg)?.iter().find_map(|p| {
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol,
        // scope, type, flags
        if p.len() < 12 || p[0] != AF_INET || p[1] != 0 || p[7] != RTN_UNICAST {
            return None;
        }
        let mut table = u32::from(p[4]);
        let mut gateway = None;
        let mut oif = None;
        for (ty, data) in attrs(&p[12..]) {
            match ty {
                RTA_GATEWAY => gateway = ipv4_of(data),
                RTA_OIF => oif = attr_u32(data),
                RTA_TABLE => table = attr_u32(data).unwrap_or(table),
                _ => {}
            }
        }
        (table == u32::from(RT_TABLE_MAIN)).then_some((gateway, oif?))
    }))
}

/// Deletes a link by name; a missing link is not an error.
pub fn delete_link(sock: &mut Socket, name: &str) -> io::Result<bool> {
    let mut msg = Msg::new(RTM_DELLINK, 0);
    msg.ifinfo(AF_UNSPEC, 0, 0, 0).attr_str(IFLA_IFNAME, name);
    match sock.call(&mut msg) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets a link up (by index).
pub fn set_up(sock: &mut Socket, index: u32) -> io::Result<()> {
    let mut msg = Msg::new(RTM_NEWLINK, 0);
    msg.ifinfo(AF_UNSPEC, index, IFF_UP, IFF_UP);
    sock.call(&mut msg).map(|_| ())
}

/// Adds (or replaces) an IPv4 address on a link.
pub fn add_address(sock: &mut Socket, index: u32, ip: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
    let mut msg = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
    let mut h = [0u8; 8];
    h[0] = AF_INET;
    h[1] = prefix_len;
    h[3] = RT_SCOPE_UNIVERSE;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    msg.raw(&h)
        .attr_ipv4(IFA_LOCAL, ip)
        .attr_ipv4(IFA_ADDRESS, ip);
    if prefix_len < 31 {
        let mask = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
        msg.attr_ipv4(IFA_BROADCAST, Ipv4Addr::from(u32::from(ip) | mask));
    }
    sock.call(&mut msg).map(|_| ())
}

/// Adds the IPv4 default route via `gateway` out of link `index`.
pub fn add_default_route(sock: &mut Socket, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
    let mut msg = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
    let h = [
        AF_INET,
        0,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_STATIC,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
        0,
        0,
        0,
        0,
    ];
    msg.raw(&h)
        .attr_ipv4(RTA_GATEWAY, gateway)
        .attr_u32(RTA_OIF, index);
    sock.call(&mut msg).map(|_| ())
}

/// Sets the IPv4 neighbour entry `ip → mac` on link `index` as STALE: used
/// at once, verified by the kernel on its next use.
pub fn set_neighbour(sock: &mut Socket, index: u32, ip: Ipv4Addr, mac: [u8; 6]) -> io::Result<()> {
    const NDA_DST: u16 = 1;
    const NDA_LLADDR: u16 = 2;
    const NUD_STALE: u16 = 0x04;
    let mut msg = Msg::new(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
    // struct ndmsg: family, pad, pad, ifindex, state, flags, type
    let mut h = [0u8; 12];
    h[0] = AF_INET;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..10].copy_from_slice(&NUD_STALE.to_ne_bytes());
    msg.raw(&h).attr_ipv4(NDA_DST, ip).attr(NDA_LLADDR, &mac);
    sock.call(&mut msg).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_round_trip() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE);
        m.ifinfo(AF_UNSPEC, 7, IFF_UP, IFF_UP)
            .attr_str(IFLA_IFNAME, "vb1")
            .begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .end()
            .attr_u32(IFLA_MTU, 1500);
        let bytes = m.finish(9).to_vec();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
            bytes.len()
        );
        let link = parse_link(&bytes[NLMSG_HDRLEN..]).expect("parse");
        assert_eq!(link.index, 7);
        assert_eq!(link.name, "vb1");
        assert_eq!(link.kind.as_deref(), Some("veth"));
        assert_eq!(link.mtu, 1500);
    }

    #[test]
    fn truncated_attributes_stop_iteration() {
        let data = [8u8, 0, 3, 0, b'a', 0];
        assert_eq!(attrs(&data).count(), 0);
    }
}
