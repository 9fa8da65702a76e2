//! The response future of [`Quota`](super::Quota).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use super::layer::Shared;
use super::policy::QuotaKey;
use super::service::Tally;
use super::store::QuotaStore;
use crate::body::ResponseBody;

pub(super) type Boxed<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of [`Quota`].
    pub struct ResponseFuture<F, B, E, St> {
        #[pin]
        pub(super) kind: Kind<F, B, E, St>,
    }
}

pin_project! {
    #[project = KindProj]
    pub(super) enum Kind<F, B, E, St> {
        Refused { response: Option<Response<ResponseBody<B>>> },
        Inner {
            #[pin] future: F,
            charge: Option<(usize, QuotaKey)>,
            tally: Option<Box<Tally>>,
            shared: Arc<Shared<St>>,
        },
        Boxed { future: Boxed<B, E> },
    }
}

impl<F, B, E, St> Future for ResponseFuture<F, B, E, St>
where
    F: Future<Output = Result<Response<B>, E>>,
    St: QuotaStore,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Inner {
                future,
                charge,
                tally,
                shared,
            } => {
                let mut res = ready!(future.poll(cx))?.map(ResponseBody::inner);
                // A synchronous store answered the checks; it answers the charges too.
                if let Some((i, key)) = charge.take() {
                    if shared.counts(i, &res) {
                        shared.charge_now(&key);
                    }
                }
                if let Some(mut tally) = tally.take() {
                    if !tally.charges.is_empty() {
                        for key in shared.due(&res, &mut tally) {
                            shared.charge_now(&key);
                        }
                    }
                    tally.apply(&mut res, shared.headers);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E, St> fmt::Debug for ResponseFuture<F, B, E, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
