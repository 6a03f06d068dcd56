//! Which syscall a notification is, from its architecture and number, and
//! its arguments as typed values (pointers stay addresses in the caller).
//!
//! x86_64 hosts also see i386 and x32 callers (the engine's filters list
//! all three architectures); their pointers are 32 bits wide.

/// `AUDIT_ARCH_X86_64` (also x32, whose numbers carry [`X32_SYSCALL_BIT`]).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386`.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `AUDIT_ARCH_AARCH64`.
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
/// `__X32_SYSCALL_BIT`.
pub const X32_SYSCALL_BIT: i32 = 0x4000_0000;

/// `AT_FDCWD` as the kernel sees the (int) argument.
pub const AT_FDCWD: i32 = -100;

/// The syscall names the supervisor handles, by intercept group; the
/// engine turns them into `SCMP_ACT_NOTIFY` rules.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("mknod", &["mknod", "mknodat"]),
    ("mount", &["mount"]),
    ("setxattr", &["setxattr", "lsetxattr", "fsetxattr"]),
];

/// The syscalls of an intercept group (`mknod`, `mount`, `setxattr`).
pub fn group(name: &str) -> Option<&'static [&'static str]> {
    GROUPS.iter().find(|(g, _)| *g == name).map(|(_, s)| *s)
}

/// Which file a `*setxattr` call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrTarget {
    /// `setxattr(path, …)`: follows a final symlink.
    Path(u64),
    /// `lsetxattr(path, …)`: a final symlink itself.
    Link(u64),
    /// `fsetxattr(fd, …)`.
    Fd(i32),
}

/// A decoded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `mknod(path, mode, dev)` (dirfd `AT_FDCWD`) or `mknodat(dirfd, path, mode, dev)`.
    Mknod {
        /// The directory fd, [`AT_FDCWD`] for `mknod`.
        dirfd: i32,
        /// Address of the path.
        path: u64,
        /// File type and permission bits (`umode_t`).
        mode: u32,
        /// The device number in the kernel's `new_encode_dev` form.
        dev: u32,
    },
    /// `mount(source, target, fstype, flags, data)`.
    Mount {
        /// Address of the source (may be 0).
        source: u64,
        /// Address of the target.
        target: u64,
        /// Address of the filesystem type (may be 0).
        fstype: u64,
        /// `MS_*` flags.
        flags: u64,
        /// Address of the data string (may be 0).
        data: u64,
    },
    /// `setxattr`, `lsetxattr`, `fsetxattr`.
    Setxattr {
        /// The file.
        target: XattrTarget,
        /// Address of the name.
        name: u64,
        /// Address of the value.
        value: u64,
        /// The value's size.
        size: u64,
        /// `XATTR_CREATE` / `XATTR_REPLACE`.
        flags: i32,
    },
    /// Anything else (the number as given).
    Other(i32),
}

impl Call {
    /// The syscall's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Mknod { dirfd, .. } if *dirfd == AT_FDCWD => "mknod",
            Call::Mknod { .. } => "mknodat",
            Call::Mount { .. } => "mount",
            Call::Setxattr {
                target: XattrTarget::Path(_),
                ..
            } => "setxattr",
            Call::Setxattr {
                target: XattrTarget::Link(_),
                ..
            } => "lsetxattr",
            Call::Setxattr {
                target: XattrTarget::Fd(_),
                ..
            } => "fsetxattr",
            Call::Other(_) => "other",
        }
    }

    /// The intercept group the call belongs to.
    pub fn group(&self) -> Option<&'static str> {
        match self {
            Call::Mknod { .. } => Some("mknod"),
            Call::Mount { .. } => Some("mount"),
            Call::Setxattr { .. } => Some("setxattr"),
            Call::Other(_) => None,
        }
    }
}

#[derive(Clone, Copy)]
enum Nr {
    Mknod,
    Mknodat,
    Mount,
    Setxattr,
    Lsetxattr,
    Fsetxattr,
}

/// The table of one architecture: (number, call).
fn table(arch: u32) -> Option<(&'static [(i32, Nr)], bool)> {
    // (table, pointers are 32-bit)
    const X86_64: &[(i32, Nr)] = &[
        (133, Nr::Mknod),
        (259, Nr::Mknodat),
        (165, Nr::Mount),
        (188, Nr::Setxattr),
        (189, Nr::Lsetxattr),
        (190, Nr::Fsetxattr),
    ];
    const I386: &[(i32, Nr)] = &[
        (14, Nr::Mknod),
        (297, Nr::Mknodat),
        (21, Nr::Mount),
        (226, Nr::Setxattr),
        (227, Nr::Lsetxattr),
        (228, Nr::Fsetxattr),
    ];
    const AARCH64: &[(i32, Nr)] = &[
        (33, Nr::Mknodat),
        (40, Nr::Mount),
        (5, Nr::Setxattr),
        (6, Nr::Lsetxattr),
        (7, Nr::Fsetxattr),
    ];
    match arch {
        AUDIT_ARCH_X86_64 => Some((X86_64, false)),
        AUDIT_ARCH_I386 => Some((I386, true)),
        AUDIT_ARCH_AARCH64 => Some((AARCH64, false)),
        _ => None,
    }
}

/// Decode a notification's syscall.
pub fn decode(arch: u32, nr: i32, args: &[u64; 6]) -> Call {
    let Some((table, mut narrow)) = table(arch) else {
        return Call::Other(nr);
    };
    let mut n = nr;
    if arch == AUDIT_ARCH_X86_64 && nr & X32_SYSCALL_BIT != 0 {
        n &= !X32_SYSCALL_BIT;
        narrow = true;
    }
    let Some(&(_, which)) = table.iter().find(|(k, _)| *k == n) else {
        return Call::Other(nr);
    };
    let ptr = |v: u64| if narrow { v & 0xffff_ffff } else { v };
    let int = |v: u64| v as u32 as i32;
    let mode = |v: u64| (v as u32) & 0xffff;
    match which {
        Nr::Mknod => Call::Mknod {
            dirfd: AT_FDCWD,
            path: ptr(args[0]),
            mode: mode(args[1]),
            dev: args[2] as u32,
        },
        Nr::Mknodat => Call::Mknod {
            dirfd: int(args[0]),
            path: ptr(args[1]),
            mode: mode(args[2]),
            dev: args[3] as u32,
        },
        Nr::Mount => Call::Mount {
            source: ptr(args[0]),
            target: ptr(args[1]),
            fstype: ptr(args[2]),
            flags: ptr(args[3]),
            data: ptr(args[4]),
        },
        Nr::Setxattr | Nr::Lsetxattr | Nr::Fsetxattr => Call::Setxattr {
            target: match which {
                Nr::Setxattr => XattrTarget::Path(ptr(args[0])),
                Nr::Lsetxattr => XattrTarget::Link(ptr(args[0])),
                _ => XattrTarget::Fd(int(args[0])),
            },
            name: ptr(args[1]),
            value: ptr(args[2]),
            size: ptr(args[3]),
            flags: int(args[4]),
        },
    }
}

/// Major and minor of a device number in the kernel's `new_encode_dev`
/// form (what `mknod`'s `dev` argument carries).
pub fn decode_dev(dev: u32) -> (u32, u32) {
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_native_and_compat_numbers() {
        let a = [u64::MAX - 99, 0x7fff_0000_1000, 0o20_666, 0x103, 0, 0];
        // mknodat(AT_FDCWD, p, S_IFCHR|0666, makedev(1,3)) on x86_64
        assert_eq!(
            decode(AUDIT_ARCH_X86_64, 259, &a),
            Call::Mknod {
                dirfd: AT_FDCWD,
                path: 0x7fff_0000_1000,
                mode: 0o20_666,
                dev: 0x103
            }
        );
        // The same number through x32 narrows the pointer.
        match decode(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT + 259, &a) {
            Call::Mknod { path, .. } => assert_eq!(path, 0x1000),
            other => panic!("{other:?}"),
        }
        // i386 mknod is 14.
        assert_eq!(
            decode(
                AUDIT_ARCH_I386,
                14,
                &[0xffff_ffff_8000_0000, 0o60_600, 0x800, 0, 0, 0]
            ),
            Call::Mknod {
                dirfd: AT_FDCWD,
                path: 0x8000_0000,
                mode: 0o60_600,
                dev: 0x800
            }
        );
        assert_eq!(decode(AUDIT_ARCH_X86_64, 39, &a), Call::Other(39));
        assert_eq!(decode(0x1234, 259, &a), Call::Other(259));
        assert_eq!(
            decode(AUDIT_ARCH_X86_64, 190, &[3, 10, 20, 1, 2, 0]).name(),
            "fsetxattr"
        );
        assert_eq!(decode(AUDIT_ARCH_AARCH64, 40, &a).group(), Some("mount"));
    }

    #[test]
    fn device_numbers() {
        assert_eq!(decode_dev(0x103), (1, 3));
        assert_eq!(decode_dev(0x800), (8, 0));
        assert_eq!(decode_dev(0), (0, 0));
        // minor 256 of major 10: high minor bits live above bit 20.
        assert_eq!(decode_dev((10 << 8) | (256 << 12)), (10, 256));
        assert_eq!(group("mknod"), Some(&["mknod", "mknodat"][..]));
        assert!(group("open").is_none());
    }
}
