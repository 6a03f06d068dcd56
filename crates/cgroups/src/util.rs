//! Small helpers for reading and writing cgroup control files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::CgroupError;

/// Write `value` to `dir/file` in one write(2) (O_TRUNC like runc; cgroupfs
/// ignores it).
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    write_path(&dir.join(file), value)
}

pub(crate) fn write_path(path: &Path, value: &str) -> Result<(), CgroupError> {
    tracing::debug!(path = %path.display(), value, "cgroup write");
    let res = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    read_path(&dir.join(file))
}

pub(crate) fn read_path(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_err(path: PathBuf, content: &str, reason: &str) -> CgroupError {
    CgroupError::Parse {
        path,
        content: content.trim().to_string(),
        reason: reason.to_string(),
    }
}

/// Parse a single number; "max" reads as `u64::MAX`, negative values (v1's
/// "-1") as `u64::MAX` too.
pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    let t = s.trim();
    if t == "max" || t.starts_with('-') {
        return Ok(u64::MAX);
    }
    t.parse()
        .map_err(|_| parse_err(path.to_path_buf(), s, "not an unsigned number"))
}

pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let path = dir.join(file);
    let s = read_path(&path)?;
    parse_u64(&path, &s)
}

/// Like [`read_u64`] but a missing file reads as 0 (stats on kernels without
/// the file).
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    if dir.join(file).exists() {
        read_u64(dir, file)
    } else {
        Ok(0)
    }
}

/// Parse a flat keyed file ("key value" lines).
pub(crate) fn parse_flat_keyed(path: &Path, s: &str) -> Result<BTreeMap<String, u64>, CgroupError> {
    let mut out = BTreeMap::new();
    for line in s.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        out.insert(k.to_string(), parse_u64(path, v)?);
    }
    Ok(out)
}

pub(crate) fn read_flat_keyed(
    dir: &Path,
    file: &str,
) -> Result<BTreeMap<String, u64>, CgroupError> {
    let path = dir.join(file);
    let s = read_path(&path)?;
    parse_flat_keyed(&path, &s)
}

/// Like [`read_flat_keyed`] but a missing file gives an empty map.
pub(crate) fn read_flat_keyed_opt(
    dir: &Path,
    file: &str,
) -> Result<BTreeMap<String, u64>, CgroupError> {
    if dir.join(file).exists() {
        read_flat_keyed(dir, file)
    } else {
        Ok(BTreeMap::new())
    }
}

/// Names of the hugepage sizes this kernel supports, as cgroup file names
/// use them ("2MB", "1GB").
pub fn hugepage_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut sizes: Vec<(u64, String)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((kb, hugepage_size_name(kb)))
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, n)| n).collect()
}

/// 2048 -> "2MB", 1048576 -> "1GB", 64 -> "64KB".
pub(crate) fn hugepage_size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb & ((1 << 20) - 1) == 0 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb & ((1 << 10) - 1) == 0 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_numbers() {
        assert_eq!(hugepage_size_name(2048), "2MB");
        assert_eq!(hugepage_size_name(1_048_576), "1GB");
        assert_eq!(hugepage_size_name(64), "64KB");
        let p = Path::new("/x");
        assert_eq!(parse_u64(p, "max\n").ok(), Some(u64::MAX));
        assert_eq!(parse_u64(p, "42\n").ok(), Some(42));
        assert!(parse_u64(p, "abc").is_err());
        let m = parse_flat_keyed(p, "cache 1\nrss 2\n")
            .ok()
            .unwrap_or_default();
        assert_eq!(m.get("rss"), Some(&2));
    }
}
