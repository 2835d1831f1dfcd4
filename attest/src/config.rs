//! What reference-value and policy files of every TEE share: exact-length hex values,
//! one-or-many lists, TOML or JSON input, and the equality and flag checks.

use crate::verdict::{Category, Checks};
use cvm_firmware::hex;
use serde::Deserialize;

/// Why a reference-value or policy file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A hex value of exactly `N` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes<const N: usize>(pub [u8; N]);

impl<'de, const N: usize> Deserialize<'de> for Bytes<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode_exact::<N>(&s)
            .map(Bytes)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not {N} bytes of hex")))
    }
}

/// One value or a list of acceptable values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One.
    One(T),
    /// Any of these.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The acceptable values.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

pub(crate) fn from_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError(format!("TOML: {e}")))
}

/// Reads a file that is JSON (it starts with `{`) or TOML.
pub(crate) fn from_json_or_toml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, ConfigError> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| ConfigError(format!("JSON: {e}")))
    } else {
        from_toml(text)
    }
}

/// Reads reference values: TOML, JSON, or the JSON `cvm measure` prints (recognised by
/// its `firmware` key, checked to name one of `tees`, and converted by `handoff`).
pub(crate) fn reference_values<T: serde::de::DeserializeOwned>(
    text: &str,
    tees: &[&str],
    handoff: impl FnOnce(serde_json::Value) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    if !text.trim_start().starts_with('{') {
        return from_toml(text);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ConfigError(format!("JSON: {e}")))?;
    if value.get("firmware").is_some() {
        // Name the TEE first: another TEE's output lacks the fields to complain about.
        check_tee(
            value.get("tee").and_then(serde_json::Value::as_str),
            "reference values",
            tees,
        )?;
        handoff(value)
    } else {
        serde_json::from_value(value).map_err(|e| ConfigError(format!("JSON: {e}")))
    }
}

/// A file that names its TEE must name one of `tees` (the first is the one named in the
/// error).
pub(crate) fn check_tee(tee: Option<&str>, what: &str, tees: &[&str]) -> Result<(), ConfigError> {
    match tee {
        Some(t) if !tees.contains(&t) => Err(ConfigError(format!(
            "{what} for {t:?}, not {:?}",
            tees.first().copied().unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn eq_check<const N: usize>(
    checks: &mut Checks,
    name: &str,
    field: &str,
    want: Option<&Bytes<N>>,
    got: &[u8; N],
    absent: &str,
) {
    match want {
        None => checks.skip(name, Category::Policy, absent),
        Some(w) => {
            checks.record(
                name,
                Category::Policy,
                if &w.0 == got {
                    Ok(format!("{field} is {}", hex::encode(got)))
                } else {
                    Err(format!(
                        "{field} is {}, expected {}",
                        hex::encode(got),
                        hex::encode(&w.0)
                    ))
                },
            );
        }
    }
}

pub(crate) fn flag(checks: &mut Checks, name: &str, ok: bool, pass: &str, fail: &str) {
    checks.record(
        name,
        Category::Policy,
        if ok {
            Ok(pass.to_owned())
        } else {
            Err(fail.to_owned())
        },
    );
}

/// Checks that `got` is one of the acceptable values `want`.
pub(crate) fn one_of<const N: usize>(
    checks: &mut Checks,
    name: &str,
    field: &str,
    want: &OneOrMany<Bytes<N>>,
    got: &[u8; N],
) {
    let ok = want.as_slice().iter().any(|b| &b.0 == got);
    checks.record(
        name,
        Category::Policy,
        if ok {
            Ok(format!("{field} {} is a reference value", hex::encode(got)))
        } else {
            Err(format!(
                "{field} {} is none of the {} reference value(s)",
                hex::encode(got),
                want.as_slice().len()
            ))
        },
    );
}
