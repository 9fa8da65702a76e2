//! The response future of [`Quota`](super::Quota): the shared one, with what the quota stage
//! does when the response comes ([`Settle`]).

use std::fmt;
use std::sync::Arc;

use http::Response;

use super::layer::Shared;
use super::policy::QuotaKey;
use super::refund::{Taken, refused_by_quota};
use super::store::QuotaStore;
use super::tally::Tally;
use crate::body::ResponseBody;
use crate::future::Finish;

/// The response future of [`Quota`](super::Quota).
pub type ResponseFuture<F, B, E, St> = crate::future::ResponseFuture<F, B, E, Settle<St>>;

/// What a quota stage does when the response comes: the charges that depend on it (a failed
/// authentication), the typed outcome and the rate-limit fields.
pub struct Settle<St> {
    pub(super) charge: Option<(usize, QuotaKey)>,
    pub(super) tally: Option<Box<Tally>>,
    /// What this stage's rules took, given back if an inner quota stage refuses.
    pub(super) taken: Taken,
    pub(super) shared: Arc<Shared<St>>,
}

impl<St> fmt::Debug for Settle<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settle").finish_non_exhaustive()
    }
}

impl<St: QuotaStore> Finish for Settle<St> {
    fn finish<B>(self, res: &mut Response<ResponseBody<B>>) {
        let Self {
            charge,
            tally,
            taken,
            shared,
        } = self;
        if !taken.is_empty() && refused_by_quota(res.extensions()) {
            // An inner quota stage refused the request: a refused request costs nothing here.
            shared.refund_detached(taken);
        }
        // A synchronous store answered the checks; it answers the charges too.
        if let Some((i, key)) = charge
            && shared.counts(i, res)
        {
            shared.charge_now(i, &key);
        }
        if let Some(mut tally) = tally {
            if !tally.charges.is_empty() {
                for (i, key) in shared.due(res, &mut tally) {
                    shared.charge_now(i, &key);
                }
            }
            tally.apply(res, shared.headers);
        }
    }
}
