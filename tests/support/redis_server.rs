//! A real `redis-server` child process on a free loopback port, for the tests that need Redis
//! (never a mock). When `redis-server` is not installed the tests print a loud SKIPPED line and
//! pass, unless `PALISADE_REQUIRE_REDIS` is set (CI sets it), in which case they fail.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// A `redis-server` child process on 127.0.0.1.
pub(crate) struct Redis {
    port: u16,
    child: Option<Child>,
    /// Serves TLS only, on the fixtures of `tests/fixtures/redis-tls`.
    tls: bool,
    /// With TLS: asks clients for a certificate the test CA signed (`tls-auth-clients yes`).
    verify_clients: bool,
}

impl Redis {
    /// Starts one, or returns `None` (after saying so loudly) when `redis-server` is missing.
    pub(crate) async fn start(test: &str) -> Option<Self> {
        Self::start_with(test, false).await
    }

    /// One that serves TLS only (`rediss://`), with the test CA's server certificate.
    pub(crate) async fn start_tls(test: &str) -> Option<Self> {
        Self::start_with(test, true).await
    }

    /// One that serves TLS only and requires a client certificate the test CA signed
    /// (`node.crt` is one).
    pub(crate) async fn start_tls_verifying_clients(test: &str) -> Option<Self> {
        Self::start_as(test, true, true).await
    }

    async fn start_with(test: &str, tls: bool) -> Option<Self> {
        Self::start_as(test, tls, false).await
    }

    async fn start_as(test: &str, tls: bool, verify_clients: bool) -> Option<Self> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("PALISADE_REQUIRE_REDIS").is_none(),
                "PALISADE_REQUIRE_REDIS is set but redis-server is not installed"
            );
            eprintln!(
                "\n*** SKIPPED {test}: redis-server is not installed \
                 (apt-get install redis-server; CI requires it) ***\n"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self {
            port,
            child: None,
            tls,
            verify_clients,
        };
        redis.restart().await;
        Some(redis)
    }

    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// A fixture of `tests/fixtures/redis-tls`.
    pub(crate) fn fixture(name: &str) -> String {
        format!(
            "{}/tests/fixtures/redis-tls/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    pub(crate) async fn restart(&mut self) {
        let port = self.port.to_string();
        let (plain, tls) = if self.tls {
            ("0", port.as_str())
        } else {
            (port.as_str(), "0")
        };
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--port", plain]);
        if self.tls {
            command.args([
                "--tls-port",
                tls,
                "--tls-cert-file",
                &Self::fixture("server.crt"),
                "--tls-key-file",
                &Self::fixture("server.key"),
                "--tls-ca-cert-file",
                &Self::fixture("ca.crt"),
                "--tls-auth-clients",
                if self.verify_clients { "yes" } else { "no" },
            ]);
        }
        let child = command
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub(crate) async fn ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if self.tls {
            // Listening is enough: the tests speak TLS through the store itself.
            return tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok();
        }
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").await.is_ok()
            && s.read_exact(&mut buf).await.is_ok()
            && &buf == b"+PONG\r\n"
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
