//! Parameters of one layer or transport: `(mtu: 1400)` deserialized with RON, and
//! RON's errors turned into messages that name the parameter, at its position.
//!
//! Optional parameters may be written plainly (`min_delay_us: 10`) or as
//! `Some(10)`: RON's `implicit_some` extension is on.

use super::scan::{self, Lines, Tok};
use serde::de::DeserializeOwned;
use std::fmt;

/// A parameter list that does not fit its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    /// Byte offset in the parameter text, or `None` when the problem belongs to the
    /// whole list (a required parameter is missing).
    pub offset: Option<usize>,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamError {}

fn ticked(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn shortened(value: &str) -> String {
    const MAX: usize = 40;
    match value.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &value[..i]),
        None => value.to_string(),
    }
}

/// Deserializes `text` (a parenthesised parameter list) as `T`; `owner` names what the
/// parameters belong to in messages (`Frag`, `Udp`).
pub fn from_params<T: DeserializeOwned>(text: &str, owner: &str) -> Result<T, ParamError> {
    let ron =
        ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    let err = match ron.from_str::<T>(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let lines = Lines::new(text);
    let at = lines.offset_of_byte_pos(err.position.line, err.position.col);
    // The list's own fields, to point at the one concerned.
    let toks = scan::tokenize(text).unwrap_or_default();
    let fields = match toks.first() {
        Some(t) if t.kind == Tok::Open(b'(') => scan::fields(&toks, 0).unwrap_or_default(),
        _ => Vec::new(),
    };
    let key_is = |f: &scan::Field, name: &str| {
        let k = &text[f.key.clone()];
        k == name || k.strip_prefix("r#") == Some(name)
    };
    use ron::error::Error as E;
    let (offset, message) = match &err.code {
        E::NoSuchStructField { expected, found, .. } => {
            let off = fields.iter().find(|f| key_is(f, found)).map_or(at, |f| f.key.start);
            let msg = if expected.is_empty() {
                format!("unknown parameter `{found}`: `{owner}` takes no parameters")
            } else {
                format!(
                    "unknown parameter `{found}` of `{owner}`; expected one of {}",
                    ticked(expected)
                )
            };
            (Some(off), msg)
        }
        E::MissingStructField { field, .. } => {
            (None, format!("`{owner}` needs parameter `{field}`"))
        }
        E::DuplicateStructField { field, .. } => {
            let off = fields.iter().filter(|f| key_is(f, field)).nth(1).map_or(at, |f| f.key.start);
            (Some(off), format!("parameter `{field}` of `{owner}` is given twice"))
        }
        code => {
            let what = match code {
                E::InvalidValueForType { expected, found } => {
                    format!("expected {expected} but found {found}")
                }
                other => lower_first(&other.to_string()),
            };
            // The field whose value holds the error position.
            match fields.iter().rev().find(|f| f.value.start <= at && f.key.start <= at) {
                Some(f) if at <= f.value.end => {
                    let found = match code {
                        E::InvalidValueForType { .. } => String::new(),
                        _ => format!(", found `{}`", shortened(&text[f.value.clone()])),
                    };
                    (
                        Some(f.value.start),
                        format!("parameter `{}` of `{owner}`: {what}{found}", &text[f.key.clone()]),
                    )
                }
                _ => (Some(at), format!("parameters of `{owner}`: {what}")),
            }
        }
    };
    Err(ParamError { offset, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct P {
        mtu: u32,
        on: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Needs {
        #[allow(dead_code)]
        size: u32,
    }

    #[test]
    fn good_parameters_parse() {
        assert_eq!(from_params::<P>("()", "X").unwrap(), P::default());
        assert_eq!(from_params::<P>("(mtu: 9, on: true)", "X").unwrap(), P { mtu: 9, on: true });
        assert_eq!(from_params::<()>("()", "X").unwrap(), ());
    }

    #[test]
    fn optional_parameters_need_no_some() {
        #[derive(Debug, Default, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        struct O {
            delay: Option<u32>,
        }
        assert_eq!(from_params::<O>("(delay: 5)", "X").unwrap(), O { delay: Some(5) });
        assert_eq!(from_params::<O>("(delay: Some(5))", "X").unwrap(), O { delay: Some(5) });
        assert_eq!(from_params::<O>("()", "X").unwrap(), O { delay: None });
    }

    #[test]
    fn unknown_parameter_points_at_its_name() {
        let e = from_params::<P>("(mtu: 9,\n  mut: 3)", "Frag").unwrap_err();
        assert_eq!(e.offset, Some(11));
        assert_eq!(e.message, "unknown parameter `mut` of `Frag`; expected one of `mtu`, `on`");
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let e = from_params::<P>("(on: true, mtu: \"big\")", "Frag").unwrap_err();
        assert_eq!(e.offset, Some(16));
        assert_eq!(e.message, "parameter `mtu` of `Frag`: expected integer, found `\"big\"`");
        let e = from_params::<P>("(on: 3)", "Frag").unwrap_err();
        assert_eq!(e.offset, Some(5));
        assert!(e.message.starts_with("parameter `on` of `Frag`: "), "{}", e.message);
    }

    #[test]
    fn missing_and_duplicate_parameters() {
        let e = from_params::<Needs>("()", "Frag").unwrap_err();
        assert_eq!(e, ParamError { offset: None, message: "`Frag` needs parameter `size`".into() });
        let e = from_params::<P>("(on: true, on: false)", "Frag").unwrap_err();
        assert_eq!(e.offset, Some(11));
    }
}
