//! Writing OCI `LinuxResources` to v1 and v2 control files.

use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork, LinuxResources,
    LinuxThrottleDevice,
};

use crate::{devices, util, Cgroup, CgroupError, Mode};

pub(crate) fn apply(cg: &Cgroup, r: &LinuxResources, update: bool) -> Result<(), CgroupError> {
    if cg.mode == Mode::V2 {
        apply_v2(cg, r)
    } else {
        apply_v1(cg, r, update)
    }
}

fn need<'a>(cg: &'a Cgroup, controller: &str) -> Result<&'a Path, CgroupError> {
    cg.v1_path(controller)
        .ok_or_else(|| CgroupError::MissingController(controller.to_string()))
}

fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

// ---------------------------------------------------------------- v1 ----

fn apply_v1(cg: &Cgroup, r: &LinuxResources, update: bool) -> Result<(), CgroupError> {
    if let Some(m) = r.memory() {
        memory_v1(need(cg, "memory")?, m)?;
    }
    if let Some(c) = r.cpu() {
        cpu_v1(cg, c)?;
    }
    if let Some(p) = r.pids() {
        if let Some(v) = pids_value(p.limit()) {
            util::write(need(cg, "pids")?, "pids.max", &v)?;
        }
    }
    if let Some(b) = r.block_io() {
        blkio_v1(need(cg, "blkio")?, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        hugetlb(cg, h)?;
    }
    if let Some(d) = r.devices() {
        let _ = update;
        devices::apply_v1(need(cg, "devices")?, &devices::effective_rules(d))?;
    }
    if let Some(n) = r.network() {
        network_v1(cg, n)?;
    }
    if let Some(u) = r.unified() {
        unified_hybrid(cg, u)?;
    }
    Ok(())
}

fn memory_v1(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let has_memsw = exists(dir, "memory.memsw.limit_in_bytes");
    // runc: swap 0 means "not set"; an unlimited memory limit without a swap
    // value lifts memsw too (memsw must stay >= the memory limit).
    let swap = match (m.limit(), m.swap()) {
        (_, Some(0)) => None,
        (Some(-1), None) => Some(-1),
        (_, s) => s,
    };
    match (m.limit(), swap) {
        (limit, Some(swap)) if has_memsw => {
            // memsw must stay >= limit at every step: grow memsw first when
            // it grows (or becomes unlimited), otherwise shrink limit first.
            let cur = util::read_u64(dir, "memory.memsw.limit_in_bytes")?;
            let swap_first = swap == -1 || (swap >= 0 && swap as u64 > cur);
            if swap_first {
                util::write(dir, "memory.memsw.limit_in_bytes", &swap.to_string())?;
                if let Some(l) = limit {
                    util::write(dir, "memory.limit_in_bytes", &l.to_string())?;
                }
            } else {
                if let Some(l) = limit {
                    util::write(dir, "memory.limit_in_bytes", &l.to_string())?;
                }
                util::write(dir, "memory.memsw.limit_in_bytes", &swap.to_string())?;
            }
        }
        (limit, swap) => {
            if swap.is_some_and(|s| s != 0) {
                tracing::warn!("swap limit requested but memory.memsw.* is absent (no swap accounting); ignored");
            }
            if let Some(l) = limit {
                util::write(dir, "memory.limit_in_bytes", &l.to_string())?;
            }
        }
    }
    if let Some(res) = m.reservation() {
        util::write(dir, "memory.soft_limit_in_bytes", &res.to_string())?;
    }
    if m.kernel().is_some() {
        tracing::debug!("memory.kernel is deprecated and ignored");
    }
    if let Some(k) = m.kernel_tcp() {
        util::write(dir, "memory.kmem.tcp.limit_in_bytes", &k.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::InvalidConfig(format!(
                "memory.swappiness {s} is above 100"
            )));
        }
        util::write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        util::write(dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

fn cpu_v1(cg: &Cgroup, c: &LinuxCpu) -> Result<(), CgroupError> {
    let needs_cpu = c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.realtime_period().is_some()
        || c.realtime_runtime().is_some()
        || c.idle().is_some();
    if needs_cpu {
        let dir = need(cg, "cpu")?;
        if let Some(s) = c.shares() {
            util::write(dir, "cpu.shares", &s.to_string())?;
        }
        if let Some(p) = c.period() {
            if p != 0 {
                util::write(dir, "cpu.cfs_period_us", &p.to_string())?;
            }
        }
        if let Some(q) = c.quota() {
            if q != 0 {
                let v = if q < 0 {
                    "-1".to_string()
                } else {
                    q.to_string()
                };
                util::write(dir, "cpu.cfs_quota_us", &v)?;
            }
        }
        if let Some(b) = c.burst() {
            util::write(dir, "cpu.cfs_burst_us", &b.to_string())?;
        }
        if let Some(p) = c.realtime_period() {
            if p != 0 {
                util::write(dir, "cpu.rt_period_us", &p.to_string())?;
            }
        }
        if let Some(rt) = c.realtime_runtime() {
            if rt != 0 {
                util::write(dir, "cpu.rt_runtime_us", &rt.to_string())?;
            }
        }
        if let Some(i) = c.idle() {
            util::write(dir, "cpu.idle", &i.to_string())?;
        }
    }
    let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = c.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_some() || mems.is_some() {
        let dir = need(cg, "cpuset")?;
        if let Some(v) = cpus {
            util::write(dir, "cpuset.cpus", v)?;
        }
        if let Some(v) = mems {
            util::write(dir, "cpuset.mems", v)?;
        }
    }
    Ok(())
}

/// OCI pids limit → pids.max value (None: leave alone).
fn pids_value(limit: i64) -> Option<String> {
    match limit {
        0 => None,
        l if l < 0 => Some("max".into()),
        l => Some(l.to_string()),
    }
}

fn throttle_lines(
    dir: &Path,
    file: &str,
    devs: Option<&Vec<LinuxThrottleDevice>>,
) -> Result<(), CgroupError> {
    for d in devs.into_iter().flatten() {
        util::write(
            dir,
            file,
            &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
        )?;
    }
    Ok(())
}

fn blkio_v1(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let bfq = !exists(dir, "blkio.weight") && exists(dir, "blkio.bfq.weight");
    let (weight_file, wdev_file) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = b.weight() {
        if w != 0 {
            util::write(dir, weight_file, &w.to_string())?;
        }
    }
    if let Some(w) = b.leaf_weight() {
        if w != 0 {
            if exists(dir, "blkio.leaf_weight") {
                util::write(dir, "blkio.leaf_weight", &w.to_string())?;
            } else {
                tracing::warn!("blkio.leaf_weight is not supported by this kernel; ignored");
            }
        }
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            util::write(dir, wdev_file, &format!("{}:{} {w}", d.major(), d.minor()))?;
        }
        if let Some(w) = d.leaf_weight() {
            if exists(dir, "blkio.leaf_weight_device") {
                util::write(
                    dir,
                    "blkio.leaf_weight_device",
                    &format!("{}:{} {w}", d.major(), d.minor()),
                )?;
            } else {
                tracing::warn!("blkio.leaf_weight_device is not supported; ignored");
            }
        }
    }
    throttle_lines(
        dir,
        "blkio.throttle.read_bps_device",
        b.throttle_read_bps_device().as_ref(),
    )?;
    throttle_lines(
        dir,
        "blkio.throttle.write_bps_device",
        b.throttle_write_bps_device().as_ref(),
    )?;
    throttle_lines(
        dir,
        "blkio.throttle.read_iops_device",
        b.throttle_read_iops_device().as_ref(),
    )?;
    throttle_lines(
        dir,
        "blkio.throttle.write_iops_device",
        b.throttle_write_iops_device().as_ref(),
    )?;
    Ok(())
}

/// Hugetlb limits go to the v1 hugetlb hierarchy when there is one, else to
/// the cgroup2 node (hybrid hosts with hugetlb on cgroup2, and pure v2).
fn hugetlb(cg: &Cgroup, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    if limits.is_empty() {
        return Ok(());
    }
    if cg.mode != Mode::V2 {
        if let Some(dir) = cg.v1_path("hugetlb") {
            for l in limits {
                util::write(
                    dir,
                    &format!("hugetlb.{}.limit_in_bytes", l.page_size()),
                    &l.limit().to_string(),
                )?;
            }
            return Ok(());
        }
    }
    let dir = cg
        .unified_path()
        .filter(|d| controller_available(d, "hugetlb"))
        .ok_or_else(|| CgroupError::MissingController("hugetlb".into()))?;
    for l in limits {
        let v = if l.limit() < 0 {
            "max".to_string()
        } else {
            l.limit().to_string()
        };
        util::write(dir, &format!("hugetlb.{}.max", l.page_size()), &v)?;
        let rsvd = format!("hugetlb.{}.rsvd.max", l.page_size());
        if exists(dir, &rsvd) {
            util::write(dir, &rsvd, &v)?;
        }
    }
    Ok(())
}

fn controller_available(dir: &Path, controller: &str) -> bool {
    util::read(dir, "cgroup.controllers")
        .is_ok_and(|s| s.split_whitespace().any(|c| c == controller))
}

fn network_v1(cg: &Cgroup, n: &LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = n.class_id() {
        if let Some(dir) = cg.v1_path("net_cls") {
            util::write(dir, "net_cls.classid", &id.to_string())?;
        } else {
            tracing::warn!("net_cls controller absent; network.classID ignored");
        }
    }
    if let Some(prios) = n.priorities() {
        if let Some(dir) = cg.v1_path("net_prio") {
            for p in prios {
                util::write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        } else {
            tracing::warn!("net_prio controller absent; network.priorities ignored");
        }
    }
    Ok(())
}

/// `unified` on a v1/hybrid host: allowed only for keys whose controller
/// lives on the cgroup2 node (hybrid), an error naming the key otherwise.
fn unified_hybrid(
    cg: &Cgroup,
    u: &std::collections::HashMap<String, String>,
) -> Result<(), CgroupError> {
    let mut keys: Vec<_> = u.iter().collect();
    keys.sort();
    for (k, v) in keys {
        check_unified_key(k)?;
        let ctrl = k.split('.').next().unwrap_or_default();
        let dir = cg.unified_path().filter(|d| {
            cg.mode == Mode::Hybrid && (ctrl == "cgroup" || controller_available(d, ctrl))
        });
        let Some(dir) = dir else {
            return Err(CgroupError::Unsupported(format!(
                "unified resource {k:?} needs cgroup v2, but the {ctrl:?} controller is on cgroup v1 here"
            )));
        };
        util::write(dir, k, v)?;
    }
    Ok(())
}

fn check_unified_key(k: &str) -> Result<(), CgroupError> {
    if k.is_empty() || k.contains('/') || k.starts_with('.') || !k.contains('.') {
        return Err(CgroupError::InvalidConfig(format!(
            "invalid unified resource key {k:?}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- v2 ----

fn v2_dir(cg: &Cgroup) -> Result<&Path, CgroupError> {
    cg.unified_path()
        .ok_or_else(|| CgroupError::NoCgroupFs("no cgroup2 node".into()))
}

/// OCI cpu shares (2..262144) → cgroup2 cpu.weight (1..10000).
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// blkio weight (10..1000) → io.weight (1..10000).
pub(crate) fn blkio_weight_to_io(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
}

/// OCI swap (memory+swap) → memory.swap.max value (None: leave alone).
pub(crate) fn swap_v2(swap: i64, limit: Option<i64>) -> Result<Option<String>, CgroupError> {
    let limit = limit.unwrap_or(0);
    if swap == -1 {
        return Ok(Some("max".into()));
    }
    if swap == 0 {
        return Ok(None);
    }
    if limit <= 0 {
        return Err(CgroupError::InvalidConfig(
            "unable to set a swap limit without a memory limit".into(),
        ));
    }
    if swap < limit {
        return Err(CgroupError::InvalidConfig(format!(
            "memory+swap limit {swap} must be >= memory limit {limit}"
        )));
    }
    Ok(Some((swap - limit).to_string()))
}

fn limit_v2(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

fn apply_v2(cg: &Cgroup, r: &LinuxResources) -> Result<(), CgroupError> {
    let dir = v2_dir(cg)?;
    if let Some(m) = r.memory() {
        // Set swap before the limit so memory.max never exceeds the total.
        if let Some(swap) = m.swap() {
            let v = if m.limit() == Some(-1) && swap == 0 {
                Some("max".to_string())
            } else {
                swap_v2(swap, m.limit())?
            };
            if let Some(v) = v {
                if exists(dir, "memory.swap.max") {
                    util::write(dir, "memory.swap.max", &v)?;
                } else {
                    tracing::warn!(
                        "memory.swap.max absent (no swap accounting); swap limit ignored"
                    );
                }
            }
        }
        if let Some(l) = m.limit() {
            util::write(dir, "memory.max", &limit_v2(l))?;
        }
        if let Some(res) = m.reservation() {
            util::write(dir, "memory.low", &limit_v2(res))?;
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            tracing::debug!("kernel memory limits do not exist on cgroup v2; ignored");
        }
        if m.swappiness().is_some() {
            tracing::warn!("memory.swappiness is not supported on cgroup v2; ignored");
        }
        if m.disable_oom_killer() == Some(true) {
            tracing::warn!("disableOOMKiller is not supported on cgroup v2; ignored");
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            if s != 0 {
                util::write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
        }
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        if quota != 0 || period != 0 {
            let mut v = if quota > 0 {
                quota.to_string()
            } else {
                "max".to_string()
            };
            if period != 0 {
                v = format!("{v} {period}");
            }
            util::write(dir, "cpu.max", &v)?;
        }
        if let Some(b) = c.burst() {
            util::write(dir, "cpu.max.burst", &b.to_string())?;
        }
        if c.realtime_period().is_some_and(|v| v != 0)
            || c.realtime_runtime().is_some_and(|v| v != 0)
        {
            return Err(CgroupError::Unsupported(
                "realtime cpu scheduling (cpu.realtimeRuntime/realtimePeriod) is not supported on cgroup v2"
                    .into(),
            ));
        }
        if let Some(i) = c.idle() {
            util::write(dir, "cpu.idle", &i.to_string())?;
        }
        if let Some(v) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            util::write(dir, "cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            util::write(dir, "cpuset.mems", v)?;
        }
    }
    if let Some(p) = r.pids() {
        if let Some(v) = pids_value(p.limit()) {
            util::write(dir, "pids.max", &v)?;
        }
    }
    if let Some(b) = r.block_io() {
        io_v2(dir, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        hugetlb(cg, h)?;
    }
    if let Some(d) = r.devices() {
        devices::apply_v2(dir, &devices::effective_rules(d))?;
    }
    if r.network().is_some() {
        tracing::warn!("network (net_cls/net_prio) resources do not exist on cgroup v2; ignored");
    }
    if let Some(u) = r.unified() {
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort();
        for (k, v) in keys {
            check_unified_key(k)?;
            util::write(dir, k, v)?;
        }
    }
    Ok(())
}

fn io_v2(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let bfq = exists(dir, "io.bfq.weight");
    if let Some(w) = b.weight() {
        if w != 0 {
            if bfq {
                util::write(dir, "io.bfq.weight", &w.to_string())?;
            } else {
                util::write(dir, "io.weight", &blkio_weight_to_io(w).to_string())?;
            }
        }
    }
    if b.leaf_weight().is_some() {
        tracing::debug!("blockIO.leafWeight does not exist on cgroup v2; ignored");
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            if bfq {
                util::write(
                    dir,
                    "io.bfq.weight",
                    &format!("{}:{} {w}", d.major(), d.minor()),
                )?;
            } else {
                util::write(
                    dir,
                    "io.weight",
                    &format!("{}:{} {}", d.major(), d.minor(), blkio_weight_to_io(w)),
                )?;
            }
        }
    }
    for (key, devs) in [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ] {
        for d in devs.iter().flatten() {
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            util::write(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", d.major(), d.minor()),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10000);
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(1000), 10000);
        assert_eq!(blkio_weight_to_io(500), 4950);
        assert_eq!(
            swap_v2(-1, Some(100)).ok().flatten().as_deref(),
            Some("max")
        );
        assert_eq!(
            swap_v2(300, Some(100)).ok().flatten().as_deref(),
            Some("200")
        );
        assert!(swap_v2(50, Some(100)).is_err());
        assert!(swap_v2(50, None).is_err());
        assert_eq!(swap_v2(0, Some(100)).ok().flatten(), None);
        assert_eq!(pids_value(0), None);
        assert_eq!(pids_value(-1).as_deref(), Some("max"));
        assert_eq!(pids_value(7).as_deref(), Some("7"));
        assert!(check_unified_key("../x").is_err());
        assert!(check_unified_key("memory.high").is_ok());
    }
}
