//! The API's extractors, and its answers to requests no handler takes. axum's own
//! extractors refuse with their own statuses (415, 422) and `text/plain` bodies; the API's
//! contract (`docs/openapi.yaml`) has one error shape, so these wrap them and refuse with
//! `ApiError`: 400 for a query, path or body that cannot be read, 413 for a body over the
//! limit, 404 for an unknown `/api` route and 405 for a method a route does not take.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::ApiError;

/// `axum::extract::Query`, refusing with a JSON 400 that names the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(Query(q.0)),
            Err(e) => Err(ApiError::BadRequest(format!("the query string cannot be read: {}", inner_text(&e.body_text())))),
        }
    }
}

/// `axum::extract::Path`, refusing with a JSON 400 (a segment that is not UTF-8 once
/// percent-decoded, say).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(Path(p.0)),
            Err(e) => Err(ApiError::BadRequest(format!("the path cannot be read: {}", inner_text(&e.body_text())))),
        }
    }
}

/// A JSON object body, taken as `Option<Json<T>>`: an empty body is no body (whatever its
/// content type says), as every body of the API is optional (the reject's reason is asked
/// for by the handler, with its own sentence). A body that is there must be declared
/// JSON, be an object (serde would take an array for a struct) and fit `T`.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let declared_json = is_json(req.headers());
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if !declared_json {
            return Err(ApiError::BadRequest("the body must be JSON, sent with Content-Type: application/json".into()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::BadRequest("the body must be a JSON object".into()));
        }
        // Through serde_path_to_error (as axum's Json does) so the message names the field.
        let parsed = serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." { String::new() } else { format!("{path}: ") };
            ApiError::BadRequest(format!("the body does not fit: {at}{}", e.inner()))
        })?;
        Ok(Some(Json(parsed)))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(mime) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body that could not be read: over the limit (413), or cut off.
pub fn body_error(e: BytesRejection) -> ApiError {
    match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::TooLarge(format!("the body is larger than the limit of {} bytes", BODY_LIMIT))
        }
        other => ApiError::BadRequest(format!("the body cannot be read: {}", other.body_text())),
    }
}

/// axum's default body limit, which the service keeps (webhook payloads included).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// axum's messages start with what failed ("Failed to deserialize query string: "), which
/// ours say already; keep what follows.
fn inner_text(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, rest)| rest)
}

/// The fallback of the router: a JSON 404 under `/api` (and `/hooks`), the framework's
/// empty 404 elsewhere (the dashboard's own pages are not part of the API).
pub async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if is_api(path) {
        ApiError::NotFound(format!("there is no route {path}; see /openapi.yaml")).into_response()
    } else {
        axum::http::StatusCode::NOT_FOUND.into_response()
    }
}

/// A method the route does not take: 405, as JSON under `/api` and `/hooks` (axum adds
/// `Allow` either way).
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if is_api(path) {
        ApiError::MethodNotAllowed(format!("{path} does not take {method}; see /openapi.yaml")).into_response()
    } else {
        axum::http::StatusCode::METHOD_NOT_ALLOWED.into_response()
    }
}

fn is_api(path: &str) -> bool {
    ["/api", "/hooks"].iter().any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// A raw body (webhook payloads), refusing as `Json` does when it cannot be read.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(body_error)
    }
}
