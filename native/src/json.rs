//! Placeholder until the JSON reader lands (branch native-json).
use crate::doc::Value;

#[derive(Debug)]
pub enum JsonError {
    Invalid,
}

pub fn parse_strict(_text: &str) -> Result<Value, JsonError> {
    Err(JsonError::Invalid)
}

pub fn parse_lenient(_text: &str) -> Result<Value, JsonError> {
    Err(JsonError::Invalid)
}
