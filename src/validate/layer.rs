//! [`ValidateLayer`], its service [`Validate`] and [`ResponseFuture`].

mod read;
mod validated;

pub use validated::{ValidatedBody, ValidatedParams};

use std::collections::HashMap;
use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::operation::{BodyKind, Operation};
use crate::body::{ResponseBody, refusal as refusal_response};
use crate::error::ConfigError;
use crate::principal::Principal;
use crate::rejection::Formatter;
use crate::rejection::{InputPart, InvalidInput, InvalidReason, Rejection, Violation};
use crate::route::{RouteMatch, matched_template};
use crate::telemetry::{DecisionTrace, RequestNames};

/// Refuses malformed and hostile input before it reaches the handler: per (method, route
/// template), the content type (415), the body size (413, from `Content-Length` or while
/// streaming), JSON syntax (400), the input guards and the JSON Schema of the body, query,
/// headers and path (422). Requests to routes without an [`Operation`] pass untouched.
///
/// The body is read once: the handler gets the same bytes as its body and, through the
/// [`Validated`](super::Validated) extractor, the value parsed here.
#[derive(Clone)]
pub struct ValidateLayer {
    shared: Arc<Shared>,
}

struct Shared {
    router: matchit::Router<usize>,
    by_template: HashMap<Box<str>, usize>,
    operations: Vec<HashMap<Method, Arc<Operation>>>,
}

impl fmt::Debug for ValidateLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateLayer")
            .field("routes", &self.shared.operations.len())
            .finish()
    }
}

/// Builds a [`ValidateLayer`].
#[derive(Debug, Default)]
#[must_use]
pub struct ValidateBuilder {
    routes: Vec<(Box<str>, HashMap<Method, Operation>)>,
    /// The first mistake of a chained method, reported by `build`.
    error: Option<ConfigError>,
}

impl ValidateLayer {
    /// Starts a builder with no operation.
    pub fn builder() -> ValidateBuilder {
        ValidateBuilder::default()
    }
}

impl ValidateBuilder {
    /// Validates `method` requests to `template` (axum syntax: `/orders/{id}`) with `operation`.
    ///
    /// An operation declared twice makes [`build`](Self::build) fail with
    /// [`ConfigError::Route`]; so does a schema of `operation` that did not compile, with
    /// [`ConfigError::Schema`].
    pub fn operation(mut self, method: Method, template: &str, mut operation: Operation) -> Self {
        if let Some(e) = operation.take_error() {
            self.error.get_or_insert(e);
            return self;
        }
        let entry = match self.routes.iter_mut().find(|(t, _)| **t == *template) {
            Some((_, ops)) => ops,
            None => {
                self.routes.push((template.into(), HashMap::new()));
                &mut self.routes.last_mut().expect("just pushed").1
            }
        };
        if entry.contains_key(&method) {
            self.error.get_or_insert(ConfigError::Route {
                template: template.to_owned(),
                message: format!("{method} is validated twice"),
            });
            return self;
        }
        entry.insert(method, operation);
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// The first mistake of [`operation`](Self::operation) (a schema that did not compile, an
    /// operation declared twice), else [`ConfigError::Route`] when a template is invalid or
    /// conflicts with another;
    /// [`ConfigError::Invalid`] when an operation decodes bodies ([`Operation::decode`])
    /// and palisade was built without its `decompression` feature.
    pub fn build(self) -> Result<ValidateLayer, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut router = matchit::Router::new();
        let mut by_template = HashMap::new();
        let mut operations = Vec::with_capacity(self.routes.len());
        for (i, (template, ops)) in self.routes.into_iter().enumerate() {
            crate::route::check_template(&template)?;
            if let Some((part, name)) = ops.values().find_map(|o| o.misplaced_param_limits()) {
                return Err(ConfigError::Invalid {
                    field: "param_limits",
                    message: format!(
                        "{template}: `{name}` in {part:?}: hostile-input limits apply to query and path parameters"
                    ),
                });
            }
            if !cfg!(feature = "decompression") && ops.values().any(|o| o.decoding().is_some()) {
                return Err(ConfigError::Invalid {
                    field: "decode",
                    message: format!(
                        "{template}: decoding request bodies needs palisade's `decompression` feature"
                    ),
                });
            }
            router
                .insert(&*template, i)
                .map_err(|e| ConfigError::Route {
                    template: template.to_string(),
                    message: e.to_string(),
                })?;
            by_template.insert(template, i);
            operations.push(
                ops.into_iter()
                    .map(|(m, o)| (m, Arc::new(o.with_own_slot())))
                    .collect(),
            );
        }
        Ok(ValidateLayer {
            shared: Arc::new(Shared {
                router,
                by_template,
                operations,
            }),
        })
    }
}

impl<S> Layer<S> for ValidateLayer {
    type Service = Validate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Validate {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`ValidateLayer`].
#[derive(Clone)]
pub struct Validate<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Validate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validate")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// An operation and the request's path parameters, as sent (percent-encoded).
type Found = (Arc<Operation>, Vec<(String, String)>);

impl Shared {
    /// The operation of a request, and its path parameters. The router's matched template
    /// (axum's `MatchedPath`) decides when it is one of the operations'; otherwise the path is
    /// matched here. Under `Router::nest("/v1", ...)` the matched template carries the prefix
    /// (`/v1/orders/{id}`) while the path the layer sees does not (`/orders/1`): the path
    /// finds the operation, so a nested router is validated, never silently skipped.
    fn find(&self, method: &Method, template: Option<&str>, path: &str) -> Option<Found> {
        let m = self.router.at(path).ok();
        let index = match template.and_then(|t| self.by_template.get(t)) {
            Some(index) => *index,
            None => *m.as_ref()?.value,
        };
        let op = self.operation(index, method)?;
        let params = m
            .filter(|m| *m.value == index)
            .map(|m| {
                m.params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Some((op, params))
    }

    /// The operation for `method` on route `index`; a HEAD request without one of its own is
    /// checked as GET (RFC 9110 §9.3.2: HEAD is GET without the body, and routers serve it
    /// with the GET handler, which must not see input the GET rules would refuse).
    fn operation(&self, index: usize, method: &Method) -> Option<Arc<Operation>> {
        let ops = &self.operations[index];
        ops.get(method)
            .or_else(|| (method == Method::HEAD).then(|| ops.get(&Method::GET))?)
            .cloned()
    }

    /// The operation of `req` and its path parameters: by the stack's [`RouteMatch`] when it
    /// resolved the route (template and raw parameters), else as [`find`](Self::find).
    fn find_for<B>(&self, req: &Request<B>) -> Option<Found> {
        let ext = req.extensions();
        match ext.get::<RouteMatch>() {
            Some(m) if matched_template(ext) == Some(m.template()) => {
                self.find_matched(req.method(), m)
            }
            _ => self.find(req.method(), matched_template(ext), req.uri().path()),
        }
    }

    /// The operation of a request whose route the stack resolved, and its path parameters.
    fn find_matched(&self, method: &Method, m: &RouteMatch) -> Option<Found> {
        let index = *self.by_template.get(m.template())?;
        let op = self.operation(index, method)?;
        let params = m
            .params()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some((op, params))
    }
}

pub(super) fn refusal(reason: InvalidReason, errors: Vec<Violation>) -> Rejection {
    Rejection::Invalid(InvalidInput::new(reason, errors))
}

pub(super) fn too_large(max: usize) -> Rejection {
    refusal(
        InvalidReason::BodyTooLarge,
        vec![Violation {
            part: InputPart::Body,
            pointer: "#".into(),
            keyword: "maxBodyBytes".into(),
            detail: format!("the body is larger than {max} bytes").into(),
        }],
    )
}

impl<S> Validate<S> {
    /// Calls the inner service with an allowed request: its future as it is, or, when the
    /// operation checks responses, boxed with the check.
    fn pass<ReqBody, ResBody>(
        &mut self,
        req: Request<ReqBody>,
        op: &Arc<Operation>,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        S::Future: Send + 'static,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<crate::BoxError>,
    {
        // A HEAD response has no body to check.
        let rules = op.responses().filter(|_| req.method() != Method::HEAD);
        let Some(rules) = rules.cloned() else {
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        let format = req.extensions().get::<Formatter>().cloned();
        let names = RequestNames::of(req.headers(), req.extensions());
        let max_errors = op.error_limit();
        let future = self.inner.call(req);
        ResponseFuture::boxed(Box::pin(async move {
            let res = future.await?;
            Ok(super::response::checked(res, &rules, max_errors, format, names).await)
        }))
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Validate<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<crate::BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<crate::BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some((op, path_params)) = self.shared.find_for(&req) else {
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        let trace = DecisionTrace::start("validate", req.headers(), req.extensions());
        let params = op.check_params(
            req.uri().query(),
            req.headers(),
            path_params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        match params {
            Ok(Some(query)) if op.wants_query() => {
                req.extensions_mut().insert(ValidatedParams(query));
            }
            Ok(_) => {}
            Err((reason, errors)) => {
                return ResponseFuture::refused(refusal_response(
                    "validate",
                    &refusal(reason, errors),
                    trace,
                    req.extensions(),
                ));
            }
        }
        if !op.has_body_rules()
            && req.headers().get(CONTENT_LENGTH).is_none_or(|v| v == "0")
            && !req.headers().contains_key(TRANSFER_ENCODING)
        {
            trace.allowed(req.extensions().get::<Principal>());
            return self.pass(req, &op);
        }
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let max = op.max_body();
        // RFC 9110 §15.5.14: refused from the declared length, before reading a byte.
        if declared.is_some_and(|n| n > max as u64) {
            return ResponseFuture::refused(refusal_response(
                "validate",
                &too_large(max),
                trace,
                req.extensions(),
            ));
        }
        let has_body = declared.is_some_and(|n| n > 0)
            || req.headers().contains_key(TRANSFER_ENCODING)
            || !req.body().is_end_stream();
        let kind = if op.has_body_rules() {
            match op.check_content_type(req.headers(), has_body) {
                Ok(Some(kind)) => Some(kind),
                Ok(None) => {
                    trace.allowed(req.extensions().get::<Principal>());
                    return self.pass(req, &op);
                }
                Err((reason, errors)) => {
                    let mut res = refusal_response(
                        "validate",
                        &refusal(reason, errors),
                        trace,
                        req.extensions(),
                    );
                    // RFC 9110 §12.5.3: a 415 for a coding names the codings that are accepted.
                    if let Some(accepted) = op.decoding().map(super::Decoding::accept_encoding)
                        && reason == InvalidReason::UnsupportedEncoding
                    {
                        res.headers_mut()
                            .insert(http::header::ACCEPT_ENCODING, accepted);
                    }
                    return ResponseFuture::refused(res);
                }
            }
        } else {
            None
        };
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(read_check_call(inner, req, op, kind, max, trace)))
    }
}

/// Reads the body up to `max` bytes and no further (a body without a length is cut off at
/// max + 1), checks it against `op` as `kind`, and calls `inner` with it (and the parsed value
/// for `Validated<T>`), or refuses.
async fn read_check_call<S, ReqBody, ResBody>(
    mut inner: S,
    req: Request<ReqBody>,
    op: Arc<Operation>,
    kind: Option<BodyKind>,
    max: usize,
    trace: DecisionTrace,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body<Data = Bytes> + From<Bytes>,
    ReqBody::Error: Into<crate::BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<crate::BoxError>,
{
    let (mut parts, body) = req.into_parts();
    // The steps between the two awaits live in a plain function: a local of this async fn
    // stays in its (boxed, per-request) state until the function ends, moved out or not.
    let bytes = match read::read_body(body, max, op.read_timeout())
        .await
        .and_then(|bytes| decode_and_check(&op, kind, bytes, max, &mut parts))
    {
        Ok(bytes) => bytes,
        Err(rejection) => {
            return Ok(refusal_response(
                "validate",
                &rejection,
                trace,
                &parts.extensions,
            ));
        }
    };
    trace.allowed(parts.extensions.get::<Principal>());
    let responses = op.responses().cloned();
    let format = responses
        .as_ref()
        .and_then(|_| parts.extensions.get::<Formatter>().cloned());
    let names = responses
        .as_ref()
        .map(|_| RequestNames::of(&parts.headers, &parts.extensions))
        .unwrap_or_default();
    let res = inner
        .call(Request::from_parts(parts, ReqBody::from(bytes)))
        .await?;
    Ok(match responses {
        // Boxed: its state stays out of this future, which every body-reading request
        // allocates, whether or not its responses are checked.
        Some(rules) => {
            Box::pin(super::response::checked(
                res,
                &rules,
                op.error_limit(),
                format,
                names,
            ))
            .await
        }
        None => res.map(ResponseBody::inner),
    })
}

/// A read body decoded from its content coding (if any) and checked as `kind`; the parsed
/// value goes into the request extensions for `Validated<T>`.
fn decode_and_check(
    op: &Operation,
    kind: Option<BodyKind>,
    bytes: Bytes,
    max: usize,
    parts: &mut http::request::Parts,
) -> Result<Bytes, Rejection> {
    let Some(kind) = kind else {
        return Ok(bytes);
    };
    let bytes = match kind.coding {
        Some(coding) => read::decoded(op, coding, &bytes, max, &mut parts.headers)?,
        None => bytes,
    };
    // The fused path first, once the operation knows its handler's type: checked and
    // deserialized in one pass, or given up and checked on the tape below.
    let fused = op.fused(&kind, &bytes);
    match fused {
        Some(Some(built)) => {
            crate::telemetry::validation_body("fused");
            let body = ValidatedBody::fused(bytes.clone(), op.slot().clone(), built);
            parts.extensions.insert(body);
            return Ok(bytes);
        }
        Some(None) => crate::telemetry::validation_body("gave_up"),
        None => {}
    }
    let checked = op.check_body(&kind, &bytes);
    if kind.is_json() && !bytes.is_empty() {
        crate::telemetry::validation_body("tape");
    }
    match checked {
        Ok(Some(tape)) => {
            if matches!(fused, Some(None)) {
                op.slot().missed();
            }
            let body = ValidatedBody::new(tape, Some(op.slot().clone()));
            parts.extensions.insert(body);
        }
        Ok(None) => {}
        Err((reason, errors)) => return Err(refusal(reason, errors)),
    }
    Ok(bytes)
}

/// The response future of [`Validate`]: validation adds nothing to the response.
pub type ResponseFuture<F, B, E> = crate::future::ResponseFuture<F, B, E, ()>;
