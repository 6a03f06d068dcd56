//! bpf(2) wrappers for the cgroup v2 device controller.
//!
//! Only the handful of commands barge needs: load a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program, attach/detach it to a cgroup2 directory, query what is attached
//! and find an attached program's name. The program itself is built by
//! `barge-cgroups` as raw [`BpfInsn`]s.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;

/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` attach type.
pub const BPF_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_OVERRIDE` attach flag.
pub const BPF_F_ALLOW_OVERRIDE: u32 = 1;
/// `BPF_F_ALLOW_MULTI` attach flag.
pub const BPF_F_ALLOW_MULTI: u32 = 2;
/// `BPF_F_REPLACE` attach flag (with `replace_bpf_fd`).
pub const BPF_F_REPLACE: u32 = 4;

/// Maximum program name length the kernel keeps (including the NUL).
pub const BPF_OBJ_NAME_LEN: usize = 16;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high nibble.
    pub regs: u8,
    /// Signed offset (jump target / memory offset).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl BpfInsn {
    /// Build an instruction from its parts.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: (dst & 0x0f) | ((src & 0x0f) << 4),
            off,
            imm,
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; BPF_OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The leading part of `struct bpf_prog_info` up to `name` (the kernel
/// accepts a shorter `info_len` and fills only what fits).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; BPF_OBJ_NAME_LEN],
}

/// Issue `bpf(cmd, attr, size_of::<T>())`.
///
/// `T` must be one of the `repr(C)` attribute structs above, laid out like
/// the kernel's `union bpf_attr` member for `cmd`, with every pointer field
/// pointing to memory that stays valid for the call.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed, fully initialised
    // `repr(C)` struct of exactly the size we pass; callers (all private to
    // this module) fill only pointer fields that point to buffers that
    // outlive this call. The kernel reads/writes at most `size` bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fd_from_ret(ret: libc::c_long) -> io::Result<OwnedFd> {
    let raw = i32::try_from(ret).map_err(|_| io::Error::other("bpf returned an invalid fd"))?;
    // SAFETY: the kernel just returned `raw` as a new file descriptor that
    // nobody else owns; we take ownership of it exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn name_bytes(name: &str) -> [u8; BPF_OBJ_NAME_LEN] {
    let mut out = [0u8; BPF_OBJ_NAME_LEN];
    for (dst, src) in out
        .iter_mut()
        .zip(
            name.bytes()
                .filter(|b| b.is_ascii_alphanumeric() || *b == b'_'),
        )
        .take(BPF_OBJ_NAME_LEN - 1)
    {
        *dst = src;
    }
    out
}

/// Load a program of type `prog_type` (e.g. [`BPF_PROG_TYPE_CGROUP_DEVICE`]).
///
/// `name` is truncated to 15 characters (alphanumerics and `_` only). On a
/// verifier rejection the error message includes the verifier log.
pub fn prog_load(
    prog_type: u32,
    insns: &[BpfInsn],
    license: &CStr,
    name: &str,
) -> io::Result<OwnedFd> {
    let insn_cnt = u32::try_from(insns.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many bpf instructions"))?;
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        prog_name: name_bytes(name),
        ..ProgLoadAttr::default()
    };
    match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(ret) => fd_from_ret(ret),
        Err(first) => {
            // Retry with the verifier log for a useful message.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            if let Ok(ret) = sys_bpf(BPF_PROG_LOAD, &mut attr) {
                return fd_from_ret(ret);
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            if text.trim().is_empty() {
                Err(first)
            } else {
                Err(io::Error::new(
                    first.kind(),
                    format!("{first}; verifier log: {}", text.trim()),
                ))
            }
        }
    }
}

/// `BPF_PROG_ATTACH`: attach `prog` to `target` (a cgroup2 directory fd).
///
/// With `replace` set, `BPF_F_REPLACE` is added and that program is replaced
/// atomically (requires `BPF_F_ALLOW_MULTI`).
pub fn prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
    replace: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    if let Some(old) = replace {
        attr.attach_flags |= BPF_F_REPLACE;
        attr.replace_bpf_fd = old.as_raw_fd() as u32;
    }
    sys_bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// `BPF_PROG_DETACH`: detach `prog` from `target`.
pub fn prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        ..AttachAttr::default()
    };
    sys_bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// `BPF_PROG_QUERY`: ids of the programs attached to `target` directly
/// (not inherited) for `attach_type`.
pub fn prog_query(target: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_fd: target.as_raw_fd() as u32,
            attach_type,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..QueryAttr::default()
        };
        match sys_bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < 1 << 16 => {
                let want = (attr.prog_cnt as usize).max(ids.len() * 2);
                ids = vec![0u32; want];
            }
            Err(e) => return Err(e),
        }
    }
}

/// `BPF_PROG_GET_FD_BY_ID`: an fd for the loaded program with this id.
pub fn prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        id,
        ..GetIdAttr::default()
    };
    sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).and_then(fd_from_ret)
}

/// The name a program was loaded with (`BPF_OBJ_GET_INFO_BY_FD`).
pub fn prog_name(prog: BorrowedFd<'_>) -> io::Result<String> {
    let mut info = ProgInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let end = info
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(BPF_OBJ_NAME_LEN);
    Ok(String::from_utf8_lossy(&info.name[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insn_layout() {
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
        let i = BpfInsn::new(0x61, 2, 1, 4, 0);
        assert_eq!(i.regs, 0x12);
        assert_eq!(std::mem::size_of::<ProgInfo>(), 80);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
    }

    #[test]
    fn names() {
        assert_eq!(&name_bytes("barge_dev")[..10], b"barge_dev\0");
        assert_eq!(name_bytes("a-very-long-program-name")[15], 0);
    }
}
