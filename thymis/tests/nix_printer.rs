//! The printer's escaping checked by Nix itself: thousands of generated strings (with every
//! character that needs care, interpolations, and indentation levels) and attribute names are
//! printed, evaluated by `nix-instantiate`, and must come back exactly.

mod common;

use serde_json::{json, Value};
use thymis::nix::{AttrSet, Expr, NixString};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: [&str; 22] = [
    "$", "{", "}", "${", "$${", "'", "''", "'''", "\"", "\\", "\n", "\n\n", "  ", " ", "\t", "\r",
    "a", "Zürich", "x = 1;", "''${", "\\n", "#",
];

fn random_string(rng: &mut Rng) -> (NixString, String) {
    let mut nix = NixString::new();
    let mut expected = String::new();
    for _ in 0..rng.below(12) {
        if rng.below(6) == 0 {
            // An interpolation of a string literal that itself needs escaping.
            let inner = PIECES[rng.below(PIECES.len())];
            nix.push_interp(Expr::str(inner));
            expected.push_str(inner);
        } else {
            let piece = PIECES[rng.below(PIECES.len())];
            nix.push_str(piece);
            expected.push_str(piece);
        }
    }
    (nix, expected)
}

#[test]
fn strings_round_trip_through_nix() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut expected = Vec::new();
    let mut items = Vec::new();
    for i in 0..3000 {
        let (nix, text) = random_string(&mut rng);
        // Vary the nesting so indented strings are printed at several indentation levels.
        let value = match i % 3 {
            0 => Expr::Str(nix),
            1 => AttrSet::new().with("v", Expr::Str(nix)).into(),
            _ => AttrSet::new()
                .with("a.b", AttrSet::new().with("v", Expr::Str(nix)))
                .into(),
        };
        expected.push(match i % 3 {
            0 => json!(text),
            1 => json!({"v": text}),
            _ => json!({"a": {"b": {"v": text}}}),
        });
        items.push(value);
    }
    let printed = Expr::List(items).to_nix();
    thymis::nix::check_syntax(&printed).expect("rnix parses the printer's output");
    let evaluated = common::nix_eval_json(&printed);
    let Value::Array(values) = evaluated else {
        panic!("expected a list");
    };
    for (i, (got, want)) in values.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "string #{i} did not round-trip");
    }
    assert_eq!(values.len(), expected.len());
}

#[test]
fn attribute_names_round_trip_through_nix() {
    let mut rng = Rng(0x5eed_0000_0000_0002);
    let mut names = vec![
        "or".to_owned(),
        "in".to_owned(),
        "1st".to_owned(),
        "a.b".to_owned(),
        "with space".to_owned(),
        "${x}".to_owned(),
        "x'".to_owned(),
        "-dash".to_owned(),
        "".to_owned(),
    ];
    for _ in 0..300 {
        let (_, text) = random_string(&mut rng);
        names.push(text);
    }
    names.sort();
    names.dedup();
    let mut attrs = AttrSet::new();
    for name in &names {
        attrs.set_path(vec![name.clone()], Expr::Bool(true));
    }
    let printed = Expr::var("builtins.attrNames")
        .apply(vec![attrs.into()])
        .to_nix();
    let evaluated = common::nix_eval_json(&printed);
    // Nix sorts attribute names bytewise, as Rust does for Strings.
    assert_eq!(evaluated, json!(names));
}

#[test]
fn numbers_and_operators_evaluate_as_built() {
    let expr = Expr::List(vec![
        Expr::Int(-5),
        Expr::Float(1.5),
        Expr::var("builtins.add").apply(vec![Expr::Int(-1), Expr::Int(2)]),
        Expr::List(vec![Expr::Int(1)])
            .concat(Expr::List(vec![Expr::Int(2)]))
            .concat(Expr::List(vec![Expr::Int(3)])),
        Expr::from_json(&json!({"k": [null, 1, "two", {"x y": false}]})),
    ]);
    assert_eq!(
        common::nix_eval_json(&expr.to_nix()),
        json!([-5, 1.5, 1, [1, 2, 3], {"k": [1, "two", {"x y": false}]}])
    );
}
