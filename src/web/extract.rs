//! Extractors whose rejections become [`AppError`]s (JSON errors with stable codes).

use axum::extract::{FromRequest, FromRequestParts};

use super::AppError;

/// `Json<T>` with our error body on rejection (400, 413, 415).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct AppJson<T>(pub T);

/// `Query<T>` with our error body on rejection.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct AppQuery<T>(pub T);
