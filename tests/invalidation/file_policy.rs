//! A stack built from a configuration file reloads the file's own `roles` and `routes` when
//! `PolicyChanged` is published, on every instance; a broken file keeps the policy in force.

use std::time::Duration;

use palisade::authn::api_key::KeySpec;
use palisade::authz::LivePolicy;
use palisade::config::Config;
use palisade::invalidation::{Invalidation, InvalidationBus, RedisBus};

use super::World;
use crate::support::TestServer;

/// One instance built from the file: its server and its bus.
struct FromFile {
    server: TestServer,
    bus: RedisBus,
    policy: LivePolicy,
}

async fn status(i: &FromFile, path: &str, key: (&str, &str)) -> u16 {
    i.server.get(path, &[key]).await.status.as_u16()
}

async fn becomes(i: &FromFile, path: &str, key: (&str, &str), want: u16) -> bool {
    super::server_becomes(&i.server, path, key, want).await
}

fn file(reports_role: &str) -> String {
    format!(
        r#"
api_keys: {{header: x-api-key}}
roles: [{{name: reader}}, {{name: admin}}]
routes:
  - {{path: "/orders/{{id}}", methods: [GET], roles: [reader]}}
  - {{path: "/reports/{{name}}", methods: [GET], roles: [{reports_role}]}}
"#
    )
}

/// Three instances built from one file, each with its own subscription to the shared Redis.
async fn instances(world: &World, path: &std::path::Path) -> Vec<FromFile> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let bus = RedisBus::builder(world.redis.url())
            .channel("palisade-test:invalidation")
            .build()
            .unwrap();
        assert!(bus.hub().wait_live(Duration::from_secs(5)).await);
        let guard = Config::from_path(path)
            .unwrap()
            .builder()
            .key_store(world.store.clone())
            .invalidation(bus.clone())
            .build()
            .unwrap();
        let policy = guard.handles().policy().unwrap().clone();
        out.push(FromFile {
            server: TestServer::start(guard).await,
            bus,
            policy,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_own_roles_and_routes_reload_on_policy_changed_on_every_instance() {
    let Some(world) = World::start("the_files_own_roles_and_routes_reload").await else {
        return;
    };
    let path = std::env::temp_dir().join(format!("palisade-reload-{}.yaml", std::process::id()));
    std::fs::write(&path, file("reader")).unwrap();
    let issued = world
        .keys
        .generate(KeySpec::new("ada").role("reader"))
        .unwrap();
    world.store.insert(issued.record.clone());
    let key = ("x-api-key", issued.plaintext.expose_secret());
    let instances = instances(&world, &path).await;
    for i in &instances {
        assert_eq!(status(i, "/reports/daily", key).await, 200);
    }

    // Edited but not announced: the policy in force stays.
    std::fs::write(&path, file("admin")).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status(&instances[1], "/reports/daily", key).await, 200);

    instances[0]
        .bus
        .publish(&Invalidation::PolicyChanged)
        .await
        .unwrap();
    for i in &instances {
        assert!(becomes(i, "/reports/daily", key, 403).await, "withdrawn");
        assert_eq!(status(i, "/orders/1", key).await, 200, "the rest stays");
    }

    // A file that no longer parses or compiles is refused: the policy in force stays.
    std::fs::write(&path, "roles: [{name: reader}]\nroutes: [{path: nope}]\n").unwrap();
    instances[2]
        .bus
        .publish(&Invalidation::PolicyChanged)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in &instances {
        assert_eq!(status(i, "/reports/daily", key).await, 403);
        assert_eq!(status(i, "/orders/1", key).await, 200);
        // At least once: the publishing instance also hears its own message back.
        assert!(i.policy.reload_errors() >= 1);
        let error = i.policy.last_error().unwrap();
        assert!(
            error.contains("palisade-reload-"),
            "names the file: {error}"
        );
    }

    // Fixed and announced again: applied.
    std::fs::write(&path, file("reader")).unwrap();
    instances[1]
        .bus
        .publish(&Invalidation::PolicyChanged)
        .await
        .unwrap();
    for i in &instances {
        assert!(
            becomes(i, "/reports/daily", key, 200).await,
            "granted again"
        );
        assert_eq!(i.policy.reloads(), 2, "the start was no reload");
    }
    std::fs::remove_file(&path).unwrap();
}
