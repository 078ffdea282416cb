//! The properties the checkers verify, and the violations they report.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::trace::ViewId;

/// A property of a run that can be checked against its traces.
///
/// The serde and [`Property::name`] spelling is snake_case and stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Property {
    /// See [`crate::checks::integrity()`].
    Integrity,
    /// See [`crate::checks::fifo()`].
    Fifo,
    /// See [`crate::checks::causal()`].
    Causal,
    /// See [`crate::checks::total()`].
    Total,
    /// See [`crate::checks::view_agreement()`].
    ViewAgreement,
    /// See [`crate::checks::view_order()`].
    ViewOrder,
    /// See [`crate::checks::same_view()`].
    SameView,
    /// See [`crate::checks::virtual_synchrony()`].
    VirtualSynchrony,
    /// See [`crate::checks::self_delivery()`].
    SelfDelivery,
    /// See [`crate::checks::primary_partition()`].
    PrimaryPartition,
    /// See [`crate::checks::liveness()`].
    Liveness,
}

impl Property {
    /// Every property, in declaration order.
    pub const ALL: [Property; 11] = [
        Property::Integrity,
        Property::Fifo,
        Property::Causal,
        Property::Total,
        Property::ViewAgreement,
        Property::ViewOrder,
        Property::SameView,
        Property::VirtualSynchrony,
        Property::SelfDelivery,
        Property::PrimaryPartition,
        Property::Liveness,
    ];

    /// The stable snake_case name, e.g. `"view_agreement"`.
    pub fn name(self) -> &'static str {
        match self {
            Property::Integrity => "integrity",
            Property::Fifo => "fifo",
            Property::Causal => "causal",
            Property::Total => "total",
            Property::ViewAgreement => "view_agreement",
            Property::ViewOrder => "view_order",
            Property::SameView => "same_view",
            Property::VirtualSynchrony => "virtual_synchrony",
            Property::SelfDelivery => "self_delivery",
            Property::PrimaryPartition => "primary_partition",
            Property::Liveness => "liveness",
        }
    }

    /// The property with the given snake_case name.
    pub fn from_name(name: &str) -> Option<Property> {
        Property::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One violation of a property, naming what is involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The violated property.
    pub property: Property,
    /// Members involved; each checker documents the order.
    pub members: Vec<String>,
    /// Message ids involved; each checker documents the order.
    pub messages: Vec<String>,
    /// View ids involved; each checker documents the order.
    pub views: Vec<ViewId>,
    /// Human-readable explanation.
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(property: Property, detail: impl Into<String>) -> Violation {
        Violation {
            property,
            members: Vec::new(),
            messages: Vec::new(),
            views: Vec::new(),
            detail: detail.into(),
        }
    }

    pub(crate) fn members<S: ToString>(mut self, members: impl IntoIterator<Item = S>) -> Self {
        self.members = members.into_iter().map(|m| m.to_string()).collect();
        self
    }

    pub(crate) fn messages<S: ToString>(mut self, messages: impl IntoIterator<Item = S>) -> Self {
        self.messages = messages.into_iter().map(|m| m.to_string()).collect();
        self
    }

    pub(crate) fn views(mut self, views: impl IntoIterator<Item = ViewId>) -> Self {
        self.views = views.into_iter().collect();
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.property, self.detail)?;
        let mut sep = " (";
        if !self.members.is_empty() {
            write!(f, "{sep}members: {}", self.members.join(", "))?;
            sep = "; ";
        }
        if !self.messages.is_empty() {
            write!(f, "{sep}messages: {}", self.messages.join(", "))?;
            sep = "; ";
        }
        if !self.views.is_empty() {
            let views: Vec<String> = self.views.iter().map(|v| v.to_string()).collect();
            write!(f, "{sep}views: {}", views.join(", "))?;
            sep = "; ";
        }
        if sep == "; " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for p in Property::ALL {
            assert_eq!(Property::from_name(p.name()), Some(p));
            let json = serde_json::to_string(&p).expect("serialize");
            assert_eq!(json, format!("\"{}\"", p.name()));
            let back: Property = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, p);
        }
        assert_eq!(Property::from_name("Fifo"), None);
        assert_eq!(Property::VirtualSynchrony.name(), "virtual_synchrony");
    }

    #[test]
    fn violation_display_and_json() {
        let v = Violation::new(Property::Fifo, "out of order")
            .members(["b", "a"])
            .messages(["a#2", "a#1"])
            .views([3]);
        assert_eq!(
            v.to_string(),
            "[fifo] out of order (members: b, a; messages: a#2, a#1; views: 3)"
        );
        let json = serde_json::to_value(&v).expect("serialize");
        assert_eq!(json["property"], "fifo");
        assert_eq!(json["views"][0], 3);
        assert_eq!(Violation::new(Property::Total, "x").to_string(), "[total] x");
    }
}
