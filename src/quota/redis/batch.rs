//! A request's checks in Redis ([`QuotaStore::check_all`](crate::quota::QuotaStore::check_all)):
//! one script for every check whose keys may go together (all of them on a single node or
//! behind Sentinel; on a Cluster, those of one identity's hash tag), which tests them all and
//! consumes only if every binding one admits. Between the scripts of a Cluster, the units of
//! the groups that admitted are given back when another refused.

use std::sync::atomic::Ordering;

use super::super::batch::{QuotaCheck, REFUND_WARNED, batch_refused};
use super::super::limit::{Kind, Verdict};
use super::super::redis_script::decode_batch;
use super::super::refund::{refund_failed, took};
use super::super::service::join_all;
use super::RedisStore;
use crate::clock::Timestamp;
use crate::error::{StoreError, StoreErrorKind};
use crate::redis_link::Link;

impl RedisStore {
    /// The groups of `checks` one script can take (indices into `checks`): all of them on a
    /// single node or Sentinel; on a Cluster, those whose keys share a hash tag (one slot).
    fn groups(&self, checks: &[QuotaCheck<'_>], usable: &[bool]) -> Vec<Vec<usize>> {
        let mut usable = (0..checks.len()).filter(|&i| usable[i]).peekable();
        if usable.peek().is_none() {
            return Vec::new();
        }
        if !matches!(self.inner.link, Link::Cluster(_)) {
            return vec![usable.collect()];
        }
        let mut groups: Vec<([u8; 32], Vec<usize>)> = Vec::new();
        for i in usable {
            let tag = self.tag(checks[i].key);
            match groups.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, group)) => group.push(i),
                None => groups.push((tag, vec![i])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// One script over the checks of `group`; consuming nothing unless `commit`.
    async fn eval_group(
        &self,
        checks: &[QuotaCheck<'_>],
        group: &[usize],
        now: Timestamp,
        commit: bool,
    ) -> Result<Vec<Verdict>, StoreError> {
        let mut inv = self.inner.script.prepare_invoke();
        inv.arg(now.as_unix_nanos() / 1_000)
            .arg(group.len())
            .arg(u8::from(commit));
        for &g in group {
            let check = &checks[g];
            let limits = check.key.policy().limits();
            inv.arg(check.cost)
                .arg(u8::from(check.consume))
                .arg(u8::from(check.shadow))
                .arg(limits.len());
            for (i, limit) in limits.iter().enumerate() {
                match limit.kind() {
                    Kind::Rate { .. } => {
                        let (t, burst) = limit.gcra();
                        inv.key(self.redis_key(check.key, i, None));
                        inv.arg("r").arg(t.div_ceil(1_000).max(1)).arg(burst).arg(0);
                    }
                    Kind::Quota { max, window } => {
                        let (index, end) = window.locate(now);
                        inv.key(self.redis_key(check.key, i, Some(index)));
                        inv.arg("q")
                            .arg(max)
                            .arg(0)
                            .arg(end.as_unix_nanos() / 1_000);
                    }
                }
            }
        }
        let call = async {
            let mut conn = self.inner.link.conn().await?;
            inv.invoke_async(&mut conn).await
        };
        let reply: Vec<i64> = match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(StoreError::new(StoreErrorKind::Unavailable, e)),
            Err(elapsed) => return Err(StoreError::new(StoreErrorKind::Unavailable, elapsed)),
        };
        decode_batch(
            &reply,
            group.iter().map(|&g| checks[g].key.policy().limits().len()),
        )
    }

    /// The answers to `checks` at `now`, all or nothing (see
    /// [`QuotaStore::check_all`](crate::quota::QuotaStore::check_all)).
    pub(super) async fn check_batch(
        &self,
        checks: &[QuotaCheck<'_>],
        now: Timestamp,
    ) -> Vec<Result<Verdict, StoreError>> {
        let mut results: Vec<Option<Result<Verdict, StoreError>>> =
            checks.iter().map(|_| None).collect();
        // Never "fail open" on a policy that cannot be checked: its check fails, which refuses
        // the request, so the others are only tested.
        for (check, result) in checks.iter().zip(&mut results) {
            if let Err(e) = check.key.policy().usable() {
                *result = Some(Err(e));
            }
        }
        let usable: Vec<bool> = results.iter().map(Option::is_none).collect();
        let commit = usable.iter().all(|u| *u);
        let groups = self.groups(checks, &usable);
        let answers = join_all(
            groups
                .iter()
                .map(|group| self.eval_group(checks, group, now, commit)),
        )
        .await;
        let mut committed = Vec::new();
        for (group, answer) in groups.iter().zip(answers) {
            match answer {
                Ok(verdicts) => {
                    if self.inner.down.swap(false, Ordering::Relaxed) {
                        tracing::info!(layer = "quota", "redis quota store is back");
                    }
                    for (&g, v) in group.iter().zip(verdicts) {
                        results[g] = Some(Ok(v));
                    }
                    committed.push(group);
                }
                Err(e) => {
                    let mut e = Some(e);
                    for &g in group {
                        let c = &checks[g];
                        let e = e
                            .take()
                            .unwrap_or_else(|| StoreError::from_kind(StoreErrorKind::Unavailable));
                        results[g] = Some(self.outage(c.key, c.cost, now, c.consume, e));
                    }
                }
            }
        }
        let results: Vec<_> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::from_kind(StoreErrorKind::InvalidData))))
            .collect();
        // Nothing was consumed when `commit` is unset.
        if commit && groups.len() > 1 && batch_refused(checks, &results) {
            self.compensate(checks, &results, &committed, now).await;
        }
        results
    }

    /// Gives back what the scripts of `committed` groups consumed: another group refused the
    /// request (a Cluster, where one script cannot take every key).
    async fn compensate(
        &self,
        checks: &[QuotaCheck<'_>],
        results: &[Result<Verdict, StoreError>],
        committed: &[&Vec<usize>],
        now: Timestamp,
    ) {
        // A group's script consumed nothing when one of its own binding checks refused.
        let held: Vec<usize> = committed
            .iter()
            .filter(|group| {
                !group.iter().any(|&g| {
                    !checks[g].shadow && results[g].as_ref().is_ok_and(|v| !v.is_allowed())
                })
            })
            .flat_map(|group| group.iter().copied())
            .filter(|&g| took(checks[g].consume, &results[g]))
            .collect();
        let given = join_all(held.into_iter().map(|g| {
            let c = &checks[g];
            self.give_back(c.key, c.cost, now)
        }))
        .await;
        for e in given.iter().filter_map(|r| r.as_ref().err()) {
            refund_failed(&REFUND_WARNED, e);
        }
    }
}
