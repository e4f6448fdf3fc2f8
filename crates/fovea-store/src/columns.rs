//! Column conversions every catalog backend shares: text enums, JSON columns, lease ends.

use std::str::FromStr;
use std::time::Duration;

use crate::error::{Result, StoreError};
use crate::model::Millis;

/// Parses a text column into one of the model's text enums, reporting a bad value as corruption.
pub(crate) fn parse_text<T: FromStr<Err = StoreError>>(text: &str) -> Result<T> {
    text.parse().map_err(|e: StoreError| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("bad JSON column: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("not serialisable: {e}")))
}

/// The end of a lease starting `now`; saturates rather than overflowing on absurd leases.
pub(crate) fn lease_end(now: Millis, lease: Duration) -> Millis {
    now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}
