//! Aggregated results of a checking run.

use serde::Serialize;

use crate::checks::{dedup, run};
use crate::property::{Property, Violation};
use crate::trace::Traces;

/// Counts for one property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertySummary {
    /// The property.
    pub property: Property,
    /// Number of items examined; each checker documents what an item is.
    pub checked: u64,
    /// Number of violations found.
    pub failed: u64,
}

/// Result of checking a set of properties against one run's traces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Number of member traces checked.
    pub members: usize,
    /// Number of events checked.
    pub events: usize,
    /// One entry per checked property, in the order requested.
    pub properties: Vec<PropertySummary>,
    /// All violations, grouped by property in the same order.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Checks `properties` (each once, in the given order) against `traces`.
    pub fn new(traces: &Traces, properties: &[Property]) -> Report {
        let mut summaries = Vec::new();
        let mut violations = Vec::new();
        for p in dedup(properties) {
            let outcome = run(p, traces);
            summaries.push(PropertySummary {
                property: p,
                checked: outcome.checked,
                failed: outcome.violations.len() as u64,
            });
            violations.extend(outcome.violations);
        }
        Report {
            members: traces.len(),
            events: traces.event_count(),
            properties: summaries,
            violations,
        }
    }

    /// Whether no violation was found.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The counts for `property`, if it was checked.
    pub fn summary(&self, property: Property) -> Option<&PropertySummary> {
        self.properties.iter().find(|s| s.property == property)
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    ok: bool,
    members: usize,
    events: usize,
    violations: usize,
    properties: &'a [PropertySummary],
}

/// A one-line JSON summary of `report`: whether it passed, the number of
/// members, events and violations, and per-property `checked`/`failed`
/// counts, e.g.
/// `{"ok":false,"members":3,"events":40,"violations":1,"properties":[{"property":"fifo","checked":12,"failed":1}]}`.
/// The violations themselves are in the serialization of [`Report`].
pub fn summary_json(report: &Report) -> String {
    let summary = Summary {
        ok: report.ok(),
        members: report.members,
        events: report.events,
        violations: report.violations.len(),
        properties: &report.properties,
    };
    // Serializing plain structs of strings and integers cannot fail; fall
    // back to a minimal object rather than panicking all the same.
    serde_json::to_string(&summary).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::traces;

    #[test]
    fn report_counts_per_property() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             a send a#2 1
             a deliver a#1 1
             b view 1 a b
             b deliver a#2 1
             b deliver a#1 1",
        );
        let r = Report::new(&t, &[Property::Fifo, Property::ViewOrder, Property::Fifo]);
        assert_eq!(r.properties.len(), 2);
        let fifo = r.summary(Property::Fifo).expect("fifo checked");
        assert_eq!((fifo.checked, fifo.failed), (3, 2));
        let vo = r.summary(Property::ViewOrder).expect("view_order checked");
        assert_eq!((vo.checked, vo.failed), (2, 0));
        assert!(!r.ok());
        assert_eq!(r.violations, crate::check(&t, &[Property::Fifo]));
        assert_eq!(
            summary_json(&r),
            concat!(
                r#"{"ok":false,"members":2,"events":7,"violations":2,"properties":["#,
                r#"{"property":"fifo","checked":3,"failed":2},"#,
                r#"{"property":"view_order","checked":2,"failed":0}]}"#
            )
        );
        let full = serde_json::to_value(&r).expect("serialize");
        assert_eq!(full["violations"][1]["messages"][1], "a#1");
    }

    #[test]
    fn large_clean_run_passes_everything() {
        let t = crate::checks::testing::round_robin(&["a", "b", "c", "d", "e"], 4000);
        assert!(t.event_count() > 100_000);
        let r = Report::new(&t, &Property::ALL);
        assert!(r.ok(), "{:?}", r.violations.first());
        let total = r.summary(Property::Total).expect("total checked");
        assert_eq!(total.checked, 10);
    }

    #[test]
    fn clean_run_passes_everything() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             a deliver a#1 1
             a deliver b#1 1
             a view 2 a b
             a end
             b view 1 a b
             b send b#1 1
             b deliver a#1 1
             b deliver b#1 1
             b view 2 a b
             b end",
        );
        let r = Report::new(&t, &Property::ALL);
        assert!(r.ok(), "{:?}", r.violations);
        assert_eq!(r.properties.len(), Property::ALL.len());
        assert!(r.properties.iter().all(|s| s.failed == 0));
    }
}
