//! [`Shared`]: the role and scope sets, tenants and tiers many stored principals have in
//! common, held once.

use std::sync::Arc;

use super::{AuthContext, Inner, Names, Principal, RoleCache};

/// The role and scope sets, tenants and tiers that many long-lived principals have in common
/// (a key store's records), held once. Bounded by the distinct values of the principals it
/// was given; [`release`](Self::release) lets go of a value only a released principal used.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    sets: std::sync::Mutex<std::collections::HashSet<Names>>,
    strings: std::sync::Mutex<std::collections::HashSet<Arc<str>>>,
}

impl Shared {
    /// The value held for `value`; a copy of its own is added if there is none (so that only
    /// stored principals and the table count as its users).
    fn one<T: ?Sized + Eq + std::hash::Hash>(
        table: &std::sync::Mutex<std::collections::HashSet<Arc<T>>>,
        value: &Arc<T>,
        copy: impl FnOnce(&T) -> Arc<T>,
    ) -> Arc<T> {
        let mut table = table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = table.get(value) {
            return held.clone();
        }
        let held = copy(value);
        table.insert(held.clone());
        held
    }

    fn drop_unused<T: ?Sized + Eq + std::hash::Hash>(
        table: &std::sync::Mutex<std::collections::HashSet<Arc<T>>>,
        value: &Arc<T>,
    ) {
        let mut table = table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Held by the table and by the principal being released: nobody else uses it.
        if Arc::strong_count(value) <= 2 {
            table.remove(value);
        }
    }

    /// `p`, with its sets and strings replaced by the ones held here (added if new).
    pub(crate) fn principal(&self, p: &Principal) -> Principal {
        let i = &p.0;
        Principal(Arc::new(Inner {
            subject: i.subject.clone(),
            method: i.method.clone(),
            roles: Self::one(&self.sets, &i.roles, |s| s.iter().cloned().collect()),
            scopes: Self::one(&self.sets, &i.scopes, |s| s.iter().cloned().collect()),
            tenant: i
                .tenant
                .as_ref()
                .map(|t| Self::one(&self.strings, t, |s| Arc::from(s))),
            tier: i
                .tier
                .as_ref()
                .map(|t| Self::one(&self.strings, t, |s| Arc::from(s))),
            confirmation: i.confirmation,
            auth: i.auth.as_ref().map(|a| {
                Box::new(AuthContext {
                    acr: a
                        .acr
                        .as_ref()
                        .map(|t| Self::one(&self.strings, t, |s| Arc::from(s))),
                    auth_time: a.auth_time,
                    dpop_nonce: None,
                })
            }),
            role_cache: RoleCache::default(),
        }))
    }

    /// How many sets and strings are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        let sets = self.sets.lock().map_or(0, |s| s.len());
        (sets, self.strings.lock().map_or(0, |s| s.len()))
    }

    /// Lets go of what only `p` (no longer stored) used.
    pub(crate) fn release(&self, p: &Principal) {
        let i = &p.0;
        Self::drop_unused(&self.sets, &i.roles);
        Self::drop_unused(&self.sets, &i.scopes);
        for s in [&i.tenant, &i.tier].into_iter().flatten() {
            Self::drop_unused(&self.strings, s);
        }
    }
}
