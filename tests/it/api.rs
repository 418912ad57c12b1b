//! The operations surface over real HTTP (ureq) against the running binary: every `/api/v1`
//! endpoint, authentication, validation and unknown ids; the OpenAPI document through a real
//! OpenAPI validator; `/metrics` through `promtool`; and the live event stream and metrics
//! while real SIP calls (SIPp trunk → Switchboard → SIPp agent) go through.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{
    Ports, Server, demo_config, free_media_ports, free_port, import_clients, metric_sum,
    peer_missing, without_sipp,
};

const TOKEN: &str = "change-me";

// ---- HTTP ------------------------------------------------------------------------------

struct Api {
    agent: ureq::Agent,
    base: String,
}

struct Reply {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `error` of a JSON error answer.
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field in {:?}", self.body))
            .to_owned()
    }
}

impl Api {
    fn new(server: &Server) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        Api {
            agent,
            base: format!("http://127.0.0.1:{}", server.ports.http),
        }
    }

    /// `method path` with `token` (None: no Authorization header) and an optional JSON body.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        macro_rules! with_auth {
            ($req:expr) => {{
                let req = $req;
                match &auth {
                    Some(a) => req.header("Authorization", a),
                    None => req,
                }
            }};
        }
        let result = match (method, body) {
            ("GET", _) => with_auth!(self.agent.get(&url)).call(),
            ("DELETE", _) => with_auth!(self.agent.delete(&url)).call(),
            ("POST", Some(b)) => with_auth!(self.agent.post(&url))
                .header("Content-Type", "application/json")
                .send(b),
            ("PUT", Some(b)) => with_auth!(self.agent.put(&url))
                .header("Content-Type", "application/json")
                .send(b),
            ("POST", None) => with_auth!(self.agent.post(&url)).send_empty(),
            ("PUT", None) => with_auth!(self.agent.put(&url)).send_empty(),
            _ => panic!("method {method} not used by these tests"),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, Some(TOKEN), None)
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(TOKEN), Some(&body.to_string()))
    }

    fn put(&self, path: &str, body: &Value) -> Reply {
        self.call("PUT", path, Some(TOKEN), Some(&body.to_string()))
    }

    fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, Some(TOKEN), None)
    }

    fn metrics(&self) -> String {
        let r = self.call("GET", "/metrics", None, None);
        assert_eq!(r.status, 200);
        r.body
    }
}

fn agent<'a>(agents: &'a Value, id: &str) -> &'a Value {
    agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("agent {id} missing from {agents}"))
}

fn start() -> Server {
    let ports = Ports::new();
    Server::start(&demo_config(&ports), ports)
}

// ---- authentication, health ------------------------------------------------------------

#[test]
fn every_api_endpoint_needs_the_token() {
    let server = start();
    let api = Api::new(&server);
    let endpoints: [(&str, &str, Option<&str>); 10] = [
        ("GET", "/api/v1/agents", None),
        (
            "POST",
            "/api/v1/agents/ana/state",
            Some(r#"{"state":"break"}"#),
        ),
        ("GET", "/api/v1/queues", None),
        ("GET", "/api/v1/clients/+38591555001", None),
        (
            "PUT",
            "/api/v1/clients/+38591555001",
            Some(r#"{"name":"X","type":"retail"}"#),
        ),
        ("DELETE", "/api/v1/clients/+38591555001", None),
        ("GET", "/api/v1/calls?limit=5", None),
        ("GET", "/api/v1/calls/active", None),
        (
            "POST",
            "/api/v1/callbacks",
            Some(r#"{"number":"+38591555001"}"#),
        ),
        ("GET", "/api/v1/events", None),
    ];
    for (method, path, body) in endpoints {
        for token in [None, Some("wrong"), Some("change-mee"), Some("")] {
            let r = api.call(method, path, token, body);
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.body);
            assert!(!r.error().is_empty());
            assert!(
                r.headers
                    .get("www-authenticate")
                    .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
                "{method} {path}: no WWW-Authenticate"
            );
        }
    }
    // Nothing was changed by the refused requests.
    let agents = api.get("/api/v1/agents").json();
    assert_eq!(agent(&agents, "ana")["state"], "logged_out");
    assert_eq!(api.get("/api/v1/clients/+38591555001").status, 404);

    // The right token in another letter case of the scheme works; unknown API paths are 404.
    let r = api.call("GET", "/api/v1/queues", Some(TOKEN), None);
    assert_eq!(r.status, 200);
    let r = api.get("/api/v1/nothing-here");
    assert_eq!(r.status, 404);
    assert!(!r.error().is_empty());

    // Health endpoints and the API description need no token.
    let r = api.call("GET", "/healthz", None, None);
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("ok")));
    let r = api.call("GET", "/readyz", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ready"], true);
    assert_eq!(
        api.call("GET", "/api/v1/openapi.json", None, None).status,
        200
    );
}

#[test]
fn the_token_comes_from_the_environment_when_set() {
    let ports = Ports::new();
    let config = demo_config(&ports);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("switchboard.toml");
    std::fs::write(&config_path, &config).unwrap();
    let mut child = Command::new(crate::harness::switchboard_bin())
        .arg("--config")
        .arg(&config_path)
        .current_dir(dir.path())
        .env("SWITCHBOARD_API_TOKEN", "from-the-environment")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{}", ports.http);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let status = |token: &str| -> Option<u16> {
        agent
            .get(format!("{base}/api/v1/queues"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .ok()
            .map(|r| r.status().as_u16())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while status("from-the-environment").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (env_token, config_token) = (status("from-the-environment"), status(TOKEN));
    crate::harness::signal(child.id(), "TERM");
    let _ = crate::harness::wait_with_timeout(&mut child, Duration::from_secs(10));
    let _ = child.kill();
    assert_eq!(env_token, Some(200));
    assert_eq!(config_token, Some(401));
}

// ---- agents ----------------------------------------------------------------------------

#[test]
fn agents_are_listed_and_switched_between_states() {
    let server = start();
    let api = Api::new(&server);

    let r = api.get("/api/v1/agents");
    assert_eq!(r.status, 200);
    let agents = r.json();
    assert_eq!(agents.as_array().unwrap().len(), 9, "{agents}");
    let ivan = agent(&agents, "ivan");
    assert_eq!(ivan["name"], "Ivan");
    assert_eq!(
        ivan["roles"],
        json!(["head_of_wholesale", "department_head"])
    );
    assert_eq!(ivan["state"], "logged_out");
    assert_eq!(ivan["contacts"], json!([]));
    assert!(ivan.get("state_since").is_some());

    // break with a reason
    let r = api.post(
        "/api/v1/agents/ana/state",
        &json!({"state": "break", "reason": "lunch"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ana = r.json();
    assert_eq!(
        (ana["id"].clone(), ana["state"].clone()),
        (json!("ana"), json!("break"))
    );
    assert_eq!(ana["reason"], "lunch");
    let since = ana["state_since"].as_str().unwrap().to_owned();
    assert!(since.ends_with('Z') && since.len() >= 20, "{since}");
    let listed = api.get("/api/v1/agents").json();
    assert_eq!(agent(&listed, "ana")["state"], "break");
    assert_eq!(agent(&listed, "ana")["reason"], "lunch");

    // absent with a substitute (and without: the configured one)
    let r = api.post(
        "/api/v1/agents/ana/state",
        &json!({"state": "absent", "substitute": "ivan"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "absent");
    assert_eq!(r.json()["substitute"], "ivan");
    let r = api.post("/api/v1/agents/marko/state", &json!({"state": "absent"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["substitute"], "ana");

    // available, then logged out
    let r = api.post("/api/v1/agents/ana/state", &json!({"state": "available"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "available");
    assert!(
        r.json()["warning"]
            .as_str()
            .unwrap()
            .contains("no registered")
    );
    let r = api.post("/api/v1/agents/ana/state", &json!({"state": "logged_out"}));
    assert_eq!(
        (r.status, r.json()["state"].clone()),
        (200, json!("logged_out"))
    );

    // The queues see the states.
    let queues = api.get("/api/v1/queues").json();
    let key_accounts = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "key_accounts")
        .unwrap();
    assert_eq!(key_accounts["agents"]["absent"], 1, "{key_accounts}");

    // unknown agent: 404; bad bodies: 422 (or 400 for broken JSON)
    let r = api.post("/api/v1/agents/nobody/state", &json!({"state": "break"}));
    assert_eq!(r.status, 404);
    assert!(r.error().contains("nobody"));
    for (body, needle) in [
        (json!({"state": "lunch"}), "state"),
        (json!({"state": "on_call"}), "state"),
        (json!({"reason": "x"}), "state"),
        (json!({"state": "break", "mood": "good"}), "mood"),
        (
            json!({"state": "absent", "substitute": "nobody"}),
            "substitute",
        ),
        (
            json!({"state": "absent", "substitute": "ana"}),
            "substitute",
        ),
        (
            json!({"state": "break", "substitute": "ivan"}),
            "substitute",
        ),
        (
            json!({"state": "break", "reason": "x".repeat(201)}),
            "reason",
        ),
    ] {
        let r = api.post("/api/v1/agents/ana/state", &body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.error().contains(needle), "{body}: {}", r.body);
    }
    let r = api.call(
        "POST",
        "/api/v1/agents/ana/state",
        Some(TOKEN),
        Some("{\"state\":"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.error().is_empty());
    let r = api.call("POST", "/api/v1/agents/ana/state", Some(TOKEN), None);
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(!r.error().is_empty());
    // A body over the limit is refused before it is parsed.
    let huge = json!({"state": "break", "reason": "x".repeat(100_000)});
    let r = api.post("/api/v1/agents/ana/state", &huge);
    assert_eq!(r.status, 413, "{}", r.body);
    // Nothing of the refused requests stuck.
    assert_eq!(
        agent(&api.get("/api/v1/agents").json(), "ana")["state"],
        "logged_out"
    );
}

// ---- clients ---------------------------------------------------------------------------

#[test]
fn clients_are_created_read_replaced_and_removed() {
    let server = start();
    let api = Api::new(&server);
    let path = "/api/v1/clients/+385%2091%20555%20001";

    assert_eq!(api.get(path).status, 404);
    let body = json!({"name": "Veletrgovina", "type": "key", "manager": "ana",
                      "region": "north", "overdue_debt": 1500.5});
    let r = api.put(path, &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    assert_eq!(created["number"], "+38591555001");
    assert_eq!(created["type"], "key");
    assert_eq!(created["overdue_debt"], 1500.5);

    let r = api.get("/api/v1/clients/+38591555001");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), created);

    // Replace: 200, and the change is visible at once.
    let r = api.put(
        "/api/v1/clients/+38591555001",
        &json!({"name": "Veletrgovina", "type": "regional", "region": "south"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let replaced = api.get("/api/v1/clients/+38591555001").json();
    assert_eq!(replaced["type"], "regional");
    assert_eq!(replaced["manager"], Value::Null);
    assert_eq!(replaced["overdue_debt"], 0.0);

    for (body, needle) in [
        (json!({"type": "key"}), "name"),
        (json!({"name": " ", "type": "key"}), "name"),
        (json!({"name": "X", "type": "vip"}), "type"),
        (
            json!({"name": "X", "type": "key", "manager": "nobody"}),
            "manager",
        ),
        (
            json!({"name": "X", "type": "key", "overdue_debt": -1}),
            "overdue_debt",
        ),
        (
            json!({"name": "X", "type": "key", "overdue_debt": "12.345"}),
            "overdue_debt",
        ),
        (
            json!({"name": "X", "type": "key", "number": "+1999"}),
            "number",
        ),
        (
            json!({"name": "X", "type": "key", "colour": "red"}),
            "colour",
        ),
    ] {
        let r = api.put("/api/v1/clients/+38591555001", &body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.error().contains(needle), "{body}: {}", r.body);
    }
    // A path that is not a number.
    let r = api.get("/api/v1/clients/not-a-number");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("telephone number"));
    // Unchanged by the refused requests.
    assert_eq!(api.get("/api/v1/clients/+38591555001").json(), replaced);

    let r = api.delete("/api/v1/clients/+38591555001");
    assert_eq!(r.status, 204, "{}", r.body);
    let r = api.get("/api/v1/clients/+38591555001");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("+38591555001"));
    assert_eq!(api.delete("/api/v1/clients/+38591555001").status, 404);
}

/// A number given to the API or the client import in any spelling the `[numbers]` rules know
/// is the number calls are looked up by: a client imported as "01 4000 001" is the client of
/// +38514000001, a do-not-call entry made as "091 555 0001" refuses a call-back to
/// "00385 91 555 0001".
#[test]
fn numbers_given_to_the_api_and_the_import_follow_the_numbers_rules() {
    let ports = Ports::new();
    let config = format!(
        "{}\n[numbers]\ncountry_code = \"385\"\nnational_prefix = \"0\"\ninternational_prefix = \"00\"\n",
        demo_config(&ports)
    );
    let dir = tempfile::tempdir().unwrap();
    import_clients(
        dir.path(),
        &config,
        "number,name,type,manager,region,overdue_debt\n01 4000 001,Zagreb Shop,retail,,,0\n",
    );
    let server = Server::start_in(dir, &config, ports);
    let api = Api::new(&server);

    let r = api.get("/api/v1/clients/+38514000001");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "Zagreb Shop");
    let r = api.get("/api/v1/clients/014000001");
    assert_eq!(r.json()["number"], "+38514000001", "{}", r.body);

    let r = api.put(
        "/api/v1/clients/091%20555%200002",
        &json!({"name": "Split Shop", "type": "retail"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["number"], "+385915550002");
    assert_eq!(api.get("/api/v1/clients/00385915550002").status, 200);

    let r = api.put("/api/v1/dnc/091%20555%200001", &json!({"reason": "asked"}));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["number"], "+385915550001");
    let r = api.post("/api/v1/callbacks", &json!({"number": "00385 91 555 0001"}));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.error().contains("do-not-call"), "{}", r.body);
    assert_eq!(api.delete("/api/v1/dnc/0915550001").status, 204);
    let r = api.post("/api/v1/callbacks", &json!({"number": "091 555 0001"}));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["number"], "+385915550001");
}

// ---- calls and call-backs ----------------------------------------------------------------

#[test]
fn call_history_active_calls_and_callbacks() {
    let server = start();
    let api = Api::new(&server);

    let r = api.get("/api/v1/calls");
    assert_eq!((r.status, r.json()), (200, json!([])));
    let r = api.get("/api/v1/calls?since=2026-01-01T00:00:00Z&limit=10");
    assert_eq!((r.status, r.json()), (200, json!([])));
    for query in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "since=yesterday",
        "since=2026-13-01T00:00:00Z",
    ] {
        let r = api.get(&format!("/api/v1/calls?{query}"));
        assert_eq!(r.status, 422, "{query}: {}", r.body);
        assert!(!r.error().is_empty());
    }
    let r = api.get("/api/v1/calls/active");
    assert_eq!((r.status, r.json()), (200, json!([])));

    let r = api.post(
        "/api/v1/callbacks",
        &json!({"number": "+385 91 555 0100", "at": "2026-03-02T14:30:00+01:00", "queue": "orders"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cb = r.json();
    assert_eq!(cb["number"], "+385915550100");
    assert_eq!(cb["at"], "2026-03-02T13:30:00.000Z");
    assert_eq!(cb["queue"], "orders");
    assert_eq!(cb["status"], "pending");
    assert_eq!(cb["attempts"], 0);
    assert_eq!(cb["call_ids"], json!([]));
    let id = cb["id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());
    // No trunk dials out in this configuration, so the call-back stays pending: read it,
    // list it, cancel it; a second cancel is a conflict, an unknown id 404.
    let r = api.get(&format!("/api/v1/callbacks/{id}"));
    assert_eq!(
        (r.status, r.json()["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let r = api.get("/api/v1/callbacks?status=pending");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str())
    );
    let r = api.call(
        "DELETE",
        &format!("/api/v1/callbacks/{id}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("cancelled")),
        "{}",
        r.body
    );
    let r = api.call(
        "DELETE",
        &format!("/api/v1/callbacks/{id}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let r = api.get("/api/v1/callbacks/nope");
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api.get("/api/v1/callbacks?status=sleeping");
    assert_eq!(r.status, 422, "{}", r.body);
    let r = api.post("/api/v1/callbacks", &json!({"number": "0911234567"}));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["at"], Value::Null);

    for (body, needle) in [
        (json!({}), "number"),
        (json!({"number": "call me"}), "number"),
        (json!({"number": "+38591", "at": "tomorrow"}), "at"),
        (json!({"number": "+38591", "queue": "nowhere"}), "queue"),
        (json!({"number": "+38591", "priority": 1}), "priority"),
    ] {
        let r = api.post("/api/v1/callbacks", &body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.error().contains(needle), "{body}: {}", r.body);
    }
}

// ---- OpenAPI -----------------------------------------------------------------------------

/// Every path of PRODUCT.md §4 with its method.
const PRODUCT_PATHS: [(&str, &str); 31] = [
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/metrics", "get"),
    ("/api/v1/agents", "get"),
    ("/api/v1/agents/{id}/state", "post"),
    ("/api/v1/queues", "get"),
    ("/api/v1/clients/{number}", "put"),
    ("/api/v1/clients/{number}", "get"),
    ("/api/v1/clients/{number}", "delete"),
    ("/api/v1/calls", "get"),
    ("/api/v1/calls/active", "get"),
    ("/api/v1/callbacks", "post"),
    ("/api/v1/callbacks", "get"),
    ("/api/v1/callbacks/{id}", "get"),
    ("/api/v1/callbacks/{id}", "delete"),
    ("/api/v1/calls/{id}/disposition", "post"),
    ("/api/v1/dnc", "get"),
    ("/api/v1/dnc/{number}", "put"),
    ("/api/v1/dnc/{number}", "delete"),
    ("/api/v1/events", "get"),
    ("/api/v1/agents/{id}", "get"),
    ("/api/v1/calls/{id}/quality", "put"),
    ("/api/v1/calls/{id}/recording", "get"),
    ("/api/v1/calls/{id}/escalate", "post"),
    ("/api/v1/escalations", "get"),
    ("/api/v1/escalations/{id}/ack", "post"),
    ("/api/v1/reports/agents", "get"),
    ("/api/v1/reports/queues", "get"),
    ("/api/v1/reports/abandoned", "get"),
    ("/api/v1/sessions", "delete"),
    ("/wallboard", "get"),
];

#[test]
fn openapi_document_lists_every_path_and_validates() {
    let server = start();
    let api = Api::new(&server);
    let r = api.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in PRODUCT_PATHS {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
        if path.starts_with("/api/v1") {
            assert_eq!(
                doc["paths"][path][method]["security"],
                json!([{"bearer": []}]),
                "{method} {path}"
            );
        }
    }
    // Logging in as an agent needs no token.
    let login = &doc["paths"]["/api/v1/sessions"]["post"];
    assert!(login.is_object() && login["security"].is_null(), "{login}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &r.body).unwrap();
    let Ok(out) = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
    else {
        peer_missing("python3 (the OpenAPI validator runs on it)");
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("No module named openapi_spec_validator") {
        peer_missing("openapi-spec-validator (PyPI)");
        return;
    }
    assert!(out.status.success(), "openapi-spec-validator: {text}");
    assert!(text.contains("OK"), "{text}");
}

// ---- metrics -----------------------------------------------------------------------------

/// `promtool check metrics` on a scrape; None when promtool is not installed.
fn promtool_check(text: &str) -> Option<(ExitStatus, String)> {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    Some((out.status, report))
}

#[test]
fn metrics_carry_the_product_names_and_pass_promtool() {
    let server = start();
    let api = Api::new(&server);
    api.post("/api/v1/agents/olga/state", &json!({"state": "break"}));
    let text = api.metrics();
    for name in [
        "switchboard_queue_waiting{queue=\"orders\"} 0",
        "switchboard_queue_oldest_wait_seconds{queue=\"regional\"} 0",
        "switchboard_agents{state=\"break\"} 1",
        "switchboard_agents{state=\"logged_out\"} 8",
        "switchboard_agents{state=\"available\"} 0",
        "switchboard_registrations 0",
        "switchboard_cdr_pending ",
        "switchboard_cdr_write_errors_total 0",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
    ] {
        assert!(text.contains(name), "{name:?} missing from\n{text}");
    }
    for help in [
        "switchboard_calls_total",
        "switchboard_wait_seconds",
        "switchboard_talk_seconds",
        "switchboard_rtp_packets_total",
        "switchboard_sip_requests_total",
        "switchboard_sip_responses_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {help} ")),
            "{help} not declared"
        );
    }
    // A queue has no service level until a call finished waiting in it.
    assert!(!text.contains("switchboard_service_level_ratio{"));
    match promtool_check(&text) {
        Some((status, report)) => assert!(status.success(), "promtool: {report}\n{text}"),
        None => peer_missing("promtool (Debian package prometheus)"),
    }
}

/// Metric names (`switchboard_*`, `process_*`) mentioned in a text.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for prefix in ["switchboard_", "process_"] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn deploy_files_use_only_exported_metrics() {
    let server = start();
    let api = Api::new(&server);
    let scrape = api.metrics();
    let root = crate::harness::repo_root().join("deploy");
    let dashboard = std::fs::read_to_string(root.join("grafana/switchboard.json")).unwrap();
    let parsed: Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    assert!(parsed["panels"].as_array().unwrap().len() > 10);
    let alerts = std::fs::read_to_string(root.join("prometheus/alerts.yml")).unwrap();
    let used = metric_names(&format!("{dashboard}\n{alerts}"));
    for product in [
        "switchboard_calls_total",
        "switchboard_queue_waiting",
        "switchboard_queue_oldest_wait_seconds",
        "switchboard_wait_seconds_bucket",
        "switchboard_talk_seconds_bucket",
        "switchboard_agents",
        "switchboard_service_level_ratio",
        "switchboard_registrations",
        "switchboard_sip_requests_total",
        "switchboard_sip_responses_total",
        "switchboard_rtp_packets_total",
        "switchboard_cdr_pending",
        "switchboard_cdr_write_errors_total",
    ] {
        assert!(
            used.iter().any(|u| u == product),
            "the dashboard does not show {product}"
        );
    }
    for name in &used {
        // The service level series appears with the first finished wait; it is declared.
        let declared = format!("# TYPE {} ", name.trim_end_matches("_bucket"));
        let sampled = format!("\n{name}");
        assert!(
            scrape.contains(&sampled)
                || scrape.contains(&declared)
                || name == "switchboard_service_level_ratio",
            "{name} is used by deploy/ but not exported:\n{scrape}"
        );
    }
    for args in [
        ["check", "config", "prometheus/prometheus.yml"],
        ["check", "rules", "prometheus/alerts.yml"],
    ] {
        let Ok(out) = Command::new("promtool")
            .args(args)
            .current_dir(&root)
            .output()
        else {
            peer_missing("promtool (Debian package prometheus)");
            return;
        };
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---- real calls: live events, active calls, history, metrics ------------------------------

/// REGISTER with digest auth once, from `port`, binding `sip:<id>@127.0.0.1:<port>`.
const REGISTER: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="register once">
  <send retrans="500">
    <![CDATA[

      REGISTER sip:callcenter.local SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@callcenter.local>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@callcenter.local>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>
      Expires: 300
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[

      REGISTER sip:callcenter.local SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@callcenter.local>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@callcenter.local>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>
      Expires: 300
      [authentication]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

/// An agent softphone played by SIPp's built-in UAS on the port its contact was registered
/// from; killed on drop.
struct UasAgent(Child);

impl UasAgent {
    fn start(server: &Server, id: &str) -> UasAgent {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("register.xml");
        std::fs::write(&scenario, REGISTER).unwrap();
        let port = free_port();
        let out = Command::new("timeout")
            .arg("15")
            .arg("sipp")
            .arg(server.sip_addr().to_string())
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-s", id, "-au", id, "-ap", &format!("{id}-secret")])
            .args(["-m", "1", "-nostdin", "-timeout", "10s", "-timeout_error"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "registering {id} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let child = Command::new("timeout")
            .arg("120")
            .arg("sipp")
            .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-mi",
                "127.0.0.1",
                "-mp",
                &free_media_ports().to_string(),
                "-rtp_echo",
            ])
            .arg("-nostdin")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        UasAgent(child)
    }
}

impl Drop for UasAgent {
    fn drop(&mut self) {
        crate::harness::stop_wrapped(&mut self.0);
    }
}

/// A trunk call (SIPp's built-in UAC) to DID `dialed` that hangs up `hold_ms` after it is
/// answered; runs in the background.
struct TrunkCall {
    child: Child,
    dir: tempfile::TempDir,
}

fn place_call(sip: SocketAddr, dialed: &str, hold_ms: u64) -> TrunkCall {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("timeout")
        .arg("40")
        .arg("sipp")
        .arg(sip.to_string())
        .args(["-sn", "uac", "-s", dialed])
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &free_media_ports().to_string()])
        .args(["-m", "1", "-d", &hold_ms.to_string()])
        .args(["-nostdin", "-timeout", "30s", "-timeout_error"])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(dir.path().join("messages.log"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    TrunkCall { child, dir }
}

/// Waits for the call to end: (exit status, SIPp's output, the SIP messages it saw).
fn finish(call: TrunkCall) -> (ExitStatus, String, String) {
    let TrunkCall { mut child, dir } = call;
    let status = crate::harness::wait_with_timeout(&mut child, Duration::from_secs(45))
        .expect("SIPp call did not finish");
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut s, &mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut s, &mut out);
    }
    let messages = std::fs::read_to_string(dir.path().join("messages.log")).unwrap_or_default();
    (status, out, messages)
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    data: Value,
}

/// Opens `/api/v1/events` and parses it on a thread; events arrive on the channel. The
/// stream ends when the server stops.
fn subscribe(server: &Server) -> mpsc::Receiver<Sse> {
    let url = format!("http://127.0.0.1:{}/api/v1/events", server.ports.http);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(5)))
        .build()
        .into();
    let resp = agent
        .get(&url)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .expect("open the event stream");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(resp.into_body().into_reader());
        let (mut event, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            } else if line.is_empty() && !data.is_empty() {
                let parsed = serde_json::from_str(&data).unwrap_or(Value::Null);
                if tx
                    .send(Sse {
                        event: std::mem::take(&mut event),
                        data: parsed,
                    })
                    .is_err()
                {
                    return;
                }
                data.clear();
            }
        }
    });
    rx
}

/// Collects events until `done` holds for the collection, or the timeout.
fn collect_until(
    rx: &mpsc::Receiver<Sse>,
    timeout: Duration,
    done: impl Fn(&[Sse]) -> bool,
) -> Vec<Sse> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) => seen.push(e),
            Err(_) => break,
        }
    }
    seen
}

fn calls_ended(events: &[Sse]) -> usize {
    events.iter().filter(|e| e.event == "call_ended").count()
}

#[test]
fn live_events_active_calls_history_and_metrics_follow_real_calls() {
    if without_sipp() {
        return;
    }
    let server = start();
    let api = Api::new(&server);
    let events = subscribe(&server);
    // Unknown callers are class `new`: role:department_head, of whom only Ivan is registered.
    let _ivan = UasAgent::start(&server, "ivan");
    crate::harness::wait_until(&server, "ivan available", Duration::from_secs(10), || {
        agent(&api.get("/api/v1/agents").json(), "ivan")["state"] == "available"
    });
    let ivan = agent(&api.get("/api/v1/agents").json(), "ivan").clone();
    assert_eq!(ivan["contacts"].as_array().unwrap().len(), 1, "{ivan}");

    let before = api.metrics();
    const CALLS: usize = 2;
    for n in 0..CALLS {
        let call = place_call(server.sip_addr(), "100", 2500);
        if n == 0 {
            // While the first call talks it is listed with its state and route.
            crate::harness::wait_until(
                &server,
                "an active talking call",
                Duration::from_secs(15),
                || {
                    api.get("/api/v1/calls/active")
                        .json()
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["state"] == "talking")
                },
            );
            let active = api.get("/api/v1/calls/active").json();
            let c = &active[0];
            assert_eq!(c["agent"], "ivan", "{active}");
            assert_eq!(c["client_class"], "new", "{active}");
            assert_eq!(c["purpose"], "order", "{active}");
            assert_eq!(c["dialed"], "100", "{active}");
            assert!(c["route"].as_str().unwrap().contains("ivan"), "{active}");
            assert_eq!(
                agent(&api.get("/api/v1/agents").json(), "ivan")["state"],
                "on_call"
            );
        }
        let (status, out, messages) = finish(call);
        assert!(
            status.success(),
            "call {n} failed: {out}\n{messages}\n{}",
            server.log()
        );
        // The agent may be in wrap-up; the next call waits for them.
    }

    let seen = collect_until(&events, Duration::from_secs(20), |s| {
        calls_ended(s) >= CALLS
    });
    assert_eq!(calls_ended(&seen), CALLS, "events: {seen:#?}");
    // Per call, in order: enqueued, offered (to Ivan), answered (by Ivan), ended.
    let mut call_ids: Vec<u64> = seen
        .iter()
        .filter_map(|e| e.data["call"].as_u64())
        .collect();
    call_ids.dedup();
    let mut distinct = call_ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), CALLS, "{seen:#?}");
    for id in distinct {
        let mine: Vec<&Sse> = seen.iter().filter(|e| e.data["call"] == id).collect();
        let names: Vec<&str> = mine.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            names,
            [
                "call_enqueued",
                "call_offered",
                "call_answered",
                "call_ended"
            ],
            "call {id}: {mine:#?}"
        );
        for e in &mine {
            assert_eq!(e.data["type"], e.event, "{e:?}");
        }
        assert_eq!(mine[0].data["class"], "new");
        assert_eq!(mine[1].data["agents"], json!(["ivan"]));
        assert!(mine[1].data["route"].as_str().unwrap().contains("ivan"));
        assert_eq!(mine[2].data["agent"], "ivan");
        assert_eq!(mine[3].data["outcome"], "answered");
        assert_eq!(mine[3].data["hangup_side"], "caller");
    }
    // Ivan's state changes were streamed too, in PRODUCT spelling, and queue figures.
    let ivan_states: Vec<&str> = seen
        .iter()
        .filter(|e| e.event == "agent_state" && e.data["agent"] == "ivan")
        .filter_map(|e| e.data["state"].as_str())
        .collect();
    for state in ["ringing", "on_call"] {
        assert!(ivan_states.contains(&state), "{ivan_states:?}");
    }
    assert!(
        seen.iter()
            .any(|e| e.event == "queue_figures" && e.data["name"] == "orders")
    );

    // The history has both calls, newest first, once their records are written.
    crate::harness::wait_until(&server, "two call records", Duration::from_secs(15), || {
        api.get("/api/v1/calls").json().as_array().unwrap().len() == CALLS
    });
    let history = api.get("/api/v1/calls?limit=10").json();
    let rows = history.as_array().unwrap();
    assert!(
        rows[0]["started_at"].as_str() >= rows[1]["started_at"].as_str(),
        "{history}"
    );
    for row in rows {
        assert_eq!(row["outcome"], "answered", "{row}");
        assert_eq!(row["agent_id"], "ivan", "{row}");
        assert_eq!(row["hangup_side"], "caller", "{row}");
        assert_eq!(row["direction"], "inbound", "{row}");
        assert!(row["talk_ms"].as_i64().unwrap() >= 2000, "{row}");
    }
    assert_eq!(
        api.get("/api/v1/calls?limit=1")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let newest = rows[0]["started_at"].as_str().unwrap();
    let only_newest = api.get(&format!(
        "/api/v1/calls?since={}",
        newest.replace('+', "%2B")
    ));
    assert_eq!(
        only_newest.json().as_array().unwrap().len(),
        1,
        "{}",
        only_newest.body
    );
    crate::harness::wait_until(&server, "no active calls", Duration::from_secs(5), || {
        api.get("/api/v1/calls/active").json() == json!([])
    });

    // The counters moved by exactly the calls placed.
    let after = api.metrics();
    let delta = |name: &str, labels: &[&str]| {
        metric_sum(&after, name, labels) - metric_sum(&before, name, labels)
    };
    assert_eq!(
        delta("switchboard_calls_total", &[]),
        CALLS as f64,
        "{after}"
    );
    assert_eq!(
        delta("switchboard_calls_total", &["outcome=\"answered\""]),
        CALLS as f64
    );
    assert_eq!(delta("switchboard_wait_seconds_count", &[]), CALLS as f64);
    assert_eq!(delta("switchboard_talk_seconds_count", &[]), CALLS as f64);
    assert!(delta("switchboard_talk_seconds_sum", &[]) >= 2.0 * CALLS as f64);
    assert!(delta("switchboard_sip_requests_total", &["method=\"INVITE\""]) >= CALLS as f64);
    assert!(delta("switchboard_sip_responses_total", &["class=\"2xx\""]) >= CALLS as f64);
    assert!(
        metric_sum(
            &after,
            "switchboard_rtp_packets_total",
            &["direction=\"out\""]
        ) > 0.0
    );
    assert_eq!(metric_sum(&after, "switchboard_registrations", &[]), 1.0);
    match promtool_check(&after) {
        Some((status, report)) => assert!(status.success(), "promtool: {report}\n{after}"),
        None => peer_missing("promtool (Debian package prometheus)"),
    }
}

#[test]
fn a_call_in_progress_survives_sigterm_until_it_ends() {
    if without_sipp() {
        return;
    }
    let mut server = start();
    let api = Api::new(&server);
    let _ivan = UasAgent::start(&server, "ivan");
    crate::harness::wait_until(&server, "ivan available", Duration::from_secs(10), || {
        agent(&api.get("/api/v1/agents").json(), "ivan")["state"] == "available"
    });
    let call = place_call(server.sip_addr(), "100", 4000);
    crate::harness::wait_until(&server, "the call talking", Duration::from_secs(15), || {
        api.get("/api/v1/calls/active")
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["state"] == "talking")
    });
    crate::harness::signal(server.child.id(), "TERM");
    // Readiness turns 503 while the call goes on.
    crate::harness::wait_until(&server, "/readyz 503", Duration::from_secs(5), || {
        let r = api.call("GET", "/readyz", None, None);
        r.status == 503 && r.json()["shutting_down"] == true
    });
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a call in progress"
    );
    // A new call is refused with 503 and Retry-After.
    let refused = place_call(server.sip_addr(), "100", 0);
    let (refused_status, refused_out, refused_messages) = finish(refused);
    assert!(
        !refused_status.success(),
        "a new call was accepted during shutdown: {refused_out}"
    );
    assert!(
        refused_messages.contains("SIP/2.0 503") && refused_messages.contains("Retry-After:"),
        "no 503 with Retry-After: {refused_messages}"
    );
    // The call in progress ends normally (the caller's BYE gets its 200) ...
    let (status, out, messages) = finish(call);
    assert!(
        status.success(),
        "the call did not survive SIGTERM: {out}\n{messages}\n{}",
        server.log()
    );
    assert!(messages.contains("BYE sip:"), "{messages}");
    // ... then the server exits 0.
    let exit = crate::harness::wait_with_timeout(&mut server.child, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("server did not exit; log:\n{}", server.log()));
    assert!(exit.success(), "exit {exit:?}; log:\n{}", server.log());
    let log = server.log();
    assert!(
        log.contains("outcome=answered") || log.contains("outcome=\"answered\""),
        "{log}"
    );
}
