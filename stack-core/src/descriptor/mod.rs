//! Stack descriptors: the RON file that names a stack, its transport and its layers
//! bottom to top.
//!
//! ```ron
//! // stacks/vsync.ron — layers are listed bottom to top
//! Stack(
//!     name: "vsync",
//!     transport: Udp(group: "239.255.42.1:7400"),
//!     layers: [
//!         Nak(),
//!         Frag(mtu: 1400),
//!         Total(algorithm: Sequencer),
//!     ],
//! )
//! ```
//!
//! Fields: `name` (required), `transport` (required: `Udp(..)`, `Udpu(..)` or
//! `Sim(..)`, see [`crate::transport`]), `layers` (required, not empty), and `group`
//! (optional: the group's name, from which the packet group id is derived; default
//! the stack name). The struct name `Stack` may be left out, as RON allows.
//!
//! Loading checks everything and reports every problem at its line and column: text
//! that is not RON, unknown or missing fields, unknown layers (with close names
//! suggested), unknown or mistyped parameters, an empty stack, a bad transport, and
//! the composition: bottom to top, every layer's required properties must be
//! provided by a layer below it.

mod error;
pub mod params;
pub(crate) mod scan;
#[cfg(test)]
mod tests;

pub use error::{DescriptorError, DescriptorErrors};
pub use params::ParamError;

use crate::layer::{Layer, Property};
use crate::packet::{group_id, GroupId};
use crate::registry::{BuildError, Registry};
use crate::transport::TransportSpec;
use scan::{Lines, Tok, Token};
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

/// One layer as the descriptor lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// The descriptor name (`Frag`).
    pub kind: String,
    /// The parameter list as written, parentheses included (`(mtu: 1400)`).
    pub params: String,
    /// Position of the name in the file.
    pub line: usize,
    pub col: usize,
}

/// One layer of a checked descriptor, for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The descriptor name (`Frag`).
    pub kind: String,
    /// The layer's own name (`frag`).
    pub name: &'static str,
    pub requires: Vec<Property>,
    pub provides: Vec<Property>,
    pub line: usize,
    pub col: usize,
}

/// A checked stack descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct Descriptor {
    /// The file label it was read from (for messages).
    pub file: String,
    /// The stack's name.
    pub name: String,
    /// The group's name (default: the stack name).
    pub group: String,
    pub transport: TransportSpec,
    /// The layers, bottom to top.
    pub layers: Vec<LayerEntry>,
    infos: Vec<LayerInfo>,
}

const FIELDS: &str = "`name`, `group`, `transport`, `layers`";
const TRANSPORTS: &str = "`Udp`, `Udpu`, `Sim`";

impl Descriptor {
    /// Reads and checks the descriptor at `path`. A file that cannot be read is one
    /// error without a position.
    pub fn load(path: &Path, reg: &Registry) -> Result<Descriptor, DescriptorErrors> {
        let label = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Descriptor::parse(&text, &label, reg),
            Err(e) => Err(DescriptorErrors(vec![DescriptorError {
                file: label,
                line: 0,
                col: 0,
                message: format!("cannot read the descriptor: {e}"),
            }])),
        }
    }

    /// Checks the descriptor `text`; `file` labels the positions of its problems.
    pub fn parse(text: &str, file: &str, reg: &Registry) -> Result<Descriptor, DescriptorErrors> {
        let mut p = Parser { text, file, lines: Lines::new(text), errors: Vec::new() };
        let d = p.descriptor(reg);
        match d {
            Some(d) if p.errors.is_empty() => Ok(d),
            _ => {
                let mut errors = p.errors;
                errors.sort_by_key(|e| (e.line, e.col));
                Err(DescriptorErrors(errors))
            }
        }
    }

    /// Builds a fresh stack's layers, bottom to top (one call per member).
    pub fn build_layers(&self, reg: &Registry) -> Result<Vec<Box<dyn Layer>>, BuildError> {
        self.layers.iter().map(|l| reg.build(&l.kind, &l.params)).collect()
    }

    /// Every property some layer of the stack provides.
    pub fn provides(&self) -> BTreeSet<Property> {
        self.infos.iter().flat_map(|i| i.provides.iter().copied()).collect()
    }

    /// The layers bottom to top with what each requires and provides.
    pub fn layer_infos(&self) -> &[LayerInfo] {
        &self.infos
    }

    /// The packet group id of this stack's group.
    pub fn group_id(&self) -> GroupId {
        group_id(&self.group)
    }
}

struct Parser<'a> {
    text: &'a str,
    file: &'a str,
    lines: Lines<'a>,
    errors: Vec<DescriptorError>,
}

/// A layer entry located in the file, before it is built.
struct Located {
    kind: String,
    params: String,
    /// Byte offsets of the name and of the parameter list.
    at: usize,
    params_at: usize,
}

impl<'a> Parser<'a> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        let (line, col) = self.lines.pos(offset);
        self.errors.push(DescriptorError {
            file: self.file.into(),
            line,
            col,
            message: message.into(),
        });
    }

    fn slice(&self, r: Range<usize>) -> &'a str {
        self.text.get(r).unwrap_or("")
    }

    fn descriptor(&mut self, reg: &Registry) -> Option<Descriptor> {
        let toks = match scan::tokenize(self.text) {
            Ok(t) => t,
            Err(e) => {
                self.error(e.offset, format!("not RON: {}", e.message));
                return None;
            }
        };
        let Some(first) = toks.first() else {
            self.error(self.text.len(), "empty descriptor: expected `Stack( ... )`");
            return None;
        };
        if self.slice(first.start..first.end).starts_with('#') {
            self.error(first.start, "RON attributes (`#![...]`) are not supported in descriptors");
            return None;
        }
        let mut i = 0;
        if first.kind == Tok::Ident {
            let name = self.slice(first.start..first.end);
            if name != "Stack" {
                self.error(first.start, format!("expected `Stack( ... )`, found `{name}`"));
            }
            i = 1;
        }
        if toks.get(i).map(|t| t.kind) != Some(Tok::Open(b'(')) {
            let at = toks.get(i).map_or(self.text.len(), |t| t.start);
            self.error(at, "not RON: expected `Stack( ... )`");
            return None;
        }
        let head = first.start;
        let close = scan::matching(&toks, i);
        if let Some(extra) = toks.get(close + 1) {
            self.error(extra.start, "not RON: unexpected text after the stack's closing `)`");
        }
        let fields = match scan::fields(&toks, i) {
            Ok(f) => f,
            Err(e) => {
                self.error(e.offset, format!("not RON: {}", e.message));
                return None;
            }
        };

        let mut name = None;
        let mut group = None;
        let mut transport = None;
        let mut layers = None;
        let mut seen: Vec<&str> = Vec::new();
        for f in &fields {
            let key = self.slice(f.key.clone());
            let key = key.strip_prefix("r#").unwrap_or(key);
            if seen.contains(&key) {
                self.error(f.key.start, format!("field `{key}` is given twice"));
                continue;
            }
            seen.push(key);
            match key {
                "name" => name = self.string(f, "name"),
                "group" => group = self.string(f, "group"),
                "transport" => transport = self.transport(&toks, f),
                "layers" => layers = self.layers(&toks, f),
                _ => self
                    .error(f.key.start, format!("unknown field `{key}`; expected one of {FIELDS}")),
            }
        }
        for (field, present) in [
            ("name", seen.contains(&"name")),
            ("transport", seen.contains(&"transport")),
            ("layers", seen.contains(&"layers")),
        ] {
            if !present {
                self.error(head, format!("missing field `{field}`"));
            }
        }

        let infos = layers.as_ref().map(|l| self.check_layers(l, reg));
        let (Some(name), Some(transport), Some(layers), Some(Some(infos))) =
            (name, transport, layers, infos)
        else {
            return None;
        };
        let layers = layers
            .into_iter()
            .map(|l| {
                let (line, col) = self.lines.pos(l.at);
                LayerEntry { kind: l.kind, params: l.params, line, col }
            })
            .collect();
        Some(Descriptor {
            file: self.file.into(),
            group: group.unwrap_or_else(|| name.clone()),
            name,
            transport,
            layers,
            infos,
        })
    }

    fn string(&mut self, f: &scan::Field, what: &str) -> Option<String> {
        match ron::from_str::<String>(self.slice(f.value.clone())) {
            Ok(s) if s.is_empty() => {
                self.error(f.value.start, format!("`{what}` is empty"));
                None
            }
            Ok(s) => Some(s),
            Err(_) => {
                self.error(f.value.start, format!("`{what}` must be a string such as \"vsync\""));
                None
            }
        }
    }

    /// `Name` or `Name( ... )` filling a value: the name's range and the parameter
    /// text (`()` when there are no parentheses).
    fn named_call(
        &mut self,
        toks: &[Token],
        r: Range<usize>,
        what: &str,
    ) -> Option<(Range<usize>, usize, String)> {
        match scan::call(toks, r.start, r.end, what) {
            Ok(scan::Call { name: Some(name), parens, .. }) => {
                let (params_at, params) = match parens {
                    Some(p) => (p.start, self.slice(p).to_string()),
                    None => (name.end, "()".to_string()),
                };
                Some((name, params_at, params))
            }
            Ok(scan::Call { parens, .. }) => {
                let at = parens.map_or(0, |p| p.start);
                self.error(at, format!("expected {what}: the name is missing"));
                None
            }
            Err(e) => {
                self.error(e.offset, e.message);
                None
            }
        }
    }

    fn transport(&mut self, toks: &[Token], f: &scan::Field) -> Option<TransportSpec> {
        let what = "a transport such as `Udp(group: \"239.255.42.1:7400\")`";
        let (name, params_at, params) = self.named_call(toks, f.toks.clone(), what)?;
        let kind = self.slice(name.clone());
        let parsed = match kind {
            "Udp" => params::from_params(&params, kind).map(TransportSpec::Udp),
            "Udpu" => params::from_params(&params, kind).map(TransportSpec::Udpu),
            "Sim" => params::from_params(&params, kind).map(TransportSpec::Sim),
            _ => {
                self.error(
                    name.start,
                    format!("unknown transport `{kind}`; expected one of {TRANSPORTS}"),
                );
                return None;
            }
        };
        match parsed {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(e.offset.map_or(name.start, |o| params_at + o), e.message);
                None
            }
        }
    }

    fn layers(&mut self, toks: &[Token], f: &scan::Field) -> Option<Vec<Located>> {
        let open = f.toks.start;
        if toks[open].kind != Tok::Open(b'[') || scan::matching(toks, open) + 1 != f.toks.end {
            self.error(f.value.start, "`layers` must be a list such as `[Nak(), Frag(mtu: 1400)]`");
            return None;
        }
        let entries = match scan::entries(toks, open) {
            Ok(e) => e,
            Err(e) => {
                self.error(e.offset, format!("not RON: {}", e.message));
                return None;
            }
        };
        if entries.is_empty() {
            self.error(toks[open].start, "empty stack: `layers` lists no layer");
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for e in entries {
            match self.named_call(toks, e, "a layer such as `Pass()`") {
                Some((name, params_at, params)) => out.push(Located {
                    kind: self.slice(name.clone()).to_string(),
                    params,
                    at: name.start,
                    params_at,
                }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Builds every layer once (checking its parameters) and checks the composition
    /// bottom to top. `None` if anything is wrong.
    fn check_layers(&mut self, layers: &[Located], reg: &Registry) -> Option<Vec<LayerInfo>> {
        let mut infos = Vec::new();
        let mut ok = true;
        let mut below: BTreeSet<Property> = BTreeSet::new();
        // After an unknown layer, what lies below is unknown: composition is not judged.
        let mut blind = false;
        for l in layers {
            let (line, col) = self.lines.pos(l.at);
            let (name, requires, provides) = match reg.build(&l.kind, &l.params) {
                Ok(layer) => (layer.name(), layer.requires().to_vec(), layer.provides().to_vec()),
                Err(BuildError::UnknownLayer(_)) => {
                    let close = reg.similar(&l.kind);
                    let hint = if !close.is_empty() {
                        format!("did you mean {}?", ticked(&close, " or "))
                    } else if reg.names().is_empty() {
                        "no layer is registered".to_string()
                    } else {
                        format!("known layers: {}", ticked(&reg.names(), ", "))
                    };
                    self.error(l.at, format!("unknown layer `{}`; {hint}", l.kind));
                    ok = false;
                    blind = true;
                    continue;
                }
                Err(BuildError::Params(e)) => {
                    self.error(e.offset.map_or(l.at, |o| l.params_at + o), e.message);
                    ok = false;
                    let (r, p) = reg.default_properties(&l.kind).unwrap_or((&[], &[]));
                    (reg.layer_name(&l.kind).unwrap_or("?"), r.to_vec(), p.to_vec())
                }
            };
            if !blind {
                for need in requires.iter().filter(|r| !below.contains(r)) {
                    let providers = reg.providers_of(*need);
                    let hint = if providers.is_empty() {
                        "no registered layer provides it".to_string()
                    } else {
                        format!("add {} beneath it", ticked(&providers, " or "))
                    };
                    self.error(l.at, format!("layer `{name}` requires `{need}` below it; {hint}"));
                    ok = false;
                }
            }
            below.extend(provides.iter().copied());
            infos.push(LayerInfo { kind: l.kind.clone(), name, requires, provides, line, col });
        }
        ok.then_some(infos)
    }
}

fn ticked(names: &[&str], sep: &str) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(sep)
}
