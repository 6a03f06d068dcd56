//! A real pseudo-terminal for `exec -it`, `run -it` and `attach`: the test
//! holds the master, the `barge` process gets the slave as its stdin,
//! stdout, stderr and controlling terminal.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Pty {
    master: OwnedFd,
    out: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub child: Child,
}

impl Pty {
    /// Spawns `cmd` on a new pty (its own session, the slave as the
    /// controlling terminal), 24x80.
    pub fn spawn(mut cmd: Command) -> Pty {
        let mut master = -1;
        let mut slave = -1;
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: out pointers are valid; name and termios may be null.
        let r = unsafe {
            libc::openpty(
                &raw mut master,
                &raw mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &raw const ws,
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty returned two fresh fds we now own.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        for fd in [&master, &slave] {
            // SAFETY: plain fcntl on an fd we own.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        cmd.stdin(slave.try_clone().expect("dup"));
        cmd.stdout(slave.try_clone().expect("dup"));
        cmd.stderr(slave.try_clone().expect("dup"));
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        drop(cmd);
        drop(slave);
        let out = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let fd = master.as_raw_fd();
        let (o, s) = (out.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::SeqCst) {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: p is a valid pollfd.
                let r = unsafe { libc::poll(&raw mut p, 1, 100) };
                if r <= 0 {
                    continue;
                }
                // SAFETY: buf is writable for its length; fd stays open
                // until this thread is joined.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    // EIO: every slave fd is closed.
                    break;
                }
                o.lock().unwrap().extend_from_slice(&buf[..n as usize]);
            }
        });
        Pty {
            master,
            out,
            stop,
            reader: Some(reader),
            child,
        }
    }

    /// Writes `s` to the terminal (as if typed).
    pub fn send(&self, s: &[u8]) {
        let mut off = 0;
        while off < s.len() {
            // SAFETY: the slice is valid for its length.
            let n = unsafe {
                libc::write(
                    self.master.as_raw_fd(),
                    s[off..].as_ptr().cast(),
                    s.len() - off,
                )
            };
            assert!(n > 0, "write to pty: {}", std::io::Error::last_os_error());
            off += n as usize;
        }
    }

    /// Everything read from the terminal so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits until the output contains `needle`.
    #[track_caller]
    pub fn expect(&self, needle: &str, timeout: Duration) {
        let ok = barge_integration::wait_until(timeout, || self.output().contains(needle));
        assert!(
            ok,
            "pty output never showed {needle:?}: {:?}",
            self.output()
        );
    }

    /// Waits for the child; its exit code (128+N on signal N), or None on
    /// timeout (the child is then killed).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
