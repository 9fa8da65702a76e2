//! The bus's log: a token revoked while an instance was cut off from Redis is refused there
//! once it is back (the message is replayed, not merely the caches dropped), and an instance
//! that starts after a revocation refuses the token from the start.

use std::time::Duration;

use palisade::clock::{Clock, SystemClock};
use palisade::invalidation::{Invalidation, InvalidationBus};

use super::{BOUND, ISS, World, becomes, reason, token, with};

/// Runs one command on the test's Redis as its default user.
async fn admin(world: &World, args: &[&str]) {
    let client = redis::Client::open(world.redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query_async(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7519_4_1_7_a_jti_revoked_while_an_instance_was_cut_off_is_replayed_when_it_is_back() {
    let Some(world) = World::start("a_jti_revoked_while_cut_off").await else {
        return;
    };
    // Instance b reaches Redis as its own user, so that it alone can be cut off.
    admin(
        &world,
        &["ACL", "SETUSER", "b", "on", ">b-pass", "~*", "&*", "+@all"],
    )
    .await;
    let b_url = world.redis.url().replace("://", "://b:b-pass@");
    let safe = Duration::from_secs(5);
    let a = world.instance(safe).await;
    let b = world.instance_at(&b_url, safe).await;
    let now = SystemClock.now().as_unix_secs();
    let revoked = token("bob", "jti-cut-off", now);
    let header = ("authorization", revoked.as_str());
    assert_eq!(with(&b, "/orders/1", header).await.status, 200);

    // b is cut off: its connections are closed and it cannot log in again.
    admin(&world, &["ACL", "SETUSER", "b", "off"]).await;
    admin(&world, &["CLIENT", "KILL", "USER", "b"]).await;
    let down = tokio::time::timeout(BOUND, async {
        while b.bus.hub().is_live() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(down.is_ok(), "b noticed it was cut off");
    a.bus
        .publish(&Invalidation::TokenRevoked {
            issuer: ISS.into(),
            jti: "jti-cut-off".into(),
        })
        .await
        .unwrap();
    assert_eq!(with(&a, "/orders/1", header).await.status, 401);

    // Back: b replays the log before it goes live, so the token is refused there too (the
    // caches dropped on reconnection alone would verify it afresh and accept it).
    admin(&world, &["ACL", "SETUSER", "b", "on"]).await;
    assert!(
        b.bus.hub().wait_live(Duration::from_secs(10)).await,
        "b is back"
    );
    assert_eq!(with(&b, "/orders/1", header).await.status, 401);
    assert_eq!(reason(&b), "token_revoked");

    // An instance that starts now learns the revocation from the log.
    let c = world.instance(safe).await;
    assert!(becomes(&c, "/orders/1", header, 401).await);
    assert_eq!(reason(&c), "token_revoked");
    let kept = token("bob", "jti-kept", now);
    assert_eq!(
        with(&c, "/orders/1", ("authorization", kept.as_str()))
            .await
            .status,
        200
    );
}
