//! Root integration suite: real containers through the runtime under test
//! (`$BARGE_RUNTIME` or target/release/barge-runtime), checked from inside
//! with the static `barge-check` binary. See docs/testing.md.

mod bad_input;
mod cgroup_v2;
mod cli;
mod devices;
mod exec;
mod harness;
mod hooks;
mod lifecycle;
mod limits;
mod mounts;
mod namespaces;
mod process;
mod regressions;
mod rootless;
mod seccomp;
mod security;
mod terminal;
