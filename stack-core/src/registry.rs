//! The layer registry: descriptor names (`Nak`, `Frag`, a user's `Audit`) mapped to
//! constructors that take their parameters through serde.
//!
//! ```
//! use stack_core::registry::Registry;
//! use stack_core::Layer;
//! use serde::Deserialize;
//!
//! #[derive(Default, Deserialize)]
//! #[serde(deny_unknown_fields, default)]
//! struct AuditParams { verbose: bool }
//! struct Audit { verbose: bool }
//! impl Layer for Audit { fn name(&self) -> &'static str { "audit" } }
//!
//! let mut reg = Registry::new();
//! reg.register("Audit", |p: AuditParams| Audit { verbose: p.verbose });
//! let layer = reg.build("Audit", "(verbose: true)").unwrap();
//! assert_eq!(layer.name(), "audit");
//! assert!(reg.build("Audit", "(loud: true)").is_err());
//! ```
//!
//! Registering a name that is already registered **replaces** the earlier
//! constructor, so an application can swap a built-in layer for its own.
//! Layers are built fresh for every member; the registry itself is `Send + Sync` and
//! can be shared.

use crate::descriptor::params::{from_params, ParamError};
use crate::layer::{Layer, Property};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use thiserror::Error;

type Ctor = dyn Fn(&str) -> Result<Box<dyn Layer>, ParamError> + Send + Sync;

struct Entry {
    ctor: Box<Ctor>,
    /// The layer's own name and properties, with default parameters.
    layer_name: &'static str,
    requires: Vec<Property>,
    provides: Vec<Property>,
}

/// Why a layer could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BuildError {
    #[error("unknown layer `{0}`")]
    UnknownLayer(String),
    #[error("{0}")]
    Params(ParamError),
}

/// Descriptor names mapped to layer constructors.
#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<&'static str, Entry>,
}

impl Registry {
    /// An empty registry (`layers::registry()` holds the built-in layers).
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `ctor` under the descriptor name `name` (CamelCase, as written in
    /// descriptors). Its parameters `P` deserialize from the RON parameter list;
    /// `P::default()` is what an empty list `()` is expected to give, and is used to
    /// learn the layer's properties (the constructor is called once here for that).
    /// A name registered again replaces the earlier constructor.
    pub fn register<P, L, F>(&mut self, name: &'static str, ctor: F) -> &mut Self
    where
        P: DeserializeOwned + Default + 'static,
        L: Layer,
        F: Fn(P) -> L + Send + Sync + 'static,
    {
        let sample = ctor(P::default());
        let entry = Entry {
            layer_name: sample.name(),
            requires: sample.requires().to_vec(),
            provides: sample.provides().to_vec(),
            ctor: Box::new(move |text: &str| {
                let p: P = from_params(text, name)?;
                Ok(Box::new(ctor(p)) as Box<dyn Layer>)
            }),
        };
        self.entries.insert(name, entry);
        self
    }

    /// Builds a fresh layer from its descriptor name and parameter text (`(mtu: 1400)`).
    pub fn build(&self, name: &str, params: &str) -> Result<Box<dyn Layer>, BuildError> {
        let e = self.entries.get(name).ok_or_else(|| BuildError::UnknownLayer(name.into()))?;
        (e.ctor)(params).map_err(BuildError::Params)
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The registered descriptor names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.keys().copied().collect()
    }

    /// The layer name (`nak`) of a descriptor name (`Nak`).
    pub fn layer_name(&self, name: &str) -> Option<&'static str> {
        self.entries.get(name).map(|e| e.layer_name)
    }

    /// What the layer requires and provides with default parameters.
    pub fn default_properties(&self, name: &str) -> Option<(&[Property], &[Property])> {
        self.entries.get(name).map(|e| (&e.requires[..], &e.provides[..]))
    }

    /// Descriptor names of the layers that provide `prop` with default parameters, sorted.
    pub fn providers_of(&self, prop: Property) -> Vec<&'static str> {
        self.entries.iter().filter(|(_, e)| e.provides.contains(&prop)).map(|(n, _)| *n).collect()
    }

    /// Registered names close to `name` (case-insensitive edit distance of at most 2,
    /// 1 for names of three letters, or one containing the other), closest first.
    pub fn similar(&self, name: &str) -> Vec<&'static str> {
        let lower = name.to_lowercase();
        let mut found: Vec<(usize, &'static str)> = self
            .entries
            .keys()
            .filter_map(|&n| {
                let l = n.to_lowercase();
                let d = distance(&lower, &l);
                let limit = if l.chars().count() <= 3 { 1 } else { 2 };
                let near =
                    d <= limit || (lower.len() >= 3 && (l.contains(&lower) || lower.contains(&l)));
                near.then_some((d, n))
            })
            .collect();
        found.sort();
        found.into_iter().map(|f| f.1).collect()
    }
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::props;
    use serde::Deserialize;

    #[derive(Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct FifoParams {
        window: u32,
    }
    struct Fifo;
    impl Layer for Fifo {
        fn name(&self) -> &'static str {
            "fifo"
        }
        fn provides(&self) -> &[Property] {
            &[props::RELIABLE_FIFO]
        }
    }
    struct Other;
    impl Layer for Other {
        fn name(&self) -> &'static str {
            "other"
        }
    }

    fn reg() -> Registry {
        let mut r = Registry::new();
        r.register("Fifo", |p: FifoParams| {
            let _ = p.window;
            Fifo
        });
        r.register("Other", |_: ()| Other);
        r
    }

    #[test]
    fn registry_is_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Registry>();
    }

    #[test]
    fn builds_by_name_with_parameters() {
        let r = reg();
        assert_eq!(r.names(), vec!["Fifo", "Other"]);
        assert_eq!(r.build("Fifo", "(window: 8)").unwrap().name(), "fifo");
        assert_eq!(r.build("Other", "()").unwrap().name(), "other");
        assert_eq!(r.build("Nope", "()").err(), Some(BuildError::UnknownLayer("Nope".into())));
        let e = r.build("Fifo", "(windows: 8)").err().unwrap();
        assert!(matches!(e, BuildError::Params(ParamError { offset: Some(1), .. })), "{e:?}");
        assert_eq!(r.layer_name("Fifo"), Some("fifo"));
    }

    #[test]
    fn providers_are_found_by_property() {
        let r = reg();
        assert_eq!(r.providers_of(props::RELIABLE_FIFO), vec!["Fifo"]);
        assert!(r.providers_of(props::TOTAL).is_empty());
    }

    #[test]
    fn registering_a_name_again_replaces_it() {
        let mut r = reg();
        r.register("Fifo", |_: ()| Other);
        assert_eq!(r.build("Fifo", "()").unwrap().name(), "other");
        assert!(r.providers_of(props::RELIABLE_FIFO).is_empty());
    }

    #[test]
    fn close_names_are_suggested() {
        let r = reg();
        assert_eq!(r.similar("fifo"), vec!["Fifo"]);
        assert_eq!(r.similar("Fife"), vec!["Fifo"]);
        assert_eq!(r.similar("Othr"), vec!["Other"]);
        assert!(r.similar("Total").is_empty());
    }
}
