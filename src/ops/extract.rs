//! Request extractors whose rejections look like every other error of the
//! control API: `{"error": "…"}` with the status axum chose (400 for JSON
//! that does not parse, 415 without `Content-Type: application/json`, 422 for
//! a body of the wrong shape or a bad query string). axum's own rejections
//! are plain text, which a script reading `error` would not find.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

fn rejected(status: axum::http::StatusCode, text: String) -> Response {
    (status, Json(json!({ "error": text }))).into_response()
}

/// A JSON body (`axum::Json` with JSON errors).
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(rejected(e.status(), e.body_text())),
        }
    }
}

/// A query string (`axum::extract::Query` with JSON errors).
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Params(v)),
            Err(e) => Err(rejected(e.status(), e.body_text())),
        }
    }
}
