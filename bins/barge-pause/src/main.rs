//! barge-pause: the process of a pod's infra container (podman's
//! `catatonit -P`). It holds the pod's namespaces while doing nothing:
//! it waits for signals on a signalfd, reaps any child re-parented to it
//! (it is PID 1 of the pod's PID namespace when the pod shares it), and
//! exits 0 on SIGTERM or SIGINT. Every other signal is ignored.
//!
//! As PID 1 of a PID namespace a process ignores signals it has no handler
//! for; blocked signals are still queued, so blocking them and reading a
//! signalfd works without handlers.
//!
//! Built as a `#![no_main]` binary like barge-monitor; the engine binds it
//! read-only at `/pause` in an otherwise empty root. The static build
//! (`scripts/build-static.sh barge-pause`) needs nothing else; the dynamic one of
//! `cargo build` gets its loader and libraries bound too.

#![cfg_attr(not(test), no_main)]

use rustix::process::{waitpid, WaitOptions};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
const SIGCHLD: i32 = 17;

/// The C entry point (std's argument capture still works without
/// `lang_start` on glibc; no arguments are used).
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    run()
}

/// Reaps every exited child; returns when none is left to reap now.
fn reap() {
    while let Ok(Some(_)) = waitpid(None, WaitOptions::NOHANG) {}
}

#[cfg_attr(test, allow(dead_code))]
fn run() -> i32 {
    // Every signal but SIGKILL/SIGSTOP is blocked: none can end us but
    // the two we read below (and SIGKILL).
    let set = barge_sys::signal::SigSet::all();
    if barge_sys::signal::block(&set).is_err() {
        return 1;
    }
    let mut wanted = barge_sys::signal::SigSet::empty();
    for s in [SIGINT, SIGTERM, SIGCHLD] {
        wanted.add(s);
    }
    let Ok(fd) = barge_sys::signal::signalfd(&wanted) else {
        return 1;
    };
    loop {
        match barge_sys::signal::read_signal(&fd) {
            Ok(SIGCHLD) => reap(),
            Ok(SIGINT | SIGTERM) => {
                reap();
                return 0;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return 1,
        }
    }
}
