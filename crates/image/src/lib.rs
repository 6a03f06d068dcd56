//! barge's local image store.
//!
//! * [`store`]: content-addressed blobs (sha256 verified on write and on
//!   use), image names, unpacked layers, `check` and `gc`, flock-based locking.
//! * [`layer`]: safe layer unpacking (tar, gzip, zstd) into overlayfs format.
//! * [`oci_layout`]: OCI image layout import/export and [`snapshot`], the
//!   ordered overlay lowerdirs of an image.
#![forbid(unsafe_code)]

pub mod digest;
pub mod layer;
pub mod oci_layout;
pub mod store;

pub use digest::Digest;
pub use layer::{LayerError, UnpackOptions};
pub use oci_layout::{commit_image, snapshot, LayoutError};
pub use store::{Store, StoreError};
