//! The gateway's configuration and mapping file (TOML), `docs/gateway-guide.md` §3
//! "Configuration reference".
//!
//! One file says where `verdict-server` is, which upstream MCP servers to connect to, and, per
//! tool, which policy applies and how the tool's arguments become policy variables. Every
//! mapping is checked at start-up against the policy files the gateway is given: a variable the
//! policy does not declare, or a constant of the wrong type, stops the gateway with the file and
//! line ([`GatewayError::Config`]). Paths in the file are relative to the file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;
use verdict_checker::ast::Policy;
use verdict_core::receipt::Salt;

use crate::error::GatewayError;
use crate::mapping::{Source, ToolMapping, Transform};

/// Default bound on the serialised arguments of one tool call (64 KiB, the server's action bound).
pub const DEFAULT_MAX_ARGUMENT_BYTES: usize = 64 * 1024;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[verdict]`: the verdict-server the gateway asks.
    pub verdict: VerdictConfig,
    /// `listen`: address of the Streamable HTTP endpoint (`/mcp`), `/health` and `/metrics`.
    pub listen: Option<SocketAddr>,
    /// `max_argument_bytes`: bound on the serialised arguments of one call; larger calls get a
    /// JSON-RPC invalid-params error and are neither checked nor forwarded.
    pub max_argument_bytes: usize,
    /// `policies`: the policy files, parsed at start-up to validate the mappings.
    pub policies: BTreeMap<String, Policy>,
    /// `[unmapped]`: what happens to tools with no mapping.
    pub unmapped: Unmapped,
    /// `[[upstreams]]`: the MCP servers whose tools the gateway offers.
    pub upstreams: Vec<UpstreamConfig>,
    /// `[tools.<name>]`: per-tool mappings, by the name the gateway exposes.
    pub tools: BTreeMap<String, ToolMapping>,
}

/// `[verdict]`.
#[derive(Debug, Clone)]
pub struct VerdictConfig {
    /// `url`: base URL of verdict-server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// `token_file`: the agent (write) token, first non-blank, non-`#` line of the file.
    pub token: String,
    /// `timeout_ms` (default 5000): bound on one check; past it the call is refused.
    pub timeout: Duration,
    /// `escalation_wait_ms` (default 0): how long a call may wait for an escalation to be
    /// resolved, once the server answers with an escalation status URL
    /// ([`crate::verdict::VerdictClient::escalation_wait`]). 0 returns the escalation at once.
    pub escalation_wait: Duration,
}

/// `[unmapped] mode`: tools without a `[tools.<name>]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    /// `mode = "deny"` (the default): refused without a check.
    Deny,
    /// `mode = "not-applicable"`: screened against `policy` with an empty action, which logs a
    /// `not-applicable` receipt; the call is forwarded with that receipt's bundle.
    NotApplicable {
        /// The policy screened against.
        policy: String,
    },
}

/// One `[[upstreams]]` entry.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `name`: used in logs and as the namespace prefix (`<name>__<tool>`) of colliding tools.
    pub name: String,
    /// How to reach it.
    pub transport: UpstreamTransport,
}

/// `command` + `args` + `env`, or `url`.
#[derive(Debug, Clone)]
pub enum UpstreamTransport {
    /// A local process speaking MCP on stdio.
    Command {
        /// Program.
        command: String,
        /// Arguments.
        args: Vec<String>,
        /// Extra environment variables.
        env: BTreeMap<String, String>,
    },
    /// A Streamable HTTP endpoint.
    Url(String),
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    verdict: Spanned<RawVerdict>,
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    max_argument_bytes: Option<usize>,
    #[serde(default)]
    policies: Vec<Spanned<String>>,
    #[serde(default)]
    unmapped: Option<Spanned<RawUnmapped>>,
    #[serde(default)]
    upstreams: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    tools: BTreeMap<String, Spanned<RawTool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerdict {
    url: String,
    token_file: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    escalation_wait_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnmapped {
    mode: String,
    #[serde(default)]
    policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: String,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    policy: Spanned<String>,
    #[serde(default)]
    variables: BTreeMap<String, Spanned<RawSource>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(default)]
    pointer: Option<String>,
    #[serde(default)]
    value: Option<toml::Value>,
    #[serde(default)]
    absent: bool,
    #[serde(default)]
    map: Option<BTreeMap<String, toml::Value>>,
    #[serde(default)]
    prefix_map: Option<BTreeMap<String, toml::Value>>,
    #[serde(default)]
    default: Option<toml::Value>,
}

// ---------------------------------------------------------------------------------------------
// Loading.

impl Config {
    /// Read and validate the configuration file at `path`, with the policy files it names.
    ///
    /// # Errors
    /// [`GatewayError::Read`] for unreadable files, [`GatewayError::Config`] with the line for an
    /// invalid file or mapping, [`GatewayError::Policy`] for a policy that does not compile,
    /// [`GatewayError::EmptyToken`] for a token file without a token.
    pub fn load(path: &Path) -> Result<Self, GatewayError> {
        let text = read(path)?;
        Self::parse(path, &text)
    }

    /// Validate `text`, the contents of `path` (relative paths resolve against its directory).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Self, GatewayError> {
        let at = |offset: usize, message: String| GatewayError::Config {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().replace('\n', " ").trim().to_owned())
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));

        let verdict_span = raw.verdict.span().start;
        let rv = raw.verdict.into_inner();
        if !(rv.url.starts_with("http://") || rv.url.starts_with("https://")) {
            return Err(at(
                verdict_span,
                "verdict.url must be an http(s) URL".to_owned(),
            ));
        }
        let token = read_token(&dir.join(&rv.token_file))?;
        let verdict = VerdictConfig {
            url: rv.url.trim_end_matches('/').to_owned(),
            token,
            timeout: Duration::from_millis(rv.timeout_ms.unwrap_or(5000).max(1)),
            escalation_wait: Duration::from_millis(rv.escalation_wait_ms.unwrap_or(0)),
        };

        let listen = match raw.listen {
            None => None,
            Some(l) => Some(l.get_ref().parse::<SocketAddr>().map_err(|_| {
                at(
                    l.span().start,
                    format!(
                        "listen `{}` is not an address like 127.0.0.1:8090",
                        l.get_ref()
                    ),
                )
            })?),
        };

        let mut policies = BTreeMap::new();
        for p in &raw.policies {
            let file = dir.join(p.get_ref());
            let source = read(&file)?;
            let compiled = verdict_checker::compile(&source, Salt([0; 32])).map_err(|e| {
                GatewayError::Policy {
                    path: file.clone(),
                    message: format!("{}:{}: {}", e.line(), e.column(), e.kind()),
                }
            })?;
            let ast = compiled.ast().clone();
            if policies.insert(ast.name.clone(), ast).is_some() {
                return Err(at(
                    p.span().start,
                    "two policy files define the same policy name".to_owned(),
                ));
            }
        }

        let unmapped = match raw.unmapped {
            None => Unmapped::Deny,
            Some(u) => {
                let span = u.span().start;
                let u = u.into_inner();
                match (u.mode.as_str(), u.policy) {
                    ("deny", None) => Unmapped::Deny,
                    ("not-applicable", Some(policy)) => {
                        if !policies.contains_key(&policy) {
                            return Err(at(
                                span,
                                format!(
                                    "unmapped.policy `{policy}` is not one of the policy files"
                                ),
                            ));
                        }
                        Unmapped::NotApplicable { policy }
                    }
                    ("not-applicable", None) => {
                        return Err(at(
                            span,
                            "unmapped mode \"not-applicable\" needs a `policy`".to_owned(),
                        ))
                    }
                    ("deny", Some(_)) => {
                        return Err(at(
                            span,
                            "unmapped mode \"deny\" takes no `policy`".to_owned(),
                        ))
                    }
                    (other, _) => {
                        return Err(at(
                            span,
                            format!(
                                "unmapped.mode `{other}` must be \"deny\" or \"not-applicable\""
                            ),
                        ))
                    }
                }
            }
        };

        let mut upstreams = Vec::new();
        for u in raw.upstreams {
            let span = u.span().start;
            let u = u.into_inner();
            if u.name.is_empty()
                || !u
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(at(
                    span,
                    format!("upstream name `{}` must be letters, digits, - or _", u.name),
                ));
            }
            if upstreams.iter().any(|x: &UpstreamConfig| x.name == u.name) {
                return Err(at(span, format!("two upstreams are called `{}`", u.name)));
            }
            let transport = match (u.command, u.url) {
                (Some(command), None) => UpstreamTransport::Command {
                    command,
                    args: u.args,
                    env: u.env,
                },
                (None, Some(url)) if u.args.is_empty() && u.env.is_empty() => {
                    UpstreamTransport::Url(url)
                }
                _ => {
                    return Err(at(
                        span,
                        format!(
                        "upstream `{}` needs either `command` (with optional args, env) or `url`",
                        u.name
                    ),
                    ))
                }
            };
            upstreams.push(UpstreamConfig {
                name: u.name,
                transport,
            });
        }
        if upstreams.is_empty() {
            return Err(at(
                0,
                "at least one [[upstreams]] entry is needed".to_owned(),
            ));
        }

        let mut tools = BTreeMap::new();
        for (name, tool) in raw.tools {
            let line = line_of(text, tool.span().start);
            let tool = tool.into_inner();
            let policy_name = tool.policy.get_ref();
            let policy = policies.get(policy_name).ok_or_else(|| {
                at(
                    tool.policy.span().start,
                    format!(
                        "tool `{name}`: policy `{policy_name}` is not one of the policy files ({})",
                        names(policies.keys())
                    ),
                )
            })?;
            let mut variables = Vec::new();
            for (var, source) in tool.variables {
                let offset = source.span().start;
                let source =
                    validate_source(policy, &var, source.into_inner()).map_err(|message| {
                        at(
                            offset,
                            format!("tool `{name}`, variable `{var}`: {message}"),
                        )
                    })?;
                variables.push((var, source));
            }
            let mapping = ToolMapping {
                policy: policy_name.clone(),
                variables,
                line,
            };
            tools.insert(name, mapping);
        }

        Ok(Config {
            path: path.to_path_buf(),
            verdict,
            listen,
            max_argument_bytes: raw.max_argument_bytes.unwrap_or(DEFAULT_MAX_ARGUMENT_BYTES),
            policies,
            unmapped,
            upstreams,
            tools,
        })
    }
}

/// Check one `[tools.<name>.variables]` entry against the policy.
fn validate_source(policy: &Policy, var: &str, raw: RawSource) -> Result<Source, String> {
    let Some(declared) = policy.variable(var) else {
        let known: Vec<&str> = policy.variables.iter().map(|v| v.name.as_str()).collect();
        return Err(format!(
            "policy `{}` has no variable `{var}` (it has: {})",
            policy.name,
            known.join(", ")
        ));
    };
    let kind = declared.ty.kind_name();
    let typed = |v: Value, what: &str| -> Result<Value, String> {
        let probe = Value::Object([(var.to_owned(), v.clone())].into_iter().collect());
        verdict_checker::Action::from_value(policy, &probe)
            .map(|_| v)
            .map_err(|e| format!("{what} does not fit the {kind} variable: {e}"))
    };
    let transforms = raw.map.is_some() || raw.prefix_map.is_some() || raw.default.is_some();
    match (raw.pointer, raw.value, raw.absent) {
        (None, Some(v), false) if !transforms => Ok(Source::Constant(typed(to_json(v)?, "value")?)),
        (None, None, true) if !transforms => Ok(Source::Constant(Value::Null)),
        (Some(pointer), None, false) => {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(format!("pointer `{pointer}` must be a JSON pointer starting with /"));
            }
            let transform = match (raw.map, raw.prefix_map) {
                (None, None) => Transform::Identity,
                (Some(map), None) => {
                    let mut out = BTreeMap::new();
                    for (k, v) in map {
                        out.insert(k.clone(), typed(to_json(v)?, &format!("map value for `{k}`"))?);
                    }
                    Transform::Map(out)
                }
                (None, Some(map)) => {
                    let mut out = Vec::new();
                    for (k, v) in map {
                        if k.is_empty() {
                            return Err("prefix_map keys must not be empty".to_owned());
                        }
                        let v = typed(to_json(v)?, &format!("prefix_map value for `{k}`"))?;
                        out.push((k, v));
                    }
                    // Longest prefix first, so the most specific entry wins.
                    out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
                    Transform::PrefixMap(out)
                }
                (Some(_), Some(_)) => return Err("give `map` or `prefix_map`, not both".to_owned()),
            };
            let default = raw.default.map(|d| typed(to_json(d)?, "default")).transpose()?;
            Ok(Source::Argument { pointer, transform, default })
        }
        _ => Err("give exactly one of `pointer` (with optional map, prefix_map, default), `value` or `absent = true`".to_owned()),
    }
}

fn to_json(v: toml::Value) -> Result<Value, String> {
    match v {
        toml::Value::Datetime(_) => Err("dates are not policy values".to_owned()),
        other => serde_json::to_value(other).map_err(|e| e.to_string()),
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none given".to_owned()
    } else {
        v.join(", ")
    }
}

/// 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.bytes().take(offset).filter(|&b| b == b'\n').count() + 1
}

fn read(path: &Path) -> Result<String, GatewayError> {
    std::fs::read_to_string(path).map_err(|source| GatewayError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The token: the first non-blank line that is not a `#` comment (the server's token file
/// format, log-server `keys.rs`; an `expires=` line after it is the server's business).
fn read_token(path: &Path) -> Result<String, GatewayError> {
    let text = read(path)?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .ok_or_else(|| GatewayError::EmptyToken {
            path: path.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = include_str!("../../testdata/policies/customer-data-egress.toml");

    fn setup(tools: &str) -> (tempfile::TempDir, PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("egress.toml"), POLICY).unwrap();
        std::fs::write(dir.path().join("agent.token"), "# agent\nabc123\n").unwrap();
        let text = format!(
            "policies = [\"egress.toml\"]\n\n[verdict]\nurl = \"http://127.0.0.1:1\"\n\
             token_file = \"agent.token\"\n\n[[upstreams]]\nname = \"fs\"\ncommand = \"true\"\n\n{tools}"
        );
        let path = dir.path().join("gateway.toml");
        (dir, path, text)
    }

    #[test]
    fn a_valid_mapping_loads() {
        let (_d, path, text) = setup(
            "[tools.write_file]\npolicy = \"customer-data-egress\"\n[tools.write_file.variables]\n\
             destination = { pointer = \"/path\", prefix_map = { \"/out/\" = \"external\", \"/\" = \"internal\" } }\n\
             record_count = { value = 1 }\nauthorization_token = { absent = true }\n",
        );
        let config = Config::parse(&path, &text).unwrap();
        assert_eq!(config.verdict.token, "abc123");
        let mapping = config.tools.get("write_file").unwrap();
        assert_eq!(mapping.variables.len(), 3);
        assert_eq!(config.unmapped, Unmapped::Deny);
    }

    #[test]
    fn an_unknown_variable_is_an_error_with_file_and_line() {
        let (_d, path, text) = setup(
            "[tools.send_email]\npolicy = \"customer-data-egress\"\n[tools.send_email.variables]\n\
             destination = { value = \"external\" }\nrecipient = { pointer = \"/to\" }\n",
        );
        let err = Config::parse(&path, &text).unwrap_err().to_string();
        let line = text
            .lines()
            .position(|l| l.starts_with("recipient"))
            .unwrap()
            + 1;
        assert!(
            err.starts_with(&format!("{}:{line}: ", path.display())),
            "{err}"
        );
        assert!(err.contains("has no variable `recipient`"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_with_its_line() {
        for (entry, needle) in [
            ("record_count = { value = \"many\" }", "int variable"),
            ("destination = { value = \"moon\" }", "enum variable"),
            (
                "is_privileged = { pointer = \"/p\", map = { yes = 1 } }",
                "bool variable",
            ),
            (
                "record_count = { pointer = \"/n\", default = true }",
                "int variable",
            ),
        ] {
            let (_d, path, text) = setup(&format!(
                "[tools.t]\npolicy = \"customer-data-egress\"\n[tools.t.variables]\n{entry}\n"
            ));
            let err = Config::parse(&path, &text).unwrap_err().to_string();
            let line = text.lines().position(|l| l == entry).unwrap() + 1;
            assert!(
                err.starts_with(&format!("{}:{line}: ", path.display())),
                "{err}"
            );
            assert!(err.contains(needle), "{entry}: {err}");
        }
    }

    #[test]
    fn unknown_policy_and_bad_shapes_are_errors() {
        for (tools, needle) in [
            ("[tools.t]\npolicy = \"nope\"\n", "policy `nope` is not one of the policy files"),
            ("[tools.t]\npolicy = \"customer-data-egress\"\n[tools.t.variables]\nis_privileged = { value = true, absent = true }\n", "exactly one of"),
            ("[tools.t]\npolicy = \"customer-data-egress\"\n[tools.t.variables]\nis_privileged = { pointer = \"p\" }\n", "JSON pointer"),
            ("[unmapped]\nmode = \"allow\"\n", "must be \"deny\" or \"not-applicable\""),
            ("[unmapped]\nmode = \"not-applicable\"\n", "needs a `policy`"),
            ("[tools.t]\npolicy = \"customer-data-egress\"\nextra = 1\n", "unknown field"),
        ] {
            let (_d, path, text) = setup(tools);
            let err = Config::parse(&path, &text).unwrap_err();
            assert!(matches!(err, GatewayError::Config { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{tools}: {err}");
        }
    }
}
