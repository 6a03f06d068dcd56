//! The device controller: v1 `devices.allow`/`devices.deny` rules, and on
//! cgroup v2 an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program compiled from the
//! OCI rules (like runc's devicefilter).

use std::ffi::CStr;
use std::os::fd::AsFd;
use std::path::Path;

use barge_sys::bpf::{self, BpfInsn};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::{util, CgroupError};

/// The name barge's device programs are loaded with; on update, attached
/// programs with this name are replaced.
pub const DEVICE_PROG_NAME: &str = "barge_dev";

const LICENSE: &CStr = c"Apache";

fn id_str(v: Option<i64>) -> String {
    match v {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    }
}

fn access_of(rule: &LinuxDeviceCgroup) -> Result<String, CgroupError> {
    let acc = rule.access().as_deref().unwrap_or("");
    if acc.chars().any(|c| !matches!(c, 'r' | 'w' | 'm')) {
        return Err(CgroupError::InvalidConfig(format!(
            "invalid device access {acc:?} (only r, w, m)"
        )));
    }
    Ok(if acc.is_empty() {
        "rwm".to_string()
    } else {
        acc.to_string()
    })
}

/// The v1 rule line ("c 1:3 rwm", "a").
pub(crate) fn v1_rule(rule: &LinuxDeviceCgroup) -> Result<String, CgroupError> {
    let typ = rule.typ().unwrap_or(LinuxDeviceType::A);
    let access = access_of(rule)?;
    Ok(match typ {
        LinuxDeviceType::A
            if rule.major().is_none_or(|m| m < 0) && rule.minor().is_none_or(|m| m < 0) =>
        {
            format!("a *:* {access}")
        }
        LinuxDeviceType::A => format!(
            "a {}:{} {access}",
            id_str(rule.major()),
            id_str(rule.minor())
        ),
        LinuxDeviceType::U => format!(
            "c {}:{} {access}",
            id_str(rule.major()),
            id_str(rule.minor())
        ),
        t => format!(
            "{} {}:{} {access}",
            t.as_str(),
            id_str(rule.major()),
            id_str(rule.minor())
        ),
    })
}

fn dev_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major((major >= 0).then_some(major));
    r.set_minor((minor >= 0).then_some(minor));
    r.set_access(Some(access.to_string()));
    r
}

/// The devices every container may use, as runc allows them (appended after
/// the spec's rules by [`crate::Cgroup::apply`]/[`crate::Cgroup::update`]):
/// mknod of any char/block device, /dev/null, zero, full, random, urandom,
/// tty, console, ptmx and /dev/pts/*.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    vec![
        dev_rule(true, C, -1, -1, "m"),
        dev_rule(true, B, -1, -1, "m"),
        dev_rule(true, C, 1, 3, "rwm"),
        dev_rule(true, C, 1, 8, "rwm"),
        dev_rule(true, C, 1, 7, "rwm"),
        dev_rule(true, C, 5, 0, "rwm"),
        dev_rule(true, C, 1, 5, "rwm"),
        dev_rule(true, C, 1, 9, "rwm"),
        dev_rule(true, C, 5, 1, "rwm"),
        dev_rule(true, C, 136, -1, "rwm"),
        dev_rule(true, C, 5, 2, "rwm"),
    ]
}

/// Allow rules for the spec's `linux.devices` (the runtime creates these
/// nodes, so the container must be able to use them). Put them into
/// `resources.devices` before calling [`crate::Cgroup::apply`], as runc does.
pub fn rules_for_devices(devices: &[oci_spec::runtime::LinuxDevice]) -> Vec<LinuxDeviceCgroup> {
    devices
        .iter()
        .filter_map(|d| {
            let typ = match d.typ() {
                LinuxDeviceType::P => return None,
                LinuxDeviceType::U => LinuxDeviceType::C,
                t => t,
            };
            Some(dev_rule(true, typ, d.major(), d.minor(), "rwm"))
        })
        .collect()
}

/// The spec's rules followed by [`default_allowed_devices`].
pub(crate) fn effective_rules(rules: &[LinuxDeviceCgroup]) -> Vec<LinuxDeviceCgroup> {
    let mut all = rules.to_vec();
    all.extend(default_allowed_devices());
    all
}

/// v1: deny everything, then replay the rules in order.
pub(crate) fn apply_v1(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    // Validate before touching anything.
    let lines: Vec<(bool, String)> = rules
        .iter()
        .filter(|r| r.typ() != Some(LinuxDeviceType::P))
        .map(|r| Ok((r.allow(), v1_rule(r)?)))
        .collect::<Result<_, CgroupError>>()?;
    util::write(dir, "devices.deny", "a")?;
    for (allow, line) in lines {
        let file = if allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        util::write(dir, file, &line)?;
    }
    Ok(())
}

// eBPF opcodes.
const LDX_MEM_W: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_K: u8 = 0xb4;
const ALU32_MOV_X: u8 = 0xbc;
const JMP_JNE_K: u8 = 0x55;
const JMP_JNE_X: u8 = 0x5d;
const JMP_EXIT: u8 = 0x95;

const DEVCG_DEV_BLOCK: i32 = 1;
const DEVCG_DEV_CHAR: i32 = 2;
const DEVCG_ACC_MKNOD: i32 = 1;
const DEVCG_ACC_READ: i32 = 2;
const DEVCG_ACC_WRITE: i32 = 4;

/// Compile OCI device rules into a cgroup device program: default deny,
/// the last matching rule wins. Registers after the prologue: R2 = device
/// type, R3 = requested access, R4 = major, R5 = minor.
pub fn compile_device_filter(rules: &[LinuxDeviceCgroup]) -> Result<Vec<BpfInsn>, CgroupError> {
    let mut prog = vec![
        BpfInsn::new(LDX_MEM_W, 2, 1, 0, 0),
        BpfInsn::new(ALU32_AND_K, 2, 0, 0, 0xffff),
        BpfInsn::new(LDX_MEM_W, 3, 1, 0, 0),
        BpfInsn::new(ALU32_RSH_K, 3, 0, 0, 16),
        BpfInsn::new(LDX_MEM_W, 4, 1, 4, 0),
        BpfInsn::new(LDX_MEM_W, 5, 1, 8, 0),
    ];
    let mut unconditional = false;
    for rule in rules.iter().rev() {
        let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEVCG_DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEVCG_DEV_CHAR),
            LinuxDeviceType::P => {
                tracing::debug!("fifo device rules have no cgroup meaning; skipped");
                continue;
            }
        };
        let mut access = 0;
        for c in access_of(rule)?.chars() {
            access |= match c {
                'r' => DEVCG_ACC_READ,
                'w' => DEVCG_ACC_WRITE,
                _ => DEVCG_ACC_MKNOD,
            };
        }
        let mut block = Vec::new();
        // Jumps get their offset once the block length is known.
        if let Some(t) = typ {
            block.push(BpfInsn::new(JMP_JNE_K, 2, 0, 0, t));
        }
        if access != DEVCG_ACC_READ | DEVCG_ACC_WRITE | DEVCG_ACC_MKNOD {
            block.push(BpfInsn::new(ALU32_MOV_X, 1, 3, 0, 0));
            block.push(BpfInsn::new(ALU32_AND_K, 1, 0, 0, access));
            block.push(BpfInsn::new(JMP_JNE_X, 1, 3, 0, 0));
        }
        if let Some(m) = rule.major().filter(|m| *m >= 0) {
            let m = i32::try_from(m)
                .map_err(|_| CgroupError::InvalidConfig(format!("device major {m} too large")))?;
            block.push(BpfInsn::new(JMP_JNE_K, 4, 0, 0, m));
        }
        if let Some(m) = rule.minor().filter(|m| *m >= 0) {
            let m = i32::try_from(m)
                .map_err(|_| CgroupError::InvalidConfig(format!("device minor {m} too large")))?;
            block.push(BpfInsn::new(JMP_JNE_K, 5, 0, 0, m));
        }
        let has_jumps = !block.is_empty();
        block.push(BpfInsn::new(ALU32_MOV_K, 0, 0, 0, i32::from(rule.allow())));
        block.push(BpfInsn::new(JMP_EXIT, 0, 0, 0, 0));
        let n = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.code == JMP_JNE_K || insn.code == JMP_JNE_X {
                insn.off = (n - 1 - i) as i16;
            }
        }
        prog.extend(block);
        if !has_jumps {
            // Matches everything: nothing after it is reachable (and the
            // verifier rejects unreachable code).
            unconditional = true;
            break;
        }
    }
    if !unconditional {
        prog.push(BpfInsn::new(ALU32_MOV_K, 0, 0, 0, 0));
        prog.push(BpfInsn::new(JMP_EXIT, 0, 0, 0, 0));
    }
    Ok(prog)
}

/// v2: load the program and attach it to `dir` (`BPF_F_ALLOW_MULTI`),
/// replacing programs previously attached by barge.
pub(crate) fn apply_v2(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let insns = compile_device_filter(rules)?;
    let bpf_err = |op: &str, source: std::io::Error| CgroupError::Bpf {
        op: op.to_string(),
        path: dir.to_path_buf(),
        source,
    };
    let prog = bpf::prog_load(
        bpf::BPF_PROG_TYPE_CGROUP_DEVICE,
        &insns,
        LICENSE,
        DEVICE_PROG_NAME,
    )
    .map_err(|e| bpf_err("loading the device filter program", e))?;
    use rustix::fs::{Mode, OFlags};
    let dirfd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CgroupError::Open {
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    let attached = bpf::prog_query(dirfd.as_fd(), bpf::BPF_CGROUP_DEVICE)
        .map_err(|e| bpf_err("querying device programs", e))?;
    let mut ours = Vec::new();
    for id in attached {
        let Ok(fd) = bpf::prog_get_fd_by_id(id) else {
            continue;
        };
        if bpf::prog_name(fd.as_fd()).is_ok_and(|n| n == DEVICE_PROG_NAME) {
            ours.push(fd);
        }
    }
    if let [old] = ours.as_slice() {
        if bpf::prog_attach(
            dirfd.as_fd(),
            prog.as_fd(),
            bpf::BPF_CGROUP_DEVICE,
            bpf::BPF_F_ALLOW_MULTI,
            Some(old.as_fd()),
        )
        .is_ok()
        {
            tracing::debug!(path = %dir.display(), "replaced device filter");
            return Ok(());
        }
    }
    bpf::prog_attach(
        dirfd.as_fd(),
        prog.as_fd(),
        bpf::BPF_CGROUP_DEVICE,
        bpf::BPF_F_ALLOW_MULTI,
        None,
    )
    .map_err(|e| bpf_err("attaching the device filter program", e))?;
    tracing::debug!(path = %dir.display(), insns = insns.len(), "attached device filter");
    for old in ours {
        bpf::prog_detach(dirfd.as_fd(), old.as_fd(), bpf::BPF_CGROUP_DEVICE)
            .map_err(|e| bpf_err("detaching the old device filter program", e))?;
    }
    Ok(())
}

/// Names of the device programs attached directly to a cgroup2 directory
/// (for tests and diagnostics).
pub fn attached_device_programs(dir: &Path) -> Result<Vec<String>, CgroupError> {
    use rustix::fs::{Mode, OFlags};
    let dirfd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CgroupError::Open {
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    let ids = bpf::prog_query(dirfd.as_fd(), bpf::BPF_CGROUP_DEVICE).map_err(|source| {
        CgroupError::Bpf {
            op: "querying device programs".into(),
            path: dir.to_path_buf(),
            source,
        }
    })?;
    Ok(ids
        .into_iter()
        .filter_map(|id| bpf::prog_get_fd_by_id(id).ok())
        .filter_map(|fd| bpf::prog_name(fd.as_fd()).ok())
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn rule(
        allow: bool,
        t: LinuxDeviceType,
        maj: Option<i64>,
        min: Option<i64>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(t)
            .access(acc);
        if let Some(m) = maj {
            b = b.major(m);
        }
        if let Some(m) = min {
            b = b.minor(m);
        }
        b.build().expect("rule")
    }

    pub(crate) fn sample_rules() -> Vec<LinuxDeviceCgroup> {
        vec![
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            rule(true, LinuxDeviceType::C, Some(136), None, "rw"),
            rule(true, LinuxDeviceType::B, Some(8), Some(0), "r"),
        ]
    }

    #[test]
    fn v1_lines() {
        let r = sample_rules();
        assert_eq!(v1_rule(&r[0]).ok().as_deref(), Some("a *:* rwm"));
        assert_eq!(v1_rule(&r[1]).ok().as_deref(), Some("c 1:3 rwm"));
        assert_eq!(v1_rule(&r[2]).ok().as_deref(), Some("c 136:* rw"));
        assert_eq!(v1_rule(&r[3]).ok().as_deref(), Some("b 8:0 r"));
        assert!(v1_rule(&rule(true, LinuxDeviceType::C, None, None, "x")).is_err());
    }

    /// Interpret the compiled program (enough of eBPF for what we emit).
    fn run(prog: &[BpfInsn], typ: u32, acc: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(acc << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[(i.off / 4) as usize]),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_K => r[dst] = i.imm as u32 as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                JMP_JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                JMP_JNE_X => {
                    if r[dst] != r[src] {
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn filter_semantics() {
        let prog = compile_device_filter(&sample_rules()).expect("compile");
        let (c, b, r, w, m) = (
            DEVCG_DEV_CHAR as u32,
            DEVCG_DEV_BLOCK as u32,
            2u32,
            4u32,
            1u32,
        );
        assert_eq!(run(&prog, c, r | w, 1, 3), 1);
        assert_eq!(run(&prog, c, m, 1, 3), 1);
        assert_eq!(run(&prog, c, r, 1, 5), 0);
        assert_eq!(run(&prog, c, r | w, 136, 7), 1);
        assert_eq!(run(&prog, c, m, 136, 7), 0);
        assert_eq!(run(&prog, b, r, 8, 0), 1);
        assert_eq!(run(&prog, b, w, 8, 0), 0);
        assert_eq!(run(&prog, b, r, 1, 3), 0);
        // Last rule wins: a later deny overrides an earlier allow.
        let mut rules = sample_rules();
        rules.push(rule(false, LinuxDeviceType::C, Some(1), Some(3), "w"));
        let prog = compile_device_filter(&rules).expect("compile");
        assert_eq!(run(&prog, c, w, 1, 3), 0);
        assert_eq!(run(&prog, c, r, 1, 3), 1);
        // Allow-all as the last rule: one unconditional block.
        let prog = compile_device_filter(&[rule(true, LinuxDeviceType::A, None, None, "rwm")])
            .expect("compile");
        assert_eq!(prog.len(), 8);
        assert_eq!(run(&prog, b, r, 9, 9), 1);
        // No rules: deny.
        let prog = compile_device_filter(&[]).expect("compile");
        assert_eq!(run(&prog, c, r, 1, 3), 0);
    }
}
