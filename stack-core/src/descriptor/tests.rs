//! Descriptor checks, each asserting the exact position of the problem.

use super::*;
use crate::layer::props;
use crate::transport::{SimSpec, UdpSpec};
use quickcheck::quickcheck;
use serde::Deserialize;

/// Provides `reliable-fifo`.
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

/// Requires `reliable-fifo`, provides `total`.
#[derive(Default, Deserialize)]
enum Algorithm {
    #[default]
    Sequencer,
    Token,
}
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TotalParams {
    algorithm: Algorithm,
}
struct Total;
impl Layer for Total {
    fn name(&self) -> &'static str {
        "total"
    }
    fn requires(&self) -> &[Property] {
        &[props::RELIABLE_FIFO]
    }
    fn provides(&self) -> &[Property] {
        &[props::TOTAL]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FragParams {
    mtu: u32,
}
impl Default for FragParams {
    fn default() -> Self {
        FragParams { mtu: 1400 }
    }
}
struct Frag;
impl Layer for Frag {
    fn name(&self) -> &'static str {
        "frag"
    }
    fn provides(&self) -> &[Property] {
        &[props::LARGE_MESSAGES]
    }
}

fn reg() -> Registry {
    let mut r = Registry::new();
    r.register("Fifo", |p: FifoParams| {
        let _ = p.window;
        Fifo
    });
    r.register("Total", |p: TotalParams| {
        let (Algorithm::Sequencer | Algorithm::Token) = p.algorithm;
        Total
    });
    r.register("Frag", |p: FragParams| {
        let _ = p.mtu;
        Frag
    });
    r
}

const GOOD: &str = r#"// layers are listed bottom to top
Stack(
    name: "vsync",
    transport: Udp(group: "239.255.42.1:7400"),
    layers: [
        Fifo(window: 64),
        Frag(mtu: 1200),
        Total(algorithm: Token),
    ],
)
"#;

fn errors(text: &str) -> Vec<String> {
    match Descriptor::parse(text, "t.ron", &reg()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_good_descriptor_is_read_whole() {
    let d = Descriptor::parse(GOOD, "t.ron", &reg()).unwrap();
    assert_eq!(d.name, "vsync");
    assert_eq!(d.group, "vsync");
    assert_eq!(d.group_id(), crate::packet::group_id("vsync"));
    let TransportSpec::Udp(UdpSpec { group, interface, .. }) = &d.transport else {
        panic!("{:?}", d.transport)
    };
    assert_eq!((group.as_str(), interface.as_str()), ("239.255.42.1:7400", "127.0.0.1"));
    let kinds: Vec<_> = d.layers.iter().map(|l| (l.kind.as_str(), l.line, l.col)).collect();
    assert_eq!(kinds, vec![("Fifo", 6, 9), ("Frag", 7, 9), ("Total", 8, 9)]);
    assert_eq!(d.layers[1].params, "(mtu: 1200)");
    let built = d.build_layers(&reg()).unwrap();
    let names: Vec<_> = built.iter().map(|l| l.name()).collect();
    assert_eq!(names, vec!["fifo", "frag", "total"]);
    let provides: Vec<_> = d.provides().into_iter().collect();
    assert_eq!(provides, vec![props::LARGE_MESSAGES, props::RELIABLE_FIFO, props::TOTAL]);
    assert_eq!(d.layer_infos()[2].requires, vec![props::RELIABLE_FIFO]);
}

#[test]
fn optional_fields_and_bare_names() {
    let text = "(name: \"a\", group: \"g\", transport: Sim, layers: [Fifo, Frag()])";
    let d = Descriptor::parse(text, "t.ron", &reg()).unwrap();
    assert_eq!(d.group, "g");
    assert_eq!(d.transport, TransportSpec::Sim(SimSpec::default()));
    assert_eq!(d.layers[0].params, "()");
}

#[test]
fn unknown_layer_is_reported_with_close_names() {
    let text = GOOD.replace("Frag(mtu: 1200)", "Fragg(mtu: 1200)");
    assert_eq!(errors(&text), vec!["t.ron:7:9: unknown layer `Fragg`; did you mean `Frag`?"]);
    let text = GOOD.replace("Frag(mtu: 1200)", "Zzz()");
    assert_eq!(
        errors(&text),
        vec!["t.ron:7:9: unknown layer `Zzz`; known layers: `Fifo`, `Frag`, `Total`"]
    );
}

#[test]
fn unknown_parameter_is_reported_at_its_name() {
    let text = GOOD.replace("Frag(mtu: 1200)", "Frag(mtu: 1200, mut: 3)");
    assert_eq!(
        errors(&text),
        vec!["t.ron:7:25: unknown parameter `mut` of `Frag`; expected one of `mtu`"]
    );
}

#[test]
fn wrong_parameter_type_is_reported_at_the_value() {
    let text = GOOD.replace("Frag(mtu: 1200)", "Frag(mtu: \"big\")");
    assert_eq!(
        errors(&text),
        vec!["t.ron:7:19: parameter `mtu` of `Frag`: expected integer, found `\"big\"`"]
    );
    let text = GOOD.replace("Token", "Tokens");
    let e = errors(&text);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("t.ron:8:26: parameter `algorithm` of `Total`: "), "{e:?}");
}

#[test]
fn missing_property_names_the_layer_and_a_provider() {
    let text = GOOD.replace("Fifo(window: 64),", "");
    assert_eq!(
        errors(&text),
        vec!["t.ron:8:9: layer `total` requires `reliable-fifo` below it; add `Fifo` beneath it"]
    );
    // Above it is not below it.
    let text = GOOD.replace("Fifo(window: 64),", "").replace("Token),", "Token), Fifo(),");
    assert_eq!(errors(&text).len(), 1);
}

#[test]
fn empty_stack_is_an_error() {
    let text = "Stack(\n  name: \"e\",\n  transport: Sim(),\n  layers: [ ],\n)";
    assert_eq!(errors(text), vec!["t.ron:4:11: empty stack: `layers` lists no layer"]);
}

#[test]
fn text_that_is_not_ron_is_reported_where_it_breaks() {
    let text = GOOD.replace("Frag(mtu: 1200),", "Frag(mtu: 1200],");
    assert_eq!(errors(&text), vec!["t.ron:7:23: not RON: `]` does not close `(` opened at 7:13"]);
    let text = GOOD.replace("Udp(group", "Udp(\"group");
    assert_eq!(errors(&text), vec!["t.ron:4:46: not RON: string is never closed"]);
    assert_eq!(errors("")[0], "t.ron:1:1: empty descriptor: expected `Stack( ... )`");
    assert_eq!(errors("Stack [")[0], "t.ron:1:7: not RON: `[` is never closed");
    assert_eq!(
        errors("\n#![enable(implicit_some)]\nStack()")[0],
        "t.ron:2:1: RON attributes (`#![...]`) are not supported in descriptors"
    );
    let text = GOOD.replace("Frag(mtu: 1200),", "Frag(mtu: 1200) Frag(),");
    assert_eq!(errors(&text), vec!["t.ron:7:25: expected `,` before this"]);
}

#[test]
fn fields_are_checked() {
    let text = "Stack(\n  nam: \"x\",\n  transport: Tcp(),\n  layers: [Fifo()],\n)";
    assert_eq!(
        errors(text),
        vec![
            "t.ron:1:1: missing field `name`",
            "t.ron:2:3: unknown field `nam`; expected one of `name`, `group`, `transport`, `layers`",
            "t.ron:3:14: unknown transport `Tcp`; expected one of `Udp`, `Udpu`, `Sim`",
        ]
    );
    let text = GOOD.replace("group: \"239", "grup: \"239");
    assert_eq!(
        errors(&text),
        vec!["t.ron:4:20: unknown parameter `grup` of `Udp`; expected one of `group`, `interface`, `ttl`, `loopback`, `recv_buffer`, `send_buffer`, `mtu`"]
    );
    let text = GOOD.replace("Udp(group: \"239.255.42.1:7400\")", "Udp()");
    assert_eq!(errors(&text), vec!["t.ron:4:16: `Udp` needs parameter `group`"]);
}

#[test]
fn every_problem_is_reported() {
    let text = r#"Stack(
    name: "many",
    transport: Udp(group: 7),
    layers: [
        Nope(),
        Frag(mtu: -1),
        Total(),
    ],
)"#;
    // `Total` sits above an unknown layer: its composition is not judged.
    assert_eq!(errors(text).len(), 3, "{:?}", errors(text));
    let text = text.replace("Nope(),", "Frag(size: 1),");
    let e = errors(&text);
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e[3].starts_with("t.ron:7:9: layer `total` requires"), "{e:?}");
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let path = Path::new("/nonexistent/strata/none.ron");
    let e = Descriptor::load(path, &reg()).unwrap_err();
    assert_eq!(e.len(), 1);
    let e = &e.0[0];
    assert_eq!((e.line, e.col), (0, 0));
    assert!(
        e.to_string().starts_with("/nonexistent/strata/none.ron: cannot read the descriptor: "),
        "{e}"
    );
}

quickcheck! {
    fn parsing_never_panics(text: String) -> bool {
        let _ = Descriptor::parse(&text, "q.ron", &reg());
        true
    }

    fn damaged_descriptors_never_panic(cut: usize, insert: String) -> bool {
        let mut text = GOOD.to_string();
        let mut at = cut % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.insert_str(at, &insert);
        let _ = Descriptor::parse(&text, "q.ron", &reg());
        let _ = Descriptor::parse(&GOOD[..cut % (GOOD.len() + 1)], "q.ron", &reg());
        true
    }
}
