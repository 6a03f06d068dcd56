//! Byte-level formatting without `std::fmt`: integers, JSON strings and
//! RFC 3339 timestamps. Keeping `core::fmt` out of the hot paths keeps the
//! monitor's code (and so its resident set) small.

/// Append the decimal form of `n`.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Append the decimal form of `n` (with a leading `-` when negative).
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Append `n` zero-padded to `width` digits.
fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let start = out.len();
    push_u64(out, n);
    let len = out.len() - start;
    if len < width {
        let pad = width - len;
        out.splice(start..start, std::iter::repeat_n(b'0', pad));
    }
}

/// Append `s` as the body of a JSON string (no quotes). Invalid UTF-8 is
/// replaced by U+FFFD, as Docker's json-file driver does.
pub fn push_json_escaped(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let s = String::from_utf8_lossy(s);
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 | 0x7f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
}

/// Civil date (year, month, day) of `days` since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Append `secs.nanos` since the epoch as RFC 3339 with nanoseconds in UTC:
/// `2026-12-01T02:03:04.123456789` followed by `Z` (`zulu`) or `+00:00`.
pub fn push_rfc3339(out: &mut Vec<u8>, secs: u64, nanos: u32, zulu: bool) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    push_padded(out, y as u64, 4);
    out.push(b'-');
    push_padded(out, u64::from(m), 2);
    out.push(b'-');
    push_padded(out, u64::from(d), 2);
    out.push(b'T');
    push_padded(out, rem / 3600, 2);
    out.push(b':');
    push_padded(out, rem / 60 % 60, 2);
    out.push(b':');
    push_padded(out, rem % 60, 2);
    out.push(b'.');
    push_padded(out, u64::from(nanos), 9);
    out.extend_from_slice(if zulu { b"Z" } else { b"+00:00" });
}

/// The current wall-clock time as (seconds, nanoseconds) since the epoch.
pub fn now() -> (u64, u32) {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs(), d.subsec_nanos()),
        Err(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    #[test]
    fn integers() {
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, u64::MAX);
        v.push(b' ');
        push_i64(&mut v, -137);
        v.push(b' ');
        push_i64(&mut v, i64::MIN);
        assert_eq!(s(&v), "0 18446744073709551615 -137 -9223372036854775808");
    }

    #[test]
    fn json_escaping() {
        let mut v = Vec::new();
        push_json_escaped(&mut v, b"a\"b\\c\nd\te\x01\x7f\xffz \xc3\xa9");
        assert_eq!(s(&v), "a\\\"b\\\\c\\nd\\te\\u0001\\u007f\u{fffd}z \u{e9}");
    }

    #[test]
    fn timestamps() {
        let mut v = Vec::new();
        push_rfc3339(&mut v, 0, 0, true);
        assert_eq!(s(&v), "1970-01-01T00:00:00.000000000Z");
        v.clear();
        // 2026-12-01T02:03:04Z
        push_rfc3339(&mut v, 1_796_090_584, 123_456_789, false);
        assert_eq!(s(&v), "2026-12-01T02:03:04.123456789+00:00");
        v.clear();
        // 2024-02-29T23:59:59Z (leap day)
        push_rfc3339(&mut v, 1_709_251_199, 5, true);
        assert_eq!(s(&v), "2024-02-29T23:59:59.000000005Z");
    }
}
