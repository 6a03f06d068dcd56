//! Typed messages between the runtime and the container init over a
//! `SOCK_SEQPACKET` socketpair, with optional fds attached (SCM_RIGHTS).
//!
//! Each side only ever sends its own message type, so a message arriving out
//! of order is a protocol error rather than a misinterpretation.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::RuntimeError;

/// What the init tells the runtime.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromInit {
    /// (two-step mode) the init unshared its user namespace: write the maps
    /// for this pid.
    WriteMaps { pid: i32 },
    /// (two-step mode) the process that becomes the container init.
    InitPid { pid: i32 },
    /// Namespaces and mounts are ready: run prestart/createRuntime hooks.
    RunHooks,
    /// A seccomp notify fd is attached: forward it to the listener.
    SeccompFd,
    /// A console master is attached (for `run -t` without a console socket).
    ConsoleFd,
    /// Everything is set up; the init now waits for `start`.
    Ready,
    /// A step failed.
    Failed { step: String, message: String },
}

/// What the runtime tells the init.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    /// Cgroups joined and (one-step mode) maps written: go on. Idmapped
    /// mounts for these destinations are attached, in order.
    Go { idmap: Vec<std::path::PathBuf> },
    /// Maps written (two-step mode).
    MapsDone,
    /// The init's pid is in every cgroup hierarchy (one-step mode: sent
    /// after `Go`, so cgroup migration overlaps the init's mount work).
    CgroupsDone,
    /// Hooks done.
    HooksDone,
    /// Seccomp fd forwarded.
    SeccompDone,
    /// Something failed on the runtime side: exit quietly.
    Abort,
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Create a connected pair: (runtime side, init side).
pub fn pair() -> Result<(Channel, Channel), RuntimeError> {
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| RuntimeError::io("creating the sync socketpair", e.into()))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Wrap an fd that is one end of a sync socketpair.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }

    /// Send a message, with fds attached.
    pub fn send<T: Serialize>(
        &self,
        msg: &T,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<(), RuntimeError> {
        let bytes = serde_json::to_vec(msg).map_err(|e| RuntimeError::Other(e.to_string()))?;
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut ancillary = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !ancillary.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(RuntimeError::Other("too many fds for one message".into()));
        }
        sendmsg(
            &self.fd,
            &[IoSlice::new(&bytes)],
            &mut ancillary,
            SendFlags::NOSIGNAL,
        )
        .map_err(|e| RuntimeError::io("sending on the sync socket", e.into()))?;
        Ok(())
    }

    /// Receive a message and any fds. `Ok(None)` means the peer is gone.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<(T, Vec<OwnedFd>)>, RuntimeError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let mut reset_seen = false;
        let n = loop {
            match recvmsg(
                &self.fd,
                &mut [IoSliceMut::new(&mut buf)],
                &mut ancillary,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(r) => break r.bytes,
                Err(rustix::io::Errno::INTR) => {}
                // The peer closed with our last message unread: the kernel
                // reports a reset first, then still delivers what the peer
                // sent before closing (its failure report, typically).
                Err(rustix::io::Errno::CONNRESET) if !reset_seen => reset_seen = true,
                Err(rustix::io::Errno::CONNRESET) => return Ok(None),
                Err(e) => return Err(RuntimeError::io("reading the sync socket", e.into())),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let mut fds = Vec::new();
        for msg in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                fds.extend(rights);
            }
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| RuntimeError::Other(format!("malformed sync message: {e}")))?;
        Ok(Some((msg, fds)))
    }

    /// The raw fd (to poll it).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
