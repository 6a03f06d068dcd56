//! The one nftables operation on the hot path, spoken directly over
//! `NETLINK_NETFILTER`: adding and deleting elements of barge's port maps
//! (what publishing and unpublishing a container's ports amount to). It
//! saves starting `nft` (~5 ms of CPU, more wall time on a busy host) per
//! container; everything else (tables, chains, rules) still goes through
//! `nft -f -`.

use std::io;
use std::net::Ipv4Addr;

use rustix::net::netlink::NETFILTER;

use crate::netlink::{Msg, Socket, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_IPV4: u8 = 2;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;
/// libnftnl's `NFTNL_UDATA_SET_ELEM_COMMENT`.
const UDATA_SET_ELEM_COMMENT: u8 = 0;

/// One element of a port map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortElem {
    pub map: &'static str,
    /// Only in the `ipports_*` maps.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

impl PortElem {
    /// The key in nft syntax.
    pub fn key_text(&self) -> String {
        match self.host_ip {
            Some(ip) => format!("{ip} . {}", self.host_port),
            None => self.host_port.to_string(),
        }
    }

    /// The value in nft syntax.
    pub fn value_text(&self) -> String {
        format!("{} . {}", self.container_ip, self.container_port)
    }

    /// The key as the kernel stores it: concatenated fields, each padded
    /// to 4 bytes (an `inet_service` alone is 2 bytes).
    fn key_bytes(&self) -> Vec<u8> {
        match self.host_ip {
            Some(ip) => {
                let mut v = ip.octets().to_vec();
                v.extend_from_slice(&self.host_port.to_be_bytes());
                v.extend_from_slice(&[0, 0]);
                v
            }
            None => self.host_port.to_be_bytes().to_vec(),
        }
    }

    fn value_bytes(&self) -> Vec<u8> {
        let mut v = self.container_ip.octets().to_vec();
        v.extend_from_slice(&self.container_port.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v
    }
}

fn nfgen(msg: &mut Msg, family: u8, res_id: u16) {
    let mut h = [0u8; 4];
    h[0] = family;
    h[2..4].copy_from_slice(&res_id.to_be_bytes());
    msg.raw(&h);
}

/// One `NEWSETELEM`/`DELSETELEM` message for the elements of one map.
fn elem_msg(table: &str, map: &str, elems: &[&PortElem], comment: &str, add: bool) -> Msg {
    let ty = (NFNL_SUBSYS_NFTABLES << 8)
        | if add {
            NFT_MSG_NEWSETELEM
        } else {
            NFT_MSG_DELSETELEM
        };
    let flags = NLM_F_REQUEST | NLM_F_ACK | if add { NLM_F_CREATE } else { 0 };
    let mut m = Msg::plain(ty, flags);
    nfgen(&mut m, NFPROTO_IPV4, 0);
    m.attr_str(NFTA_SET_ELEM_LIST_TABLE, table)
        .attr_str(NFTA_SET_ELEM_LIST_SET, map)
        .begin(NFTA_SET_ELEM_LIST_ELEMENTS);
    for e in elems {
        m.begin(NFTA_LIST_ELEM)
            .begin(NFTA_SET_ELEM_KEY)
            .attr(NFTA_DATA_VALUE, &e.key_bytes())
            .end();
        if add {
            m.begin(NFTA_SET_ELEM_DATA)
                .attr(NFTA_DATA_VALUE, &e.value_bytes())
                .end();
            let mut udata = vec![UDATA_SET_ELEM_COMMENT, (comment.len() + 1) as u8];
            udata.extend_from_slice(comment.as_bytes());
            udata.push(0);
            m.attr(NFTA_SET_ELEM_USERDATA, &udata);
        }
        m.end();
    }
    m.end();
    m
}

/// Adds (and with `delete`, then deletes) `elems` in one transaction. The
/// comment (container id, at most 127 bytes) tags every added element.
/// `ENOENT` means the table or a map does not exist yet.
pub(crate) fn apply(
    table: &str,
    elems: &[PortElem],
    comment: &str,
    delete: bool,
) -> io::Result<()> {
    if comment.len() > 127 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut maps: Vec<&'static str> = elems.iter().map(|e| e.map).collect();
    maps.sort_unstable();
    maps.dedup();
    let mut msgs = Vec::new();
    let mut begin = Msg::plain(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST);
    nfgen(&mut begin, 0, NFNL_SUBSYS_NFTABLES);
    msgs.push(begin);
    for add in std::iter::once(true).chain(delete.then_some(false)) {
        for map in &maps {
            let mine: Vec<&PortElem> = elems.iter().filter(|e| e.map == *map).collect();
            msgs.push(elem_msg(table, map, &mine, comment, add));
        }
    }
    let mut end = Msg::plain(NFNL_MSG_BATCH_END, NLM_F_REQUEST);
    nfgen(&mut end, 0, NFNL_SUBSYS_NFTABLES);
    msgs.push(end);
    let mut sock = Socket::open_protocol(Some(NETFILTER))?;
    sock.batch(&mut msgs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_encoding_matches_nft() {
        // As `nft --debug=netlink` shows for
        // `127.0.0.1 . 8081 : 10.1.1.2 . 81`.
        let e = PortElem {
            map: "ipports_tcp",
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: 8081,
            container_ip: Ipv4Addr::new(10, 1, 1, 2),
            container_port: 81,
        };
        assert_eq!(e.key_bytes(), [0x7f, 0, 0, 1, 0x1f, 0x91, 0, 0]);
        assert_eq!(e.value_bytes(), [10, 1, 1, 2, 0, 0x51, 0, 0]);
        assert_eq!(e.key_text(), "127.0.0.1 . 8081");
        let e = PortElem { host_ip: None, ..e };
        assert_eq!(e.key_bytes(), [0x1f, 0x91]);
        assert_eq!(e.value_text(), "10.1.1.2 . 81");
    }
}
