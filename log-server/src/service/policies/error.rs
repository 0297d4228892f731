//! Errors of the policy registry ([`RegistryError`]; spec `spec/policy-statement.md`).

use std::path::PathBuf;

use verdict_checker::PolicyError;
use verdict_core::receipt::ReceiptError;

use crate::log::LogError;
use crate::storage::StorageError;

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A policy file could not be read.
    #[error("policy file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A policy did not compile.
    #[error("{0}")]
    Compile(#[from] PolicyError),
    /// The version is not a semantic version.
    #[error("policy version {version:?} is not a semantic version (MAJOR[.MINOR[.PATCH]][-PRE])")]
    BadVersion {
        /// The version string.
        version: String,
    },
    /// The name and version are registered with other content.
    #[error("policy {name} version {version} is already registered with other content")]
    VersionExists {
        /// Policy name.
        name: String,
        /// Version.
        version: String,
    },
    /// The version is not greater than the name's current version.
    #[error("policy {name} version {version} is not greater than the current version {current}")]
    NotNewer {
        /// Policy name.
        name: String,
        /// The version given.
        version: String,
        /// The current version.
        current: String,
    },
    /// The analysis found errors and `force` was not given.
    #[error("policy analysis found {errors} error-level finding(s) ({first}); register with force=true to record them and register anyway")]
    AnalysisErrors {
        /// Number of error-level findings.
        errors: u32,
        /// The first of them, one line.
        first: String,
    },
    /// The log refused or failed the append.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StorageError),
    /// Signing or decoding a statement failed.
    #[error("policy statement: {0}")]
    Statement(#[from] ReceiptError),
    /// A stored registration is inconsistent (text and statement disagree).
    #[error("stored policy registration {key}: {reason}")]
    Corrupt {
        /// The record key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A policy file of the policies directory could not be registered.
    #[error("policy file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
}
