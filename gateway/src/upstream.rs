//! Upstream MCP servers: connecting (a child process on stdio, or Streamable HTTP), and the
//! catalogue of tools the gateway offers in their place.
//!
//! A tool keeps its upstream name unless two upstreams offer the same name; then every colliding
//! tool is exposed as `<upstream>__<tool>` (`docs/gateway-guide.md` §2). The catalogue is taken
//! once at start-up.

use std::collections::BTreeMap;
use std::process::Stdio;

use rmcp::model::Tool;
use rmcp::service::{Peer, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};

use crate::config::{UpstreamConfig, UpstreamTransport};
use crate::error::GatewayError;

/// A connected upstream.
pub struct Upstream {
    /// Configured name.
    pub name: String,
    /// The request handle.
    pub peer: Peer<RoleClient>,
    /// Whether it offers resources.
    pub resources: bool,
    /// Whether it offers prompts.
    pub prompts: bool,
    /// Keeps the connection (and a child process) alive.
    _service: RunningService<RoleClient, ()>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A tool as the gateway exposes it.
#[derive(Debug, Clone)]
pub struct ExposedTool {
    /// Index of its upstream.
    pub upstream: usize,
    /// Its name at the upstream.
    pub original: String,
    /// Its definition, renamed to the exposed name.
    pub tool: Tool,
}

/// Connect to one upstream and complete the MCP handshake.
///
/// # Errors
/// [`GatewayError::Upstream`] when the process cannot start or the handshake fails.
pub async fn connect(config: &UpstreamConfig) -> Result<Upstream, GatewayError> {
    let fail = |message: String| GatewayError::Upstream {
        name: config.name.clone(),
        message,
    };
    let service = match &config.transport {
        UpstreamTransport::Command { command, args, env } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env);
            // The child's stderr goes to ours (our stdout may be an MCP stdio stream).
            let (transport, _) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| fail(format!("cannot start `{command}`: {e}")))?;
            ().serve(transport)
                .await
                .map_err(|e| fail(format!("handshake failed: {e}")))?
        }
        UpstreamTransport::Url(url) => {
            let transport = StreamableHttpClientTransport::from_uri(url.as_str());
            ().serve(transport)
                .await
                .map_err(|e| fail(format!("handshake with {url} failed: {e}")))?
        }
    };
    let info = service.peer_info();
    let caps = info
        .as_ref()
        .map(|i| i.capabilities.clone())
        .unwrap_or_default();
    Ok(Upstream {
        name: config.name.clone(),
        peer: service.peer().clone(),
        resources: caps.resources.is_some(),
        prompts: caps.prompts.is_some(),
        _service: service,
    })
}

/// The tools of all upstreams, by exposed name.
///
/// # Errors
/// [`GatewayError::Upstream`] when an upstream does not list its tools.
pub async fn catalogue(
    upstreams: &[Upstream],
) -> Result<BTreeMap<String, ExposedTool>, GatewayError> {
    let mut all: Vec<(usize, Tool)> = Vec::new();
    for (i, u) in upstreams.iter().enumerate() {
        let tools = u
            .peer
            .list_all_tools()
            .await
            .map_err(|e| GatewayError::Upstream {
                name: u.name.clone(),
                message: format!("tools/list failed: {e}"),
            })?;
        all.extend(tools.into_iter().map(|t| (i, t)));
    }
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (_, t) in &all {
        *count.entry(t.name.to_string()).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for (i, mut tool) in all {
        let original = tool.name.to_string();
        let exposed = if count.get(&original).copied().unwrap_or(0) > 1 {
            let prefix = upstreams.get(i).map_or("upstream", |u| u.name.as_str());
            format!("{prefix}__{original}")
        } else {
            original.clone()
        };
        tool.name = exposed.clone().into();
        out.insert(
            exposed,
            ExposedTool {
                upstream: i,
                original,
                tool,
            },
        );
    }
    Ok(out)
}
