//! The error every layer returns when a request cannot be served: a stable code for programs
//! (`extensions.code` in GraphQL, the status in HTTP) and a message for people. Internal faults
//! keep their cause for the log and tell the client nothing more than "internal error".

/// `Display` is what a client may be told: internal faults never show their cause.
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

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
