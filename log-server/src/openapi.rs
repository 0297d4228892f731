//! The OpenAPI 3.1 document served at `GET /openapi.json` (snapshot-tested).

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn text(description: &str, media: &str) -> Value {
    json!({ "description": description, "content": { media: { "schema": { "type": "string" } } } })
}

fn json_ref(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn wait_param() -> Value {
    json!({
        "name": "wait", "in": "query", "required": false,
        "description": "false: answer once the entry is durably sequenced (202, no proof).",
        "schema": { "type": "boolean", "default": true }
    })
}

fn witnessed_param() -> Value {
    json!({
        "name": "witnessed", "in": "query", "required": false,
        "description": "true: wait (at most witness_timeout_ms) for a checkpoint cosigned by the witness quorum that covers the entry and return the bundle against it (implies wait=true); 503 not_witnessed on timeout. Without a quorum configured it changes nothing. Spec spec/witness.md §9.4.",
        "schema": { "type": "boolean", "default": false }
    })
}

fn u64_param(name: &str, location: &str, description: &str) -> Value {
    json!({
        "name": name, "in": location, "required": true, "description": description,
        "schema": { "type": "integer", "format": "uint64", "minimum": 0, "maximum": u64::MAX }
    })
}

/// As [`u64_param`], at least 1.
fn u64_param_min1(name: &str, location: &str, description: &str) -> Value {
    let mut p = u64_param(name, location, description);
    if let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) {
        schema.insert("minimum".to_owned(), json!(1));
    }
    p
}

/// A canonical tile path after `tile/` (C2SP tlog-tiles; `Tile::parse_path`): level 0-63 without
/// leading zeros or `entries`; the index as 3-digit groups, all but the last prefixed with `x`,
/// the first of those not `x000`, at most 6 groups (the server takes 7 up to 2^64-1); an optional
/// `.p/<W>` with W 1-255.
const TILE_PATH_PATTERN: &str = "^([0-9]|[1-5][0-9]|6[0-3]|entries)/(x(00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})(/x[0-9]{3}){0,4}/)?[0-9]{3}([.]p/([1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$";

/// The document, with every object's keys sorted so the bytes served do not depend on
/// serde_json's map type (its `preserve_order` feature is switched on by other crates in
/// workspace-wide builds).
pub fn document() -> Value {
    let bearer_write = json!([{ "agentToken": [] }]);
    let bearer_admin = json!([{ "adminToken": [] }]);
    let bearer_auditor = json!([{ "auditorToken": [] }]);
    let common_errors = |mut responses: serde_json::Map<String, Value>| {
        responses.insert("400".into(), error_response("Malformed request."));
        responses.insert(
            "401".into(),
            error_response("Missing, invalid or expired bearer token (error `unauthorized` or `token_expired`)."),
        );
        responses.insert("403".into(), error_response("Token of the wrong kind."));
        responses.insert(
            "413".into(),
            error_response("Body over the configured limit."),
        );
        responses.insert("415".into(), error_response("Wrong content type."));
        responses.insert(
            "503".into(),
            error_response("Backpressure (error `backpressure`, with Retry-After), storage failing (error `storage_unavailable`, with Retry-After; nothing was logged), damaged stored data (error `integrity`), unavailable (also while the log is halted by a witness alarm) or, on `POST /v1/check?witnessed=true`, no quorum-cosigned checkpoint within witness_timeout_ms (error `not_witnessed`)."),
        );
        Value::Object(responses)
    };
    let decision_responses = |extra: &[(&str, Value)]| {
        let mut m = serde_json::Map::new();
        m.insert(
            "200".into(),
            json_ref(
                "Decision, logged and integrated, with its proof bundle.",
                "Decision",
            ),
        );
        m.insert(
            "202".into(),
            json_ref(
                "Decision, durably sequenced (wait=false); no proof yet.",
                "Decision",
            ),
        );
        m.insert("404".into(), error_response("Unknown policy."));
        m.insert(
            "409".into(),
            error_response("Request id already used for a different action."),
        );
        m.insert(
            "422".into(),
            error_response("Action or approval invalid for the policy (error `invalid_action`; spec decision-semantics.md section 3): action text over 65,536 bytes as sent, a string over 4,096 bytes (tokens included), a value of the wrong type, null for a variable that is neither a token nor optional, JSON nested deeper than scalar values, an unknown key; nothing logged, no token value echoed. Malformed action text (syntax, a duplicate key at any depth) is 400 `bad_json`."),
        );
        m.insert(
            "500".into(),
            error_response("Internal failure (error `internal`, generic message; e.g. the policy cannot be encoded for the solver or the receipt cannot be signed); nothing logged."),
        );
        for (k, v) in extra {
            m.insert((*k).into(), v.clone());
        }
        common_errors(m)
    };
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "verdict-server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Verdict transparency log (C2SP tlog-tiles) and policy check API. Errors are JSON {error, message}."
        },
        "paths": {
            "/checkpoint": { "get": {
                "summary": "Latest signed checkpoint (C2SP tlog-checkpoint) with the cosignatures collected for it (tlog-cosignature), cached for at most a few seconds.",
                "responses": { "200": text("Signed checkpoint note.", "text/plain; charset=utf-8"), "503": error_response("No checkpoint yet.") }
            }},
            "/tile/{path}": { "get": {
                "summary": "Hash tile tile/<L>/<N>[.p/<W>] or entry bundle tile/entries/<N>[.p/<W>] (C2SP tlog-tiles); immutable.",
                "parameters": [{ "name": "path", "in": "path", "required": true, "description": "The path after tile/: a level 0-63 or `entries`, the index as 3-digit groups (all but the last prefixed with x, no leading x000), and an optional partial width .p/1-255 (spec tiles.md section 1).", "schema": { "type": "string", "maxLength": 59, "pattern": TILE_PATH_PATTERN } }],
                "responses": {
                    "200": text("Tile bytes.", "application/octet-stream"),
                    "400": error_response("Not a canonical tile path."),
                    "404": error_response("Tile beyond the tree."),
                    "503": error_response("The stored tile is damaged or missing (error `integrity`); never served.")
                }
            }},
            "/v1/keys": { "get": {
                "summary": "Log verifier key and checker keys.",
                "responses": { "200": json_ref("Keys.", "Keys") }
            }},
            "/v1/proof/inclusion": { "get": {
                "summary": "RFC 9162 inclusion proof of a leaf in a tree size.",
                "parameters": [u64_param("index", "query", "Leaf index."), u64_param("size", "query", "Tree size, at most the latest checkpoint's.")],
                "responses": { "200": json_ref("Proof.", "Proof"), "400": error_response("Bad parameters."), "404": error_response("No such proof: size is beyond the latest checkpoint, or index is not below size."), "503": error_response("A stored tile is damaged or missing (error `integrity`).") }
            }},
            "/v1/proof/consistency": { "get": {
                "summary": "RFC 9162 consistency proof between two tree sizes.",
                "parameters": [u64_param_min1("from", "query", "Old size, at least 1."), u64_param("to", "query", "New size, at most the latest checkpoint's.")],
                "responses": { "200": json_ref("Proof.", "Proof"), "400": error_response("Bad parameters."), "404": error_response("No such proof: to is beyond the latest checkpoint, or from is above to."), "503": error_response("A stored tile is damaged or missing (error `integrity`).") }
            }},
            "/v1/bundle/{index}": { "get": {
                "summary": "C2SP tlog-proof of a logged receipt against the latest checkpoint; with a witness quorum configured, against the latest checkpoint cosigned by the quorum (with its cosignature lines).",
                "parameters": [u64_param("index", "path", "Leaf index.")],
                "responses": { "200": text("tlog-proof text.", "text/plain; charset=utf-8"), "400": error_response("Bad index."), "404": error_response("No such entry."), "503": error_response("A stored tile or bundle is damaged or missing (error `integrity`), or no checkpoint cosigned by the witness quorum covers the entry yet (error `not_witnessed`).") }
            }},
            "/health": { "get": {
                "summary": "200 while a freshly signed checkpoint exists, writes succeed, no damaged stored data was read and no witness alarm was raised; else 503.",
                "responses": { "200": json_ref("Healthy.", "Health"), "503": error_response("No fresh checkpoint (`unavailable`), writes failing (`storage_unavailable`, with Retry-After), damaged stored data read since start (`integrity`), or a witness has seen a larger tree (`witness_alarm`, the log halted).") }
            }},
            "/metrics": { "get": {
                "summary": "Prometheus text exposition.",
                "responses": { "200": text("Metrics.", "text/plain; version=0.0.4; charset=utf-8") }
            }},
            "/openapi.json": { "get": {
                "summary": "This document.",
                "responses": { "200": { "description": "OpenAPI document." } }
            }},
            "/v1/policies": {
                "post": {
                    "summary": "Register a policy version (admin token): a signed policy statement is appended to the log before the answer (spec policy-statement.md).",
                    "security": bearer_admin,
                    "parameters": [{
                        "name": "force", "in": "query", "required": false,
                        "description": "Register despite error-level analysis findings; they are recorded in the statement.",
                        "schema": { "type": "boolean", "default": false }
                    }],
                    "requestBody": { "required": true, "content": {
                        "application/json": { "schema": { "$ref": "#/components/schemas/RegisterPolicy" } },
                        "application/toml": { "schema": { "type": "string" } },
                        "text/plain": { "schema": { "type": "string" } }
                    }},
                    "responses": common_errors({
                        let mut m = serde_json::Map::new();
                        m.insert("200".into(), json_ref("The same name, version and text is registered already; nothing was appended.", "Registered"));
                        m.insert("201".into(), json_ref("Registered and logged.", "Registered"));
                        m.insert("403".into(), error_response("Not the admin token (agent and auditor tokens may not change policies)."));
                        m.insert("409".into(), error_response("policy_conflict: the version is registered with other text, or is not greater than the current version."));
                        m.insert("422".into(), error_response("invalid_policy: does not compile (line and column given) or the version is not semantic; policy_has_errors: error-level analysis findings without force=true (an analysis that cannot finish within analysis_timeout_ms is one, analysis-incomplete); nothing registered."));
                        m
                    })
                },
                "get": {
                    "summary": "Current version of every policy, with commitment and log index (public).",
                    "responses": { "200": { "description": "Policies.", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/PolicyVersion" } } } } } }
                }
            },
            "/v1/policies/{name}/versions": { "get": {
                "summary": "Every registered version of a policy, in order, without text (public).",
                "parameters": [{ "name": "name", "in": "path", "required": true, "description": "Policy name.", "schema": { "type": "string" } }],
                "responses": {
                    "200": json_ref("Versions.", "PolicyVersions"),
                    "404": error_response("unknown_policy.")
                }
            }},
            "/v1/screen": { "post": {
                "summary": "Screen an action; the screening decision is logged as a receipt of kind screen: in-scope (a check must follow) or not-applicable.",
                "security": bearer_write,
                "parameters": [wait_param()],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ScreenRequest" } } } },
                "responses": decision_responses(&[("200", json!({
                    "description": "The logged screen: decision in-scope (with applicable: true and unknown_keys) or not-applicable.",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Decision" } } }
                }))])
            }},
            "/v1/check": { "post": {
                "summary": "Check an action; the decision is logged and returned with its proof bundle.",
                "security": bearer_write,
                "parameters": [wait_param(), witnessed_param()],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CheckRequest" } } } },
                "responses": decision_responses(&[])
            }},
            "/v1/private/actions/{index}": { "get": {
                "summary": "Action (token values reduced to their presence, true), salt, request id and agent of a logged decision (auditor token).",
                "security": bearer_auditor,
                "parameters": [u64_param("index", "path", "Leaf index.")],
                "responses": {
                    "200": { "description": "Private record.", "content": { "application/json": { "schema": { "type": "object" } } } },
                    "400": error_response("The index is not a decimal integer (error `bad_request`)."),
                    "401": error_response("Missing, invalid or expired token (error `unauthorized` or `token_expired`)."),
                    "403": error_response("Not the auditor token."),
                    "404": error_response("No record.")
                }
            }},
            "/v1/private/policies/{commitment}": { "get": {
                "summary": "Text and salt of a registered policy (auditor token), to recompute its commitment (spec policy-statement.md section 9).",
                "security": bearer_auditor,
                "parameters": [{ "name": "commitment", "in": "path", "required": true, "description": "Policy commitment, 64 hex digits.", "schema": { "type": "string", "pattern": "^[0-9a-fA-F]{64}$" } }],
                "responses": {
                    "200": json_ref("The registration, its text and the policy salt.", "PolicyOpening"),
                    "400": error_response("Not 64 hex digits."),
                    "401": error_response("Missing, invalid or expired token (error `unauthorized` or `token_expired`)."),
                    "403": error_response("Not the auditor token."),
                    "404": error_response("No policy with that commitment.")
                }
            }}
        }
    });
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("components".to_owned(), components());
    }
    extend(
        &mut doc,
        "paths",
        crate::routes::escalations::openapi_paths(),
    );
    extend(&mut doc, "paths", crate::routes::private::openapi_paths());
    extend(&mut doc, "paths", crate::routes::period::openapi_paths());
    if let Some(components) = doc.get_mut("components") {
        extend(
            components,
            "schemas",
            crate::routes::escalations::openapi_schemas(),
        );
        extend(
            components,
            "schemas",
            crate::routes::private::openapi_schemas(),
        );
    }
    sorted_keys(doc)
}

fn components() -> Value {
    json!({
            "securitySchemes": {
                "adminToken": { "type": "http", "scheme": "bearer", "description": "Contents of <data_dir>/admin.token: policy registration." },
                "agentToken": { "type": "http", "scheme": "bearer", "description": "Contents of <data_dir>/agent.token or agent-<name>.token: screen and check." },
                "auditorToken": { "type": "http", "scheme": "bearer", "description": "Contents of <data_dir>/auditor.token." }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error", "message"], "properties": {
                    "error": { "type": "string" }, "message": { "type": "string" },
                    "line": { "type": "integer" }, "column": { "type": "integer" }
                }},
                "Key": { "type": "object", "properties": {
                    "name": { "type": "string" }, "key_id": { "type": "string" }, "verifier_key": { "type": "string" }
                }},
                "Keys": { "type": "object", "properties": {
                    "origin": { "type": "string" },
                    "log": { "$ref": "#/components/schemas/Key" },
                    "checkers": { "type": "array", "items": { "$ref": "#/components/schemas/Key" } }
                }},
                "Proof": { "type": "object", "properties": {
                    "index": { "type": "integer" }, "from": { "type": "integer" }, "size": { "type": "integer" },
                    "proof": { "type": "array", "items": { "type": "string", "contentEncoding": "base64" } }
                }},
                "Health": { "type": "object", "properties": {
                    "status": { "type": "string" }, "tree_size": { "type": "integer" },
                    "checkpoint_age_secs": { "type": "number" }, "pending": { "type": "integer" }
                }},
                "RegisterPolicy": { "type": "object", "required": ["source"], "additionalProperties": false, "properties": { "source": { "type": "string", "description": "The policy text (TOML, spec policy-language.md). A text that does not compile, or whose analysis finds errors, is answered 422: no JSON schema can say which texts compile." } } },
                "PolicyVersion": { "type": "object", "properties": {
                    "name": { "type": "string" }, "version": { "type": "string" }, "commitment": { "type": "string" },
                    "rule_tree_root": { "type": "string" }, "rules": { "type": "integer" },
                    "index": { "type": "integer", "description": "Log index of the policy statement." },
                    "time_ms": { "type": "integer" }, "registered_by": { "type": "string" },
                    "predecessor": { "type": "string", "description": "Commitment of the previous version; absent for the first." },
                    "analysis_errors": { "type": "integer" }, "analysis_warnings": { "type": "integer" },
                    "forced": { "type": "boolean" }
                }},
                "PolicyVersions": { "type": "object", "properties": {
                    "name": { "type": "string" },
                    "versions": { "type": "array", "items": { "$ref": "#/components/schemas/PolicyVersion" } }
                }},
                "PolicyOpening": { "type": "object", "properties": {
                    "policy": { "$ref": "#/components/schemas/PolicyVersion" },
                    "source": { "type": "string" },
                    "salt": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                    "canonical": { "type": "string", "description": "The canonical policy (compact JSON): exactly the bytes commit(policy, salt, canonical) covers (spec evidence-package.md section 6)." }
                }},
                "Registered": { "type": "object", "properties": {
                    "policy": { "$ref": "#/components/schemas/PolicyVersion" },
                    "created": { "type": "boolean" },
                    "statement": { "type": "string", "contentEncoding": "base64", "description": "The policy statement (COSE_Sign1), the log entry at policy.index." },
                    "findings": { "type": "array", "items": { "type": "object" } }
                }},
                "Approval": { "type": "object", "required": ["approver", "signature"], "additionalProperties": false, "properties": {
                    "approver": { "type": "string", "description": "Approver key id (8 hex digits) or key name, of the policy's [[approvers]]." },
                    "signature": { "type": "string", "pattern": "^[A-Za-z0-9+/]{85}[AQgw]==$", "contentEncoding": "base64", "description": "Ed25519 signature (64 bytes, standard base64) over the message of spec decision-semantics.md section 7." }
                }},
                "CheckRequest": { "type": "object", "required": ["policy", "action"], "additionalProperties": false, "properties": {
                    "policy": { "type": "string", "description": "Policy name or commitment (hex)." },
                    "action": { "type": "object", "description": "Policy variables to values, read from the raw text (spec decision-semantics.md section 3): at most 65,536 bytes as sent, no key repeated at any depth, every string at most 4,096 bytes, -0 read as 0, null only for tokens and optional variables." },
                    "request_id": { "type": "string", "maxLength": 64 },
                    "approvals": { "type": "array", "items": { "$ref": "#/components/schemas/Approval" } },
                    "salt": { "type": "string", "pattern": "^[0-9a-f]{64}$" }
                }},
                "ScreenRequest": { "type": "object", "required": ["policy", "action"], "additionalProperties": false, "properties": {
                    "policy": { "type": "string" }, "action": { "type": "object", "description": "As in CheckRequest: read strictly from the raw text." }, "request_id": { "type": "string", "maxLength": 64 }
                }},
                "Decision": { "type": "object", "properties": {
                    "decision": { "enum": ["allow", "deny", "escalate", "not-applicable", "in-scope"], "description": "in-scope only from POST /v1/screen (kind screen): the action is in the policy's scope and a check must follow." },
                    "kind": { "enum": ["check", "screen"] },
                    "fail_closed": { "type": "boolean" },
                    "request_id": { "type": "string" },
                    "policy": { "type": "object", "properties": {
                        "name": { "type": "string" }, "version": { "type": "string" }, "commitment": { "type": "string" }
                    }},
                    "violated_rules": { "type": "array", "items": { "type": "integer" } },
                    "violated_rule_ids": { "type": "array", "items": { "type": "string" } },
                    "matched_variables": { "type": "array", "items": { "type": "string" } },
                    "undetermined_variables": { "type": "array", "items": { "type": "string" } },
                    "approvers": { "type": "array", "items": { "type": "string" } },
                    "action_commitment": { "type": "string" },
                    "salt": { "type": "string" },
                    "canonical_action": { "type": "string", "description": "Canonical action the commitment covers." },
                    "time_ms": { "type": "integer" },
                    "index": { "type": "integer" },
                    "receipt": { "type": "string", "contentEncoding": "base64" },
                    "integrated": { "type": "boolean" },
                    "proof": { "type": "object", "properties": {
                        "tree_size": { "type": "integer" },
                        "inclusion_proof": { "type": "array", "items": { "type": "string" } },
                        "checkpoint": { "type": "string" },
                        "bundle": { "type": "string", "description": "C2SP tlog-proof text." }
                    }},
                    "escalation_id": { "type": "string", "pattern": "^[0-9a-f]{32}$", "description": "For escalate: the escalation (spec approval.md)." },
                    "status_url": { "type": "string", "description": "For escalate: GET it (with ?wait=30s) for the final decision." },
                    "applicable": { "type": "boolean", "enum": [true], "description": "Only on an in-scope screen." },
                    "unknown_keys": { "type": "array", "items": { "type": "string" }, "description": "Only on an in-scope screen: action keys that are not policy variables." }
                }}
            }
    })
}

/// Add the members of `more` (an object) to the object `doc[key]`.
fn extend(doc: &mut Value, key: &str, more: Value) {
    if let (Some(Value::Object(target)), Value::Object(more)) = (doc.get_mut(key), more) {
        target.extend(more);
    }
}

/// `value` with every object's keys in sorted order, whatever serde_json's map type is.
fn sorted_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: std::collections::BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}
