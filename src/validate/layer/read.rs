//! Reading a request body for the validation layer: bounded in size and time, and decoded
//! from its content coding when the operation says so.

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use super::{refusal, too_large};
use crate::rejection::{InputPart, InvalidReason, Rejection, Violation};
use crate::validate::Operation;

/// The body decoded from `coding`, bounded by `max` and the operation's ratio; `headers` then
/// describe the decoded body (no `Content-Encoding`, its own `Content-Length`).
pub(super) fn decoded(
    op: &Operation,
    coding: crate::validate::Coding,
    bytes: &[u8],
    max: usize,
    headers: &mut http::HeaderMap,
) -> Result<Bytes, Rejection> {
    let ratio = op
        .decoding()
        .map_or(crate::validate::DEFAULT_MAX_RATIO, |d| d.max_ratio);
    let plain =
        crate::validate::decode::decode(coding, bytes, max, ratio).map_err(|e| match e {
            crate::validate::decode::DecodeError::TooLarge { limit, by_ratio } => refusal(
                InvalidReason::BodyTooLarge,
                vec![Violation {
                    part: InputPart::Body,
                    pointer: "#".into(),
                    keyword: if by_ratio { "maxRatio" } else { "maxBodyBytes" }.into(),
                    detail: if by_ratio {
                        format!("the body expands more than {ratio} times when decoded")
                    } else {
                        format!("the decoded body is larger than {limit} bytes")
                    }
                    .into(),
                }],
            ),
            crate::validate::decode::DecodeError::Corrupt => refusal(
                InvalidReason::MalformedBody,
                vec![Violation {
                    part: InputPart::Body,
                    pointer: "#".into(),
                    keyword: "contentEncoding".into(),
                    detail: "the body is not valid in its content coding".into(),
                }],
            ),
        })?;
    headers.remove(http::header::CONTENT_ENCODING);
    headers.insert(CONTENT_LENGTH, http::HeaderValue::from(plain.len()));
    Ok(Bytes::from(plain))
}

/// Reads `body` up to `max` bytes within `timeout`, or says why not: too large (413), too slow
/// (408), or unreadable (400).
pub(super) async fn read_body<B>(
    body: B,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, Rejection>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::BoxError>,
{
    let failed = |reason: InvalidReason, keyword: &str, detail: String| {
        refusal(
            reason,
            vec![Violation {
                part: InputPart::Body,
                pointer: "#".into(),
                keyword: keyword.into(),
                detail: detail.into(),
            }],
        )
    };
    // Boxed: the timer and the collector stay out of the request's future, which would
    // otherwise grow past the allocator's small sizes and cost more than this allocation.
    let read = Box::pin(tokio::time::timeout(
        timeout,
        Limited::new(body, max).collect(),
    ));
    match read.await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Err(_elapsed) => Err(failed(
            InvalidReason::BodyTimeout,
            "bodyTimeout",
            format!("the body did not arrive within {} ms", timeout.as_millis()),
        )),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(max))
        }
        Ok(Err(_)) => Err(failed(
            InvalidReason::MalformedBody,
            "body",
            "the body could not be read".into(),
        )),
    }
}
