//! The MCP server side: the gateway offers its upstreams' tools, resources and prompts, and
//! checks every `tools/call` with verdict-server before it is forwarded
//! (`docs/gateway-guide.md` §5 "What happens on a tool call").
//!
//! Bad input (an unknown tool, arguments over `max_argument_bytes`, arguments that do not fit
//! the tool's schema or the policy's types) is a JSON-RPC invalid-params error and reaches
//! neither the server nor the upstream. A decision other than `allow`, or no decision at all, is
//! an MCP tool error (`isError: true`) saying why, and the call is not forwarded. Every checked
//! call carries the decision and its proof bundle in the result's `_meta` under
//! [`META_KEY`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, MetaObject, PaginatedRequestParams, PromptsCapability,
    ReadResourceRequestParams, ReadResourceResponse, ResourcesCapability, ServerCapabilities,
    ServerConfig, Tool, ToolsCapability,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;
use verdict_checker::ast::Policy;

use crate::config::{Config, Unmapped};
use crate::error::GatewayError;
use crate::mapping::{check_schema, ToolMapping};
use crate::ops::{Metrics, Outcome};
use crate::upstream::{catalogue, connect, ExposedTool, Upstream};
use crate::verdict::{CheckFailure, Decision, VerdictClient};

/// The `_meta` key of the decision and proof bundle in a call result.
pub const META_KEY: &str = "verdict/decision";

/// The gateway: its upstreams, their tools, the mappings and the server client.
#[derive(Debug)]
pub struct Gateway {
    upstreams: Vec<Upstream>,
    tools: BTreeMap<String, ExposedTool>,
    mappings: BTreeMap<String, ToolMapping>,
    policies: BTreeMap<String, Policy>,
    unmapped: Unmapped,
    verdict: VerdictClient,
    max_argument_bytes: usize,
    /// Which upstream listed a resource URI (filled by `resources/list`).
    resource_owner: Mutex<BTreeMap<String, usize>>,
    /// The counters served at `/metrics`.
    pub metrics: Metrics,
}

impl Gateway {
    /// Connect to every upstream, take their tool catalogue and check that every mapped tool
    /// exists.
    ///
    /// # Errors
    /// [`GatewayError::Upstream`] for an upstream that cannot be reached, and
    /// [`GatewayError::Config`] for a mapping of a tool no upstream offers.
    pub async fn start(config: Config) -> Result<Self, GatewayError> {
        let mut upstreams = Vec::new();
        for u in &config.upstreams {
            let up = connect(u).await?;
            tracing::info!(upstream = %u.name, "connected to upstream {}", u.name);
            upstreams.push(up);
        }
        let tools = catalogue(&upstreams).await?;
        for (name, mapping) in &config.tools {
            if !tools.contains_key(name) {
                let offered: Vec<&str> = tools.keys().map(String::as_str).collect();
                return Err(GatewayError::Config {
                    path: config.path.clone(),
                    line: mapping.line,
                    message: format!(
                        "tool `{name}` is mapped but no upstream offers it (offered: {})",
                        offered.join(", ")
                    ),
                });
            }
        }
        for name in tools.keys().filter(|n| !config.tools.contains_key(*n)) {
            tracing::info!(tool = %name, "tool {name} has no mapping: {}", match &config.unmapped {
                Unmapped::Deny => "its calls are refused".to_owned(),
                Unmapped::NotApplicable { policy } => format!("its calls are screened as not-applicable to {policy}"),
            });
        }
        let verdict = VerdictClient::new(&config.verdict).map_err(|e| GatewayError::Upstream {
            name: "verdict-server".to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            upstreams,
            tools,
            mappings: config.tools,
            policies: config.policies,
            unmapped: config.unmapped,
            verdict,
            max_argument_bytes: config.max_argument_bytes,
            resource_owner: Mutex::new(BTreeMap::new()),
            metrics: Metrics::default(),
        })
    }

    /// Names of the upstreams.
    pub fn upstream_names(&self) -> Vec<String> {
        self.upstreams.iter().map(|u| u.name.clone()).collect()
    }

    /// Number of tools offered.
    pub fn tool_count(&self) -> usize {
        self.tools.len()
    }

    /// The tools as offered to agents.
    pub fn tools(&self) -> Vec<Tool> {
        self.tools.values().map(|t| t.tool.clone()).collect()
    }

    /// One `tools/call`: validate, check, forward only on allow.
    ///
    /// # Errors
    /// A JSON-RPC invalid-params error for bad input (nothing is checked or forwarded).
    pub async fn call(&self, request: CallToolRequestParams) -> Result<CallToolResult, McpError> {
        let name = request.name.to_string();
        let invalid = |message: String| {
            self.metrics.call(Outcome::Invalid);
            tracing::info!(tool = %name, decision = "invalid", "tool call {name} rejected: {message}");
            McpError::invalid_params(message, None)
        };
        let Some(exposed) = self.tools.get(&name) else {
            let shown: String = name.chars().take(64).collect();
            return Err(invalid(format!("unknown tool `{shown}`")));
        };
        let arguments = request.arguments.clone().unwrap_or_default();
        let size = serde_json::to_vec(&arguments).map_or(usize::MAX, |v| v.len());
        if size > self.max_argument_bytes {
            return Err(invalid(format!(
                "arguments of {size} bytes exceed the gateway's limit of {} bytes",
                self.max_argument_bytes
            )));
        }
        check_schema(&exposed.tool.input_schema, &arguments).map_err(&invalid)?;

        let decision = match self.mappings.get(&name) {
            Some(mapping) => {
                let Some(policy) = self.policies.get(&mapping.policy) else {
                    return Err(invalid(format!("tool `{name}`: policy not loaded")));
                };
                let action = mapping
                    .action(policy, &Value::Object(arguments))
                    .map_err(|e| invalid(e.to_string()))?;
                let started = Instant::now();
                let result = self.verdict.check(&mapping.policy, &action).await;
                self.metrics.check_latency(started.elapsed());
                result
            }
            None => match &self.unmapped {
                Unmapped::Deny => {
                    self.metrics.call(Outcome::Unmapped);
                    tracing::info!(tool = %name, decision = "unmapped-denied", "tool call {name}: no mapping, refused");
                    return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                        "not forwarded: tool `{name}` has no policy mapping and the gateway refuses unmapped tools"
                    ))]));
                }
                Unmapped::NotApplicable { policy } => {
                    let started = Instant::now();
                    let result = self.verdict.screen_not_applicable(policy).await;
                    self.metrics.check_latency(started.elapsed());
                    result
                }
            },
        };
        let decision = match decision {
            Ok(d) => d,
            Err(failure) => return Ok(self.refused(&name, &failure)),
        };
        let index = decision
            .index
            .map_or_else(|| "none".to_owned(), |i| i.to_string());
        let forward = decision.allows()
            || (decision.decision == "not-applicable" && !self.mappings.contains_key(&name));
        tracing::info!(
            tool = %name,
            decision = %decision.decision,
            log.index = decision.index,
            request_id = %decision.request_id,
            escalation_id = decision.escalation_id.as_deref(),
            "tool call {name}: {}{} (log index {index}){}",
            decision.decision,
            match (&decision.escalation_id, &decision.escalation_status) {
                (Some(id), Some(status)) => format!(" after escalation {id} was {status}"),
                (Some(id), None) => format!(" (escalation {id})"),
                _ => String::new(),
            },
            if forward { ", forwarded" } else { ", not forwarded" }
        );
        if !forward {
            return Ok(self.not_forwarded(&name, &decision, &index));
        }
        self.metrics.call(if decision.allows() {
            Outcome::Allow
        } else {
            Outcome::NotApplicable
        });
        let upstream = self
            .upstreams
            .get(exposed.upstream)
            .ok_or_else(|| McpError::internal_error("upstream missing", None))?;
        let mut params = CallToolRequestParams::new(exposed.original.clone());
        params.arguments = request.arguments;
        let mut result = match upstream.peer.call_tool(params).await {
            Ok(r) => {
                self.metrics.forwarded(false);
                r
            }
            Err(e) => {
                self.metrics.forwarded(true);
                tracing::warn!(tool = %name, upstream = %upstream.name, "upstream call of {name} failed: {e}");
                CallToolResult::error(vec![ContentBlock::text(format!(
                    "allowed (log index {index}) but the upstream `{}` failed: {e}",
                    upstream.name
                ))])
            }
        };
        attach_meta(&mut result, &decision);
        Ok(result)
    }

    fn refused(&self, name: &str, failure: &CheckFailure) -> CallToolResult {
        self.metrics.call(Outcome::Refused);
        tracing::warn!(tool = %name, decision = "refused", "tool call {name} refused, no decision: {failure}");
        CallToolResult::error(vec![ContentBlock::text(format!(
            "not forwarded: no policy decision ({failure}); the gateway fails closed"
        ))])
    }

    fn not_forwarded(&self, name: &str, d: &Decision, index: &str) -> CallToolResult {
        let text = match d.decision.as_str() {
            "deny" => {
                self.metrics.call(Outcome::Deny);
                let rules = if d.violated_rule_ids.is_empty() {
                    "none named".to_owned()
                } else {
                    d.violated_rule_ids.join(", ")
                };
                let closed = if d.fail_closed { " (fail-closed)" } else { "" };
                let escalation = match (&d.escalation_id, &d.escalation_status) {
                    (Some(id), Some(status)) => format!("; escalation {id} was {status}"),
                    _ => String::new(),
                };
                format!(
                    "denied by policy {}{closed}: violated rules [{rules}]; receipt at log index {index}, request id {}{escalation}. The call was not forwarded.",
                    d.policy, d.request_id
                )
            }
            "escalate" => {
                self.metrics.call(Outcome::Escalate);
                let escalation = match (&d.escalation_id, &d.status_url) {
                    (Some(id), Some(url)) => format!(
                        "; escalation id {id} (status {url}), not resolved within the gateway's wait"
                    ),
                    (Some(id), None) => format!("; escalation id {id}"),
                    _ => String::new(),
                };
                format!(
                    "escalated by policy {}: the outcome depends on [{}]; an approval is needed. Receipt at log index {index}, request id {}{escalation}. The call was not forwarded.",
                    d.policy,
                    d.undetermined_variables.join(", "),
                    d.request_id
                )
            }
            "allow" => {
                self.metrics.call(Outcome::Deny);
                format!("denied: the server marked the decision fail-closed (log index {index}). The call was not forwarded.")
            }
            other => {
                self.metrics.call(Outcome::Deny);
                format!(
                    "not allowed: policy {} answered `{other}` for tool `{name}` (log index {index}). The call was not forwarded.",
                    d.policy
                )
            }
        };
        let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
        attach_meta(&mut result, d);
        result
    }

    fn owner_of_resource(&self, uri: &str) -> Option<usize> {
        if let Some(i) = self
            .resource_owner
            .lock()
            .ok()
            .and_then(|m| m.get(uri).copied())
        {
            return Some(i);
        }
        let with: Vec<usize> = (0..self.upstreams.len())
            .filter(|i| self.upstreams.get(*i).is_some_and(|u| u.resources))
            .collect();
        match with.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

fn attach_meta(result: &mut CallToolResult, decision: &Decision) {
    let mut meta = result.meta.take().unwrap_or_default();
    meta.0.insert(META_KEY.to_owned(), decision.meta());
    result.meta = Some(MetaObject(meta.0));
}

fn upstream_error(what: &str, e: impl std::fmt::Display) -> McpError {
    McpError::internal_error(format!("upstream {what} failed: {e}"), None)
}

/// The `rmcp` server handler: a cheap handle on the shared [`Gateway`].
#[derive(Debug, Clone)]
pub struct GatewayHandler(Arc<Gateway>);

impl GatewayHandler {
    /// A handler for `gateway`.
    pub fn new(gateway: Gateway) -> Self {
        Self(Arc::new(gateway))
    }

    /// The gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.0
    }
}

impl ServerHandler for GatewayHandler {
    fn get_info(&self) -> ServerConfig {
        let mut caps = ServerCapabilities::default();
        caps.tools = Some(ToolsCapability::default());
        if self.0.upstreams.iter().any(|u| u.resources) {
            caps.resources = Some(ResourcesCapability::default());
        }
        if self.0.upstreams.iter().any(|u| u.prompts) {
            caps.prompts = Some(PromptsCapability::default());
        }
        ServerConfig::new(caps)
            .with_server_info(Implementation::new("verdict-gateway", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Every tool call is checked by a Verdict policy before it runs; \
                 the decision and its proof bundle are in the result's _meta[\"verdict/decision\"].",
            )
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.0.tools.get(name).map(|t| t.tool.clone())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.0.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.0.call(request).await.map(CallToolResponse::from)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut all = Vec::new();
        for (i, u) in self
            .0
            .upstreams
            .iter()
            .enumerate()
            .filter(|(_, u)| u.resources)
        {
            let list = u
                .peer
                .list_all_resources()
                .await
                .map_err(|e| upstream_error("resources/list", e))?;
            if let Ok(mut owners) = self.0.resource_owner.lock() {
                for r in &list {
                    owners.entry(r.uri.clone()).or_insert(i);
                }
            }
            all.extend(list);
        }
        Ok(ListResourcesResult::with_all_items(all))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let mut all = Vec::new();
        for u in self.0.upstreams.iter().filter(|u| u.resources) {
            let list = u
                .peer
                .list_all_resource_templates()
                .await
                .map_err(|e| upstream_error("resources/templates/list", e))?;
            all.extend(list);
        }
        Ok(ListResourceTemplatesResult::with_all_items(all))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let candidates: Vec<usize> = match self.0.owner_of_resource(&request.uri) {
            Some(i) => vec![i],
            None => (0..self.0.upstreams.len()).collect(),
        };
        let mut last = None;
        for i in candidates {
            let Some(u) = self.0.upstreams.get(i).filter(|u| u.resources) else {
                continue;
            };
            match u
                .peer
                .read_resource(ReadResourceRequestParams::new(request.uri.clone()))
                .await
            {
                Ok(r) => return Ok(ReadResourceResponse::from(r)),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => upstream_error("resources/read", e),
            None => McpError::invalid_params("no upstream offers resources", None),
        })
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let mut all = Vec::new();
        for u in self.0.upstreams.iter().filter(|u| u.prompts) {
            all.extend(
                u.peer
                    .list_all_prompts()
                    .await
                    .map_err(|e| upstream_error("prompts/list", e))?,
            );
        }
        Ok(ListPromptsResult::with_all_items(all))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        for u in self.0.upstreams.iter().filter(|u| u.prompts) {
            let listed = u
                .peer
                .list_all_prompts()
                .await
                .map_err(|e| upstream_error("prompts/list", e))?;
            if listed.iter().any(|p| p.name == request.name) {
                let mut params = GetPromptRequestParams::new(request.name.clone());
                params.arguments = request.arguments.clone();
                let r = u
                    .peer
                    .get_prompt(params)
                    .await
                    .map_err(|e| upstream_error("prompts/get", e))?;
                return Ok(GetPromptResponse::from(r));
            }
        }
        Err(McpError::invalid_params(
            format!("unknown prompt `{}`", request.name),
            None,
        ))
    }
}
