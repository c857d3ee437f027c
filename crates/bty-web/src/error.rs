//! API errors as upstream shapes them: `{"detail": "..."}` with the status, and 422 with a list
//! of `{loc, msg, type}` for validation failures.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bty_proto::ValidationError;

use crate::db::DbError;

#[derive(Debug)]
pub enum ApiError {
    Status(StatusCode, String),
    Invalid(Vec<ValidationError>),
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError::Status(status, detail.into())
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn invalid(field: &str, msg: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![ValidationError::new(field, msg)])
    }
    /// What went wrong, in one line (for pages that list several outcomes).
    pub fn message(&self) -> String {
        match self {
            ApiError::Status(_, d) => d.clone(),
            ApiError::Invalid(v) => v
                .iter()
                .map(|e| e.msg.clone())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        tracing::error!("{e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the server log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Status(s, d) => (s, Json(serde_json::json!({ "detail": d }))).into_response(),
            ApiError::Invalid(v) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({ "detail": v })),
            )
                .into_response(),
        }
    }
}
