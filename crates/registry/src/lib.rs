//! A client for the OCI distribution specification (registry API v2).
//!
//! Blocking, built on `ureq` with rustls. Pull: manifests (OCI and Docker
//! schema 2, indexes and manifest lists with platform selection) with a size
//! cap and digest checks; blobs streamed into any `Write` with size and sha256
//! verification, retries and resumption. Push: blobs (existence check,
//! cross-repository mount, monolithic upload) and manifests. Authentication:
//! basic and bearer-token, credentials from containers `auth.json` files.
//! [`Client::pull_blobs`] downloads several blobs on threads with progress.
//! [`config`] reads registries.conf (search registries, aliases, mirrors,
//! insecure and blocked registries).
#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod config;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod reference;
pub mod testing;

pub use auth::Credentials;
pub use client::{
    BlobRequest, Client, ClientOptions, ManifestResponse, PlatformManifest, PushOutcome,
    RegistryConfig, MAX_MANIFEST_SIZE,
};
pub use config::{ConfigPaths, Endpoint, RegistriesConf, Resolution, ShortNameMode};
pub use digest::{Digest, VerifyingWriter};
pub use error::{ApiError, ApiErrors, RegistryError, Result};
pub use manifest::{Descriptor, ImageIndex, ImageManifest, Platform};
pub use reference::Reference;
