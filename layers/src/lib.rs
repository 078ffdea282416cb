//! Strata's microprotocol layers, one module per property.
//!
//! [`registry`] returns a [`Registry`] holding every built-in layer under its
//! descriptor name.

pub mod auth;
pub mod bundle;
pub mod causal;
pub mod flow;
pub mod flush;
pub mod frag;
pub mod membership;
pub mod nak;
pub mod pass;
pub mod safe;
pub mod stable;
pub mod suspect;
pub mod total;

use stack_core::registry::Registry;

/// A registry of every built-in layer, by descriptor name. Applications add their own
/// layers to it (or replace a built-in one by registering its name again).
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register("Pass", pass::Pass::new);
    r.register("Auth", auth::Auth::new);
    r.register("Bundle", bundle::Bundle::new);
    r.register("Frag", frag::Frag::new);
    r.register("Flow", flow::Flow::new);
    r.register("Nak", nak::Nak::new);
    r.register("Stable", stable::Stable::new);
    r.register("Causal", causal::Causal::new);
    r.register("Total", total::Total::new);
    r.register("Safe", safe::Safe::new);
    r.register("Suspect", suspect::Suspect::new);
    r.register("Membership", membership::Membership::new);
    r.register("Flush", flush::Flush::new);
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_layer_builds_with_default_parameters() {
        let r = super::registry();
        for name in r.names() {
            // `Auth` refuses to build without a key (tested in `auth`).
            let params =
                if name == "Auth" { r#"(key: "000102030405060708090a0b0c0d0e0f")"# } else { "()" };
            let layer = r.build(name, params).unwrap();
            assert_eq!(layer.name(), r.layer_name(name).unwrap());
            assert_eq!(layer.name(), name.to_lowercase(), "descriptor name is the layer's name");
        }
        assert!(r.names().contains(&"Pass"));
    }
}
