//! The boundary error type: every error that reaches a client carries a stable
//! `extensions.code`, and internal faults never leak SQL or stack text.

use async_graphql::ErrorExtensions;

///
/// Deliberately not `Display`: async-graphql converts any `Display` error into a bare error
/// without extensions, so the only way in is [`From<ApiError>`] below, which sets the code.
#[derive(Debug)]
pub enum ApiError {
    Unauthenticated,
    Forbidden(&'static str),
    NotFound(String),
    BadUserInput(String),
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::BadUserInput(_) => "BAD_USER_INPUT",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// What the client is told. Internal faults say nothing more than that.
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated => "authentication required: send `Authorization: Bearer <api key>`".into(),
            ApiError::Forbidden(scope) => format!("these credentials lack the `{scope}` scope"),
            ApiError::NotFound(message) | ApiError::BadUserInput(message) => message.clone(),
            ApiError::Internal(_) => "internal error".into(),
        }
    }

    /// What an operator at the command line is told: internal faults with their cause.
    pub fn for_operator(&self) -> String {
        match self {
            ApiError::Internal(source) => format!("internal error: {source}"),
            other => other.message(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        ApiError::BadUserInput(message.into())
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        ApiError::Internal(Box::new(error))
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        if let ApiError::Internal(source) = self {
            // Logged here, inside the request span, so the request id ties it to the response.
            tracing::error!(error = %source, "internal error");
        }
        async_graphql::Error::new(self.message()).extend_with(|_, extensions| {
            extensions.set("code", self.code());
        })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        error.extend()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
