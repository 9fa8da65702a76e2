//! [`ResponseFuture`]: the one response future of every palisade layer. A layer either refused
//! at once (the response is ready), called its inner service (and adds what it decided to the
//! response on the way out: [`Finish`]), or had to wait for a backend (a boxed future).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;

/// What a layer adds to the inner service's response on its way out (the extensions it
/// decided, charges that depend on the status...). `()` adds nothing.
pub trait Finish {
    /// Adds to `res`.
    fn finish<B>(self, res: &mut Response<ResponseBody<B>>);
}

impl Finish for () {
    fn finish<B>(self, _: &mut Response<ResponseBody<B>>) {}
}

/// A layer's future after a backend call: boxed, since a backend's future type cannot be named.
pub(crate) type Boxed<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of a palisade layer (`F`: the inner service's future, `B`: its
    /// body, `E`: its error, `X`: what the layer adds to its response).
    pub struct ResponseFuture<F, B, E, X> {
        #[pin]
        kind: Kind<F, B, E, X>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E, X> {
        Refused { response: Option<Response<ResponseBody<B>>> },
        Inner { #[pin] future: F, finish: Option<X> },
        Boxed { future: Boxed<B, E> },
    }
}

impl<F, B, E, X> ResponseFuture<F, B, E, X> {
    /// Refused at once: `response` is the answer.
    pub(crate) fn refused(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }

    /// The inner service's `future`, whose response gets `finish` (when there is one).
    pub(crate) fn inner(future: F, finish: Option<X>) -> Self {
        Self {
            kind: Kind::Inner { future, finish },
        }
    }

    /// A boxed future that does the rest (a backend call first).
    pub(crate) fn boxed(future: Boxed<B, E>) -> Self {
        Self {
            kind: Kind::Boxed { future },
        }
    }
}

impl<F, B, E, X> Future for ResponseFuture<F, B, E, X>
where
    F: Future<Output = Result<Response<B>, E>>,
    X: Finish,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Inner { future, finish } => {
                let mut res = ready!(future.poll(cx))?.map(ResponseBody::inner);
                if let Some(finish) = finish.take() {
                    finish.finish(&mut res);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E, X> fmt::Debug for ResponseFuture<F, B, E, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
