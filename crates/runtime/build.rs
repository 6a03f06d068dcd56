//! Builds the exec trampoline (see `trampoline/trampoline.c`): a static,
//! libc-free program of a few KiB that the runtime embeds and executes from a
//! sealed memfd.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=trampoline/trampoline.c");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"))
        .join("trampoline");
    if arch != "x86_64" {
        // Other architectures fall back to copying the whole runtime binary.
        std::fs::write(&out, b"").expect("writing the empty trampoline");
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args([
            "-Os",
            "-static",
            "-nostdlib",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-tree-loop-distribute-patterns",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-fno-pie",
            "-no-pie",
            "-Wl,--build-id=none",
            "-Wl,-n",
            "-s",
            "-o",
        ])
        .arg(&out)
        .arg("trampoline/trampoline.c")
        .status()
        .unwrap_or_else(|e| panic!("running {cc} for the exec trampoline: {e}"));
    assert!(status.success(), "building the exec trampoline failed");
}
