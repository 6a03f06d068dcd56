//! barge's local image store.
//!
//! * [`store`]: content-addressed blobs (sha256 verified on write and on
//!   use), image names, unpacked layers, `check` and `gc`, flock-based locking.
//! * [`layer`]: safe layer unpacking (tar, gzip, zstd) into overlayfs format.
//! * [`oci_layout`]: OCI image layout import/export and [`snapshot`], the
//!   ordered overlay lowerdirs of an image.
//! * [`docker_archive`]: `docker save` archives (export, import) and
//!   archive kind detection (plain, gzip or zstd tarballs).
//! * [`commit`]: a new image from one layer on top of an image (or none)
//!   with Dockerfile-style config changes (`barge import`, `barge commit`).
//! * [`diff`]: deterministic tars of directory trees and overlayfs upper
//!   dirs as OCI layers and `A`/`C`/`D` change lists.
#![forbid(unsafe_code)]

pub mod commit;
pub mod diff;
pub mod digest;
pub mod docker_archive;
pub mod layer;
pub mod oci_layout;
pub mod store;

pub use digest::Digest;
pub use layer::{in_user_namespace, LayerError, UnpackOptions};
pub use oci_layout::{commit_image, snapshot, LayoutError};
pub use store::{Store, StoreError};
