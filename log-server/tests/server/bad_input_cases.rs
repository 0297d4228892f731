//! The cases of the bad-input suite (`bad_input.rs`), grouped by endpoint, and the helpers
//! that build them. Every route of `routes::router()` (and the fallback) has its group; each
//! case names the documented status and `error` code. This file: the public reads, tiles,
//! proofs, bundles, the private store and unknown routes; `bad_input_writes.rs`: policies and
//! screen; `bad_input_check.rs`: check.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

/// Which server a case goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Srv {
    /// The normal server (valid tokens).
    Main,
    /// A server whose write and auditor tokens have both expired.
    Expired,
}

pub struct Case {
    pub endpoint: &'static str,
    pub name: String,
    pub request: Request<Body>,
    pub status: StatusCode,
    pub code: &'static str,
    pub on: Srv,
}

/// The tokens of both servers.
pub struct Tokens<'a> {
    /// The default agent's token (screen, check).
    pub write: &'a str,
    /// The admin token (policy registration).
    pub admin: &'a str,
    pub auditor: &'a str,
    pub expired_write: &'a str,
    pub expired_auditor: &'a str,
}

/// The request id the suite logs once before the cases (for the replay cases).
pub const REPLAY_ID: &str = "bad-input-replay-1";

pub fn req(
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    r.body(body.into()).unwrap()
}

pub fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    req(Method::GET, uri, token, None, Body::empty())
}

pub fn post(
    uri: &str,
    token: Option<&str>,
    ct: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    req(Method::POST, uri, token, ct, body)
}

pub const JSON: Option<&str> = Some("application/json");
pub const TOML: Option<&str> = Some("application/toml");

pub fn json_body(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

pub fn action(a: serde_json::Value) -> serde_json::Value {
    json!({"policy": "customer-data-egress", "action": a})
}

/// `depth` nested arrays: `[[[...]]]`, or only the opening brackets when `open_only`.
pub fn nested(depth: usize, open_only: bool) -> String {
    if open_only {
        "[".repeat(depth)
    } else {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

/// Builds the cases of one endpoint.
pub struct Group {
    endpoint: &'static str,
    on: Srv,
    pub cases: Vec<Case>,
}

impl Group {
    pub fn new(endpoint: &'static str) -> Self {
        Self {
            endpoint,
            on: Srv::Main,
            cases: Vec::new(),
        }
    }

    pub fn c(
        &mut self,
        name: &str,
        request: Request<Body>,
        status: StatusCode,
        code: &'static str,
    ) {
        self.cases.push(Case {
            endpoint: self.endpoint,
            name: name.to_owned(),
            request,
            status,
            code,
            on: self.on,
        });
    }

    /// A case against the server with expired tokens.
    pub fn expired(&mut self, name: &str, request: Request<Body>) {
        self.on = Srv::Expired;
        self.c(name, request, StatusCode::UNAUTHORIZED, "token_expired");
        self.on = Srv::Main;
    }

    /// Methods the route does not allow: 405 each.
    pub fn wrong_methods(&mut self, uri: &str, methods: &[Method]) {
        for m in methods {
            self.c(
                &format!("{m} {uri}"),
                req(m.clone(), uri, None, None, Body::empty()),
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            );
        }
    }

    /// Paths next to the route that are no route: 404 `not_found` each.
    pub fn no_route(&mut self, uris: &[&str]) {
        for u in uris {
            self.c(
                &format!("no route {u}"),
                get(u, None),
                StatusCode::NOT_FOUND,
                "not_found",
            );
        }
    }
}

pub fn all(t: &Tokens<'_>) -> Vec<Case> {
    [
        public_reads(),
        tiles(),
        entries(),
        proofs(),
        bundle(),
        crate::bad_input_writes::policies(t),
        crate::bad_input_writes::screen(t),
        crate::bad_input_check::check(t),
        crate::bad_input_check::check_semantics(t),
        private(t),
        fallback(t),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn public_reads() -> Vec<Case> {
    use Method as M;
    let mut out = Vec::new();
    for (endpoint, uri, near) in [
        (
            "GET /checkpoint",
            "/checkpoint",
            &[
                "/checkpoint/",
                "/checkpoint/..",
                "/checkpoint%00",
                "/Checkpoint",
            ][..],
        ),
        (
            "GET /v1/keys",
            "/v1/keys",
            &["/v1/keys/", "/v1/keys/0", "/v1/keys/..%2f..%2flog.key"][..],
        ),
        (
            "GET /health",
            "/health",
            &["/health/", "/health/live", "/healthz"][..],
        ),
        (
            "GET /metrics",
            "/metrics",
            &["/metrics/", "/metrics/../checkpoint", "/metrics.txt"][..],
        ),
        (
            "GET /openapi.json",
            "/openapi.json",
            &["/openapi.json/", "/openapi.yaml", "/openapi.json%2e%2e"][..],
        ),
    ] {
        let mut g = Group::new(endpoint);
        g.wrong_methods(uri, &[M::POST, M::PUT, M::DELETE, M::PATCH]);
        g.no_route(near);
        out.extend(g.cases);
    }
    out
}

fn tiles() -> Vec<Case> {
    use StatusCode as S;
    let mut g = Group::new("GET /tile/<L>/<N>[.p/<W>]");
    let bad = |g: &mut Group, name: &str, uri: &str| {
        g.c(name, get(uri, None), S::BAD_REQUEST, "bad_tile_path");
    };
    bad(&mut g, "traversal", "/tile/../../etc/passwd");
    bad(&mut g, "encoded traversal", "/tile/0/..%2F..%2Fstore");
    bad(&mut g, "encoded dots", "/tile/%2e%2e/%2e%2e/store/db");
    bad(&mut g, "encoded dots in index", "/tile/0/%2e%2e");
    bad(
        &mut g,
        "double-encoded traversal",
        "/tile/0/%252e%252e%252fstore",
    );
    bad(&mut g, "backslash traversal", "/tile/0/..%5c..%5cstore");
    bad(&mut g, "absolute path", "/tile//etc/passwd");
    bad(&mut g, "nul byte", "/tile/0/000%00");
    bad(&mut g, "short index", "/tile/0/1");
    bad(&mut g, "four-digit group", "/tile/0/0000");
    bad(&mut g, "x group too long", "/tile/0/x1000/000");
    bad(&mut g, "missing x prefix", "/tile/0/001/000");
    bad(
        &mut g,
        "non-canonical leading zero group",
        "/tile/0/x000/001",
    );
    bad(
        &mut g,
        "index overflows u64",
        "/tile/0/x018/x446/x744/x073/x709/x551/616",
    );
    bad(&mut g, "width zero", "/tile/0/000.p/0");
    bad(&mut g, "full width as partial", "/tile/0/000.p/256");
    bad(&mut g, "overlong width", "/tile/0/000.p/257");
    bad(&mut g, "huge width", "/tile/0/000.p/18446744073709551616");
    bad(&mut g, "negative width", "/tile/0/000.p/-1");
    bad(&mut g, "width with leading zero", "/tile/0/000.p/01");
    bad(&mut g, "empty width", "/tile/0/000.p/");
    bad(&mut g, "trailing segment", "/tile/0/000.p/1/extra");
    bad(&mut g, "level too high", "/tile/64/000");
    bad(&mut g, "negative level", "/tile/-1/000");
    bad(&mut g, "level with sign", "/tile/+0/000");
    bad(&mut g, "missing index", "/tile/0/");
    bad(&mut g, "level only", "/tile/0");
    bad(
        &mut g,
        "very long path",
        &format!("/tile/0/{}000", "x001/".repeat(10_000)),
    );
    g.c(
        "invalid utf-8 in path",
        get("/tile/0/%ff%fe", None),
        S::BAD_REQUEST,
        "bad_request",
    );
    g.c(
        "tile beyond tree",
        get("/tile/0/x999/999", None),
        S::NOT_FOUND,
        "not_found",
    );
    g.c(
        "full tile not yet written",
        get("/tile/0/000", None),
        S::NOT_FOUND,
        "not_found",
    );
    g.c(
        "partial wider than tree",
        get("/tile/0/000.p/200", None),
        S::NOT_FOUND,
        "not_found",
    );
    g.wrong_methods(
        "/tile/0/000.p/1",
        &[Method::POST, Method::PUT, Method::DELETE],
    );
    g.cases
}

fn entries() -> Vec<Case> {
    use StatusCode as S;
    let mut g = Group::new("GET /tile/entries/<N>[.p/<W>]");
    let bad = |g: &mut Group, name: &str, uri: &str| {
        g.c(name, get(uri, None), S::BAD_REQUEST, "bad_tile_path");
    };
    bad(&mut g, "bad index", "/tile/entries/x001");
    bad(&mut g, "traversal", "/tile/entries/../../store");
    bad(
        &mut g,
        "encoded traversal",
        "/tile/entries/%2e%2e%2f%2e%2e%2fstore",
    );
    bad(&mut g, "overlong width", "/tile/entries/000.p/300");
    bad(&mut g, "width zero", "/tile/entries/000.p/0");
    bad(&mut g, "entries as a level", "/tile/entries/entries/000");
    bad(&mut g, "uppercase kind", "/tile/ENTRIES/000");
    bad(&mut g, "hex index", "/tile/entries/0x1");
    g.c(
        "beyond tree",
        get("/tile/entries/x999/999", None),
        S::NOT_FOUND,
        "not_found",
    );
    g.c(
        "partial wider than tree",
        get("/tile/entries/000.p/255", None),
        S::NOT_FOUND,
        "not_found",
    );
    g.wrong_methods("/tile/entries/000.p/1", &[Method::POST, Method::DELETE]);
    g.cases
}

fn proofs() -> Vec<Case> {
    let mut out = Vec::new();
    let mut g = Group::new("GET /v1/proof/inclusion");
    for (name, query) in [
        ("missing params", ""),
        ("missing size", "?index=0"),
        ("negative index", "?index=-1&size=1"),
        ("negative size", "?index=0&size=-1"),
        ("huge index", "?index=99999999999999999999999&size=1"),
        ("size overflows u64", "?index=0&size=18446744073709551616"),
        ("unknown param", "?index=0&size=1&x=1"),
        ("duplicate param", "?index=0&index=0&size=1"),
        ("empty values", "?index=&size="),
        ("float", "?index=0.0&size=1"),
        ("exponent", "?index=0&size=1e3"),
        ("hex", "?index=0x0&size=1"),
        ("letters", "?index=abc&size=1"),
        ("nul byte", "?index=%00&size=1"),
        ("invalid utf-8", "?index=%ff&size=1"),
    ] {
        g.c(
            name,
            get(&format!("/v1/proof/inclusion{query}"), None),
            StatusCode::BAD_REQUEST,
            "bad_query",
        );
    }
    // Well-formed, but no such proof (issue 10 OpenAPI exactness: schema-valid requests are not
    // 400): 404 `not_found`, as for a tile beyond the tree.
    for (name, query) in [
        ("u64::MAX size", "?index=0&size=18446744073709551615"),
        ("index not below size", "?index=1&size=1"),
        ("size zero", "?index=0&size=0"),
        ("size beyond tree", "?index=0&size=1000000"),
    ] {
        g.c(
            name,
            get(&format!("/v1/proof/inclusion{query}"), None),
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    g.wrong_methods("/v1/proof/inclusion?index=0&size=1", &[Method::POST]);
    g.no_route(&["/v1/proof/inclusion/0", "/v1/proof"]);
    out.extend(g.cases);

    let mut g = Group::new("GET /v1/proof/consistency");
    for (name, query) in [
        ("missing params", ""),
        ("missing to", "?from=1"),
        ("from zero", "?from=0&to=1"),
        ("negative from", "?from=-1&to=1"),
        ("to overflows u64", "?from=1&to=18446744073709551616"),
        ("float", "?from=1.5&to=2"),
        ("unknown param", "?from=1&to=1&index=0"),
        ("duplicate param", "?from=1&from=1&to=1"),
        ("letters", "?from=one&to=1"),
        ("invalid utf-8", "?from=%ff&to=1"),
    ] {
        g.c(
            name,
            get(&format!("/v1/proof/consistency{query}"), None),
            StatusCode::BAD_REQUEST,
            "bad_query",
        );
    }
    for (name, query) in [
        ("from above to", "?from=2&to=1"),
        ("to beyond tree", "?from=1&to=1000000"),
        (
            "u64::MAX",
            "?from=18446744073709551615&to=18446744073709551615",
        ),
    ] {
        g.c(
            name,
            get(&format!("/v1/proof/consistency{query}"), None),
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    g.wrong_methods("/v1/proof/consistency?from=1&to=1", &[Method::POST]);
    out.extend(g.cases);
    out
}

fn bundle() -> Vec<Case> {
    use StatusCode as S;
    let mut g = Group::new("GET /v1/bundle/<index>");
    for (name, index) in [
        ("not a number", "abc"),
        ("negative", "-1"),
        ("plus sign", "+1"),
        ("u64 overflow", "18446744073709551616"),
        ("too many digits", "000000000000000000001"),
        ("float", "1.0"),
        ("exponent", "1e3"),
        ("hex", "0x1"),
        ("space", "%201"),
        ("encoded traversal", "%2e%2e"),
        ("encoded slash", "0%2f..%2f..%2fstore"),
        ("invalid utf-8", "%ff"),
    ] {
        g.c(
            name,
            get(&format!("/v1/bundle/{index}"), None),
            S::BAD_REQUEST,
            "bad_request",
        );
    }
    g.c(
        "beyond tree",
        get("/v1/bundle/99999", None),
        S::NOT_FOUND,
        "not_found",
    );
    g.c(
        "u64::MAX",
        get("/v1/bundle/18446744073709551615", None),
        S::NOT_FOUND,
        "not_found",
    );
    g.no_route(&[
        "/v1/bundle/",
        "/v1/bundle/0/extra",
        "/v1/bundle/../../log.key",
    ]);
    g.wrong_methods("/v1/bundle/0", &[Method::POST, Method::DELETE]);
    g.cases
}

fn private(t: &Tokens<'_>) -> Vec<Case> {
    use StatusCode as S;
    let a = Some(t.auditor);
    let mut g = Group::new("GET /v1/private/actions/<index>");
    g.c(
        "no token",
        get("/v1/private/actions/0", None),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "wrong token",
        get("/v1/private/actions/0", Some("nope")),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "write token",
        get("/v1/private/actions/0", Some(t.write)),
        S::FORBIDDEN,
        "forbidden",
    );
    g.c(
        "token in query",
        get(&format!("/v1/private/actions/0?token={}", t.auditor), None),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.expired(
        "expired auditor token",
        get("/v1/private/actions/0", Some(t.expired_auditor)),
    );
    g.expired(
        "expired write token",
        get("/v1/private/actions/0", Some(t.expired_write)),
    );
    for (name, index) in [
        ("plus sign", "+1"),
        ("negative", "-1"),
        ("u64 overflow", "18446744073709551616"),
        ("letters", "abc"),
        ("encoded traversal", "%2e%2e"),
        ("encoded slash", "..%2f..%2fwrite.token"),
        ("invalid utf-8", "%ff"),
    ] {
        g.c(
            name,
            get(&format!("/v1/private/actions/{index}"), a),
            S::BAD_REQUEST,
            "bad_request",
        );
    }
    g.c(
        "beyond tree",
        get("/v1/private/actions/99999", a),
        S::NOT_FOUND,
        "not_found",
    );
    g.no_route(&[
        "/v1/private/actions",
        "/v1/private/actions/",
        "/v1/private/actions/0/salt",
        "/v1/private/../../write.token",
    ]);
    g.wrong_methods("/v1/private/actions/0", &[Method::POST, Method::DELETE]);
    g.cases
}

fn fallback(t: &Tokens<'_>) -> Vec<Case> {
    let mut g = Group::new("(no route)");
    g.no_route(&[
        "/",
        "/v2/nothing",
        "/v1/",
        "/.env",
        "/write.token",
        "/store/db",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/v1/private",
    ]);
    g.c(
        "unknown route with token",
        get("/v1/admin", Some(t.write)),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    g.c(
        "post to unknown route",
        post("/v1/admin", Some(t.write), JSON, "{}"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    g.cases
}
