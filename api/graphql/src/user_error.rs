//! Validation failures as mutation payloads return them (HTTP 200, `data` present): the
//! domain's [`voxtur_core::errors::UserError`] with its GraphQL face.

use async_graphql::{Enum, SimpleObject};
use voxtur_core::error::ApiError;
use voxtur_core::errors::MutationResult;

/// Stable machine-readable reasons for a `UserError`.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "voxtur_core::errors::UserErrorCode")]
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

/// A validation failure in a mutation's input.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct UserError {
    /// Path to the input field at fault, e.g. `["input", "email"]`.
    pub field: Option<Vec<String>>,
    /// What is wrong, for people.
    pub message: String,
    /// What is wrong, for programs.
    pub code: UserErrorCode,
}

impl UserError {
    /// An error at a path of the operation's arguments, e.g. `["input", "email"]`.
    pub fn new(path: &[&str], code: UserErrorCode, message: impl Into<String>) -> UserError {
        UserError {
            field: Some(path.iter().map(|p| p.to_string()).collect()),
            message: message.into(),
            code,
        }
    }

    /// The domain's error, a value within the input placed under `input` (e.g.
    /// `["inputs", "3"]` for an item of a bulk call).
    pub fn at(error: voxtur_core::errors::UserError, input: &[&str]) -> UserError {
        let mut field: Vec<String> = if error.argument {
            Vec::new()
        } else {
            input.iter().map(|p| p.to_string()).collect()
        };
        field.extend(error.field);
        UserError {
            field: Some(field),
            message: error.message,
            code: error.code.into(),
        }
    }
}

/// Mutations take their values in one argument, `input`.
impl From<voxtur_core::errors::UserError> for UserError {
    fn from(error: voxtur_core::errors::UserError) -> Self {
        UserError::at(error, &["input"])
    }
}

/// Splits a service result into what a payload holds: the value or the user errors.
/// Faults and refusals stay errors.
pub fn into_payload<T>(result: MutationResult<T>) -> Result<(Option<T>, Vec<UserError>), ApiError> {
    let (value, errors) = voxtur_core::errors::into_payload(result)?;
    Ok((value, errors.into_iter().map(UserError::from).collect()))
}
