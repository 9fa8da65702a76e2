//! The examples as a user runs them: start the binary, run the `curl` line it prints.
//!
//! Run through a plain `cargo test` (which builds the examples first): `cargo test --test
//! examples` alone does not rebuild them and would run stale binaries.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

// The local identity provider of the bearer tests (this file uses a part of it).
#[cfg(all(feature = "jwt", feature = "introspection"))]
#[allow(dead_code)]
#[path = "bearer/idp.rs"]
mod idp;

/// A running example, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/<profile>/examples/<name>`, built by `cargo test` before any test runs.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}

/// Starts the example and returns it with its stdout up to and including the `curl` line.
fn start(name: &str, args: &[&str]) -> (Running, Vec<String>) {
    start_with_env(name, args, &[])
}

/// [`start`], with environment variables set for the example's process alone.
fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> (Running, Vec<String>) {
    let mut child = Command::new(example_binary(name))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let running = Running(child);
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{name} printed no curl line: {lines:?}"));
        let done = line.starts_with("curl ");
        lines.push(line);
        if done {
            return (running, lines);
        }
    }
}

/// The `host:port` a printed `curl` line points at.
fn address_of(curl: &str) -> &str {
    let url = curl
        .split("http://")
        .nth(1)
        .expect("a URL in the curl line");
    url.split('/').next().unwrap_or(url)
}

/// Runs a shell command line (the printed `curl` line) and returns its stdout.
fn sh(line: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{line} --silent --show-error --max-time 10"))
        .output()
        .expect("sh and curl are installed (.ci/run installs curl)");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The line with one character of the key's secret changed.
fn with_typo(curl: &str) -> String {
    let start = curl.find("pal_").unwrap() + 30;
    let mut bytes = curl.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'Q' { b'R' } else { b'Q' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn quickstart_curl_line_returns_200_and_a_typo_returns_401() {
    let (_server, lines) = start("quickstart", &["--listen", "127.0.0.1:0"]);
    let curl = lines.last().unwrap();
    let ok = sh(curl);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains(r#""subject":"demo""#), "{ok}");
    // The default quotas announce themselves (IETF RateLimit fields).
    assert!(
        ok.contains(
            r#"ratelimit-policy: "per-user-rate";q=20;w=2, "per-user-day";q=10000;w=86400"#
        ),
        "{ok}"
    );
    assert!(ok.contains(r#"ratelimit: "per-ip";r=99;t=1"#), "{ok}");
    let refused = sh(&with_typo(curl));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.contains("application/problem+json"), "{refused}");
    // The public health route sits outside the guard.
    let addr = address_of(curl);
    assert_eq!(sh(&format!("curl http://{addr}/health")), "ok");
    // `/v1/status` is public by policy: no key, the anonymous principal.
    let status = sh(&format!("curl -i http://{addr}/v1/status"));
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(status.contains(r#""subject":"anonymous""#), "{status}");
    // The demo key is an admin (admin inherits reader): it may delete orders.
    let key = curl
        .split("x-api-key: ")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let delete = sh(&format!(
        "curl -i -X DELETE -H 'x-api-key: {key}' http://{addr}/v1/orders/9"
    ));
    assert!(delete.starts_with("HTTP/1.1 200"), "{delete}");
    // A method the route does not serve is refused with the methods this caller may use.
    let put = sh(&format!(
        "curl -i -X PUT -H 'x-api-key: {key}' http://{addr}/v1/orders/9"
    ));
    assert!(put.starts_with("HTTP/1.1 405"), "{put}");
    assert!(put.contains("allow: GET, HEAD, DELETE"), "{put}");
    // A path no route serves: 404, with the reason.
    let unlisted = sh(&format!(
        "curl -i -H 'x-api-key: {key}' http://{addr}/v1/elsewhere"
    ));
    assert!(unlisted.starts_with("HTTP/1.1 404"), "{unlisted}");
    assert!(unlisted.contains("route_not_found"), "{unlisted}");
    // The default validation rules: a valid order is echoed, a bad one is 422 listing why.
    let post = |body: &str| {
        sh(&format!(
            "curl -i -X POST -H 'x-api-key: {key}' -H 'content-type: application/json' -d '{body}' http://{addr}/v1/orders"
        ))
    };
    let ok = post(r#"{"sku": "ABC-1234", "qty": 2}"#);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let bad = post(r#"{"sku": "abc", "qty": 0}"#);
    assert!(bad.starts_with("HTTP/1.1 422"), "{bad}");
    assert!(bad.contains(r##""pointer":"#/qty""##), "{bad}");
    let limit = sh(&format!(
        "curl -i -H 'x-api-key: {key}' 'http://{addr}/v1/orders?limit=abc'"
    ));
    assert!(limit.starts_with("HTTP/1.1 422"), "{limit}");
}

#[test]
fn quickstart_serves_the_routes_a_config_file_declares() {
    let dir = std::env::temp_dir().join(format!("palisade-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("api.yaml");
    let mut f = std::fs::File::create(&path).unwrap();
    // The file holds the key's hash only; the test keeps the plaintext to call with.
    let keys = palisade::authn::api_key::ApiKeys::new();
    let issued = keys
        .generate(palisade::authn::api_key::KeySpec::new("configured"))
        .unwrap();
    let plaintext = issued.plaintext.expose_secret();
    let (id, hash) = keys.hash(plaintext).unwrap();
    writeln!(
        f,
        "api_keys:\n  keys:\n    - id: {id}\n      hash: {}\n      subject: configured\nroutes:\n  - path: /things/{{id}}\n    methods: [GET]\n",
        hash.to_hex()
    )
    .unwrap();
    drop(f);
    let (_server, lines) = start(
        "quickstart",
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
        ],
    );
    let curl = lines.last().unwrap();
    assert!(curl.ends_with("/things/1"), "{curl}");
    let addr = address_of(curl);
    let ok = sh(&format!(
        "curl -i -H 'x-api-key: {plaintext}' http://{addr}/things/42"
    ));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains(r#""route":"/things/{id}""#), "{ok}");
    assert!(ok.contains(r#""subject":"configured""#), "{ok}");
    // Undeclared routes are still behind the guard.
    let refused = sh(&format!("curl -i http://{addr}/v1/hello"));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every section of a configuration file takes effect through the quickstart: `client_ip`
/// (a trusted proxy's forwarded address), `api_keys` and `jwt` together (a PyJWT-signed ES256
/// token from the configured issuer is served; a 401 challenges with both schemes), `roles` and
/// `routes`, `quota` (both stages' `RateLimit` fields, one stage counting in a named store),
/// `validation` (a body breaking the schema, or nested deeper than its `limits`, is 422) and
/// `audit` (events reach the file sink).
#[cfg(feature = "jwt")]
#[test]
fn quickstart_honours_every_section_of_a_config_file_bearer_tokens_included() {
    let dir = std::env::temp_dir().join(format!("palisade-sections-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    let tokens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("tokens.json")).unwrap())
            .unwrap();
    let token = tokens["tokens"]["ES256"].as_str().unwrap();
    let pem = std::fs::read_to_string(fixtures.join("es256.pub.pem")).unwrap();
    let keys = palisade::authn::api_key::ApiKeys::new();
    let issued = keys
        .generate(palisade::authn::api_key::KeySpec::new("configured"))
        .unwrap();
    let plaintext = issued.plaintext.expose_secret();
    let (id, hash) = keys.hash(plaintext).unwrap();
    let pem_block: String = pem
        .lines()
        .map(|l| format!("              {l}\n"))
        .collect();
    let config = format!(
        r#"client_ip:
  trusted_proxies: [127.0.0.1]
api_keys:
  keys:
    - {{id: {id}, hash: {hash}, subject: configured, roles: [reader]}}
jwt:
  issuers:
    - issuer: https://idp.palisade.test/realms/acme
      audiences: [orders-api]
      keys:
        - kid: es256
          pem: |
{pem_block}  claims: {{roles: realm_access.roles}}
roles:
  - name: reader
routes:
  - {{path: /orders, methods: [GET, POST], roles: [reader]}}
quota:
  stores:
    edge: {{type: memory, max_keys: 1000}}
  policies:
    per-ip: [{{rate: 50, per: 1s}}]
    per-user: [{{rate: 10, per: 1s, burst: 20}}]
  clients:
    - {{key: client_ip, policy: per-ip, store: edge}}
  principals:
    - {{key: subject, policy: per-user}}
validation:
  limits: {{max_depth: 2}}
  operations:
    - path: /orders
      method: POST
      body: {{type: object, required: [sku]}}
audit:
  sink: {{file: {{path: audit.jsonl}}}}
"#,
        hash = hash.to_hex()
    );
    let path = dir.join("api.yaml");
    std::fs::write(&path, config).unwrap();
    let (_server, lines) = start(
        "quickstart",
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
        ],
    );
    let addr = address_of(lines.last().unwrap()).to_owned();
    // jwt: the issuer's token is served, its roles mapped from the claims.
    let bearer = sh(&format!(
        "curl -i -H 'authorization: Bearer {token}' -H 'x-forwarded-for: 203.0.113.9' -H 'x-forwarded-proto: https' http://{addr}/orders"
    ));
    // The same from the proxy's client over plain HTTP: refused before the token is read.
    let plain = sh(&format!(
        "curl -i -H 'authorization: Bearer {token}' -H 'x-forwarded-for: 203.0.113.9' -H 'x-forwarded-proto: http' http://{addr}/orders"
    ));
    assert!(plain.starts_with("HTTP/1.1 403"), "{plain}");
    assert!(plain.contains("insecure_transport"), "{plain}");
    assert!(bearer.starts_with("HTTP/1.1 200"), "{bearer}");
    assert!(bearer.contains(r#""subject":"py-user""#), "{bearer}");
    // client_ip: the trusted proxy's forwarded address.
    assert!(bearer.contains(r#""client_ip":"203.0.113.9""#), "{bearer}");
    // quota: both stages' RateLimit fields, the per-address one counted in the `edge` store.
    assert!(bearer.contains(r#""per-user";r=19;"#), "{bearer}");
    assert!(bearer.contains(r#""per-ip";r=49;"#), "{bearer}");
    // api_keys: the stored key is served too.
    let key = sh(&format!(
        "curl -i -H 'x-api-key: {plaintext}' http://{addr}/orders"
    ));
    assert!(key.starts_with("HTTP/1.1 200"), "{key}");
    // Without a credential: both schemes are offered (RFC 9110 §11.6.1).
    let missing = sh(&format!("curl -i http://{addr}/orders"));
    assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
    let challenges: Vec<&str> = missing
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .collect();
    assert!(challenges.iter().any(|c| c.contains("ApiKey")), "{missing}");
    assert!(challenges.iter().any(|c| c.contains("Bearer")), "{missing}");
    // A forged token from the configured issuer's name: refused as a bearer failure.
    // One signature character changed (well inside it: every bit of it counts).
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged_token = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    let forged = sh(&format!(
        "curl -i -H 'authorization: Bearer {forged_token}' http://{addr}/orders"
    ));
    assert!(forged.starts_with("HTTP/1.1 401"), "{forged}");
    assert!(forged.contains("invalid_token"), "{forged}");
    // validation: a body without `sku` never reaches the handler.
    let invalid = sh(&format!(
        "curl -i -X POST -H 'x-api-key: {plaintext}' -H 'content-type: application/json' -d '{{}}' http://{addr}/orders"
    ));
    assert!(invalid.starts_with("HTTP/1.1 422"), "{invalid}");
    // validation.limits: nesting deeper than `max_depth: 2` is refused before the schema.
    let deep = sh(&format!(
        "curl -i -X POST -H 'x-api-key: {plaintext}' -H 'content-type: application/json' -d '{{\"sku\": [[[1]]]}}' http://{addr}/orders"
    ));
    assert!(deep.starts_with("HTTP/1.1 422"), "{deep}");
    assert!(deep.contains("maxDepth"), "{deep}");
    // audit: the events reach the file sink (the queue writes every few milliseconds).
    let log = dir.join("audit.jsonl");
    let mut text = String::new();
    for _ in 0..200 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(text.lines().count() >= 5, "audit log: {text}");
    assert!(text.contains(r#""subject":"py-user""#), "{text}");
    assert!(!text.contains(token), "a token reached the audit log");
    assert!(!text.contains(plaintext), "a key reached the audit log");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `introspection` section through the quickstart, beside `jwt`: an opaque token the local
/// identity provider knows is served (its client secret read from the variable the file names,
/// set for the server's process alone), an inactive one is refused, a JWT never reaches the
/// introspection endpoint, and a 401 offers both schemes.
#[cfg(all(feature = "jwt", feature = "introspection"))]
#[test]
fn quickstart_takes_opaque_tokens_through_the_introspection_section() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let idp = rt.block_on(idp::Idp::start(serde_json::json!({"keys": []})));
    idp.add_token(
        "opaque-quickstart-1",
        serde_json::json!({"active": true, "sub": "dora", "aud": "orders-api", "roles": ["reader"]}),
    );
    let dir = std::env::temp_dir().join(format!("palisade-introspect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        r#"roles: [{{name: reader}}]
routes:
  - {{path: /orders, methods: [GET], roles: [reader]}}
jwt:
  issuers:
    - {{issuer: https://idp.palisade.test/realms/acme, jwks_url: "{jwks}", audiences: [orders-api]}}
introspection:
  url: "{url}"
  client_id: {client}
  client_secret_env: PALISADE_QUICKSTART_INTROSPECTION_SECRET
  audiences: [orders-api]
  claims: {{roles: roles}}
  max_token_bytes: 64
"#,
        jwks = idp.jwks_url(),
        url = idp.introspection_url(),
        client = idp::CLIENT_ID,
    );
    let path = dir.join("api.yaml");
    std::fs::write(&path, config).unwrap();
    let (_server, lines) = start_with_env(
        "quickstart",
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
        ],
        &[(
            "PALISADE_QUICKSTART_INTROSPECTION_SECRET",
            idp::CLIENT_SECRET,
        )],
    );
    let addr = address_of(lines.last().unwrap()).to_owned();
    let ok = sh(&format!(
        "curl -i -H 'authorization: Bearer opaque-quickstart-1' http://{addr}/orders"
    ));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains(r#""subject":"dora""#), "{ok}");
    let inactive = sh(&format!(
        "curl -i -H 'authorization: Bearer opaque-unknown-2' http://{addr}/orders"
    ));
    assert!(inactive.starts_with("HTTP/1.1 401"), "{inactive}");
    assert!(inactive.contains("invalid_token"), "{inactive}");
    assert_eq!(idp.introspection_hits(), 2, "each opaque token asked once");
    // `max_token_bytes`: a longer token is refused without asking the provider.
    let long = "o".repeat(65);
    let refused = sh(&format!(
        "curl -i -H 'authorization: Bearer {long}' http://{addr}/orders"
    ));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert_eq!(
        idp.introspection_hits(),
        2,
        "an over-long token is never sent"
    );
    let missing = sh(&format!("curl -i http://{addr}/orders"));
    assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
    let challenges = missing.to_ascii_lowercase();
    assert!(challenges.contains("www-authenticate: apikey"), "{missing}");
    assert!(challenges.contains("www-authenticate: bearer"), "{missing}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hyper_example_curl_line_returns_200() {
    let (_server, lines) = start("hyper", &["--listen", "127.0.0.1:0"]);
    let curl = lines.last().unwrap();
    let ok = sh(curl);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("hello demo from 127.0.0.1"), "{ok}");
    // Both quota stages report, without axum (routes and addresses from plain hyper).
    assert!(ok.contains(r#"ratelimit: "per-ip";r=39;t=1"#), "{ok}");
    assert!(ok.contains(r#""per-user";r=999;"#), "{ok}");
    let refused = sh(&with_typo(curl));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}

/// The value of the Prometheus sample `name{labels}` in an exposition, or 0 when absent.
#[cfg(feature = "metrics")]
fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[cfg(feature = "metrics")]
#[test]
fn metrics_example_exposes_counters_that_move_with_the_traffic() {
    let (_server, lines) = start("metrics", &["--listen", "127.0.0.1:0"]);
    let curl = lines.last().unwrap();
    let addr = address_of(curl);
    let scrape = || sh(&format!("curl http://{addr}/metrics"));
    let refused_401 = r#"palisade_requests_refused_total{layer="authn",reason="missing_credentials",status="401"}"#;
    let allowed_authn = r#"palisade_requests_allowed_total{layer="authn"}"#;
    let allowed_authz = r#"palisade_requests_allowed_total{layer="authz"}"#;
    let before = scrape();

    assert!(sh(curl).starts_with("order for demo"));
    for _ in 0..3 {
        let status = sh(&format!(
            "curl -o /dev/null -w '%{{http_code}}' http://{addr}/v1/orders/42"
        ));
        assert_eq!(status, "401");
    }
    let after = scrape();
    assert_eq!(
        sample(&after, refused_401) - sample(&before, refused_401),
        3.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, allowed_authn) - sample(&before, allowed_authn),
        1.0
    );
    assert_eq!(
        sample(&after, allowed_authz) - sample(&before, allowed_authz),
        1.0
    );
    // Decision times as a histogram with buckets, which the Grafana dashboard's quantiles
    // need; every palisade family served is one the library declares (and the dashboard
    // charts).
    assert!(
        after.contains("# TYPE palisade_decision_seconds histogram"),
        "{after}"
    );
    assert!(
        after.contains(r#"palisade_decision_seconds_bucket{layer="authn",le="#),
        "{after}"
    );
    for family in after
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE palisade_"))
    {
        let name = format!("palisade_{}", family.split(' ').next().unwrap());
        assert!(
            palisade::telemetry::names::ALL.contains(&name.as_str()),
            "{name} is not in telemetry::names::ALL"
        );
    }
    // The audit queue reports what it took in (four requests; the scrapes are unguarded).
    assert!(
        sample(&after, r#"palisade_audit_events_total{state="queued"}"#) >= 4.0,
        "{after}"
    );
    // JSON bodies: the first teaches the operation its type (`Validated<NewOrder>`), the
    // next ones are checked and built in one pass; a refused one is still refused.
    let fused = r#"palisade_validation_bodies_total{path="fused"}"#;
    let post = |body: &str| {
        sh(&format!(
            "{} -H 'content-type: application/json' -d '{body}' http://{addr}/v1/orders -o /dev/null -w '%{{http_code}}'",
            curl.split(" http://").next().unwrap()
        ))
    };
    for _ in 0..3 {
        assert_eq!(post(r#"{"sku":"ABC-1234","qty":2}"#), "200");
    }
    assert_eq!(post(r#"{"sku":"ABC-1234","qty":0}"#), "422");
    let after = scrape();
    assert!(
        sample(&after, fused) - sample(&before, fused) >= 2.0,
        "{after}"
    );
    // No secret in the exposition: the key the test sent appears nowhere.
    let key = curl
        .split("x-api-key: ")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(!after.contains(key));
}

// A real `redis-server` (TLS with client certificates) for the quota store of a file.
#[cfg(feature = "redis-tls")]
#[path = "support/redis_server.rs"]
mod redis_server;

/// `quota.store` of a configuration file reaches a Redis that serves TLS only and asks for a
/// client certificate (`tls-auth-clients yes`): with `tls_ca_file`, `tls_client_cert_file` and
/// `tls_client_key_file` (read beside the file) the quickstart counts there; without the
/// client certificate the server turns it away and the store fails closed (503, never the
/// handler).
#[cfg(feature = "redis-tls")]
#[test]
fn quickstart_counts_in_a_redis_that_asks_for_the_client_certificate_of_the_file() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let test = "quickstart_counts_in_a_redis_over_mutual_tls";
    let Some(redis) = rt.block_on(redis_server::Redis::start_tls_verifying_clients(test)) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("palisade-redis-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (from, to) in [
        ("ca.crt", "ca.pem"),
        ("node.crt", "client.pem"),
        ("node.key", "client.key"),
    ] {
        std::fs::copy(redis_server::Redis::fixture(from), dir.join(to)).unwrap();
    }
    let config = |client_cert: &str| {
        format!(
            "roles:\n  - name: admin\nroutes:\n  - {{path: /orders, methods: [GET], roles: [admin]}}\n\
             quota:\n  store: {{type: redis, url_env: PALISADE_TEST_QUOTA_REDIS, prefix: \"{test}:\", \
             timeout_ms: 500, tls_ca_file: ca.pem{client_cert}}}\n  policies:\n    \
             per-user: [{{quota: 3, window: hour}}]\n  principals:\n    - {{key: subject, policy: per-user}}\n"
        )
    };
    let statuses = |file: &str, text: String| {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        let url = redis.url();
        let (_server, lines) = start_with_env(
            "quickstart",
            &[
                "--listen",
                "127.0.0.1:0",
                "--config",
                path.to_str().unwrap(),
            ],
            &[("PALISADE_TEST_QUOTA_REDIS", &url)],
        );
        let curl = lines
            .last()
            .unwrap()
            .replace("curl -i", "curl -s -o /dev/null -w '%{http_code}'");
        (0..5).map(|_| sh(&curl)).collect::<Vec<_>>()
    };
    let with_cert = statuses(
        "mtls.yaml",
        config(", tls_client_cert_file: client.pem, tls_client_key_file: client.key"),
    );
    assert_eq!(with_cert, ["200", "200", "200", "429", "429"]);
    let without = statuses("no-client-cert.yaml", config(""));
    assert_eq!(without, ["503"; 5]);
    let _ = std::fs::remove_dir_all(&dir);
}
