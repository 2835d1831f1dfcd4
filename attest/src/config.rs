//! What reference-value and policy files of every TEE share: exact-length hex values,
//! one-or-many lists, TOML or JSON input, and the equality and flag checks.

use crate::verdict::{Category, CheckId, Checks};
use cvm_firmware::reference::{IdBlockValues, MEASUREMENT_FORMAT, MeasuredValues};
use serde::Deserialize;

/// Why a reference-value, policy or event-log file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not JSON or TOML, or not of the file's format: an unknown key, a bad value, a key
    /// given twice (the decoder's message, with its line and column).
    #[error("{format}: {message}")]
    Syntax {
        /// "JSON" or "TOML".
        format: &'static str,
        /// What the decoder said.
        message: String,
    },
    /// The file names another TEE than the evidence it is for.
    #[error("{what} for {found:?}, not {expected:?}")]
    OtherTee {
        /// "reference values" or "a policy".
        what: &'static str,
        /// The TEE the file names.
        found: String,
        /// The TEE it should name.
        expected: &'static str,
    },
    /// Reference values with neither a measurement nor `skip_measurement = true`.
    #[error("no measurement: give {give}, or `skip_measurement = true` to accept any")]
    NoMeasurement {
        /// The key(s) that would give one.
        give: &'static str,
    },
    /// Settings that contradict each other.
    #[error("{0}")]
    Contradiction(String),
    /// A value no evidence could be judged by (a Revoked TCB accepted, an empty list
    /// where one is needed, an event log of another format).
    #[error("{0}")]
    Invalid(String),
}

fn syntax(format: &'static str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Syntax {
        format,
        message: e.to_string(),
    }
}

/// A hex value of exactly `N` bytes (upper or lower case, optional `0x` prefix): the
/// firmware crate's type, which `cvm measure` writes its values with.
pub use cvm_firmware::reference::Hex as Bytes;

/// `cvm measure --format json` output, read with the types it was written with.
#[derive(Debug, Deserialize)]
pub(crate) struct Measured {
    /// The TEE and its measured values.
    #[serde(flatten)]
    pub values: MeasuredValues,
    /// An SNP launch's ID block.
    #[serde(default)]
    pub id_block: Option<IdBlockValues>,
}

/// One value or a list of acceptable values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOrMany<T> {
    /// One.
    One(T),
    /// Any of these.
    Many(Vec<T>),
}

/// Written by hand rather than derived as an untagged enum, so that a bad value is
/// reported as itself (`"abc" is not 48 bytes of hex`) instead of as "did not match any
/// variant".
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IntoDeserializer, SeqAccess, Visitor};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a hex string or a list of hex strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                T::deserialize(s.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(t) = a.next_element::<T>()? {
                    v.push(t);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
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
    toml::from_str(text).map_err(|e| syntax("TOML", e))
}

/// Reads a file that is JSON (it starts with `{`) or TOML.
pub(crate) fn from_json_or_toml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, ConfigError> {
    if text.trim_start().starts_with('{') {
        from_json(text)
    } else {
        from_toml(text)
    }
}

/// Reads a JSON file; a key given twice is refused.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    no_duplicate_keys(text)?;
    serde_json::from_str(text).map_err(|e| syntax("JSON", e))
}

/// Reads reference values: TOML or JSON of the file format `F` (converted by `file`), or
/// the JSON `cvm measure` prints (its `format` is [`MEASUREMENT_FORMAT`]; checked to name
/// one of `tees`, and converted by `handoff`). JSON with a key given twice is refused.
pub(crate) fn reference_values<F: serde::de::DeserializeOwned, R>(
    text: &str,
    tees: &[&'static str],
    handoff: impl FnOnce(Measured) -> Result<R, ConfigError>,
    file: impl FnOnce(F) -> Result<R, ConfigError>,
) -> Result<R, ConfigError> {
    if !text.trim_start().starts_with('{') {
        return file(from_toml(text)?);
    }
    let value: serde_json::Value = from_json(text)?;
    let Some(format) = value.get("format") else {
        return file(serde_json::from_value(value).map_err(|e| syntax("JSON", e))?);
    };
    if format.as_str() != Some(MEASUREMENT_FORMAT) {
        return Err(ConfigError::Invalid(format!(
            "format {format}: reference values are a reference-value file or `cvm measure` \
             output (format {MEASUREMENT_FORMAT:?})"
        )));
    }
    // Name the TEE first: another TEE's output lacks the fields to complain about.
    check_tee(
        value.get("tee").and_then(serde_json::Value::as_str),
        "reference values",
        tees,
    )?;
    let m = serde_json::from_value(value).map_err(|e| ConfigError::Syntax {
        format: "cvm measure output",
        message: e.to_string(),
    })?;
    handoff(m)
}

/// The error for `cvm measure` output of a TEE other than `expected`.
pub(crate) fn other_tee(values: &MeasuredValues, expected: &'static str) -> ConfigError {
    ConfigError::OtherTee {
        what: "reference values",
        found: values.tee().name().to_owned(),
        expected,
    }
}

/// A file that names its TEE must name one of `tees` (the first is the one named in the
/// error).
pub(crate) fn check_tee(
    tee: Option<&str>,
    what: &'static str,
    tees: &[&'static str],
) -> Result<(), ConfigError> {
    match tee {
        Some(t) if !tees.contains(&t) => Err(ConfigError::OtherTee {
            what,
            found: t.to_owned(),
            expected: tees.first().copied().unwrap_or_default(),
        }),
        _ => Ok(()),
    }
}

/// What reference values expect of one field: one of some values, or nothing, on
/// purpose. There is no default: a caller that builds reference values names every field,
/// so a field cannot be left unchecked by forgetting it (Oak's reference values work the
/// same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected<T> {
    /// Not compared, said explicitly.
    Skip,
    /// Any of these values; an empty list accepts nothing.
    AnyOf(Vec<T>),
}

impl<T> Expected<T> {
    /// Exactly this value.
    pub fn value(v: T) -> Self {
        Expected::AnyOf(vec![v])
    }

    /// Whether the field is skipped.
    pub fn is_skip(&self) -> bool {
        matches!(self, Expected::Skip)
    }

    /// The value a file gave (one or several), or `Skip` for a field it left out.
    pub(crate) fn from_file(v: Option<OneOrMany<T>>) -> Self {
        match v {
            None => Expected::Skip,
            Some(OneOrMany::One(t)) => Expected::value(t),
            Some(OneOrMany::Many(v)) => Expected::AnyOf(v),
        }
    }
}

/// A reference value: bytes to compare with.
pub trait HexValue {
    /// The bytes.
    fn bytes(&self) -> &[u8];
}

impl<const N: usize> HexValue for Bytes<N> {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Records the check `name` of `got` against `want`.
pub(crate) fn expect<B: HexValue>(
    checks: &mut Checks,
    name: CheckId,
    field: &str,
    want: &Expected<B>,
    got: &[u8],
) {
    let values = match want {
        Expected::Skip => {
            checks.skip(
                name,
                Category::Policy,
                &format!("{field} not compared: the reference values skip it"),
            );
            return;
        }
        Expected::AnyOf(v) => v,
    };
    let got_hex = hex::encode(got);
    checks.record(
        name,
        Category::Policy,
        match values.as_slice() {
            [] => Err(format!(
                "{field} is {got_hex}; the reference values list no acceptable value"
            )),
            _ if values.iter().any(|b| b.bytes() == got) => Ok(format!("{field} is {got_hex}")),
            [one] => Err(format!(
                "{field} is {got_hex}, expected {}",
                hex::encode(one.bytes())
            )),
            many => Err(format!(
                "{field} {got_hex} is none of the {} reference values",
                many.len()
            )),
        },
    );
}

/// Records a failed check `name` for a reference field that does not apply to the
/// evidence (`why` says so), unless it is skipped.
pub(crate) fn inapplicable<T>(checks: &mut Checks, name: CheckId, want: &Expected<T>, why: &str) {
    if !want.is_skip() {
        checks.record(name, Category::Policy, Err(why.to_owned()));
    }
}

/// Refuses JSON text in which any object has a key twice (serde_json keeps the last one
/// silently, and a reference value must not depend on which of two the reader kept).
pub(crate) fn no_duplicate_keys(text: &str) -> Result<(), ConfigError> {
    use serde::de::{self, MapAccess, SeqAccess, Visitor};
    struct Unique;
    impl<'de> de::Deserialize<'de> for Unique {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Unique)
        }
    }
    impl<'de> Visitor<'de> for Unique {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Unique, A::Error> {
            while a.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Unique, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = a.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(de::Error::custom(format!("duplicate key {key:?}")));
                }
                a.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
    }
    serde_json::from_str::<Unique>(text)
        .map(|_| ())
        .map_err(|e| syntax("JSON", e))
}

pub(crate) fn flag(checks: &mut Checks, name: CheckId, ok: bool, pass: &str, fail: &str) {
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
