//! barge-monitor: the per-container monitor (conmon's role). See
//! docs/monitor.md for the command line and the attach protocol.
//!
//! Built as a `#![no_main]` binary: the C `main` below is the entry point,
//! which skips std's runtime setup and keeps the idle resident set small.

#![cfg_attr(not(test), no_main)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod args;
mod log;
mod monitor;
mod text;

use std::ffi::OsString;
use std::os::fd::AsRawFd;

/// The C entry point. std's argument capture still works without
/// `lang_start` on glibc (it runs from `.init_array`), so the raw
/// arguments are not used.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    run()
}

#[cfg_attr(test, allow(dead_code))]
fn run() -> i32 {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Take the sync fd first so that even a bad command line is reported
    // on it; it must not leak into the runtime or the container.
    let sync =
        args::find_sync_fd(&argv).and_then(|fd| barge_sys::daemon::take_inherited_fd(fd).ok());
    if let Some(s) = &sync {
        let _ = rustix::io::fcntl_setfd(s, rustix::io::FdFlags::CLOEXEC);
    }
    let args = match args::parse(argv) {
        Ok(a) => a,
        Err(msg) => {
            monitor::stderr_line(msg.as_bytes(), 0);
            monitor::report_error(sync.as_ref(), msg.as_bytes(), -1);
            return 2;
        }
    };
    if let Err(f) = monitor::daemonize(sync.as_ref().map(AsRawFd::as_raw_fd)) {
        monitor::report_fail(sync.as_ref(), &f);
        return 1;
    }
    // From here on we are the daemon (the caller's child has exited).
    let mut m = match monitor::Monitor::new(args) {
        Ok(m) => m,
        Err(f) => {
            monitor::report_fail(sync.as_ref(), &f);
            return 1;
        }
    };
    let pid = match m.create() {
        Ok(pid) => pid,
        Err(f) => {
            m.abandon();
            monitor::report_fail(sync.as_ref(), &f);
            return 1;
        }
    };
    if let Some(s) = sync {
        let mut v = b"{\"pid\":".to_vec();
        text::push_i64(&mut v, i64::from(pid));
        v.extend_from_slice(b"}\n");
        let _ = rustix::io::write(&s, &v);
        drop(s);
    }
    let code = m.serve(pid);
    m.finish(code);
    0
}
