use std::fmt;

/// An operator's failure. Returning it from [`crate::Operator`] fails the current batch:
/// the host discards the batch's state writes and applies its error policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with a message that says what failed; the host shows it with the plugin's name.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self { message }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::msg(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Self::msg(format_args!("JSON error: {err}"))
    }
}

impl From<crate::state::StateError> for Error {
    fn from(err: crate::state::StateError) -> Self {
        Self::msg(format_args!("state error: {err}"))
    }
}
