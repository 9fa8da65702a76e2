//! The `palisade` command-line tool as an operator runs it: each subcommand as a process, on
//! real files (`tests/fixtures/cli/`), checking what it prints and its exit status. The audit
//! log it verifies and summarizes is written by a stack serving real HTTP over loopback.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use http::Request;
use http_body_util::Full;

const PEPPER: &str = "a pepper of at least thirty-two bytes!!";
const AUDIT_KEY: &str = "an audit chain key of 32 bytes!!";
/// The key of `alice`'s record in `tests/fixtures/cli/palisade.yaml` (a test key, hashed
/// there under [`PEPPER`]).
const ALICE_KEY: &str = "acme_4OngLuPWApYwkjfZ8M6U2WCfsmKFhPsR5qPMyAjnGQrzzAl1IGGUeXY5VTL2MrGwv";
/// The key of the expired record `retired` in the same file.
const RETIRED_KEY: &str = "acme_BWoqPAywPPxO0WWA41k9H0Zm1BD05YijodZn9n2s6DCabJ9IGaFIlKk1C4A0GYlOd";

/// What a run of the tool ended with.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `palisade args` with `stdin` on its standard input and `env` set.
fn palisade(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cli")
        .join(name)
        .display()
        .to_string()
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("palisade-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The value of `name: value` in the tool's output.
fn line_value<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no `{name}:` line in {out}"))
}

/// The environment the fixture `palisade.yaml` names.
const FULL_ENV: &[(&str, &str)] = &[
    ("PALISADE_CLI_PEPPER", PEPPER),
    ("PALISADE_CLI_REDIS_URL", "redis://127.0.0.1:1/0"),
    (
        "PALISADE_CLI_INTROSPECTION_SECRET",
        "introspection client secret",
    ),
    ("PALISADE_CLI_AUDIT_KEY", AUDIT_KEY),
];

#[test]
fn config_check_builds_every_section_without_a_server_and_leaves_no_file() {
    let path = fixture("palisade.yaml");
    let log = Path::new(&path).with_file_name("cli-check-audit.jsonl");
    // Nothing listens on the Redis port, and sso.example.com is never asked for its keys.
    let run = palisade(&["config", "check", &path], "", FULL_ENV);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with(&format!("{path}: ok\n")), "{run:?}");
    for part in [
        "authentication: api keys (prefix `acme`, 2 stored records, peppered), jwt (1 issuer), introspection",
        "authorization: 2 roles, 5 rules",
        "audit: 1 sink, chained",
    ] {
        assert!(run.stdout.contains(part), "{part}: {run:?}");
    }
    assert!(!log.exists(), "the check left {} behind", log.display());
    // Without the variables the file names, the service would not start: nor does the check.
    let run = palisade(&["config", "check", &path], "", &FULL_ENV[1..]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("`api_keys.pepper_env`: environment variable `PALISADE_CLI_PEPPER`")
    );
}

/// Every startup mistake `docs/config.md` lists has a file in `tests/fixtures/cli/config-errors`
/// whose `# expect:` lines say what the error must name (and `# env:` lines what to set).
#[test]
fn config_check_names_the_file_section_and_item_of_every_documented_startup_mistake() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cli/config-errors");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "openapi.yaml" {
            continue; // the document one of the files names
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let header = |tag: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(tag))
                .map(str::to_owned)
                .collect()
        };
        let env: Vec<(String, String)> = header("# env: ")
            .iter()
            .map(|e| e.split_once('=').unwrap())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
        let expected = header("# expect: ");
        assert!(!expected.is_empty(), "{name} has no `# expect:` line");
        let run = palisade(&["config", "check", path.to_str().unwrap()], "", &env);
        assert_eq!(run.code, Some(1), "{name}: {run:?}");
        assert!(run.stdout.is_empty(), "{name}: {run:?}");
        assert!(
            run.stderr.contains(&name),
            "{name}: the file is not named: {run:?}"
        );
        for e in &expected {
            assert!(
                run.stderr.contains(e.as_str()),
                "{name}: `{e}` is not named: {}",
                run.stderr
            );
        }
        checked += 1;
    }
    assert!(checked >= 45, "only {checked} mistakes checked");
}

#[test]
fn config_check_of_a_file_that_cannot_be_read_names_it() {
    let run = palisade(&["config", "check", "/nonexistent/palisade.yaml"], "", &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("`/nonexistent/palisade.yaml`"),
        "{run:?}"
    );
    let run = palisade(
        &[
            "config",
            "check",
            &fixture("policy.yaml").replace(".yaml", ".ini"),
        ],
        "",
        &[],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(".yaml, .yml, .toml or .json"),
        "{run:?}"
    );
    // A usage mistake is status 2.
    assert_eq!(palisade(&["config", "check"], "", &[]).code, Some(2));
}

#[test]
fn keys_hash_and_check_agree_with_the_configured_hasher_and_never_print_the_key() {
    let config = fixture("palisade.yaml");
    let pepper = [("PALISADE_CLI_PEPPER", PEPPER)];
    let hashed = palisade(&["keys", "hash", "--config", &config], ALICE_KEY, &pepper);
    assert_eq!(hashed.code, Some(0), "{hashed:?}");
    assert_eq!(line_value(&hashed.stdout, "id"), "4OngLuPWApYwkjfZ");
    let hash = line_value(&hashed.stdout, "hash").to_owned();
    assert_eq!(
        hash,
        "5bb91970eb383e7a6e04f28704a57ebe21329130b088826d9fffd417c3886045"
    );
    // The same with the settings spelled out; plain SHA-256 without the pepper differs.
    let flags = palisade(
        &[
            "keys",
            "hash",
            "--prefix",
            "acme",
            "--pepper-env",
            "PALISADE_CLI_PEPPER",
        ],
        ALICE_KEY,
        &pepper,
    );
    assert_eq!(line_value(&flags.stdout, "hash"), hash);
    let plain = palisade(&["keys", "hash", "--prefix", "acme"], ALICE_KEY, &[]);
    assert_ne!(line_value(&plain.stdout, "hash"), hash);

    // Checked against the file's records: alice's key is accepted, the retired one expired.
    let ok = palisade(&["keys", "check", "--config", &config], ALICE_KEY, &pepper);
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(
        ok.stdout.contains("key 4OngLuPWApYwkjfZ: matches"),
        "{ok:?}"
    );
    let expired = palisade(
        &["keys", "check", "--config", &config],
        RETIRED_KEY,
        &pepper,
    );
    assert_eq!(expired.code, Some(1), "{expired:?}");
    assert!(expired.stdout.contains("has expired"), "{expired:?}");
    // Against a hash: the stored one matches, without the pepper it does not.
    let by_hash = ["keys", "check", "--hash", &hash, "--prefix", "acme"];
    let wrong = palisade(&by_hash, ALICE_KEY, &[]);
    assert_eq!(wrong.code, Some(1), "{wrong:?}");
    assert!(wrong.stdout.contains("does not match"), "{wrong:?}");
    let mut peppered = by_hash.to_vec();
    peppered.extend(["--pepper-env", "PALISADE_CLI_PEPPER"]);
    assert_eq!(palisade(&peppered, ALICE_KEY, &pepper).code, Some(0));

    // A malformed key: refused, and nothing of it is echoed anywhere.
    let secret = "acme_this-is-not-a-key-but-it-is-secret";
    for args in [
        &["keys", "hash", "--prefix", "acme"][..],
        &["keys", "check", "--hash", &hash, "--prefix", "acme"],
    ] {
        let run = palisade(args, secret, &[]);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(
            !run.stdout.contains("secret") && !run.stderr.contains("secret"),
            "{run:?}"
        );
        assert!(run.stderr.contains("not a key of this format"), "{run:?}");
    }
    for run in [&hashed, &ok, &expired] {
        assert!(!run.stdout.contains(&ALICE_KEY[5..]) && !run.stderr.contains(&ALICE_KEY[5..]));
    }
}

#[test]
fn policy_explain_names_the_deciding_rule_and_exits_by_the_decision() {
    let policy = fixture("policy.yaml");
    let run = palisade(
        &[
            "policy",
            "explain",
            &policy,
            "GET",
            "/v1/orders/42",
            "--role",
            "admin",
            "--scope",
            "orders:read",
        ],
        "",
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("decision: allowed (granted)"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("rule: routes[1]: GET /v1/orders/{id} roles=[viewer] scopes=[orders:read]"),
        "{run:?}"
    );
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["DELETE", "/v1/orders/42", "--role", "viewer"],
            1,
            "refused (missing_role)",
        ),
        (
            &["GET", "/v1/orders/42", "--role", "viewer"],
            1,
            "refused (missing_scope)",
        ),
        (
            &["GET", "/v1/orders/{id}", "--template", "--anonymous"],
            1,
            "refused (not_authenticated)",
        ),
        (
            &["POST", "/admin/users/7", "--role", "admin"],
            0,
            "rule: routes[3]: * /admin/*",
        ),
        (&["GET", "/health", "--anonymous"], 0, "allowed (public)"),
        (
            // A path no rule covers: 404 in the service, unless routes are hidden.
            &["PUT", "/nowhere", "--role", "admin"],
            1,
            "refused (route_not_found)",
        ),
        (
            &["get", "/v1/reports/9", "--role", "viewer"],
            1,
            "insufficient_user_authentication",
        ),
        (
            &[
                "GET",
                "/v1/reports/9",
                "--role",
                "viewer",
                "--acr",
                "urn:example:mfa",
                "--auth-time",
                "2001-01-01T00:00:00Z",
            ],
            1,
            "insufficient_user_authentication",
        ),
    ];
    for (args, code, expected) in cases {
        let mut argv = vec!["policy", "explain", &policy];
        argv.extend_from_slice(args);
        let run = palisade(&argv, "", &[]);
        assert_eq!(run.code, Some(*code), "{args:?}: {run:?}");
        assert!(run.stdout.contains(expected), "{args:?}: {run:?}");
    }
    // A user who authenticated just now with the required class passes the step-up rule.
    use palisade::clock::{Clock, SystemClock};
    let now = humantime::format_rfc3339(SystemClock.now().to_system_time()).to_string();
    let run = palisade(
        &[
            "policy",
            "explain",
            &policy,
            "GET",
            "/v1/reports/9",
            "--role",
            "viewer",
            "--acr",
            "urn:example:mfa",
            "--auth-time",
            &now,
        ],
        "",
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("allowed (granted)"), "{run:?}");
    // A whole configuration file serves as well; a method that is not one is a usage error.
    let run = palisade(
        &[
            "policy",
            "explain",
            &fixture("palisade.yaml"),
            "GET",
            "/health",
            "--anonymous",
        ],
        "",
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = palisade(&["policy", "explain", &policy, "GE T", "/health"], "", &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
}

#[test]
fn audit_summary_counts_refusals_per_hour_and_escapes_what_callers_wrote() {
    let run = palisade(
        &["audit", "summary", &fixture("audit-refusals.jsonl")],
        "",
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let out = &run.stdout;
    assert!(out.contains("8 events, 6 refused, 3 events lost (in 1 loss report), 1 line that is not an audit event"), "{out}");
    for expected in [
        "refusals by reason\n\
         hour              reason                    refusals\n\
         ----------------  ------------------------  --------\n\
         2026-11-23T01:00  wrong_secret (authn)             2\n\
         2026-11-23T01:00  missing_role (authz)             1\n",
        "2026-11-23T02:00  rate_limited (quota)             1\n",
        "2026-11-23T01:00  DELETE /v1/orders/{id}           1\n",
        "2026-11-23T01:00  POST (no declared route)         1\n",
        "2026-11-23T02:00  bob                      2\n",
        "refusals by client address\n",
        "2026-11-23T01:00  203.0.113.7            3\n",
    ] {
        assert!(out.contains(expected), "{expected:?} in\n{out}");
    }
    // The subject an attacker chose reaches the terminal escaped, never as an escape sequence.
    assert!(!out.contains('\u{1b}'), "{out}");
    assert!(out.contains("mallory\\u{1b}[2J"), "{out}");
}

/// A stack built from a configuration file serves real requests over loopback; its chained
/// audit log then verifies, summarizes, and a deleted line is named by file and line.
#[tokio::test(flavor = "multi_thread")]
async fn a_served_log_verifies_across_rotated_files_and_a_deleted_line_is_named() {
    let dir = scratch("served");
    let issued = palisade(
        &[
            "keys",
            "generate",
            "--subject",
            "alice",
            "--role",
            "viewer",
            "--prefix",
            "acme",
        ],
        "",
        &[],
    );
    assert_eq!(issued.code, Some(0), "{issued:?}");
    let key = line_value(&issued.stdout, "key").to_owned();
    let record = line_value(&issued.stdout, "record");
    assert!(!record.contains(&key[5..]), "the record holds the key");
    let config = dir.join("palisade.yaml");
    std::fs::write(
        &config,
        format!(
            "api_keys:\n  prefix: acme\n  keys:\n    - {record}\nroles: [{{name: viewer}}, {{name: admin}}]\n\
             routes:\n  - {{path: \"/orders/{{id}}\", methods: [GET], roles: [viewer]}}\n  \
             - {{path: \"/orders/{{id}}\", methods: [DELETE], roles: [admin]}}\n\
             audit:\n  sink: {{file: {{path: audit.jsonl}}}}\n  chain_key_env: PALISADE_CLI_TEST_AUDIT_KEY\n"
        ),
    )
    .unwrap();
    let env = [("PALISADE_CLI_TEST_AUDIT_KEY", AUDIT_KEY)];
    let run = palisade(&["config", "check", config.to_str().unwrap()], "", &env);
    assert_eq!(run.code, Some(0), "{run:?}");

    // Served by the stack the file describes, audited to the same file with the same key
    // (set here on the layer: this process cannot set its own environment safely).
    let mut c = palisade::config::Config::from_path(&config).unwrap();
    c.audit = None;
    served_requests(&c, &key, &dir.join("audit.jsonl")).await;

    let log = dir.join("audit.jsonl");
    let log_s = log.to_str().unwrap();
    let env = [("PALISADE_AUDIT_KEY", AUDIT_KEY)];
    let run = palisade(&["audit", "verify", log_s], "", &env);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("audit.jsonl: 4 events, chain intact"),
        "{run:?}"
    );

    let summary = palisade(&["audit", "summary", log_s], "", &[]);
    assert_eq!(summary.code, Some(0), "{summary:?}");
    for expected in [
        "4 events, 3 refused",
        "missing_role (authz)",
        "DELETE /orders/{id}",
        "127.0.0.1",
    ] {
        assert!(
            summary.stdout.contains(expected),
            "{expected}: {}",
            summary.stdout
        );
    }

    // Rotated: two files, oldest first, one chain; the newer alone begins mid-chain.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (older, newer) = (dir.join("audit.jsonl.1"), dir.join("audit.jsonl.new"));
    std::fs::write(&older, lines[..2].join("\n")).unwrap();
    std::fs::write(&newer, lines[2..].join("\n")).unwrap();
    let (older_s, newer_s) = (older.to_str().unwrap(), newer.to_str().unwrap());
    let both = palisade(&["audit", "verify", older_s, newer_s], "", &env);
    assert_eq!(both.code, Some(0), "{both:?}");
    assert!(
        both.stdout.contains("4 events in 2 files, one chain"),
        "{both:?}"
    );
    let alone = palisade(&["audit", "verify", newer_s], "", &env);
    assert_eq!(alone.code, Some(1), "{alone:?}");
    assert!(
        alone.stdout.contains("does not begin at the start"),
        "{alone:?}"
    );
    let anywhere = palisade(&["audit", "verify", "--from-anywhere", newer_s], "", &env);
    assert_eq!(anywhere.code, Some(0), "{anywhere:?}");
    // Against the published head (the last event's hash): the older file alone was cut.
    let head = serde_json::from_str::<serde_json::Value>(lines[3]).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let whole = palisade(
        &["audit", "verify", "--head", &head, older_s, newer_s],
        "",
        &env,
    );
    assert_eq!(whole.code, Some(0), "{whole:?}");
    assert!(whole.stdout.contains("published head"), "{whole:?}");
    let cut = palisade(&["audit", "verify", "--head", &head, older_s], "", &env);
    assert_eq!(cut.code, Some(1), "{cut:?}");
    assert!(cut.stdout.contains("cut from its end"), "{cut:?}");
    // A line deleted from the newer file: named by file and line.
    let mut kept: Vec<&str> = lines[2..].to_vec();
    kept.remove(0);
    std::fs::write(&newer, kept.join("\n")).unwrap();
    let broken = palisade(&["audit", "verify", older_s, newer_s], "", &env);
    assert_eq!(broken.code, Some(1), "{broken:?}");
    assert!(
        broken
            .stdout
            .contains(&format!("{newer_s}: line 1 (seq 3)")),
        "{broken:?}"
    );
    // The key comes from the environment or the tool stops.
    let nokey = palisade(&["audit", "verify", log_s], "", &[]);
    assert_eq!(nokey.code, Some(2), "{nokey:?}");
    assert!(
        nokey.stderr.contains("PALISADE_AUDIT_KEY is not set"),
        "{nokey:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Serves the stack of `config` on loopback, audited to `log` chained under [`AUDIT_KEY`], and
/// sends four requests with `key`: one allowed, three refused (role, credential, key).
async fn served_requests(config: &palisade::config::Config, key: &str, log: &Path) {
    let guard = config.palisade(config.key_store().unwrap()).unwrap();
    let (audit_layer, audit) =
        palisade::audit::AuditLayer::builder(palisade::audit::JsonLinesSink::file(log).unwrap())
            .chain_key(AUDIT_KEY.as_bytes())
            .build()
            .unwrap();
    let app = axum::Router::new()
        .route("/orders/{id}", axum::routing::any(|| async { "order" }))
        .layer(guard)
        .layer(audit_layer);
    let addr = support::serve(app).await;
    let get = |method: &str, key: &str| {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{addr}/orders/7"));
        if !key.is_empty() {
            b = b.header("x-api-key", key);
        }
        b.body(Full::default()).unwrap()
    };
    assert_eq!(support::send(addr, get("GET", key)).await.status, 200);
    assert_eq!(support::send(addr, get("DELETE", key)).await.status, 403);
    assert_eq!(support::send(addr, get("GET", "")).await.status, 401);
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    assert_eq!(support::send(addr, get("GET", &wrong)).await.status, 401);
    audit.shutdown().await;
}

#[path = "support/redis_server.rs"]
mod redis_server;

/// Records the messages an instance hears.
#[derive(Default)]
struct Heard(std::sync::Mutex<Vec<palisade::invalidation::Invalidation>>);

impl palisade::invalidation::InvalidationListener for Heard {
    fn invalidate(&self, message: &palisade::invalidation::Invalidation) {
        self.0.lock().unwrap().push(message.clone());
    }
    fn resync(&self) {}
}

/// An instance listening on `channel` of `redis`: its bus (kept alive) and what it heard.
async fn listening(
    redis: &redis_server::Redis,
    channel: &str,
) -> (
    palisade::invalidation::RedisBus,
    std::sync::Arc<Heard>,
    std::sync::Arc<dyn palisade::invalidation::InvalidationListener>,
) {
    use palisade::invalidation::{InvalidationBus, InvalidationListener, RedisBus};
    let bus = RedisBus::builder(redis.url())
        .channel(channel)
        .build()
        .unwrap();
    assert!(bus.hub().wait_live(std::time::Duration::from_secs(5)).await);
    let heard = std::sync::Arc::new(Heard::default());
    let listener: std::sync::Arc<dyn InvalidationListener> = heard.clone();
    bus.hub().listen(&listener);
    (bus, heard, listener)
}

/// Whether `heard` holds `n` messages within two seconds.
async fn hears(heard: &Heard, n: usize) -> bool {
    tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while heard.0.lock().unwrap().len() < n {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_revoke_publishes_on_the_files_invalidation_bus() {
    use palisade::invalidation::Invalidation;
    let Some(redis) = redis_server::Redis::start("keys_revoke_publishes").await else {
        return;
    };
    // An instance listening on the channel the file names.
    let (_bus, heard, _listener) = listening(&redis, "cli:invalidation").await;

    let dir = std::env::temp_dir().join(format!("palisade-cli-revoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("palisade.yaml");
    std::fs::write(
        &file,
        "invalidation: {redis: {url_env: PALISADE_CLI_REDIS}, channel: 'cli:invalidation'}\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let url = redis.url();
    let env = [("PALISADE_CLI_REDIS", url.as_str())];
    let run = palisade(
        &[
            "keys",
            "revoke",
            "--config",
            file,
            "--id",
            "3kTMd9Zq0vXbW1yN",
        ],
        "",
        &env,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains(r#"{"v":1,"t":"key","id":"3kTMd9Zq0vXbW1yN"}"#)
    );
    let run = palisade(
        &["keys", "revoke", "--config", file, "--subject", "ada"],
        "",
        &env,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        hears(&heard, 2).await,
        "the instance heard both revocations"
    );
    let key_id = palisade::authn::api_key::KeyId::parse("3kTMd9Zq0vXbW1yN").unwrap();
    assert_eq!(
        heard.0.lock().unwrap()[..],
        [
            Invalidation::ApiKeyRevoked { key_id },
            Invalidation::SubjectKeysRevoked {
                subject: "ada".into()
            }
        ]
    );
    // No section, or its variable unset: exit status 2, naming what is missing.
    let run = palisade(
        &[
            "keys",
            "revoke",
            "--config",
            file,
            "--id",
            "3kTMd9Zq0vXbW1yN",
        ],
        "",
        &[],
    );
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("PALISADE_CLI_REDIS"), "{}", run.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reload_checks_the_file_then_publishes_policy_changed() {
    use palisade::invalidation::Invalidation;
    let Some(redis) = redis_server::Redis::start("policy_reload_publishes").await else {
        return;
    };
    let (_bus, heard, _listener) = listening(&redis, "cli:policy").await;

    let dir = std::env::temp_dir().join(format!("palisade-cli-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("palisade.yaml");
    let section = "invalidation: {redis: {url_env: PALISADE_CLI_REDIS}, channel: 'cli:policy'}\n";
    let url = redis.url();
    let env = [("PALISADE_CLI_REDIS", url.as_str())];
    let path = file.to_str().unwrap();

    // A policy that does not compile is not announced: every instance would refuse it.
    std::fs::write(
        &file,
        format!("{section}roles: [{{name: a, inherits: [b]}}]\n"),
    )
    .unwrap();
    let run = palisade(&["policy", "reload", "--config", path], "", &env);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert!(run.stderr.contains(path), "names the file: {}", run.stderr);

    std::fs::write(
        &file,
        format!("{section}roles: [{{name: reader}}]\nroutes: [{{path: /a, methods: [GET], roles: [reader]}}]\n"),
    )
    .unwrap();
    let run = palisade(&["policy", "reload", "--config", path], "", &env);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains(r#""t":"policy""#), "{}", run.stdout);
    assert!(hears(&heard, 1).await, "the instance heard it");
    assert_eq!(heard.0.lock().unwrap()[..], [Invalidation::PolicyChanged]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The TLS files of Redis stores (`quota.store`, a DPoP replay cache) are read beside the
/// configuration file, wherever the command runs: a file whose relative paths hold passes the
/// check from another directory, and one that names a missing file is refused naming its item
/// and path.
#[cfg(all(feature = "redis-tls", feature = "jwt"))]
#[test]
fn config_check_reads_redis_tls_files_beside_the_file() {
    let dir = scratch("redis-tls-files");
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redis-tls");
    for (from, to) in [
        ("ca.crt", "ca.pem"),
        ("node.crt", "client.pem"),
        ("node.key", "client.key"),
    ] {
        std::fs::copy(tls.join(from), dir.join(to)).unwrap();
    }
    let file = |ca: &str| {
        format!(
            "routes:\n  - {{path: \"/orders/{{id}}\", methods: [GET]}}\n\
             jwt:\n  issuers: [{{issuer: \"https://sso.example.com\", jwks_url: \"https://sso.example.com/certs\", audiences: [api]}}]\n  \
             dpop: {{public_origin: \"https://api.example.com\", replay_redis_url_env: PALISADE_CLI_TLS_REDIS, \
             replay_redis_tls_ca_file: {ca}, replay_redis_tls_client_cert_file: client.pem, \
             replay_redis_tls_client_key_file: client.key}}\n\
             quota:\n  policies: {{p: [{{rate: 5, per: 1s}}]}}\n  \
             store: {{type: redis, url_env: PALISADE_CLI_TLS_REDIS, tls_ca_file: {ca}, \
             tls_client_cert_file: client.pem, tls_client_key_file: client.key}}\n  \
             principals: [{{key: subject, policy: p}}]\n"
        )
    };
    let env = [("PALISADE_CLI_TLS_REDIS", "rediss://127.0.0.1:6380")];
    let good = dir.join("good.yaml");
    std::fs::write(&good, file("ca.pem")).unwrap();
    let run = palisade(&["config", "check", good.to_str().unwrap()], "", &env);
    assert_eq!(run.code, Some(0), "{run:?}");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, file("missing-ca.pem")).unwrap();
    let run = palisade(&["config", "check", bad.to_str().unwrap()], "", &env);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("dpop.replay_redis_tls_ca_file"),
        "{run:?}"
    );
    assert!(run.stderr.contains("missing-ca.pem"), "{run:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
