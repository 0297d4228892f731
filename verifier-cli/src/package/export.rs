//! `verdict audit export`: fetch one period of a live log with the auditor token and write an
//! evidence package (spec `evidence-package.md`).
//!
//! 1. fetch and verify `/checkpoint` (log key, witness quorum with a tlog-policy);
//! 2. name the period: by time (`GET /v1/private/period`, retried until it was computed over
//!    the same tree size as the checkpoint when that matters) or by checkpoints (verified, and
//!    proven consistent with the checkpoint);
//! 3. fetch the package's tiles (spec §4.1) one at a time, writing each to disk;
//! 4. stream `GET /v1/private/records` in pages of 100,000 lines straight to `records.jsonl`;
//! 5. fetch the policy versions the entries cite or register, and proof bundles for statements
//!    before the entry range, built from the log's tiles against the package's checkpoint;
//! 6. list the files in `manifest.json` ([`write_manifest`]: the directory walked in path
//!    order, each file hashed as it is listed), run every check of `verify-package` over what
//!    was written ([`super::verify::analyze`]), write `summary.json`, then `manifest.json`
//!    again, last;
//! 7. move the directory into place (or pack the tar and move it): a failed export leaves no
//!    `--out`.
//!
//! Memory does not grow with the period (issue 16, "Scale"): one tile, one page chunk and one
//! entry bundle at a time, plus the set of policies. No list of the files written is kept:
//! the manifest is written from a walk of the directory, and the checks read it as
//! `verify-package` does.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::package::{
    canonical_json, parse_time_ms, write_manifest, write_tar, ManifestHead, PackageTiles, Period,
    FORMAT,
};
use verdict_core::proof::inclusion_proof;
use verdict_core::receipt::Receipt;
use verdict_core::statement::{entry_type, EntryType, PolicyStatement};
use verdict_core::tile::{bundle_entries, TileHashSource, TileKind, TILE_WIDTH};
use verdict_core::{Hash, LeafIndex};

use super::paths;
use super::records::RecordsClient;
use super::verify::{analyze, encode_proof, package_failure, Summary};
use crate::consistency::{check_proof, open_checkpoint, precheck, proof_from_tiles};
use crate::error::{Check, CliError};
use crate::fetch::{Fetcher, HttpTiles, MAX_CHECKPOINT_BODY};
use crate::trust::Trust;

/// Records per `GET /v1/private/records` request.
const PAGE: u64 = 100_000;
/// Attempts to get a period computed over the checkpoint's tree size.
const PERIOD_ATTEMPTS: u32 = 20;

/// How the period is named.
#[derive(Debug, Clone)]
pub enum PeriodSpec {
    /// By time: RFC 3339 `from` (inclusive) and `to` (exclusive).
    Time {
        /// Start.
        from: String,
        /// End.
        to: String,
    },
    /// By checkpoints: the start checkpoint file, and optionally the end checkpoint file.
    Checkpoints {
        /// Start checkpoint (its size is the start of the period).
        start: PathBuf,
        /// End checkpoint (its size is the end); the live checkpoint when absent.
        end: Option<PathBuf>,
    },
}

/// Export options.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Base URL of the log.
    pub log: String,
    /// The auditor token.
    pub token: String,
    /// The period.
    pub period: PeriodSpec,
    /// Output: a directory, or a tar when it ends in `.tar`.
    pub out: PathBuf,
}

/// What `export` prints.
#[derive(Debug, serde::Serialize)]
pub struct ExportReport {
    /// `exported`.
    pub result: &'static str,
    /// Where the package is.
    pub out: String,
    /// The summary written.
    pub summary: Summary,
}

impl ExportReport {
    /// One human line.
    pub fn human(&self) -> String {
        let s = &self.summary;
        format!(
            "exported {} entries [{}, {}) (tree size {}) to {}: {} receipts, {} policy statements, {} policies; every check passed",
            s.entries, s.start, s.end, s.tree_size, self.out, s.receipts, s.policy_statements, s.policies
        )
    }
}

/// An authenticated client for the auditor endpoints.
struct Private {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Private {
    async fn send(&self, path: &str) -> Result<reqwest::Response, CliError> {
        let url = format!("{}/{path}", self.base);
        let resp = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| CliError::network(&url, e))?;
        if resp.status() != reqwest::StatusCode::OK {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(CliError::network(
                &url,
                format!("status {status}: {}", body.trim()),
            ));
        }
        Ok(resp)
    }

    async fn json(&self, path: &str) -> Result<serde_json::Value, CliError> {
        let url = format!("{}/{path}", self.base);
        let resp = self.send(path).await?;
        let bytes = resp.bytes().await.map_err(|e| CliError::network(&url, e))?;
        if bytes.len() > 16 << 20 {
            return Err(CliError::network(&url, "answer too large"));
        }
        serde_json::from_slice(&bytes).map_err(|e| CliError::network(&url, e))
    }
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::input(path.display(), e)
}

/// A package being written in a temporary directory. It keeps no list of the files: the
/// manifest is written from a walk of the directory ([`write_manifest`]).
struct Writer {
    dir: PathBuf,
}

impl Writer {
    fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<(), CliError> {
        let full = self.dir.join(rel);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
        }
        std::fs::write(&full, bytes).map_err(|e| write_err(&full, e))
    }

    /// Write `manifest.json` listing every file written so far (spec §2): a walk that hashes
    /// every file, so on a blocking thread.
    async fn manifest(&self, head: &ManifestHead) -> Result<(), CliError> {
        let (dir, head) = (self.dir.clone(), head.clone());
        tokio::task::spawn_blocking(move || write_manifest(&dir, &head).map_err(package_failure))
            .await
            .map_err(|e| CliError::input("export", e))?
    }
}

/// Run an export.
///
/// # Errors
/// [`CliError::Network`] for the log; [`CliError::Failed`] when something fetched does not
/// verify; [`CliError::Input`] for local files; [`CliError::Usage`].
pub async fn run(opts: &ExportOptions, trust: &Trust) -> Result<ExportReport, CliError> {
    trust.require_log_key()?;
    trust.require_checker_key()?;
    if opts.out.exists() {
        return Err(CliError::usage(format!("{} exists", opts.out.display())));
    }
    let tar = opts.out.extension().is_some_and(|e| e == "tar");
    let parent = opts
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let name = opts
        .out
        .file_name()
        .ok_or_else(|| CliError::usage("--out has no file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let result = export_into(opts, trust, &tmp).await;
    let finish = match result {
        Ok(summary) => {
            if tar {
                let tmp_tar = parent.join(format!(".{name}.partial-{}.tar", std::process::id()));
                let packed = write_tar(&tmp, &tmp_tar)
                    .map_err(package_failure)
                    .and_then(|()| {
                        std::fs::rename(&tmp_tar, &opts.out).map_err(|e| write_err(&opts.out, e))
                    });
                let _ = std::fs::remove_file(&tmp_tar);
                let _ = std::fs::remove_dir_all(&tmp);
                packed.map(|()| summary)
            } else {
                std::fs::rename(&tmp, &opts.out)
                    .map_err(|e| write_err(&opts.out, e))
                    .map(|()| summary)
            }
        }
        Err(e) => Err(e),
    };
    if finish.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(ExportReport {
        result: "exported",
        out: opts.out.display().to_string(),
        summary: finish?,
    })
}

async fn export_into(opts: &ExportOptions, trust: &Trust, dir: &Path) -> Result<Summary, CliError> {
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    let fetcher = Fetcher::new(&opts.log)?;
    let tiles = HttpTiles::new(fetcher.clone());
    let private = Private {
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .map_err(|e| CliError::network(&opts.log, e))?,
        base: fetcher.base().to_owned(),
        token: opts.token.clone(),
    };
    let mut w = Writer {
        dir: dir.to_owned(),
    };

    // 1-2. Checkpoint and period.
    let (cp_bytes, cp, start, end, from, to) = match &opts.period {
        PeriodSpec::Time { from, to } => {
            let from_ms = time_arg("--from", from)?;
            let to_ms = time_arg("--to", to)?;
            if from_ms > to_ms {
                return Err(CliError::usage("--from is after --to"));
            }
            let from_c = canonical_time(from_ms)?;
            let to_c = canonical_time(to_ms)?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let p = private
                    .json(&format!("v1/private/period?from={from_c}&to={to_c}"))
                    .await?;
                let (ps, pe, pn) = (
                    p.get("start")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(u64::MAX),
                    p.get("end")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(u64::MAX),
                    p.get("tree_size")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(u64::MAX),
                );
                let cp_bytes = fetcher.get("checkpoint", MAX_CHECKPOINT_BODY).await?;
                let cp = open_checkpoint(&cp_bytes, trust)?.checkpoint().clone();
                let n = cp.size.0;
                // The period holds in the checkpoint's tree when it was computed over it, or
                // when both bounds fell inside the older tree (times are non-decreasing).
                if ps <= pe && pe <= pn && pn <= n && (pn == n || pe < pn) {
                    break (cp_bytes, cp, ps, pe, Some(from_c), Some(to_c));
                }
                if attempt >= PERIOD_ATTEMPTS {
                    return Err(CliError::network(
                        &opts.log,
                        "the log kept growing while its period was computed; try again",
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
        PeriodSpec::Checkpoints { start, end } => {
            let cp_bytes = fetcher.get("checkpoint", MAX_CHECKPOINT_BODY).await?;
            let cp = open_checkpoint(&cp_bytes, trust)?.checkpoint().clone();
            let start_bytes = crate::files::read_limited(start, crate::files::MAX_TEXT_FILE)?;
            let start_cp = open_checkpoint(&start_bytes, trust)?.checkpoint().clone();
            consistent(&tiles, &start_cp, &cp).await?;
            let end_size = match end {
                Some(path) => {
                    let bytes = crate::files::read_limited(path, crate::files::MAX_TEXT_FILE)?;
                    let end_cp = open_checkpoint(&bytes, trust)?.checkpoint().clone();
                    consistent(&tiles, &end_cp, &cp).await?;
                    end_cp.size.0
                }
                None => cp.size.0,
            };
            if start_cp.size.0 > end_size {
                return Err(CliError::usage(
                    "the start checkpoint is after the end checkpoint",
                ));
            }
            if start_cp.size.0 > 0 {
                w.write(paths::START_CHECKPOINT, &start_bytes)?;
                if start_cp.size.0 < cp.size.0 {
                    let proof_tiles = tiles.for_consistency(start_cp.size, cp.size).await?;
                    let proof = proof_from_tiles(&proof_tiles, &start_cp, &cp)?;
                    w.write(paths::CONSISTENCY, encode_proof(&proof).as_bytes())?;
                }
            }
            (cp_bytes, cp, start_cp.size.0, end_size, None, None)
        }
    };
    let n = cp.size.0;
    w.write(paths::CHECKPOINT, &cp_bytes)?;

    // 3. Tiles, and the policies the entries cite or register.
    let list = PackageTiles::new(start, end, n)
        .ok_or_else(|| CliError::failed(Check::Tiles, "period does not fit the tree size"))?;
    let mut wanted: BTreeSet<Hash> = BTreeSet::new();
    for tile in list.iter() {
        let bytes = tiles.fetch(tile).await?;
        if tile.kind == TileKind::Entries {
            let first = tile.index * u64::from(TILE_WIDTH);
            for (j, entry) in bundle_entries(&bytes).enumerate() {
                let entry = entry
                    .map_err(|e| CliError::failed(Check::Tiles, format!("{}: {e}", tile.path())))?;
                let index = first + j as u64;
                if !(start..end).contains(&index) {
                    continue;
                }
                match entry_type(entry) {
                    EntryType::PolicyStatement => {
                        let s =
                            PolicyStatement::verify(entry, &trust.checker_keys).map_err(|e| {
                                CliError::failed(
                                    Check::ReceiptSignature,
                                    format!("entry {index}: {e}"),
                                )
                            })?;
                        wanted.insert(s.record().policy_commitment);
                    }
                    _ => {
                        let r = Receipt::verify(entry, &trust.checker_keys)
                            .map_err(crate::verify::receipt_failure)?;
                        wanted.insert(r.statement().policy_commitment);
                    }
                }
            }
        }
        w.write(&tile.path(), &bytes)?;
    }

    // 4. Records, streamed page by page (hyper with a small read buffer: `super::records`).
    let records = RecordsClient::new(fetcher.base(), &opts.token)?;
    let records_path = dir.join(paths::RECORDS);
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&records_path).map_err(|e| write_err(&records_path, e))?,
    );
    let mut lines = 0u64;
    let mut page = start;
    while page < end {
        let page_end = end.min(page.saturating_add(PAGE));
        let path = format!("v1/private/records?start={page}&end={page_end}");
        let mut resp = records.get(&path).await?;
        let mut page_lines = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            page_lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            file.write_all(&chunk)
                .map_err(|e| write_err(&records_path, e))?;
        }
        if page_lines != page_end - page {
            return Err(CliError::network(
                &path,
                format!(
                    "{page_lines} records for {} indices (stream cut short?)",
                    page_end - page
                ),
            ));
        }
        lines += page_lines;
        page = page_end;
    }
    file.flush().map_err(|e| write_err(&records_path, e))?;
    drop(file);
    debug_assert_eq!(lines, end - start);

    // 5. Policies.
    let (a, _) = verdict_core::package::entry_range(start, end, n)
        .ok_or_else(|| CliError::failed(Check::Tiles, "period does not fit the tree size"))?;
    for c in &wanted {
        let hex = c.to_hex();
        let v = private.json(&format!("v1/private/policies/{hex}")).await?;
        let str_at = |ptr: &str| {
            v.pointer(ptr)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let field = |k: &str| str_at(&format!("/policy/{k}"));
        let k = v
            .pointer("/policy/index")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| CliError::network(&opts.log, "policy answer without an index"))?;
        let doc = serde_json::json!({
            "canonical": str_at("/canonical"),
            "commitment": hex,
            "name": field("name"),
            "salt": str_at("/salt"),
            "statement_index": k,
            "text": str_at("/source"),
            "version": field("version"),
        });
        w.write(&paths::policy(&hex), canonical_json(&doc).as_bytes())?;
        if k < a {
            let bundle = statement_bundle(&tiles, &cp, &cp_bytes, k).await?;
            w.write(&paths::policy_bundle(&hex), &bundle)?;
        }
    }

    // 6. Check everything written, then the summary and the manifest.
    let mut head = ManifestHead {
        exported_at: jiff::Timestamp::now().to_string(),
        format: FORMAT.to_owned(),
        origin: cp.origin.clone(),
        period: Period {
            start,
            end,
            from,
            to,
        },
        tree_size: n,
    };
    // A provisional summary file, so that the package is complete for the reader.
    w.write(paths::SUMMARY, b"{}")?;
    w.manifest(&head).await?;
    let pkg_dir = dir.to_owned();
    let trust_c = trust.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let pkg = verdict_core::package::Package::open(&pkg_dir).map_err(package_failure)?;
        pkg.verify_files().map_err(package_failure)?;
        analyze(&pkg, &trust_c)
    })
    .await
    .map_err(|e| CliError::input("export", e))??;
    w.write(paths::SUMMARY, &summary.to_bytes()?)?;
    head.exported_at = jiff::Timestamp::now().to_string();
    w.manifest(&head).await?;
    Ok(summary)
}

fn time_arg(flag: &str, text: &str) -> Result<i64, CliError> {
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|e| CliError::usage(format!("{flag}: not an RFC 3339 time: {e}")))?;
    Ok(ts.as_millisecond())
}

/// The canonical form of a millisecond instant (spec §2), checked to parse back.
fn canonical_time(ms: i64) -> Result<String, CliError> {
    let ts = jiff::Timestamp::from_millisecond(ms).map_err(CliError::usage)?;
    let text = ts.to_string();
    parse_time_ms(&text).map_err(CliError::usage)?;
    Ok(text)
}

/// Prove `old` consistent with `new` from the log's tiles.
async fn consistent(tiles: &HttpTiles, old: &Checkpoint, new: &Checkpoint) -> Result<(), CliError> {
    if precheck(old, new)? {
        let fetched = tiles.for_consistency(old.size, new.size).await?;
        let proof = proof_from_tiles(&fetched, old, new)?;
        check_proof(old, new, &proof)?;
    }
    Ok(())
}

/// A C2SP tlog-proof of entry `k` against the package's checkpoint, built from the log's tiles
/// (spec §6), and verified before it is written.
async fn statement_bundle(
    tiles: &HttpTiles,
    cp: &Checkpoint,
    cp_bytes: &[u8],
    k: u64,
) -> Result<Vec<u8>, CliError> {
    let size = cp.size;
    let slot = verdict_core::tile::EntrySlot::of(LeafIndex(k));
    let etile = slot
        .tile_in(size)
        .ok_or_else(|| CliError::failed(Check::Tiles, format!("statement {k} beyond the tree")))?;
    let bundle = tiles.fetch(etile).await?;
    let entry = verdict_core::tile::bundle_entry(&bundle, slot.position)
        .map_err(|e| CliError::failed(Check::Tiles, format!("{}: {e}", etile.path())))?
        .to_vec();
    let fetched = tiles.for_inclusion(LeafIndex(k), size).await?;
    let source = TileHashSource::new(&fetched, size);
    let proof = inclusion_proof(&source, LeafIndex(k), size)
        .map_err(|e| CliError::failed(Check::Inclusion, e))?;
    let pb = ProofBundle {
        extra: Some(entry),
        index: LeafIndex(k),
        proof,
        checkpoint: cp_bytes.to_vec(),
    };
    Ok(pb.encode())
}
