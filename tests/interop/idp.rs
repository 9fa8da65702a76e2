//! A real, certified OpenID provider — panva's `oidc-provider`, run by Node.js from
//! `tests/interop/provider/provider.mjs` — as a child process on a free loopback port, and a
//! client that gets tokens from it over HTTP with client credentials. When `node` or the
//! provider's `node_modules` is missing the tests print a loud SKIPPED line and pass, unless
//! `PALISADE_REQUIRE_IDP` is set (CI sets it), in which case they fail.

#![allow(unreachable_pub)]

use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use tokio::time::Instant;

use crate::support;

/// The client that gets tokens (client_credentials, `client_secret_basic`).
pub const WORKER: (&str, &str) = ("worker", "worker-secret-0123456789abcdef");
/// The resource server's client: the only one the provider lets introspect.
pub const RESOURCE_SERVER: (&str, &str) = ("orders-api", "orders-api-secret-0123456789abcd");
/// The audience of tokens for `https://orders.palisade.test/...`.
pub const AUD: &str = "orders-api";

/// The resource indicator (RFC 8707) of JWTs signed with `alg`, by the provider's first key
/// of that algorithm.
pub fn jwt_resource(alg: &str) -> String {
    format!("https://orders.palisade.test/jwt/{alg}")
}

/// The resource indicator of JWTs signed with `alg` by the key `kid`.
pub fn jwt_resource_by(alg: &str, kid: &str) -> String {
    format!("https://orders.palisade.test/jwt/{alg}/{kid}")
}

/// The resource indicator of opaque tokens for our audience.
pub const OPAQUE: &str = "https://orders.palisade.test/opaque";

/// An `oidc-provider` process on 127.0.0.1, killed on drop.
pub struct OidcProvider {
    port: u16,
    /// Its keys (kept across restarts) and its log.
    dir: PathBuf,
    child: Option<Child>,
}

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/provider")
}

/// Why the provider cannot run here, if it cannot.
fn missing() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node {
        return Some("node is not installed (apt-get install nodejs npm)".into());
    }
    if !provider_dir().join("node_modules/oidc-provider").is_dir() {
        return Some(
            "tests/interop/provider/node_modules is missing \
             (npm ci --prefix tests/interop/provider)"
                .into(),
        );
    }
    None
}

impl OidcProvider {
    /// Starts one serving `keys` (`kid:ALG`, ALG one of RS256, ES256, EdDSA), or returns
    /// `None` (after saying so loudly) when it cannot run here.
    pub async fn start(test: &str, keys: &[&str]) -> Option<Self> {
        if let Some(why) = missing() {
            assert!(
                std::env::var_os("PALISADE_REQUIRE_IDP").is_none(),
                "PALISADE_REQUIRE_IDP is set but the OpenID provider cannot run: {why}"
            );
            // Straight to the process's stderr: the test harness captures `eprintln!` of a
            // passing test, and this must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: {why}; CI requires it ***\n"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!(
            "palisade-interop-{}-{port}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut provider = Self {
            port,
            dir,
            child: None,
        };
        provider.restart(keys).await;
        Some(provider)
    }

    /// Stops the provider (if it runs) and starts it again on the same port with `keys`: a
    /// key named before keeps its key material.
    pub async fn restart(&mut self, keys: &[&str]) {
        self.stop();
        let log = std::fs::File::create(self.dir.join("provider.log")).unwrap();
        let mut child = Command::new("node")
            .arg(provider_dir().join("provider.mjs"))
            .args(["--port", &self.port.to_string(), "--keys", &keys.join(",")])
            .arg("--key-dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn node");
        // Read stdout on a thread until the end (a full pipe would stall the provider).
        let (ready, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("READY ") {
                    let _ = ready.send(());
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while lines.try_recv().is_err() {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("provider.log"));
                panic!("the provider did not start ({exited:?}): {log:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the provider: every request to it is refused until [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer())
    }

    pub fn introspection_url(&self) -> String {
        format!("{}/token/introspection", self.issuer())
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// POSTs `form` to `path` as `client` (HTTP Basic, RFC 6749 §2.3.1).
    async fn post(
        &self,
        path: &str,
        client: (&str, &str),
        form: &[(&str, &str)],
    ) -> support::Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let basic = STANDARD.encode(format!("{}:{}", client.0, client.1));
        let request = http::Request::post(path)
            .header("host", format!("127.0.0.1:{}", self.port))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        support::send(self.addr(), request).await
    }

    /// A client-credentials access token for `resource` (RFC 6749 §4.4, RFC 8707), with
    /// scope `orders:read`.
    pub async fn token(&self, resource: &str) -> String {
        let reply = self
            .post(
                "/token",
                WORKER,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "orders:read"),
                    ("resource", resource),
                ],
            )
            .await;
        assert_eq!(reply.status, 200, "token request: {:?}", reply.body);
        let body = reply.json();
        assert_eq!(body["token_type"], "Bearer");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A client-credentials access token for `resource` bound to the DPoP key `key` (RFC 9449
    /// §5: the token request carries a DPoP proof; the token's `cnf.jkt` names the key).
    pub async fn dpop_token(&self, resource: &str, key: &p256::ecdsa::SigningKey) -> Value {
        let proof = dpop_proof(key, "POST", &format!("{}/token", self.issuer()), None);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "client_credentials"),
                ("scope", "orders:read"),
                ("resource", resource),
            ])
            .finish();
        let basic = STANDARD.encode(format!("{}:{}", WORKER.0, WORKER.1));
        let request = http::Request::post("/token")
            .header("host", format!("127.0.0.1:{}", self.port))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("dpop", proof)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let reply = support::send(self.addr(), request).await;
        assert_eq!(reply.status, 200, "DPoP token request: {:?}", reply.body);
        reply.json()
    }

    /// Revokes `token` at the provider (RFC 7009 §2.1) as the client it was issued to.
    pub async fn revoke(&self, token: &str) {
        let reply = self
            .post("/token/revocation", WORKER, &[("token", token)])
            .await;
        assert_eq!(reply.status, 200, "revocation: {:?}", reply.body);
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The JOSE header of a compact JWS.
pub fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The claims of a compact JWS (not verified).
pub fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A DPoP proof (RFC 9449 §4.2) for `method` on `url`, signed ES256 by `key`; for a
/// resource server, with the access token's hash `ath` (§4.2: base64url SHA-256 of it).
pub fn dpop_proof(
    key: &p256::ecdsa::SigningKey,
    method: &str,
    url: &str,
    token: Option<&str>,
) -> String {
    use p256::ecdsa::signature::Signer as _;
    let point = key.verifying_key().to_sec1_point(false);
    let header = serde_json::json!({
        "typ": "dpop+jwt",
        "alg": "ES256",
        "jwk": {
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        },
    });
    let iat = palisade::clock::Clock::now(&palisade::clock::SystemClock).as_unix_secs();
    let mut claims = serde_json::json!({
        "jti": format!("proof-{}-{}", std::process::id(), unique()),
        "htm": method,
        "htu": url,
        "iat": iat,
    });
    if let Some(token) = token {
        use sha2::Digest as _;
        claims["ath"] = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token)).into();
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}
