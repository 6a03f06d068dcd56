//! Subcommands for the syscall supervisor's tests and benchmark: raw
//! `mknod`/`mount`/`setxattr`, hostile arguments, a path race and the
//! round-trip benchmark.

use std::ffi::CString;
use std::time::Instant;

use super::{arg, cstr, errno, errno_name, fail, parse_int_auto, parse_num, J, R};

fn makedev(major: u64, minor: u64) -> u64 {
    // The glibc dev_t the mknod wrappers take; the raw syscall takes the
    // kernel's 32-bit new_encode_dev form, which is the same for small numbers.
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

fn result(name: &str, ret: i64) -> Vec<(&'static str, J)> {
    let e = if ret < 0 { errno() } else { 0 };
    vec![
        ("syscall", J::s(name)),
        ("ret", J::I(ret)),
        ("errno", J::I(e.into())),
        ("errno_name", J::s(errno_name(e))),
    ]
}

fn kind_bits(kind: &str) -> Result<u32, super::Fail> {
    Ok(match kind {
        "c" => libc::S_IFCHR,
        "b" => libc::S_IFBLK,
        "p" => libc::S_IFIFO,
        "f" => libc::S_IFREG,
        k => {
            return Err(fail(
                "usage",
                format!("node kind {k:?}: expected c, b, p or f"),
            ))
        }
    })
}

fn raw_mknod(path: *const libc::c_char, mode: u32, dev: u64) -> i64 {
    // SAFETY: mknod only reads the path (which may be a deliberately bad
    // pointer: the kernel or the supervisor reports EFAULT, nothing is
    // dereferenced here).
    unsafe { libc::syscall(libc::SYS_mknod, path, mode, dev) }
}

/// `syscall mknod PATH KIND MAJOR MINOR [PERM]`.
pub fn mknod(args: &[String]) -> R {
    let p = cstr(arg(args, 1, "PATH")?)?;
    let kind = kind_bits(arg(args, 2, "KIND")?)?;
    let major = parse_int_auto(args.get(3).map_or("0", String::as_str))?;
    let minor = parse_int_auto(args.get(4).map_or("0", String::as_str))?;
    let perm = args.get(5).map_or(Ok(0o666), |m| parse_int_auto(m))? as u32;
    let ret = raw_mknod(p.as_ptr(), kind | perm, makedev(major, minor));
    Ok(J::obj(result("mknod", ret)))
}

/// `syscall mount SOURCE TARGET TYPE [FLAGS] [DATA]`.
pub fn mount(args: &[String]) -> R {
    let src = cstr(arg(args, 1, "SOURCE")?)?;
    let target = cstr(arg(args, 2, "TARGET")?)?;
    let fstype = cstr(arg(args, 3, "TYPE")?)?;
    let flags = args.get(4).map_or(Ok(0), |f| parse_int_auto(f))?;
    let data = args.get(5).map(|d| cstr(d)).transpose()?;
    // SAFETY: every pointer is a valid C string (or NULL data).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount,
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags as libc::c_ulong,
            data.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
        )
    };
    Ok(J::obj(result("mount", ret)))
}

/// `syscall setxattr PATH NAME VALUE` and `syscall getxattr PATH NAME`.
pub fn xattr(args: &[String], set: bool) -> R {
    let p = cstr(arg(args, 1, "PATH")?)?;
    let name = cstr(arg(args, 2, "NAME")?)?;
    if set {
        let v = arg(args, 3, "VALUE")?;
        // SAFETY: valid C strings and a buffer of the given length.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_setxattr,
                p.as_ptr(),
                name.as_ptr(),
                v.as_ptr(),
                v.len(),
                0,
            )
        };
        return Ok(J::obj(result("setxattr", ret)));
    }
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf is writable for its length.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_lgetxattr,
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let mut v = result("getxattr", ret);
    if ret >= 0 {
        v.push((
            "value",
            J::S(String::from_utf8_lossy(&buf[..ret as usize]).into_owned()),
        ));
    }
    Ok(J::obj(v))
}

/// `hostile DIR`: calls with bad pointers and over-long arguments; every
/// one must fail with the kernel's errno, none may hang.
pub fn hostile(args: &[String]) -> R {
    let dir = arg(args, 0, "DIR")?;
    let bad = 0xdead_0000_0000_usize as *const libc::c_char;
    let chr = libc::S_IFCHR | 0o666;
    let null = makedev(1, 3);
    let mut cases: Vec<(&str, J)> = Vec::new();
    let mut case = |name: &'static str, ret: i64| {
        let e = if ret < 0 { errno() } else { 0 };
        cases.push((name, J::s(if ret < 0 { errno_name(e) } else { "OK" })));
    };
    case("mknod_null_path", raw_mknod(std::ptr::null(), chr, null));
    case("mknod_bad_path", raw_mknod(bad, chr, null));
    // A path running off the end of a mapping: the last page of a
    // 4-page map filled without NUL, the next page unmapped.
    // SAFETY: mmap/munmap of an anonymous private mapping we own.
    let (map, edge) = unsafe {
        let len = 8 * 4096;
        let m = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if m == libc::MAP_FAILED {
            return Err(fail("mmap", "cannot map"));
        }
        libc::munmap(m.cast::<u8>().add(4 * 4096).cast(), 4 * 4096);
        std::ptr::write_bytes(m.cast::<u8>(), b'a', 4 * 4096);
        (m, m.cast::<u8>().add(4 * 4096 - 100).cast::<libc::c_char>())
    };
    case("mknod_unterminated_path", raw_mknod(edge, chr, null));
    // SAFETY: `map` is the start of a mapping whose first 4 pages are
    // ours and filled with 'a': no NUL within PATH_MAX.
    case("mknod_path_too_long", raw_mknod(map.cast(), chr, null));
    let long_name = format!("{dir}/{}", "n".repeat(300));
    let long_name = CString::new(long_name).map_err(|_| fail("arg", "NUL"))?;
    case(
        "mknod_name_too_long",
        raw_mknod(long_name.as_ptr(), chr, null),
    );
    let relative = CString::new("x").map_err(|_| fail("arg", "NUL"))?;
    // SAFETY: a valid path with a dirfd that is not open.
    case("mknodat_bad_dirfd", unsafe {
        libc::syscall(libc::SYS_mknodat, 999, relative.as_ptr(), chr, null)
    });
    let target = cstr(dir)?;
    let tmpfs = cstr("tmpfs")?;
    // SAFETY: deliberately bad pointers are only passed to the kernel.
    case("mount_bad_type", unsafe {
        libc::syscall(libc::SYS_mount, tmpfs.as_ptr(), target.as_ptr(), bad, 0, 0)
    });
    // SAFETY: as above.
    case("mount_bad_target", unsafe {
        libc::syscall(libc::SYS_mount, tmpfs.as_ptr(), bad, tmpfs.as_ptr(), 0, 0)
    });
    // SAFETY: as above.
    case("mount_bad_data", unsafe {
        libc::syscall(
            libc::SYS_mount,
            tmpfs.as_ptr(),
            target.as_ptr(),
            tmpfs.as_ptr(),
            0,
            bad,
        )
    });
    // SAFETY: `map` is readable for 4 pages without NUL (data > a page).
    case("mount_data_too_long", unsafe {
        libc::syscall(
            libc::SYS_mount,
            tmpfs.as_ptr(),
            target.as_ptr(),
            tmpfs.as_ptr(),
            0,
            map,
        )
    });
    let opaque = cstr("trusted.overlay.opaque")?;
    let y = b"y";
    // SAFETY: as above.
    case("setxattr_bad_name", unsafe {
        libc::syscall(libc::SYS_setxattr, target.as_ptr(), bad, y.as_ptr(), 1, 0)
    });
    // SAFETY: as above.
    case("setxattr_bad_value", unsafe {
        libc::syscall(
            libc::SYS_setxattr,
            target.as_ptr(),
            opaque.as_ptr(),
            bad,
            1,
            0,
        )
    });
    // SAFETY: as above; the size is rejected before the value is read.
    case("setxattr_huge_value", unsafe {
        libc::syscall(
            libc::SYS_setxattr,
            target.as_ptr(),
            opaque.as_ptr(),
            y.as_ptr(),
            1usize << 30,
            0,
        )
    });
    // SAFETY: as above.
    case("setxattr_bad_path", unsafe {
        libc::syscall(libc::SYS_setxattr, bad, opaque.as_ptr(), y.as_ptr(), 1, 0)
    });
    // SAFETY: fd 999 is not open.
    case("fsetxattr_bad_fd", unsafe {
        libc::syscall(libc::SYS_fsetxattr, 999, opaque.as_ptr(), y.as_ptr(), 1, 0)
    });
    // SAFETY: unmapping what we mapped above.
    unsafe { libc::munmap(map, 4 * 4096) };
    Ok(J::obj(cases))
}

/// `race-mknod DIR ESCAPE N`: one thread keeps swapping `DIR/sub` between
/// a directory and a symlink to `ESCAPE` (a path that exists only on the
/// host) while this one creates `DIR/sub/nullN` N times. Reports how many
/// succeeded and the errnos seen.
pub fn race_mknod(args: &[String]) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = arg(args, 0, "DIR")?.to_string();
    let escape = arg(args, 1, "ESCAPE")?.to_string();
    let n: u32 = parse_num(arg(args, 2, "N")?, "N")?;
    let sub = format!("{dir}/sub");
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = Arc::clone(&stop);
        let sub = sub.clone();
        let side = format!("{dir}/sub.dir");
        let link = format!("{dir}/sub.link");
        std::thread::spawn(move || {
            let _ = std::fs::create_dir(&side);
            let _ = std::os::unix::fs::symlink(&escape, &link);
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Swap the directory and the symlink atomically (renameat2
                // RENAME_EXCHANGE would need both to exist at `sub`).
                let _ = std::fs::rename(&side, &sub);
                let _ = std::fs::rename(&sub, &side);
                let _ = std::fs::rename(&link, &sub);
                let _ = std::fs::rename(&sub, &link);
                flips += 1;
            }
            flips
        })
    };
    let mut ok = 0u64;
    let mut errs: Vec<(String, u64)> = Vec::new();
    for i in 0..n {
        let p = CString::new(format!("{sub}/null{i}")).map_err(|_| fail("arg", "NUL"))?;
        let ret = raw_mknod(p.as_ptr(), libc::S_IFCHR | 0o666, makedev(1, 3));
        if ret == 0 {
            ok += 1;
        } else {
            let name = errno_name(errno()).to_string();
            match errs.iter_mut().find(|(k, _)| *k == name) {
                Some((_, c)) => *c += 1,
                None => errs.push((name, 1)),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap_or(0);
    Ok(J::obj(vec![
        ("created", J::U(ok)),
        ("flips", J::U(flips)),
        (
            "errors",
            J::O(errs.into_iter().map(|(k, v)| (k, J::U(v))).collect()),
        ),
    ]))
}

fn pin(cpu: &str) -> Result<(), super::Fail> {
    let cpu: usize = parse_num(cpu, "CPU")?;
    // SAFETY: cpu_set_t is plain data; CPU_SET and sched_setaffinity get a
    // valid set of the size passed.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set)
    };
    if rc != 0 {
        return Err(fail(
            "sched_setaffinity",
            format!("cannot pin to CPU {cpu}"),
        ));
    }
    Ok(())
}

/// Mean and percentiles of per-call times (ns).
fn stats(mut each: Vec<u64>, total_ns: f64, n: u32) -> Vec<(&'static str, J)> {
    each.sort_unstable();
    let pct = |p: usize| each.get(each.len() * p / 100).copied().unwrap_or(0);
    vec![
        ("calls", J::U(n.into())),
        ("ns_per_call", J::F(total_ns / f64::from(n.max(1)))),
        ("p10_ns", J::U(pct(10))),
        ("p50_ns", J::U(pct(50))),
        ("p90_ns", J::U(pct(90))),
    ]
}

/// `bench-mknod KIND N [CPU]`: N calls of `mknodat(AT_FDCWD,
/// "/nonexistent/x", …)` for a block device (`refuse`: answered EPERM by
/// the supervisor from the registers, ENOENT without it) or a fifo
/// (`continue`), pinned to CPU; prints ns per call (mean, and the
/// percentiles of each call timed on its own: on a shared machine the mean
/// includes the time slices other processes got, the median does not).
pub fn bench(args: &[String]) -> R {
    let kind = arg(args, 0, "KIND")?;
    let n: u32 = parse_num(arg(args, 1, "N")?, "N")?;
    if let Some(cpu) = args.get(2) {
        pin(cpu)?;
    }
    let mode = match kind {
        "refuse" => libc::S_IFBLK | 0o600,
        "continue" => libc::S_IFIFO | 0o600,
        k => {
            return Err(fail(
                "usage",
                format!("bench kind {k:?}: expected refuse or continue"),
            ))
        }
    };
    let path = cstr("/nonexistent-barge-bench/x")?;
    let dev = makedev(8, 0);
    let call = || {
        // SAFETY: a valid path; the call fails without side effects.
        unsafe { libc::syscall(libc::SYS_mknodat, libc::AT_FDCWD, path.as_ptr(), mode, dev) }
    };
    for _ in 0..n.min(1000) {
        call();
    }
    let ret = call();
    let e = if ret < 0 { errno() } else { 0 };
    let mut each: Vec<u64> = Vec::with_capacity(n as usize);
    let t = Instant::now();
    for _ in 0..n {
        let c = Instant::now();
        call();
        each.push(c.elapsed().as_nanos() as u64);
    }
    let total = t.elapsed().as_secs_f64() * 1e9;
    let mut v = vec![("kind", J::s(kind))];
    v.extend(stats(each, total, n));
    v.push(("errno_name", J::s(errno_name(e))));
    Ok(J::obj(v))
}

/// `bench-pingpong N [CPU]`: the floor of any hand-off between two
/// processes on one CPU: a byte sent back and forth over two pipes with a
/// forked child (2 context switches and 4 syscalls per round trip).
pub fn pingpong(args: &[String]) -> R {
    let n: u32 = parse_num(arg(args, 0, "N")?, "N")?;
    if let Some(cpu) = args.get(1) {
        pin(cpu)?;
    }
    let mut there = [0i32; 2];
    let mut back = [0i32; 2];
    // SAFETY: pipe fills the two-int arrays.
    let ok = unsafe { libc::pipe(there.as_mut_ptr()) == 0 && libc::pipe(back.as_mut_ptr()) == 0 };
    if !ok {
        return Err(fail("pipe", std::io::Error::last_os_error().to_string()));
    }
    // SAFETY: barge-check is single-threaded; the child only reads, writes
    // and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: closing the child's copies of the parent's ends, so that
        // the parent closing its write end is EOF here.
        unsafe {
            libc::close(there[1]);
            libc::close(back[0]);
        }
        let mut b = 0u8;
        loop {
            // SAFETY: one byte into/from a valid buffer on our pipes.
            let r = unsafe { libc::read(there[0], (&raw mut b).cast(), 1) };
            // SAFETY: as above.
            if r != 1 || unsafe { libc::write(back[1], (&raw const b).cast(), 1) } != 1 {
                // SAFETY: leaving the forked child.
                unsafe { libc::_exit(0) };
            }
        }
    }
    let mut b = 1u8;
    let mut hop = || {
        // SAFETY: one byte to/from a valid buffer on our pipes.
        unsafe {
            libc::write(there[1], (&raw const b).cast(), 1);
            libc::read(back[0], (&raw mut b).cast(), 1);
        }
    };
    for _ in 0..n.min(1000) {
        hop();
    }
    let mut each: Vec<u64> = Vec::with_capacity(n as usize);
    let t = Instant::now();
    for _ in 0..n {
        let c = Instant::now();
        hop();
        each.push(c.elapsed().as_nanos() as u64);
    }
    let total = t.elapsed().as_secs_f64() * 1e9;
    // SAFETY: closing our write end ends the child's loop; we reap it.
    unsafe {
        libc::close(there[1]);
        let mut st = 0;
        libc::waitpid(pid, &raw mut st, 0);
    }
    let mut v = vec![("kind", J::s("pingpong"))];
    v.extend(stats(each, total, n));
    v.push(("errno_name", J::s("")));
    Ok(J::obj(v))
}
