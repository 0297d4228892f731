//! `verdict-gateway`: an MCP gateway that checks every tool call of an agent with
//! `verdict-server` before the call reaches its tool, and hands back the receipt's proof bundle.
//!
//! The gateway sits between an agent (MCP client) and one or more MCP servers ("upstreams").
//! Toward the agent it speaks MCP over Streamable HTTP (`/mcp`) or stdio; upstream it connects to
//! child processes on stdio or to Streamable HTTP URLs, all through the official Rust SDK `rmcp`.
//! It offers the upstreams' tools as its own and passes resources and prompts through.
//!
//! On `tools/call` ([`proxy::Gateway::call`]):
//! 1. the arguments are bounded and checked against the tool's schema;
//! 2. the tool's mapping ([`mapping`]) turns them into a policy action, typed against the policy;
//! 3. the action goes to `POST /v1/check` with an agent token ([`verdict`]);
//! 4. only `allow` is forwarded; `deny` and `escalate` become tool errors naming the rules or
//!    the undetermined variables and the log index; no decision (server down, error) fails
//!    closed. The decision and proof bundle go into the result's `_meta["verdict/decision"]`.
//!
//! The gateway never decides: it parses policy files with `verdict-checker` only to validate
//! its mapping file at start-up ([`config`]).
//!
//! Main types: [`config::Config`] (the configuration and mapping file, documented field by
//! field), [`proxy::Gateway`] and [`proxy::GatewayHandler`] (the `rmcp` server handler),
//! [`ops::app`] (HTTP router with `/health` and `/metrics`). Guide: `docs/gateway-guide.md`.
//!
//! # Example
//! ```
//! use std::path::Path;
//! use verdict_gateway::config::Config;
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("agent.token"), "0123abcd\n")?;
//! std::fs::copy(
//!     Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/policies/customer-data-egress.toml"),
//!     dir.path().join("egress.toml"),
//! )?;
//! let text = r#"
//! policies = ["egress.toml"]
//! [verdict]
//! url = "http://127.0.0.1:8080"
//! token_file = "agent.token"
//! [[upstreams]]
//! name = "mail"
//! command = "mail-mcp-server"
//! [tools.send_email]
//! policy = "customer-data-egress"
//! variables.destination = { value = "external" }
//! variables.recipients = { pointer = "/to" }
//! "#;
//! let err = Config::parse(&dir.path().join("gateway.toml"), text).unwrap_err();
//! // The policy has no variable `recipients`: a start-up error with file and line.
//! assert!(err.to_string().contains("gateway.toml:12: tool `send_email`, variable `recipients`"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod mapping;
pub mod ops;
pub mod proxy;
pub mod upstream;
pub mod verdict;

pub use config::Config;
pub use error::GatewayError;
pub use proxy::{Gateway, GatewayHandler, META_KEY};
