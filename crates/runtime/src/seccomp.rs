//! Seccomp filters from the OCI `linux.seccomp` object, with user notification.
//!
//! The translation follows runc (`libcontainer/seccomp/seccomp_linux.go`):
//!
//! * `defaultAction` / `defaultErrnoRet` become the filter's default action
//!   (`SCMP_ACT_ERRNO` without `errnoRet` returns `EPERM`, `SCMP_ACT_TRACE`
//!   without it passes `EPERM` as the tracer message, `SCMP_ACT_KILL` is
//!   `SCMP_ACT_KILL_THREAD`).
//! * `architectures` are added to the filter (the native one is always there).
//! * `flags` map to libseccomp attributes: `SECCOMP_FILTER_FLAG_TSYNC`,
//!   `SECCOMP_FILTER_FLAG_SPEC_ALLOW`, `SECCOMP_FILTER_FLAG_LOG` and
//!   `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (the last needs libseccomp ≥ 2.6;
//!   with an older library it is an error naming the flag). Unknown flag, action
//!   or architecture names cannot be represented in [`LinuxSeccomp`]: parsing
//!   `config.json` already rejects them.
//! * Every name of every `syscalls` entry gets the entry's action. Names this
//!   libseccomp does not know are skipped with a `debug` message, like runc does,
//!   so that profiles listing newer syscalls still work on older systems.
//! * A rule whose action equals the default action is skipped (libseccomp
//!   rejects such rules, and they would be no-ops anyway).
//! * `args` of one entry are ANDed into a single rule. If several conditions
//!   test the same argument index (which libseccomp cannot express in one rule),
//!   every condition becomes its own rule instead, so they are ORed — runc's
//!   historical behaviour, which existing profiles rely on.
//! * `SCMP_CMP_MASKED_EQ` uses `value` as the mask and `valueTwo` as the value
//!   to compare the masked argument with.
//!
//! `listenerPath` / `listenerMetadata` are handled by the caller: [`load`]
//! returns the notify fd and [`send_to_listener`] passes it on.
//!
//! No-new-privileges is not set here (`set_ctl_nnp(false)`): the runtime sets it
//! itself when `process.noNewPrivileges` asks for it. Loading a filter without
//! it needs `CAP_SYS_ADMIN`, so unprivileged processes must load the filter
//! after setting no_new_privs.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

/// Syscalls take at most six arguments.
const MAX_SYSCALL_ARGS: usize = 6;

/// The errno / trace message travels in the 16 data bits of the filter return value.
const MAX_RET_DATA: u32 = 0xffff;

/// What runc and crun return when `errnoRet` is absent.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

type LibError = libseccomp::error::SeccompError;

/// Errors building, loading or handing over a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: cannot create a filter with default action {action}: {source}")]
    NewFilter {
        action: LinuxSeccompAction,
        #[source]
        source: LibError,
    },
    #[error("seccomp: architecture {arch} is not supported by this libseccomp: {source}")]
    Arch {
        arch: Arch,
        #[source]
        source: LibError,
    },
    #[error("seccomp: flag {flag} is not supported: {source}")]
    Flag {
        flag: LinuxSeccompFilterFlag,
        #[source]
        source: LibError,
    },
    #[error("seccomp: cannot disable no_new_privs handling in libseccomp: {0}")]
    Nnp(#[source] LibError),
    #[error("seccomp: errnoRet {value} of {context} is out of range (at most {MAX_RET_DATA})")]
    ErrnoRange { context: String, value: u32 },
    #[error(
        "seccomp: syscall {syscall}: argument index {index} is out of range \
         (syscalls have {MAX_SYSCALL_ARGS} arguments, indices 0-5)"
    )]
    ArgIndex { syscall: String, index: usize },
    #[error("seccomp: cannot add rule {action} for syscall {syscall}: {source}")]
    AddRule {
        syscall: String,
        action: LinuxSeccompAction,
        #[source]
        source: LibError,
    },
    #[error(
        "seccomp: action SCMP_ACT_NOTIFY is used but linux.seccomp.listenerPath is not set \
         (nobody could answer the notifications)"
    )]
    NotifyWithoutListener,
    #[error("seccomp: cannot load the filter into the kernel: {0}")]
    Load(#[source] LibError),
    #[error("seccomp: cannot get the user notification fd: {0}")]
    NotifyFd(#[source] LibError),
    #[error(
        "seccomp: cannot take ownership of the notify fd ({fd}) with {syscall} \
         (a filter using SCMP_ACT_NOTIFY must allow pidfd_getfd): {source}"
    )]
    NotifyFdDup {
        fd: RawFd,
        syscall: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp: cannot encode the container process state for {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("seccomp: listener {path}: {op}: {source}")]
    Listener {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A translated (not yet loaded) filter.
struct Filter {
    ctx: ScmpFilterContext,
    /// Whether the default action or an added rule is `SCMP_ACT_NOTIFY`.
    notify: bool,
}

/// Validate and translate the OCI config into a filter without loading it
/// (used at `create` time so config errors surface before any process is
/// started).
///
/// Besides what [`load`] checks, this rejects `SCMP_ACT_NOTIFY` without a
/// `listenerPath`.
pub fn check(seccomp: &LinuxSeccomp) -> Result<(), SeccompError> {
    let filter = build(seccomp)?;
    if uses_notify(seccomp) && seccomp.listener_path().is_none() {
        return Err(SeccompError::NotifyWithoutListener);
    }
    drop(filter);
    Ok(())
}

/// Load the filter into the calling process (a single-threaded container init
/// right before execve, or earlier). Returns the notify fd if any rule or the
/// default action is SCMP_ACT_NOTIFY.
///
/// With SCMP_ACT_NOTIFY the filter must let through what happens after
/// loading: `pidfd_getfd` (to take ownership of the fd from libseccomp
/// without `unsafe`), `close`, and whatever the caller does next (for
/// [`send_to_listener`]: `socket`, `connect`, `sendmsg`). A default action of
/// SCMP_ACT_NOTIFY therefore only works if someone answers the notifications
/// of this very process.
pub fn load(seccomp: &LinuxSeccomp) -> Result<Option<OwnedFd>, SeccompError> {
    let filter = build(seccomp)?;
    // Opened before the filter exists, so that only `pidfd_getfd` (and
    // `close`) must get through it afterwards.
    let pidfd = if filter.notify {
        let pid = rustix::process::getpid();
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .map_err(|err| SeccompError::NotifyFdDup {
                fd: -1,
                syscall: "pidfd_open",
                source: err.into(),
            })?;
        Some(pidfd)
    } else {
        None
    };
    filter.ctx.load().map_err(SeccompError::Load)?;
    let Some(pidfd) = pidfd else {
        return Ok(None);
    };
    let raw = filter.ctx.get_notify_fd().map_err(SeccompError::NotifyFd)?;
    let owned = own_fd(&pidfd, raw)?;
    drop(pidfd);
    // libseccomp keeps its copy of the listener in process-global state;
    // resetting that state closes it, so the caller's fd is the only one.
    if let Err(err) = libseccomp::reset_global_state() {
        tracing::debug!(
            fd = raw,
            error = %err,
            "seccomp: cannot close libseccomp's copy of the notify fd; it is close-on-exec"
        );
    }
    Ok(Some(owned))
}

/// [`send_to_listener`] to the `listenerPath` of `seccomp` (with its
/// `listenerMetadata`) when it has one; `state` builds the container state
/// sent along. Used for the init's fd and for each exec'd process's.
pub fn forward_to_listener(
    seccomp: Option<&LinuxSeccomp>,
    state: impl FnOnce() -> serde_json::Value,
    pid: i32,
    notify_fd: BorrowedFd<'_>,
) -> Result<(), SeccompError> {
    let Some(path) = seccomp.and_then(|s| s.listener_path().as_ref()) else {
        return Ok(());
    };
    let meta = seccomp
        .and_then(|s| s.listener_metadata().clone())
        .unwrap_or_default();
    send_to_listener(path, &meta, &state(), pid, notify_fd)
}

/// Send the notify fd to the OCI `listenerPath` unix socket (SOCK_STREAM,
/// connect), per the OCI runtime spec: one message carrying the container
/// process state JSON (`ociVersion`, `fds: ["seccompFd"]`, `pid`, `metadata`,
/// `state`) with the fd in SCM_RIGHTS. The connection is closed afterwards.
///
/// `state_json` is the container state (`ociVersion`, `id`, `status`, `pid`,
/// `bundle`, `annotations`); its `ociVersion` is reused at the top level.
/// An empty `metadata` is left out, as runc does.
pub fn send_to_listener(
    listener_path: &Path,
    metadata: &str,
    state_json: &serde_json::Value,
    pid: i32,
    notify_fd: BorrowedFd<'_>,
) -> Result<(), SeccompError> {
    use rustix::net::{
        AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
        SocketFlags, SocketType,
    };

    let fail = |op: &'static str, err: rustix::io::Errno| SeccompError::Listener {
        path: listener_path.to_path_buf(),
        op,
        source: err.into(),
    };

    let payload = process_state(metadata, state_json, pid);
    let bytes = serde_json::to_vec(&payload).map_err(|source| SeccompError::Json {
        path: listener_path.to_path_buf(),
        source,
    })?;

    let addr = SocketAddrUnix::new(listener_path).map_err(|e| fail("socket address", e))?;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| fail("socket", e))?;
    retry_eintr(|| rustix::net::connect(&sock, &addr)).map_err(|e| fail("connect", e))?;

    let fds = [notify_fd];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(fail("SCM_RIGHTS", rustix::io::Errno::NOBUFS));
    }
    let mut sent = retry_eintr(|| {
        rustix::net::sendmsg(
            &sock,
            &[IoSlice::new(&bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )
    })
    .map_err(|e| fail("sendmsg", e))?;
    // A stream socket may take a large state in pieces; the fd went with the
    // first one.
    while sent < bytes.len() {
        let n = retry_eintr(|| rustix::net::send(&sock, &bytes[sent..], SendFlags::NOSIGNAL))
            .map_err(|e| fail("send", e))?;
        if n == 0 {
            return Err(fail("send", rustix::io::Errno::PIPE));
        }
        sent += n;
    }
    Ok(())
}

/// The OCI `ContainerProcessState` sent to the seccomp agent.
fn process_state(metadata: &str, state_json: &serde_json::Value, pid: i32) -> serde_json::Value {
    let oci_version = state_json
        .get("ociVersion")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(oci_spec::runtime::VERSION);
    let mut msg = serde_json::Map::new();
    msg.insert("ociVersion".into(), oci_version.into());
    msg.insert("fds".into(), serde_json::json!(["seccompFd"]));
    msg.insert("pid".into(), pid.into());
    if !metadata.is_empty() {
        msg.insert("metadata".into(), metadata.into());
    }
    msg.insert("state".into(), state_json.clone());
    serde_json::Value::Object(msg)
}

fn retry_eintr<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => {}
            other => return other,
        }
    }
}

/// Take ownership of libseccomp's notify fd without `unsafe`: duplicate it
/// from our own fd table with `pidfd_getfd` (always permitted on oneself;
/// the copy is close-on-exec).
fn own_fd(own_pidfd: &OwnedFd, raw: RawFd) -> Result<OwnedFd, SeccompError> {
    let fd =
        rustix::process::pidfd_getfd(own_pidfd, raw, rustix::process::PidfdGetfdFlags::empty())
            .map_err(|err| SeccompError::NotifyFdDup {
                fd: raw,
                syscall: "pidfd_getfd",
                source: err.into(),
            })?;
    debug_assert_ne!(fd.as_raw_fd(), raw);
    Ok(fd)
}

fn uses_notify(seccomp: &LinuxSeccomp) -> bool {
    seccomp.default_action() == LinuxSeccompAction::ScmpActNotify
        || seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
}

fn build(seccomp: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let default_oci = seccomp.default_action();
    let default = action(default_oci, seccomp.default_errno_ret(), || {
        "defaultAction".to_owned()
    })?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|source| SeccompError::NewFilter {
        action: default_oci,
        source,
    })?;
    ctx.set_ctl_nnp(false).map_err(SeccompError::Nnp)?;

    for &arch in seccomp.architectures().iter().flatten() {
        ctx.add_arch(scmp_arch(arch))
            .map_err(|source| SeccompError::Arch { arch, source })?;
    }

    for &flag in seccomp.flags().iter().flatten() {
        let res = match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        };
        res.map_err(|source| SeccompError::Flag { flag, source })?;
    }

    let mut notify = default == ScmpAction::Notify;
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        notify |= add_rules(&mut ctx, default, i, rule)?;
    }
    Ok(Filter { ctx, notify })
}

/// Adds the rules of one `syscalls` entry; returns whether a NOTIFY rule was added.
fn add_rules(
    ctx: &mut ScmpFilterContext,
    default: ScmpAction,
    index: usize,
    rule: &LinuxSyscall,
) -> Result<bool, SeccompError> {
    let describe = || format!("syscalls[{index}] ({})", rule.names().join(","));
    let act = action(rule.action(), rule.errno_ret(), describe)?;
    let (conditions, split) = conditions(rule.names(), rule.args().as_deref().unwrap_or(&[]))?;
    if act == default {
        tracing::debug!(
            syscalls = ?rule.names(),
            action = %rule.action(),
            "seccomp: rule has the default action, skipped"
        );
        return Ok(false);
    }

    let mut added = false;
    for name in rule.names() {
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            tracing::debug!(syscall = %name, "seccomp: unknown syscall ignored");
            continue;
        };
        let fail = |source| SeccompError::AddRule {
            syscall: name.clone(),
            action: rule.action(),
            source,
        };
        if split {
            for cond in &conditions {
                ctx.add_rule_conditional(act, syscall, std::slice::from_ref(cond))
                    .map_err(fail)?;
            }
        } else {
            ctx.add_rule_conditional(act, syscall, &conditions)
                .map_err(fail)?;
        }
        added = true;
    }
    Ok(added && act == ScmpAction::Notify)
}

/// Translates the `args` of an entry. The flag says whether an argument index
/// is tested more than once, in which case each condition needs its own rule.
fn conditions(
    names: &[String],
    args: &[LinuxSeccompArg],
) -> Result<(Vec<ScmpArgCompare>, bool), SeccompError> {
    let mut per_index = [0_usize; MAX_SYSCALL_ARGS];
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let index = arg.index();
        let Some(count) = per_index.get_mut(index) else {
            return Err(SeccompError::ArgIndex {
                syscall: names.join(","),
                index,
            });
        };
        *count += 1;
        let (op, datum) = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
            LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
            LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
            LinuxSeccompOperator::ScmpCmpMaskedEq => (
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            ),
        };
        out.push(ScmpArgCompare::new(index as u32, op, datum));
    }
    let split = per_index.iter().any(|&n| n > 1);
    Ok((out, split))
}

fn action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    context: impl FnOnce() -> String,
) -> Result<ScmpAction, SeccompError> {
    let ret = || -> Result<u32, SeccompError> {
        let value = errno_ret.unwrap_or(DEFAULT_ERRNO);
        if value > MAX_RET_DATA {
            return Err(SeccompError::ErrnoRange {
                context: context(),
                value,
            });
        }
        Ok(value)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(ret()? as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret()? as u16),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    const OK: i32 = 0;
    const PANICKED: i32 = 101;

    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Exited(i32),
        Signaled(i32),
    }

    fn spec(value: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(value).expect("valid linux.seccomp")
    }

    /// Fork; the child runs `f` (its return value is the exit code) and never
    /// returns into the test harness.
    fn fork_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `f` and then `_exit`s, never returning to
        // the harness; glibc makes malloc usable in the child of a threaded
        // parent, and `f` uses nothing that another thread could hold locked.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(PANICKED);
            // SAFETY: ends the forked child immediately, without running the
            // parent's atexit handlers or destructors.
            unsafe { libc::_exit(code) };
        }
        pid
    }

    fn wait_child(pid: i32) -> Outcome {
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
        if libc::WIFEXITED(status) {
            Outcome::Exited(libc::WEXITSTATUS(status))
        } else {
            Outcome::Signaled(libc::WTERMSIG(status))
        }
    }

    fn run_in_child(f: impl FnOnce() -> i32) -> Outcome {
        wait_child(fork_child(f))
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// `kill(pid, sig)` → 0 or the errno.
    fn kill(pid: i32, sig: i32) -> i32 {
        // SAFETY: plain syscall; signal 0, SIGCONT and SIGWINCH to ourselves are harmless.
        if unsafe { libc::kill(pid, sig) } == 0 {
            0
        } else {
            errno()
        }
    }

    fn load_or_exit(s: &LinuxSeccomp, code: i32) -> Result<Option<OwnedFd>, i32> {
        load(s).map_err(|e| {
            eprintln!("load: {e}");
            code
        })
    }

    #[test]
    fn errno_action_and_unknown_syscall() {
        let s = spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [
                { "names": ["mkdir", "mkdirat", "barge_no_such_syscall"],
                  "action": "SCMP_ACT_ERRNO", "errnoRet": 42 },
                { "names": ["rmdir", "unlinkat"], "action": "SCMP_ACT_ERRNO" },
                { "names": ["getcwd"], "action": "SCMP_ACT_ALLOW" },
                { "names": ["chown32", "socketcall"], "action": "SCMP_ACT_ERRNO" }
            ]
        }));
        check(&s).expect("check");
        let dir = tempfile::tempdir().expect("tempdir");
        let keep = dir.path().join("keep");
        std::fs::create_dir(&keep).expect("mkdir keep");
        let new = dir.path().join("new");
        let out = run_in_child(|| {
            if let Err(code) = load_or_exit(&s, 2) {
                return code;
            }
            match std::fs::create_dir(&new) {
                Err(e) if e.raw_os_error() == Some(42) => {}
                other => {
                    eprintln!("mkdir: {other:?}");
                    return 3;
                }
            }
            match std::fs::remove_dir(&keep) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                other => {
                    eprintln!("rmdir: {other:?}");
                    return 4;
                }
            }
            if std::env::current_dir().is_err() {
                return 5;
            }
            OK
        });
        assert_eq!(out, Outcome::Exited(OK));
        assert!(keep.is_dir() && !new.exists());
    }

    #[test]
    fn kill_process_action() {
        let s = spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS" }]
        }));
        let out = run_in_child(|| {
            if let Err(code) = load_or_exit(&s, 2) {
                return code;
            }
            let _ = rustix::process::getppid();
            3
        });
        assert_eq!(out, Outcome::Signaled(libc::SIGSYS));
    }

    #[test]
    fn default_errno_action() {
        // Everything but a few syscalls fails with 38 (ENOSYS).
        let s = spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "syscalls": [{
                "names": ["exit", "exit_group", "write", "rt_sigreturn", "getppid"],
                "action": "SCMP_ACT_ALLOW"
            }]
        }));
        let out = run_in_child(|| {
            if let Err(code) = load_or_exit(&s, 2) {
                return code;
            }
            // SAFETY: plain syscalls without memory arguments.
            let (pid, ppid) = unsafe { (libc::getpid(), libc::getppid()) };
            let err = errno();
            // glibc's getpid() passes the raw -errno on (it "cannot fail").
            if (pid == -38 || (pid == -1 && err == 38)) && ppid > 0 {
                OK
            } else {
                eprintln!("getpid={pid} errno={err} getppid={ppid}");
                3
            }
        });
        assert_eq!(out, Outcome::Exited(OK));
    }

    #[test]
    fn arg_conditions() {
        // personality(0xffffffff) only queries the persona: allowed; anything else fails.
        let s = spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{
                "names": ["personality"], "action": "SCMP_ACT_ERRNO",
                "args": [{ "index": 0, "value": 0xffff_ffff_u64, "op": "SCMP_CMP_NE" }]
            }]
        }));
        let out = run_in_child(|| {
            if let Err(code) = load_or_exit(&s, 2) {
                return code;
            }
            // SAFETY: personality only reads or sets the persona flags.
            let query = unsafe { libc::personality(0xffff_ffff) };
            if query < 0 {
                return 3;
            }
            // SAFETY: as above; the filter refuses it anyway.
            let set = unsafe { libc::personality(0) };
            if set != -1 || errno() != libc::EPERM {
                return 4;
            }
            OK
        });
        assert_eq!(out, Outcome::Exited(OK));

        // Conditions on different arguments are ANDed: kill(self, 0) fails,
        // kill(self, SIGCONT) and kill(1, 0) do not.
        let out = run_in_child(|| {
            let me = rustix::process::getpid().as_raw_nonzero().get();
            let s = spec(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{
                    "names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 61,
                    "args": [
                        { "index": 0, "value": me, "op": "SCMP_CMP_EQ" },
                        { "index": 1, "value": 0, "op": "SCMP_CMP_EQ" }
                    ]
                }]
            }));
            if let Err(code) = load_or_exit(&s, 2) {
                return code;
            }
            match (kill(me, 0), kill(me, libc::SIGCONT), kill(1, 0)) {
                (61, 0, 0) => OK,
                other => {
                    eprintln!("AND: {other:?}");
                    3
                }
            }
        });
        assert_eq!(out, Outcome::Exited(OK));

        // Two conditions on the same argument become separate rules (ORed),
        // as in runc; a masked comparison matches signals 16..=31.
        let s = spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                { "names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 62,
                  "args": [
                    { "index": 1, "value": 0, "op": "SCMP_CMP_EQ" },
                    { "index": 1, "value": libc::SIGCONT, "op": "SCMP_CMP_EQ" }
                  ] },
                { "names": ["tgkill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 63,
                  "args": [{ "index": 2, "value": 0xf0, "valueTwo": 0x10,
                             "op": "SCMP_CMP_MASKED_EQ" }] }
            ]
        }));
        let out = run_in_child(|| {
            if let Err(code) = load_or_exit(&s, 2) {
                return code;
            }
            let me = rustix::process::getpid().as_raw_nonzero().get();
            let tgkill = |sig: i32| {
                // SAFETY: signals our own (only) thread with a harmless signal.
                let rc = unsafe { libc::syscall(libc::SYS_tgkill, me, me, sig) };
                if rc == 0 {
                    0
                } else {
                    errno()
                }
            };
            match (
                kill(me, 0),
                kill(me, libc::SIGCONT),
                kill(me, libc::SIGWINCH),
                tgkill(libc::SIGWINCH),
                tgkill(libc::SIGCONT),
                tgkill(0),
            ) {
                (62, 62, 0, 63, 63, 0) => OK,
                other => {
                    eprintln!("OR/masked: {other:?}");
                    3
                }
            }
        });
        assert_eq!(out, Outcome::Exited(OK));
    }

    #[test]
    fn check_rejects_bad_configs() {
        // Unknown names never reach `check`: the OCI types refuse them.
        for bad in [
            serde_json::json!({ "defaultAction": "SCMP_ACT_BOGUS" }),
            serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
                                "architectures": ["SCMP_ARCH_VAX"] }),
            serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
                                "flags": ["SECCOMP_FILTER_FLAG_BOGUS"] }),
            serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_MAYBE" }] }),
            serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_ERRNO",
                               "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_ABOUT" }] }] }),
        ] {
            assert!(
                serde_json::from_value::<LinuxSeccomp>(bad.clone()).is_err(),
                "{bad} parsed"
            );
        }

        let err = |v: serde_json::Value| {
            check(&spec(v))
                .expect_err("check accepted a bad config")
                .to_string()
        };
        let msg = err(serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_ERRNO",
                           "args": [{ "index": 6, "value": 1, "op": "SCMP_CMP_EQ" }] }] }));
        assert!(msg.contains("read") && msg.contains("index 6"), "{msg}");
        let msg = err(serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000 }] }));
        assert!(msg.contains("write") && msg.contains("70000"), "{msg}");
        let msg = err(serde_json::json!({ "defaultAction": "SCMP_ACT_ERRNO",
                                          "defaultErrnoRet": 65536 }));
        assert!(msg.contains("defaultAction"), "{msg}");
        let msg = err(serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["getppid"], "action": "SCMP_ACT_NOTIFY" }] }));
        assert!(msg.contains("listenerPath"), "{msg}");

        // What this libseccomp cannot do is named.
        let v26 =
            libseccomp::check_version(libseccomp::ScmpVersion::from((2, 6, 0))).unwrap_or(false);
        let waitkill = check(&spec(
            serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"] }),
        ));
        let loongarch = check(&spec(
            serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_LOONGARCH64"] }),
        ));
        if v26 {
            assert!(waitkill.is_ok() && loongarch.is_ok());
        } else {
            let msg = waitkill
                .expect_err("waitkill needs libseccomp 2.6")
                .to_string();
            assert!(
                msg.contains("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
                "{msg}"
            );
            let msg = loongarch
                .expect_err("loongarch needs libseccomp 2.6")
                .to_string();
            assert!(msg.contains("SCMP_ARCH_LOONGARCH64"), "{msg}");
        }

        // Syscalls of other architectures only (pseudo syscalls) are fine
        // with just the native architecture, as with runc.
        check(&spec(
            serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["chown32", "socketcall", "_llseek"],
                           "action": "SCMP_ACT_ERRNO" }] }),
        ))
        .expect("pseudo syscalls");

        // Good configs pass, including every action, op and the other flags.
        check(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                              "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "listenerPath": "/run/agent.sock",
            "syscalls": [
                { "names": ["read", "write"], "action": "SCMP_ACT_ALLOW" },
                { "names": ["getppid"], "action": "SCMP_ACT_NOTIFY" },
                { "names": ["mkdir"], "action": "SCMP_ACT_ERRNO" },
                { "names": ["ptrace"], "action": "SCMP_ACT_KILL" },
                { "names": ["kexec_load"], "action": "SCMP_ACT_KILL_THREAD" },
                { "names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS" },
                { "names": ["acct"], "action": "SCMP_ACT_TRAP" },
                { "names": ["swapon"], "action": "SCMP_ACT_TRACE", "errnoRet": 7 },
                { "names": ["swapoff"], "action": "SCMP_ACT_LOG" },
                { "names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
                    { "index": 0, "value": 2_114_060_288, "op": "SCMP_CMP_MASKED_EQ" }] },
                { "names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
                    { "index": 0, "value": 40, "op": "SCMP_CMP_NE" },
                    { "index": 1, "value": 3, "op": "SCMP_CMP_LT" },
                    { "index": 2, "value": 9, "op": "SCMP_CMP_LE" }] },
                { "names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                    { "index": 0, "value": 8, "op": "SCMP_CMP_GE" },
                    { "index": 0, "value": 131_072, "op": "SCMP_CMP_GT" }] }
            ]
        })))
        .expect("valid config");
    }

    #[test]
    fn notify_to_listener() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock_path = dir.path().join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock_path).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let s = spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock_path,
            "listenerMetadata": "barge-test",
            "syscalls": [
                { "names": ["getppid"], "action": "SCMP_ACT_NOTIFY" },
                { "names": ["barge_no_such_syscall"], "action": "SCMP_ACT_NOTIFY" }
            ]
        }));
        check(&s).expect("check");
        let fake_ppid = 4242;

        let child = fork_child(|| {
            let count_fds = || std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
            let before = count_fds();
            let fd = match load_or_exit(&s, 2) {
                Ok(Some(fd)) => fd,
                Ok(None) => return 3,
                Err(code) => return code,
            };
            // Only our fd is new: libseccomp's copy was closed.
            if count_fds() != before + 1 {
                return 4;
            }
            let pid = rustix::process::getpid().as_raw_nonzero().get();
            let state = serde_json::json!({
                "ociVersion": "1.2.0", "id": "ctr1", "status": "creating", "pid": pid,
                "bundle": "/bundle", "annotations": { "a": "b" }
            });
            let path = s.listener_path().clone().unwrap_or_default();
            let meta = s.listener_metadata().clone().unwrap_or_default();
            if let Err(e) = send_to_listener(&path, &meta, &state, pid, fd.as_fd()) {
                eprintln!("send_to_listener: {e}");
                return 5;
            }
            drop(fd);
            if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) == Some(fake_ppid) {
                OK
            } else {
                6
            }
        });

        // Accept with a deadline, so a failing child does not hang the test.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "no connection");
                    let mut status = 0;
                    // SAFETY: non-blocking check on our own child.
                    let rc = unsafe { libc::waitpid(child, &raw mut status, libc::WNOHANG) };
                    assert_eq!(rc, 0, "child exited early with status {status:#x}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("timeout");

        // Read the whole message; the fd arrives with the first bytes.
        let mut json = Vec::new();
        let mut notify_fd = None;
        loop {
            let mut buf = [0_u8; 4096];
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
            let msg = rustix::net::recvmsg(
                &stream,
                &mut [std::io::IoSliceMut::new(&mut buf)],
                &mut control,
                rustix::net::RecvFlags::CMSG_CLOEXEC,
            )
            .expect("recvmsg");
            for m in control.drain() {
                if let rustix::net::RecvAncillaryMessage::ScmRights(fds) = m {
                    for fd in fds {
                        assert!(notify_fd.replace(fd).is_none(), "more than one fd");
                    }
                }
            }
            if msg.bytes == 0 {
                break;
            }
            json.extend_from_slice(&buf[..msg.bytes]);
        }
        let notify_fd = notify_fd.expect("SCM_RIGHTS fd");
        let state: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(state["ociVersion"], "1.2.0");
        assert_eq!(state["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(state["pid"], child);
        assert_eq!(state["metadata"], "barge-test");
        assert_eq!(state["state"]["id"], "ctr1");
        assert_eq!(state["state"]["status"], "creating");
        assert_eq!(state["state"]["pid"], child);
        assert_eq!(state["state"]["bundle"], "/bundle");
        assert_eq!(state["state"]["annotations"]["a"], "b");

        // Answer the child's getppid().
        let raw = notify_fd.as_raw_fd();
        let mut pfd = libc::pollfd {
            fd: raw,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polls one valid pollfd.
        let ready = unsafe { libc::poll(&raw mut pfd, 1, 20_000) };
        assert_eq!(ready, 1, "no notification");
        let req = libseccomp::ScmpNotifReq::receive(raw).expect("receive");
        assert_eq!(req.pid, child as u32);
        assert_eq!(
            req.data.syscall,
            ScmpSyscall::from_name("getppid").expect("getppid")
        );
        libseccomp::notify_id_valid(raw, req.id).expect("id valid");
        libseccomp::ScmpNotifResp::new_val(
            req.id,
            fake_ppid.into(),
            libseccomp::ScmpNotifRespFlags::empty(),
        )
        .respond(raw)
        .expect("respond");
        assert_eq!(wait_child(child), Outcome::Exited(OK));
    }

    #[test]
    fn notify_needs_pidfd_getfd() {
        let s = spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/nonexistent.sock",
            "syscalls": [
                { "names": ["getppid"], "action": "SCMP_ACT_NOTIFY" },
                { "names": ["pidfd_getfd"], "action": "SCMP_ACT_ERRNO" }
            ]
        }));
        let out = run_in_child(|| match load(&s) {
            Err(e @ SeccompError::NotifyFdDup { .. }) if e.to_string().contains("pidfd_getfd") => {
                OK
            }
            other => {
                eprintln!("load: {other:?}");
                2
            }
        });
        assert_eq!(out, Outcome::Exited(OK));
    }

    #[test]
    fn process_state_omits_empty_metadata() {
        let v = process_state("", &serde_json::json!({ "id": "x" }), 7);
        assert_eq!(v["ociVersion"], oci_spec::runtime::VERSION);
        assert!(v.get("metadata").is_none());
        assert_eq!(v["pid"], 7);
    }
}
