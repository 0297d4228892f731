//! `verdict`: verify Verdict receipts, proof bundles, checkpoints and whole logs.
//!
//! Exit codes: 0 valid, 1 verification failed (for `audit` also incomplete: some sampled entries
//! could not be checked), 2 usage, input or network error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use verdict_core::bundle::MAX_BUNDLE_SIZE;
use verdict_core::receipt::Salt;
use verdict_verifier::audit::{self, AuditOptions};
use verdict_verifier::consistency::{
    check_proof, open_checkpoint, parse_proof, precheck, proof_from_tiles, ConsistencyReport,
};
use verdict_verifier::error::{CliError, EXIT_VALID};
use verdict_verifier::fetch::{Fetcher, HttpTiles};
use verdict_verifier::files::{
    read_bounded, read_limited, Bounded, MAX_ACTION_FILE, MAX_TEXT_FILE,
};
use verdict_verifier::inspect::{inspect, NOT_VERIFIED};
use verdict_verifier::trust::Trust;
use verdict_verifier::verify::{verify_bundle, ActionClaim};

const EXIT_CODES: &str = "EXIT CODES:\n  0  valid: every check passed\n  1  verification failed: the output names the failed check;\n     audit: also \"incomplete\", some sampled entries could not be checked (listed)\n  2  usage, input or network error: nothing was verified";

/// Independent verification of Verdict decision receipts and transparency-log proofs.
#[derive(Parser, Debug)]
#[command(name = "verdict", version, after_help = EXIT_CODES)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of one human line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Trusted keys.
#[derive(Args, Debug)]
struct KeyArgs {
    /// Trusted log verifier key (`<name>+<hex id>+<base64>`); repeatable.
    #[arg(long = "log-key", value_name = "VKEY")]
    log_keys: Vec<String>,
    /// C2SP tlog-policy file (`log`, `witness`, `group`, `quorum` lines; Verdict extension
    /// `checker <vkey>`). Its witness quorum is enforced: every checkpoint must carry valid
    /// cosignatures (C2SP tlog-cosignature) from enough listed witnesses, or the check fails.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing a clap subcommand buys nothing"
)]
enum Command {
    /// Verify a proof bundle offline: checkpoint signature, inclusion, receipt signature and,
    /// optionally, the action commitment. Never touches the network.
    #[command(after_help = EXIT_CODES)]
    Verify {
        /// The proof bundle (c2sp.org/tlog-proof@v1 file).
        bundle: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        /// Trusted checker (receipt signing) key; repeatable; at least one is required.
        #[arg(long = "checker-key", value_name = "VKEY")]
        checker_keys: Vec<String>,
        /// File with the exact canonical action bytes, as returned by the check response or the
        /// private store (JSON, sorted keys, no whitespace).
        #[arg(long, value_name = "FILE", requires = "salt")]
        action: Option<PathBuf>,
        /// The action's 32-byte commitment salt, 64 hex digits.
        #[arg(long, value_name = "HEX", requires = "action")]
        salt: Option<String>,
        /// The request id the check was sent with: the receipt publishes only its commitment
        /// under the salt (spec `receipt.md` §7.1); fails check `request_id` (exit 1) otherwise.
        #[arg(long = "request-id", value_name = "ID", requires = "salt")]
        request_id: Option<String>,
        /// Pin the policy: the receipt must be made under this policy commitment (64 hex
        /// digits); repeatable (any of them); fails check `policy_commitment` (exit 1) otherwise.
        #[arg(long = "policy-commitment", value_name = "HEX")]
        policy_commitments: Vec<String>,
        /// A rule disclosure (`GET /v1/private/disclosure/{index}?rule=i`) of this bundle's
        /// receipt: also check it offline (spec `disclosure.md` §4); fails check `disclosure`.
        #[arg(long, value_name = "FILE")]
        disclosure: Option<PathBuf>,
    },
    /// Prove that NEW extends OLD (both signed checkpoint files).
    #[command(after_help = EXIT_CODES)]
    Consistency {
        /// The older signed checkpoint.
        old: PathBuf,
        /// The newer signed checkpoint.
        new: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        /// Proof file: base64 hashes one per line, or JSON `{"proof": [...]}`.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "log",
            required_unless_present = "log"
        )]
        proof: Option<PathBuf>,
        /// Compute the proof from this log's tiles instead (the proof is still verified here).
        #[arg(long, value_name = "URL")]
        log: Option<String>,
    },
    /// Audit a live log: verify its checkpoint, prove consistency with the last one verified,
    /// and verify a reproducible sample (or all) of its entries from its tiles. `audit export`
    /// and `audit verify-package` handle evidence packages.
    #[command(
        after_help = EXIT_CODES,
        subcommand_negates_reqs = true,
        args_conflicts_with_subcommands = true
    )]
    Audit {
        /// Evidence packages (spec evidence-package.md).
        #[command(subcommand)]
        package: Option<PackageCommand>,
        /// Base URL of the log, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL", required = true)]
        log: Option<String>,
        #[command(flatten)]
        keys: KeyArgs,
        /// Trusted checker key; repeatable; at least one is required.
        #[arg(long = "checker-key", value_name = "VKEY")]
        checker_keys: Vec<String>,
        /// A signed checkpoint already held: prove consistency with it and sample only entries
        /// appended after it.
        #[arg(long, value_name = "CHECKPOINT")]
        since: Option<PathBuf>,
        /// A signed checkpoint that pins the end of the audited period: entries are sampled
        /// below its size and proven against its root; the live checkpoint must extend it.
        #[arg(long, value_name = "CHECKPOINT")]
        until: Option<PathBuf>,
        /// Number of entries to sample (at least 1).
        #[arg(
            long,
            value_name = "N",
            required_unless_present = "full",
            conflicts_with = "full"
        )]
        sample: Option<u64>,
        /// Sampling seed (any text); random and reported when absent.
        #[arg(long, value_name = "S")]
        seed: Option<String>,
        /// Directory keeping the last verified checkpoint; a rollback or fork against it fails.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Download every tile and entry and recompute the root.
        #[arg(long)]
        full: bool,
    },
    /// List the policy registration history of a log and prove each registration: inclusion
    /// in a checkpoint signed by the log key, a policy statement signed by a checker key,
    /// matching what the server claims (spec policy-statement.md).
    #[command(after_help = EXIT_CODES)]
    Policies {
        /// Base URL of the log, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        log: String,
        #[command(flatten)]
        keys: KeyArgs,
        /// Trusted checker key; repeatable; at least one is required.
        #[arg(long = "checker-key", value_name = "VKEY")]
        checker_keys: Vec<String>,
    },
    /// Decode and print a proof bundle or receipt WITHOUT verifying it.
    #[command(after_help = "Exit codes: 0 decoded, 2 not decodable. Nothing is verified.")]
    Inspect {
        /// A proof bundle, or a receipt (binary COSE_Sign1 or base64).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let outcome = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(cli.command)),
        Err(e) => Err(CliError::input("tokio runtime", e)),
    };
    match outcome {
        Ok(out) => {
            if json {
                emit(&format!("{}\n", out.json));
            } else {
                emit(&out.human);
            }
            ExitCode::from(out.code)
        }
        Err(e) => {
            if json {
                emit(&format!("{}\n", e.to_json()));
            } else if matches!(e, CliError::Failed { .. }) {
                emit(&format!("{}\n", e.human()));
            } else {
                eprintln!("{}", e.human());
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// Write the result to stdout. A closed pipe (`verdict ... | head`) is not an error of the
/// verification: the exit code still says valid or failed, so write errors are ignored rather
/// than panicking as `println!` would.
/// `verdict audit export` and `verdict audit verify-package` (spec evidence-package.md).
#[derive(Subcommand, Debug)]
enum PackageCommand {
    /// Export one period of a live log as an evidence package (auditor token): a directory, or
    /// a tar when --out ends in .tar. Everything fetched is verified; the package is written
    /// atomically.
    #[command(after_help = EXIT_CODES)]
    Export {
        /// Base URL of the log.
        #[arg(long, value_name = "URL")]
        log: String,
        /// File holding the auditor token.
        #[arg(long = "token-file", value_name = "FILE")]
        token_file: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        /// Trusted checker key; repeatable; at least one is required.
        #[arg(long = "checker-key", value_name = "VKEY")]
        checker_keys: Vec<String>,
        /// Start of the period (RFC 3339, inclusive).
        #[arg(long, value_name = "TIME", requires = "to", conflicts_with_all = ["start_checkpoint", "since"])]
        from: Option<String>,
        /// End of the period (RFC 3339, exclusive).
        #[arg(long, value_name = "TIME", requires = "from")]
        to: Option<String>,
        /// A signed checkpoint that starts the period (e.g. the previous package's checkpoint).
        #[arg(
            long = "start-checkpoint",
            value_name = "FILE",
            conflicts_with = "since"
        )]
        start_checkpoint: Option<PathBuf>,
        /// Same as --start-checkpoint.
        #[arg(long, value_name = "FILE")]
        since: Option<PathBuf>,
        /// A signed checkpoint that ends the period (default: the live checkpoint).
        #[arg(long = "end-checkpoint", value_name = "FILE")]
        end_checkpoint: Option<PathBuf>,
        /// Output directory, or a .tar file.
        #[arg(long, value_name = "DIR|X.tar")]
        out: PathBuf,
    },
    /// Verify an evidence package offline (directory or .tar): manifest, checkpoint signature
    /// and witness quorum, consistency, the root recomputed from its tiles, every receipt,
    /// statement and approval signature, commitments, entry times and records.
    #[command(name = "verify-package", after_help = EXIT_CODES)]
    VerifyPackage {
        /// The package: a directory or a .tar file.
        package: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        /// Trusted checker key; repeatable; at least one is required.
        #[arg(long = "checker-key", value_name = "VKEY")]
        checker_keys: Vec<String>,
    },
    /// Write one self-contained HTML report of an evidence package (directory or `.tar`):
    /// period, checkpoint, verification, decisions per day, rules, escalations, screening,
    /// drift, policy versions, and the ISO/IEC 42001 / EU AI Act mapping. Inline CSS and SVG, no
    /// script, no network fetch.
    #[command(
        after_help = "Exit codes: 0 written and (with keys) verified, 1 written but a verification check failed (named in the report and the output), 2 usage or input error (nothing written)."
    )]
    Report {
        /// The evidence package.
        package: PathBuf,
        /// The previous period's package: adds the drift section.
        #[arg(long, value_name = "PKG")]
        previous: Option<PathBuf>,
        /// Output HTML file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Trusted keys: with a checker key, the package is verified as by `verify-package` and
        /// the report shows the result; without, it shows the exporter's `summary.json`.
        #[command(flatten)]
        keys: KeyArgs,
        /// Trusted checker key; repeatable.
        #[arg(long = "checker-key", value_name = "VKEY")]
        checker_keys: Vec<String>,
    },
}

async fn run_package(command: PackageCommand) -> Result<Output, CliError> {
    use verdict_verifier::package::{export, verify};
    match command {
        PackageCommand::Export {
            log,
            token_file,
            keys,
            checker_keys,
            from,
            to,
            start_checkpoint,
            since,
            end_checkpoint,
            out,
        } => {
            let trust = Trust::load(&keys.log_keys, &checker_keys, keys.policy.as_deref())?;
            let token = String::from_utf8(read_limited(&token_file, 4096)?)
                .map_err(|_| CliError::input(token_file.display(), "token is not UTF-8"))?
                .trim()
                .to_owned();
            let period = match (from, to, start_checkpoint.or(since)) {
                (Some(from), Some(to), None) => export::PeriodSpec::Time { from, to },
                (None, None, Some(start)) => export::PeriodSpec::Checkpoints {
                    start,
                    end: end_checkpoint,
                },
                _ => return Err(CliError::usage(
                    "name the period with --from and --to, or with --start-checkpoint (or --since)",
                )),
            };
            let opts = export::ExportOptions {
                log,
                token,
                period,
                out,
            };
            let report = export::run(&opts, &trust).await?;
            let human = report.human();
            Output::valid(&report, human)
        }
        PackageCommand::VerifyPackage {
            package,
            keys,
            checker_keys,
        } => {
            let trust = Trust::load(&keys.log_keys, &checker_keys, keys.policy.as_deref())?;
            let report =
                tokio::task::spawn_blocking(move || verify::verify_package(&package, &trust))
                    .await
                    .map_err(|e| CliError::input("verify-package", e))??;
            let human = report.human();
            Output::valid(&report, human)
        }
        PackageCommand::Report {
            package,
            previous,
            out,
            keys,
            checker_keys,
        } => {
            let verified = !checker_keys.is_empty() || !keys.log_keys.is_empty();
            let trust = Trust::load(&keys.log_keys, &checker_keys, keys.policy.as_deref())?;
            let outcome = tokio::task::spawn_blocking(move || {
                verdict_verifier::report::write(&package, previous.as_deref(), &out, |pkg| {
                    if verified {
                        verdict_verifier::report::package_verification(&package, &trust)
                    } else {
                        verdict_verifier::report::summary_verification(pkg)
                    }
                })
            })
            .await
            .map_err(|e| CliError::input("report", e))??;
            let human = outcome.human();
            Ok(Output {
                json: serde_json::to_value(&outcome).map_err(|e| CliError::input("report", e))?,
                human: format!("{human}\n"),
                code: outcome.exit_code(),
            })
        }
    }
}

fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A finished command: its outputs and exit code.
struct Output {
    json: serde_json::Value,
    human: String,
    code: u8,
}

impl Output {
    fn valid<T: serde::Serialize>(report: &T, human: String) -> Result<Self, CliError> {
        Ok(Output {
            json: serde_json::to_value(report).map_err(|e| CliError::input("report", e))?,
            human: format!("{human}\n"),
            code: EXIT_VALID,
        })
    }
}

async fn run(command: Command) -> Result<Output, CliError> {
    match command {
        Command::Verify {
            bundle,
            keys,
            checker_keys,
            action,
            salt,
            request_id,
            policy_commitments,
            disclosure,
        } => {
            let mut trust = Trust::load(&keys.log_keys, &checker_keys, keys.policy.as_deref())?;
            for hex in &policy_commitments {
                let bytes = hex::decode(hex.trim())
                    .map_err(|e| CliError::input("--policy-commitment", e))?;
                let hash = verdict_core::Hash::from_slice(&bytes)
                    .map_err(|e| CliError::input("--policy-commitment", e))?;
                trust.policy_commitments.push(hash);
            }
            let claim = match (action, salt) {
                (Some(path), Some(hex)) => Some(ActionClaim {
                    canonical: read_limited(&path, MAX_ACTION_FILE)?,
                    salt: Salt::from_hex(hex.trim()).map_err(|e| CliError::input("--salt", e))?,
                    request_id,
                }),
                (None, None) => None,
                _ => return Err(CliError::usage("--action and --salt go together")),
            };
            let bytes = match read_bounded(&bundle, MAX_BUNDLE_SIZE)? {
                Bounded::Complete(b) | Bounded::TooLarge(b) => b,
            };
            let report = verify_bundle(&bytes, &trust, claim.as_ref())?;
            let mut human = report.human();
            if let Some(w) = &report.witnesses {
                human.push_str(&format!("\nnote: {w}"));
            }
            if let Some(path) = disclosure {
                let file = read_limited(&path, verdict_core::disclosure::MAX_DISCLOSURE_BYTES)?;
                let d = verdict_verifier::disclosure::check_disclosure(&file, &bytes, &trust)?;
                human.push_str(&format!(
                    "\ndisclosed rule {} of {} (statement at index {}): {}",
                    d.rule, d.policy, d.statement_index, d.text
                ));
                let json = serde_json::json!({ "verify": report, "disclosure": d });
                return Output::valid(&json, human);
            }
            Output::valid(&report, human)
        }
        Command::Consistency {
            old,
            new,
            keys,
            proof,
            log,
        } => {
            let trust = Trust::load(&keys.log_keys, &[], keys.policy.as_deref())?;
            let old_cp = open_checkpoint(&read_limited(&old, MAX_TEXT_FILE)?, &trust)?;
            let new_cp = open_checkpoint(&read_limited(&new, MAX_TEXT_FILE)?, &trust)?;
            let (o, n) = (old_cp.checkpoint().clone(), new_cp.checkpoint().clone());
            let mut hashes = 0;
            if precheck(&o, &n)? {
                let proof = match (proof, log) {
                    (Some(path), _) => parse_proof(
                        &path.display().to_string(),
                        &read_limited(&path, 64 * 1024)?,
                    )?,
                    (None, Some(url)) => {
                        let tiles = HttpTiles::new(Fetcher::new(&url)?)
                            .for_consistency(o.size, n.size)
                            .await?;
                        proof_from_tiles(&tiles, &o, &n)?
                    }
                    (None, None) => return Err(CliError::usage("give --proof FILE or --log URL")),
                };
                hashes = proof.len();
                check_proof(&o, &n, &proof)?;
            }
            let report = ConsistencyReport {
                result: "valid",
                origin: n.origin.clone(),
                log_key: new_cp
                    .note()
                    .verified_by()
                    .first()
                    .map(|id| format!("{}+{id}", n.origin))
                    .unwrap_or_default(),
                old_size: o.size.0,
                new_size: n.size.0,
                proof_hashes: hashes,
                witnesses: trust
                    .check_quorum(&read_limited(&new, MAX_TEXT_FILE)?)?
                    .map(|q| q.human()),
            };
            let human = report.human();
            Output::valid(&report, human)
        }
        Command::Policies {
            log,
            keys,
            checker_keys,
        } => {
            let trust = Trust::load(&keys.log_keys, &checker_keys, keys.policy.as_deref())?;
            let report = verdict_verifier::policies::run(&log, &trust).await?;
            let human = report.human();
            Output::valid(&report, human.trim_end().to_owned())
        }
        Command::Audit {
            package: Some(command),
            ..
        } => run_package(command).await,
        Command::Audit {
            package: None,
            log,
            keys,
            checker_keys,
            since,
            until,
            sample,
            seed,
            state,
            full,
        } => {
            let trust = Trust::load(&keys.log_keys, &checker_keys, keys.policy.as_deref())?;
            let opts = AuditOptions {
                log: log.ok_or_else(|| CliError::usage("--log is required"))?,
                since,
                until,
                sample: sample.unwrap_or(0),
                seed,
                state,
                full,
                progress: true,
            };
            let report = audit::run(&opts, &trust).await?;
            Ok(Output {
                json: serde_json::to_value(&report).map_err(|e| CliError::input("report", e))?,
                human: report.human(),
                code: report.exit_code(),
            })
        }
        Command::Inspect { file } => {
            let bytes = read_limited(&file, MAX_BUNDLE_SIZE)?;
            let value = inspect(&file.display().to_string(), &bytes)?;
            let pretty =
                serde_json::to_string_pretty(&value).map_err(|e| CliError::input("output", e))?;
            Ok(Output {
                json: value,
                human: format!("{NOT_VERIFIED}\n{pretty}\n"),
                code: EXIT_VALID,
            })
        }
    }
}
