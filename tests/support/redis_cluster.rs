//! Real Redis Cluster and Sentinel deployments on free loopback ports, for the tests that need
//! them (never a mock): `redis-server` processes in temporary directories, set up with
//! `redis-cli`. When either program is missing the tests print a loud SKIPPED line and pass,
//! unless `PALISADE_REQUIRE_REDIS` is set (CI sets it), in which case they fail. Every process
//! is killed and every directory removed on drop.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Whether `redis-server` and `redis-cli` are installed; says so loudly when not.
pub(crate) fn installed(test: &str) -> bool {
    let ok = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok("redis-server") && ok("redis-cli") {
        return true;
    }
    assert!(
        std::env::var_os("PALISADE_REQUIRE_REDIS").is_none(),
        "PALISADE_REQUIRE_REDIS is set but redis-server or redis-cli is not installed"
    );
    eprintln!(
        "\n*** SKIPPED {test}: redis-server or redis-cli is not installed \
         (apt-get install redis-server redis-tools; CI requires them) ***\n"
    );
    false
}

/// A loopback port that is free, and whose cluster bus port (+10000) is free too. Ports are
/// handed out once per process from 11000–21999 (buses 21000–31999): below the kernel's
/// ephemeral range, so no outgoing connection and no other test's node takes a bus port
/// between this choice and the node's start.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        11_000 + (std::process::id() % 500) as u16 * 20,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let mut port = NEXT.fetch_add(1, Ordering::Relaxed);
        if port >= 22_000 {
            port = 11_000 + port % 11_000;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

/// `redis-cli -p port args…`, its standard output (blocking: call from `spawn_blocking` or
/// accept a short block).
pub(crate) fn cli(port: u16, args: &[&str]) -> String {
    cli_as(port, None, args)
}

/// `cli`, logged in with `password` when there is one.
pub(crate) fn cli_as(port: u16, password: Option<&str>, args: &[&str]) -> String {
    cli_tls(port, false, password, args)
}

/// The test CA's fixture `name` (tests/fixtures/redis-tls).
fn tls_fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/redis-tls/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// `cli_as`, over TLS (trusting the test CA) when `tls`.
fn cli_tls(port: u16, tls: bool, password: Option<&str>, args: &[&str]) -> String {
    let mut command = Command::new("redis-cli");
    if tls {
        command.args(["--tls", "--cacert", &tls_fixture("ca.crt")]);
    }
    if let Some(password) = password {
        command.args(["--no-auth-warning", "-a", password]);
    }
    let out = command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `cli` off the async worker threads.
pub(crate) async fn cli_async(port: u16, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(port, &args)
    })
    .await
    .unwrap()
}

/// Waits (bounded) until `check` holds, polling every 50 ms; whether it did.
pub(crate) async fn waited<F: FnMut() -> bool>(secs: u64, mut check: F) -> bool {
    tokio::time::timeout(Duration::from_secs(secs), async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}

/// Waits (bounded) until `check` holds, or fails the test.
pub(crate) async fn wait_until<F: FnMut() -> bool>(what: &str, secs: u64, check: F) {
    assert!(waited(secs, check).await, "{what} within {secs} s");
}

/// One `redis-server` process in a directory of its own.
pub(crate) struct Node {
    pub(crate) port: u16,
    child: Option<Child>,
    dir: PathBuf,
    /// Serves TLS only (the test CA's server certificate), cluster bus and replication too.
    tls: bool,
}

impl Node {
    fn spawn(extra: &[&str], config: Option<&str>) -> Self {
        Self::spawn_with(extra, config, false)
    }

    fn spawn_with(extra: &[&str], config: Option<&str>, tls: bool) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("palisade-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new("redis-server");
        if let Some(config) = config {
            let file = dir.join("redis.conf");
            std::fs::write(&file, format!("port {port}\nbind 127.0.0.1\n{config}")).unwrap();
            command.arg(&file);
        } else if tls {
            let (cert, key, ca) = (
                tls_fixture("node.crt"),
                tls_fixture("node.key"),
                tls_fixture("ca.crt"),
            );
            command.args(["--port", "0", "--tls-port", &port.to_string()]);
            command.args(["--bind", "127.0.0.1", "--tls-cert-file", &cert]);
            command.args(["--tls-key-file", &key, "--tls-ca-cert-file", &ca]);
            command.args(["--tls-auth-clients", "no", "--tls-cluster", "yes"]);
            command.args(["--tls-replication", "yes"]);
        } else {
            command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
        }
        let child = command
            .args(extra)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        Self {
            port,
            child: Some(child),
            dir,
            tls,
        }
    }

    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn cli(&self, args: &[&str]) -> String {
        cli_tls(self.port, self.tls, None, args)
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server with SIGKILL (a crash: no shutdown, no save), leaving the handle to
    /// reap it on drop; usable through a shared reference while others read the deployment.
    pub(crate) fn crash(&self) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success());
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.child.is_some()
    }

    async fn wait_ready(&self) {
        self.wait_ready_as(None).await;
    }

    async fn wait_ready_as(&self, password: Option<&str>) {
        let port = self.port;
        wait_until(&format!("redis-server on {port} answers PING"), 10, || {
            cli_tls(port, self.tls, password, &["PING"]) == "PONG"
        })
        .await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three primaries, each with one replica.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
}

impl Cluster {
    /// Starts one, or returns `None` (after saying so loudly) without `redis-server`/`redis-cli`.
    pub(crate) async fn start(test: &str) -> Option<Self> {
        Self::start_with(test, false).await
    }

    /// One whose nodes serve TLS only (client, cluster bus and replication), with the test
    /// CA's server certificate (tests/fixtures/redis-tls).
    pub(crate) async fn start_tls(test: &str) -> Option<Self> {
        Self::start_with(test, true).await
    }

    async fn start_with(test: &str, tls: bool) -> Option<Self> {
        if !installed(test) {
            return None;
        }
        let nodes: Vec<Node> = (0..6)
            .map(|_| {
                Node::spawn_with(
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                        // A replica always stands for election, however old its data.
                        "--cluster-replica-validity-factor",
                        "0",
                    ],
                    None,
                    tls,
                )
            })
            .collect();
        for node in &nodes {
            node.wait_ready().await;
        }
        let addrs: Vec<String> = nodes.iter().map(Node::addr).collect();
        let mut create = Command::new("redis-cli");
        if tls {
            create.args(["--tls", "--cacert", &tls_fixture("ca.crt")]);
        }
        let mut create = create
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli --cluster create");
        let mut created = None;
        if !waited(30, || {
            created = create.try_wait().unwrap();
            created.is_some()
        })
        .await
        {
            let _ = create.kill();
            let _ = create.wait();
        }
        assert!(
            created.is_some_and(|s| s.success()),
            "redis-cli --cluster create failed"
        );
        let cluster = Self { nodes };
        cluster.wait_healthy().await;
        wait_until("every replica is in sync", 20, || {
            cluster.nodes.iter().all(|n| {
                let info = n.cli(&["INFO", "replication"]);
                info.contains("role:master") || info.contains("master_link_status:up")
            })
        })
        .await;
        Some(cluster)
    }

    /// The seed URLs (every node).
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Waits until every live node reports `cluster_state:ok` and every primary has a replica.
    pub(crate) async fn wait_healthy(&self) {
        wait_until("the cluster is ok on every node", 20, || {
            self.nodes
                .iter()
                .filter(|n| n.is_alive())
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        })
        .await;
    }

    /// `(node id, port, is primary)` of every node the first live node knows of.
    pub(crate) fn topology(&self) -> Vec<(String, u16, bool)> {
        let node = self.nodes.iter().find(|n| n.is_alive()).unwrap();
        node.cli(&["CLUSTER", "NODES"])
            .lines()
            .filter(|l| !l.contains("fail"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let port = f[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
                (f[0].to_owned(), port, f[2].contains("master"))
            })
            .collect()
    }

    /// The node that serves `slot` now: `(id, port)`.
    pub(crate) fn owner(&self, slot: u16) -> (String, u16) {
        let node = self.nodes.iter().find(|n| n.is_alive()).unwrap();
        for line in node.cli(&["CLUSTER", "NODES"]).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let serves = f[8..].iter().any(|r| {
                let mut bounds = r.split('-');
                match (
                    bounds.next().and_then(|a| a.parse::<u16>().ok()),
                    bounds.next(),
                ) {
                    (Some(a), Some(b)) => b.parse::<u16>().is_ok_and(|b| a <= slot && slot <= b),
                    (Some(a), None) => a == slot,
                    _ => false,
                }
            });
            if serves {
                let port = f[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
                return (f[0].to_owned(), port);
            }
        }
        panic!("no primary serves slot {slot}");
    }

    /// The node with this port.
    pub(crate) fn node(&mut self, port: u16) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }
}

/// One primary, one replica and three sentinels monitoring them as `service`.
pub(crate) struct Sentinels {
    pub(crate) servers: Vec<Node>,
    pub(crate) sentinels: Vec<Node>,
    pub(crate) service: &'static str,
    /// The servers' password (`requirepass`), if any; the sentinels have none.
    pub(crate) password: Option<&'static str>,
}

impl Sentinels {
    /// Starts them, or returns `None` (after saying so loudly) without the programs.
    pub(crate) async fn start(test: &str) -> Option<Self> {
        Self::start_as(test, None).await
    }

    /// Starts them with servers that require `password` (the sentinels know it).
    pub(crate) async fn start_as(test: &str, password: Option<&'static str>) -> Option<Self> {
        if !installed(test) {
            return None;
        }
        let service = "palisade-primary";
        let auth: Vec<&str> = password
            .map(|p| vec!["--requirepass", p, "--masterauth", p])
            .unwrap_or_default();
        let primary = Node::spawn(&auth, None);
        primary.wait_ready_as(password).await;
        let primary_port = primary.port.to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", primary_port.as_str()];
        args.extend(&auth);
        let replica = Node::spawn(&args, None);
        replica.wait_ready_as(password).await;
        let rport = replica.port;
        wait_until("the replica is in sync", 10, || {
            cli_as(rport, password, &["INFO", "replication"]).contains("master_link_status:up")
        })
        .await;
        let mut config = format!(
            "sentinel monitor {service} 127.0.0.1 {} 2\n\
             sentinel down-after-milliseconds {service} 1000\n\
             sentinel failover-timeout {service} 5000\n\
             sentinel parallel-syncs {service} 1\n",
            primary.port
        );
        if let Some(p) = password {
            config.push_str(&format!("sentinel auth-pass {service} {p}\n"));
        }
        let sentinels: Vec<Node> = (0..3)
            .map(|_| Node::spawn(&["--sentinel"], Some(&config)))
            .collect();
        for s in &sentinels {
            s.wait_ready().await;
        }
        let ports: Vec<u16> = sentinels.iter().map(|s| s.port).collect();
        wait_until("the sentinels know each other and the replica", 20, || {
            ports.iter().all(|p| {
                let info = cli(*p, &["SENTINEL", "MASTER", service]);
                let field = |name: &str| {
                    let lines: Vec<&str> = info.lines().collect();
                    lines
                        .iter()
                        .position(|l| *l == name)
                        .and_then(|i| lines.get(i + 1))
                        .map(|v| (*v).to_owned())
                };
                field("num-other-sentinels").as_deref() == Some("2")
                    && field("num-slaves").as_deref() == Some("1")
            })
        })
        .await;
        Some(Self {
            servers: vec![primary, replica],
            sentinels,
            service,
            password,
        })
    }

    /// The sentinels' URLs.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Node::url).collect()
    }

    /// The port of the primary the sentinels name now.
    pub(crate) fn primary_port(&self) -> u16 {
        let s = self.sentinels.iter().find(|n| n.is_alive()).unwrap();
        let addr = s.cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service]);
        addr.lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// The server on `port`.
    pub(crate) fn server(&self, port: u16) -> &Node {
        self.servers.iter().find(|n| n.port == port).unwrap()
    }
}
