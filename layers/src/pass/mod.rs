//! `pass`: the pass-through layer.
//!
//! # Protocol
//! None: every event goes on untouched, in both directions. It costs one hop in the
//! driver's queue and nothing else, which makes it the baseline when measuring what a
//! layer costs, and a placeholder while a stack is being composed.
//!
//! # Parameters
//! `Pass(count: bool)`: with `count: true`, events passed are counted (`down_passed`,
//! `up_passed`), which is no longer free. Default `false`.
//!
//! # Properties
//! Requires nothing, provides nothing.
//!
//! # Events generated
//! None of its own; no header, no timers.
//!
//! # Testing
//! The unit tests drive the layer alone and assert that each event comes out
//! unchanged on the other side, and that the counters move only when asked to.

use serde::Deserialize;
use stack_core::{Ctx, Down, Layer, Up};

/// Parameters of [`Pass`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassParams {
    /// Count the events passed (default false).
    pub count: bool,
}

/// The pass-through layer.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    count: bool,
}

impl Pass {
    pub fn new(params: PassParams) -> Self {
        Pass { count: params.count }
    }
}

impl Layer for Pass {
    fn name(&self) -> &'static str {
        "pass"
    }

    #[inline]
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        if self.count {
            ctx.count("down_passed", 1);
        }
        ctx.down(ev)
    }

    #[inline]
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        if self.count {
            ctx.count("up_passed", 1);
        }
        ctx.up(ev)
    }
}

#[cfg(test)]
mod tests;
