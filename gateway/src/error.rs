//! The gateway's error type: everything that stops it at start-up. Errors of single tool calls
//! are MCP results or JSON-RPC errors, built in [`crate::proxy`], never this type.

use std::path::PathBuf;

/// A start-up error of the gateway. The binary prints it on one line and exits with the code of
/// [`GatewayError::exit_code`] (`docs/gateway-guide.md` "Exit codes").
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A file named by the configuration could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration or mapping file is invalid at a line.
    #[error("{}:{line}: {message}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line of the offending entry.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A policy file given to the gateway does not compile.
    #[error("policy file {}: {message}", path.display())]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// The checker's error, rendered on one line.
        message: String,
    },
    /// The token file holds no token.
    #[error("token file {}: no token on any line", path.display())]
    EmptyToken {
        /// The token file.
        path: PathBuf,
    },
    /// An upstream MCP server could not be started, reached or initialised.
    #[error("upstream `{name}`: {message}")]
    Upstream {
        /// The upstream's configured name.
        name: String,
        /// What failed.
        message: String,
    },
    /// The HTTP listener could not be bound or served.
    #[error("listener {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl GatewayError {
    /// The documented exit code: 2 for configuration and mapping errors, 3 for upstreams, 4 for
    /// the listener.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Read { .. }
            | Self::Config { .. }
            | Self::Policy { .. }
            | Self::EmptyToken { .. } => 2,
            Self::Upstream { .. } => 3,
            Self::Listen { .. } => 4,
        }
    }
}
