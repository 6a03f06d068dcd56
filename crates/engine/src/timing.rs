//! `BARGE_TIMING=1` prints how long each step of an operation took, on
//! stderr: a cheap profile of the hot paths (`run --rm`, `exec`).

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Option<&'static Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    START
        .get_or_init(|| std::env::var_os("BARGE_TIMING").map(|_| Instant::now()))
        .as_ref()
}

/// Records that `step` is done.
pub fn mark(step: &str) {
    if let Some(s) = start() {
        eprintln!("[{:8.3} ms] {step}", s.elapsed().as_secs_f64() * 1e3);
    }
}
