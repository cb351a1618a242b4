//! Extractors for path and query parameters that answer malformed values with 422 and a
//! `{"detail": …}` naming the problem, as upstream's API does for typed parameters
//! (http-api.md §2), instead of axum's 400.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Query parameters deserialised into `T`; 422 when they do not fit.
#[derive(Debug, Clone)]
pub struct ValidQuery<T>(pub T);

/// Path parameters deserialised into `T` (e.g. a `Uuid`); 422 when they do not fit.
#[derive(Debug, Clone)]
pub struct ValidPath<T>(pub T);

/// The rejection's own explanation with the status 422.
fn unprocessable(rejection: impl IntoResponse + std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, rejection.to_string())
}

impl<T, S> FromRequestParts<S> for ValidQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ValidQuery(value))
            .map_err(unprocessable)
    }
}

impl<T, S> FromRequestParts<S> for ValidPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ValidPath(value))
            .map_err(unprocessable)
    }
}
