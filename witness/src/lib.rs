//! `verdict-witness`: a C2SP tlog-witness for Verdict logs (and any C2SP checkpoint log), run by
//! customers, partners and auditors so that a log cannot show them a history that differs from
//! what others see. Spec: `spec/witness.md`; user guide: `docs/witness-guide.md`.
//!
//! - [`witness`]: the checks of `add-checkpoint` and the cosigning ([`witness::Witness`]);
//! - [`state`]: durable per-origin state (temporary file, fsync, rename, directory fsync);
//! - [`protocol`]: the wire formats (request body, `409` size body, cosignature lines);
//! - [`server`]: the HTTP interface (`POST /add-checkpoint`, `GET /<origin hash>/checkpoint`);
//! - `watch` (feature `cli`): pull mode for logs that do not push: fetch `/checkpoint`, prove
//!   from tiles;
//! - [`client`]: the push client a log uses ([`client::WitnessClient::add_checkpoint`]).
//!
//! Cosignatures are C2SP tlog-cosignature `cosignature/v1` ([`verdict_core::cosignature`]).
//! Depends on `verdict-core` only, plus HTTP.
//!
//! ```
//! use verdict_core::checkpoint::Checkpoint;
//! use verdict_core::cosignature::Cosigner;
//! use verdict_core::note::Signer;
//! use verdict_core::{merkle, TreeSize};
//! use verdict_witness::{protocol::AddCheckpointRequest, state::Store, witness::Witness};
//!
//! let dir = std::env::temp_dir().join(format!("verdict-witness-doc-{}", std::process::id()));
//! let log = Signer::generate("example.com/log")?;
//! let witness = Witness::new(Cosigner::generate("witness.example")?, vec![log.verifier()], Store::open(&dir)?);
//! let cp = Checkpoint { origin: "example.com/log".into(), size: TreeSize(1),
//!                       root: merkle::leaf_hash(b"a"), extensions: vec![] };
//! let req = AddCheckpointRequest { old: TreeSize(0), proof: vec![], checkpoint: cp.sign(&log)? };
//! let cosigned = witness.add_checkpoint(&req.encode(), 1_700_000_000)?;
//! assert_eq!(cosigned.cosignatures.len(), 1);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod client;
pub mod protocol;
pub mod server;
pub mod state;
#[cfg(feature = "cli")]
pub mod watch;
pub mod witness;
