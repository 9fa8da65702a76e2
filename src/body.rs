//! [`ResponseBody`]: the body of responses from palisade layers.
//!
//! A layer either passes the inner service's response through or answers with a problem
//! document of its own; `ResponseBody<B>` is either of those, so the inner body type (and its
//! error type) passes through unchanged.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's body, or a refusal's problem document.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Refused { body: Full<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A refusal's body.
    pub fn refused(body: Full<Bytes>) -> Self {
        Self {
            kind: Kind::Refused { body },
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Refused { body } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Refused { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Refused { body } => body.size_hint(),
        }
    }
}

/// The response of a refusal by `layer`: the decision traced, a debug log line, and the body
/// in the host's format when the request's `extensions` carry one. Every layer refuses
/// through here.
pub(crate) fn refusal<B>(
    layer: &'static str,
    rejection: &crate::Rejection,
    trace: crate::telemetry::DecisionTrace,
    extensions: &http::Extensions,
) -> http::Response<ResponseBody<B>> {
    trace.refused(rejection);
    tracing::debug!(
        layer,
        reason = rejection.reason(),
        status = rejection.status().as_u16(),
        "request refused"
    );
    rejection
        .to_response_in(extensions)
        .map(ResponseBody::refused)
}
