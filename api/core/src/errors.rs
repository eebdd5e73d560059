//! Validation failures: what is wrong with a caller's input, each with a stable code and the
//! path of the input at fault. The GraphQL layer returns them in mutation payloads (`userErrors`);
//! the form endpoint maps them back to its fields.

use crate::error::ApiError;

/// Stable machine-readable reasons for a `UserError`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UserErrorCode {
    /// The value is malformed or out of range.
    Invalid,
    /// The email address is not a valid address.
    InvalidEmail,
    /// Another record already uses this unique value.
    Taken,
    /// The referenced record does not exist in this workspace.
    NotFound,
    /// No custom field with this key is defined for this object.
    UnknownField,
    /// The value's type does not match the field's definition.
    WrongType,
    /// The value is not one of the field's options.
    NotAnOption,
    /// A required value is missing.
    Required,
    /// The value is longer than allowed.
    TooLong,
    /// The list has more items than allowed.
    TooMany,
    /// The same record appears twice in one bulk call.
    DuplicateInBatch,
    /// This property cannot be changed once set.
    Immutable,
    /// The reference would make a cycle (a segment that, through others, contains itself).
    Cycle,
    /// The record is not in a state that allows this (a job that is not discarded retried).
    WrongState,
}

/// A validation failure in an operation's input.
#[derive(Clone, Debug, PartialEq)]
pub struct UserError {
    /// The value at fault: a path within the operation's input (`["email"]`,
    /// `["customFields", "plan"]`), or, where `argument` is set, an argument of the operation
    /// beside its input (`["id"]`, `["csv", "3"]`). Callers place it in their own terms (the
    /// GraphQL layer under `input`, the form endpoint on its fields).
    pub field: Vec<String>,
    pub argument: bool,
    /// What is wrong, for people.
    pub message: String,
    /// What is wrong, for programs.
    pub code: UserErrorCode,
}

impl UserError {
    /// An error in a value within the operation's input.
    pub fn new(path: &[&str], code: UserErrorCode, message: impl Into<String>) -> UserError {
        UserError {
            field: path.iter().map(|p| p.to_string()).collect(),
            argument: false,
            message: message.into(),
            code,
        }
    }

    /// An error in an argument of the operation beside its input (the id of the record).
    pub fn argument(path: &[&str], code: UserErrorCode, message: impl Into<String>) -> UserError {
        UserError {
            argument: true,
            ..UserError::new(path, code, message)
        }
    }
}

/// Why a mutation did not happen: the caller's input (reported in the payload) or a fault or
/// refusal (reported as a top-level error).
#[derive(Debug)]
pub enum MutationError {
    Invalid(Vec<UserError>),
    Api(ApiError),
}

impl From<ApiError> for MutationError {
    fn from(error: ApiError) -> Self {
        MutationError::Api(error)
    }
}

impl From<sea_orm::DbErr> for MutationError {
    fn from(error: sea_orm::DbErr) -> Self {
        MutationError::Api(error.into())
    }
}

impl From<Vec<UserError>> for MutationError {
    fn from(errors: Vec<UserError>) -> Self {
        MutationError::Invalid(errors)
    }
}

impl From<UserError> for MutationError {
    fn from(error: UserError) -> Self {
        MutationError::Invalid(vec![error])
    }
}

pub type MutationResult<T> = Result<T, MutationError>;

/// Splits a service result into what a payload holds: the value or the user errors.
/// Faults and refusals stay errors.
pub fn into_payload<T>(result: MutationResult<T>) -> Result<(Option<T>, Vec<UserError>), ApiError> {
    match result {
        Ok(value) => Ok((Some(value), Vec::new())),
        Err(MutationError::Invalid(errors)) => Ok((None, errors)),
        Err(MutationError::Api(error)) => Err(error),
    }
}
