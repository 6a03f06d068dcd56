//! Resource usage, serialized like runc's `events --stats` `data` object.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::{util, Cgroup, CgroupError, Mode};

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// CPU time used.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct CpuUsage {
    /// Total CPU time, ns.
    pub total: u64,
    /// Per-CPU time, ns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Per-CPU kernel time, ns.
    #[serde(rename = "percpu_kernel", skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// Per-CPU user time, ns.
    #[serde(rename = "percpu_user", skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Kernel-mode time, ns.
    pub kernel: u64,
    /// User-mode time, ns.
    pub user: u64,
}

/// CFS throttling.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct Throttling {
    /// Enforcement periods.
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(rename = "throttledPeriods")]
    pub throttled_periods: u64,
    /// Total throttled time, ns.
    #[serde(rename = "throttledTime")]
    pub throttled_time: u64,
}

/// CPU statistics.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct CpuStats {
    /// Usage.
    pub usage: CpuUsage,
    /// Throttling.
    pub throttling: Throttling,
}

/// One memory counter set (usage, swap, kernel).
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryEntry {
    /// Limit in bytes (u64::MAX-ish when unlimited).
    pub limit: u64,
    /// Current usage in bytes.
    pub usage: u64,
    /// Peak usage in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Memory statistics.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryStats {
    /// Page cache bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory usage.
    pub usage: MemoryEntry,
    /// Memory+swap (v1 memsw; v2 swap + memory).
    pub swap: MemoryEntry,
    /// Kernel memory (v1 only).
    pub kernel: MemoryEntry,
    /// Kernel TCP memory (v1 only).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat as is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Process counts.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct PidsStats {
    /// Processes now.
    pub current: u64,
    /// pids.max (0 = unlimited).
    pub limit: u64,
}

/// One blkio counter.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct BlkioEntry {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// "Read", "Write", ...
    pub op: String,
    /// Value.
    pub value: u64,
}

/// Block I/O statistics.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct BlkioStats {
    /// Bytes transferred.
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// Operations.
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// Per-page-size hugetlb usage.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct HugetlbStats {
    /// Bytes in use.
    pub usage: u64,
    /// Peak (v1 only).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Allocation failures.
    pub failcnt: u64,
}

/// All statistics of a container's cgroup.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// CPU.
    pub cpu: CpuStats,
    /// Memory.
    pub memory: MemoryStats,
    /// Pids.
    pub pids: PidsStats,
    /// Block I/O.
    pub blkio: BlkioStats,
    /// Hugetlb by page size ("2MB").
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

pub(crate) fn collect(cg: &Cgroup) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    if cg.mode == Mode::V2 {
        if let Some(dir) = cg.unified_path() {
            v2(dir, &mut s)?;
        }
    } else {
        v1(cg, &mut s)?;
    }
    hugetlb(cg, &mut s)?;
    Ok(s)
}

fn entry_v1(dir: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    if !dir.join(format!("{prefix}.usage_in_bytes")).exists() {
        return Ok(MemoryEntry::default());
    }
    Ok(MemoryEntry {
        limit: util::read_u64(dir, &format!("{prefix}.limit_in_bytes"))?,
        usage: util::read_u64(dir, &format!("{prefix}.usage_in_bytes"))?,
        max: util::read_u64_opt(dir, &format!("{prefix}.max_usage_in_bytes"))?,
        failcnt: util::read_u64_opt(dir, &format!("{prefix}.failcnt"))?,
    })
}

fn v1(cg: &Cgroup, s: &mut Stats) -> Result<(), CgroupError> {
    if let Some(dir) = cg.v1_path("cpuacct") {
        s.cpu.usage.total = util::read_u64_opt(dir, "cpuacct.usage")?;
        if dir.join("cpuacct.usage_percpu").exists() {
            let path = dir.join("cpuacct.usage_percpu");
            let text = util::read_path(&path)?;
            s.cpu.usage.percpu = text
                .split_whitespace()
                .map(|v| util::parse_u64(&path, v))
                .collect::<Result<_, _>>()?;
        }
        let st = util::read_flat_keyed_opt(dir, "cpuacct.stat")?;
        let tick_ns = 1_000_000_000 / rustix::param::clock_ticks_per_second().max(1);
        s.cpu.usage.user = st.get("user").copied().unwrap_or(0) * tick_ns;
        s.cpu.usage.kernel = st.get("system").copied().unwrap_or(0) * tick_ns;
    }
    if let Some(dir) = cg.v1_path("cpu") {
        let st = util::read_flat_keyed_opt(dir, "cpu.stat")?;
        s.cpu.throttling = Throttling {
            periods: st.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: st.get("throttled_time").copied().unwrap_or(0),
        };
    }
    if let Some(dir) = cg.v1_path("memory") {
        s.memory.raw = util::read_flat_keyed_opt(dir, "memory.stat")?;
        s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
        s.memory.usage = entry_v1(dir, "memory")?;
        s.memory.swap = entry_v1(dir, "memory.memsw")?;
        s.memory.kernel = entry_v1(dir, "memory.kmem")?;
        s.memory.kernel_tcp = entry_v1(dir, "memory.kmem.tcp")?;
    }
    if let Some(dir) = cg.v1_path("pids") {
        s.pids = pids(dir)?;
    }
    if let Some(dir) = cg.v1_path("blkio") {
        let (bytes, ios) = if dir.join("blkio.io_service_bytes_recursive").exists()
            && has_data(dir, "blkio.io_service_bytes_recursive")
        {
            (
                "blkio.io_service_bytes_recursive",
                "blkio.io_serviced_recursive",
            )
        } else {
            (
                "blkio.throttle.io_service_bytes_recursive",
                "blkio.throttle.io_serviced_recursive",
            )
        };
        s.blkio.io_service_bytes_recursive = blkio_v1_file(dir, bytes)?;
        s.blkio.io_serviced_recursive = blkio_v1_file(dir, ios)?;
    }
    Ok(())
}

fn has_data(dir: &Path, file: &str) -> bool {
    util::read(dir, file).is_ok_and(|t| t.lines().any(|l| l.contains(':')))
}

fn parse_dev(path: &Path, dev: &str) -> Result<(u64, u64), CgroupError> {
    let (a, b) = dev.split_once(':').ok_or_else(|| CgroupError::Parse {
        path: path.to_path_buf(),
        content: dev.to_string(),
        reason: "expected major:minor".into(),
    })?;
    Ok((util::parse_u64(path, a)?, util::parse_u64(path, b)?))
}

/// "8:0 Read 123" lines (the trailing "Total N" line is skipped).
pub(crate) fn parse_blkio_v1(path: &Path, text: &str) -> Result<Vec<BlkioEntry>, CgroupError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let (major, minor) = parse_dev(path, f[0])?;
        out.push(BlkioEntry {
            major,
            minor,
            op: f[1].to_string(),
            value: util::parse_u64(path, f[2])?,
        });
    }
    Ok(out)
}

fn blkio_v1_file(dir: &Path, file: &str) -> Result<Vec<BlkioEntry>, CgroupError> {
    let path = dir.join(file);
    if !path.exists() {
        return Ok(Vec::new());
    }
    parse_blkio_v1(&path, &util::read_path(&path)?)
}

fn pids(dir: &Path) -> Result<PidsStats, CgroupError> {
    let limit = util::read_u64_opt(dir, "pids.max")?;
    Ok(PidsStats {
        current: util::read_u64_opt(dir, "pids.current")?,
        limit: if limit == u64::MAX { 0 } else { limit },
    })
}

/// io.stat "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." → bytes and ios entries.
pub(crate) fn parse_io_stat(
    path: &Path,
    text: &str,
) -> Result<(Vec<BlkioEntry>, Vec<BlkioEntry>), CgroupError> {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(dev) = f.next() else { continue };
        let (major, minor) = parse_dev(path, dev)?;
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value: util::parse_u64(path, v)?,
            });
        }
    }
    Ok((bytes, ios))
}

fn v2(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    let cpu = util::read_flat_keyed_opt(dir, "cpu.stat")?;
    let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = g("usage_usec") * 1000;
    s.cpu.usage.user = g("user_usec") * 1000;
    s.cpu.usage.kernel = g("system_usec") * 1000;
    s.cpu.throttling = Throttling {
        periods: g("nr_periods"),
        throttled_periods: g("nr_throttled"),
        throttled_time: g("throttled_usec") * 1000,
    };
    if dir.join("memory.current").exists() {
        s.memory.raw = util::read_flat_keyed_opt(dir, "memory.stat")?;
        s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
        let events = util::read_flat_keyed_opt(dir, "memory.events")?;
        s.memory.usage = MemoryEntry {
            limit: util::read_u64(dir, "memory.max")?,
            usage: util::read_u64(dir, "memory.current")?,
            max: util::read_u64_opt(dir, "memory.peak")?,
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        if dir.join("memory.swap.current").exists() {
            let swap_max = util::read_u64(dir, "memory.swap.max")?;
            s.memory.swap = MemoryEntry {
                limit: swap_max.saturating_add(s.memory.usage.limit),
                usage: util::read_u64(dir, "memory.swap.current")?
                    .saturating_add(s.memory.usage.usage),
                max: util::read_u64_opt(dir, "memory.swap.peak")?,
                failcnt: util::read_flat_keyed_opt(dir, "memory.swap.events")?
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            };
        }
    }
    s.pids = pids(dir)?;
    if dir.join("io.stat").exists() {
        let path = dir.join("io.stat");
        let (b, i) = parse_io_stat(&path, &util::read_path(&path)?)?;
        s.blkio.io_service_bytes_recursive = b;
        s.blkio.io_serviced_recursive = i;
    }
    Ok(())
}

fn hugetlb(cg: &Cgroup, s: &mut Stats) -> Result<(), CgroupError> {
    let sizes = util::hugepage_sizes();
    if cg.mode != Mode::V2 {
        if let Some(dir) = cg.v1_path("hugetlb") {
            for size in sizes {
                let p = format!("hugetlb.{size}");
                if !dir.join(format!("{p}.usage_in_bytes")).exists() {
                    continue;
                }
                s.hugetlb.insert(
                    size,
                    HugetlbStats {
                        usage: util::read_u64(dir, &format!("{p}.usage_in_bytes"))?,
                        max: util::read_u64_opt(dir, &format!("{p}.max_usage_in_bytes"))?,
                        failcnt: util::read_u64_opt(dir, &format!("{p}.failcnt"))?,
                    },
                );
            }
            return Ok(());
        }
    }
    let Some(dir) = cg.unified_path() else {
        return Ok(());
    };
    for size in sizes {
        let p = format!("hugetlb.{size}");
        if !dir.join(format!("{p}.current")).exists() {
            continue;
        }
        s.hugetlb.insert(
            size,
            HugetlbStats {
                usage: util::read_u64(dir, &format!("{p}.current"))?,
                max: 0,
                failcnt: util::read_flat_keyed_opt(dir, &format!("{p}.events"))?
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_blkio_and_io_stat() {
        let p = Path::new("/x");
        let e = parse_blkio_v1(p, "8:0 Read 10\n8:0 Write 20\nTotal 30\n").expect("parse");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].op, "Write");
        assert_eq!(e[1].value, 20);
        let (b, i) =
            parse_io_stat(p, "259:0 rbytes=5 wbytes=6 rios=1 wios=2 dbytes=0\n").expect("parse");
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].major, b[0].minor, b[0].value), (259, 0, 5));
        assert_eq!(i[1].value, 2);
    }

    #[test]
    fn json_shape() {
        let v = serde_json::to_value(Stats::default()).expect("json");
        assert!(v["cpu"]["usage"]["total"].is_number());
        assert!(v["cpu"]["throttling"]["throttledPeriods"].is_number());
        assert!(v["memory"]["usage"]["failcnt"].is_number());
        assert!(v["memory"]["swap"]["limit"].is_number());
        assert!(v["pids"]["current"].is_number());
        assert!(v["blkio"].is_object());
        assert!(v["hugetlb"].is_object());
    }
}
