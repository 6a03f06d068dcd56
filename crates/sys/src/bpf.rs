//! bpf(2) wrappers for the cgroup v2 device controller (filled in by the
//! cgroups work).
