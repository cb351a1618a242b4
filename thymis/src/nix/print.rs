//! The printer: turns an [`Expr`] into stable, correctly escaped Nix text.
//!
//! Formatting is deterministic (two-space indentation, one binding or list element per line) so
//! that regenerating an unchanged project writes byte-identical files and git sees no change.

use super::expr::{AttrSet, BinOp, Binding, Expr, NixString, Param, Pattern, StrPart};

const KEYWORDS: [&str; 10] = [
    "assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with",
];

/// Whether `name` can be written bare as an attribute name or variable (no quotes needed).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-'))
        && !KEYWORDS.contains(&name)
}

/// An attribute name as it must appear in Nix source: bare when possible, quoted otherwise.
pub fn attr_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_attr_name(&mut out, name);
    out
}

impl Expr {
    /// Prints the expression as Nix source, starting at column 0.
    pub fn to_nix(&self) -> String {
        let mut out = String::new();
        print(&mut out, self, 0);
        out
    }
}

/// Where an expression appears decides whether it needs parentheses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    /// A function argument, list element, select base or function: only atoms stand bare.
    Operand,
    /// An operand of a binary operator: applications, selections and operators that bind
    /// more tightly stand bare too.
    BinOperand(BinOp),
}

/// Binding strength per the Nix manual's operator table (higher binds tighter).
fn precedence(op: BinOp) -> u8 {
    match op {
        BinOp::Concat => 9,
        BinOp::Add => 7,
        BinOp::Update => 5,
        BinOp::Eq | BinOp::NotEq => 3,
        BinOp::And => 2,
    }
}

/// Operators for which `(a op b) op c` equals `a op (b op c)`, so chains need no parentheses.
fn is_associative(op: BinOp) -> bool {
    matches!(op, BinOp::Concat | BinOp::Update | BinOp::And)
}

fn needs_parens(expr: &Expr, position: Position) -> bool {
    match expr {
        Expr::Null
        | Expr::Bool(_)
        | Expr::Str(_)
        | Expr::Path(_)
        | Expr::Var(_)
        | Expr::Select(..)
        | Expr::List(_)
        | Expr::Attrs(_) => false,
        Expr::Int(i) => *i < 0 && position == Position::Operand,
        Expr::Float(f) => *f < 0.0 && position == Position::Operand,
        Expr::Apply(..) => position == Position::Operand,
        Expr::BinOp(_, inner, _) => match position {
            Position::Operand => true,
            Position::BinOperand(outer) => {
                let (inner_prec, outer_prec) = (precedence(*inner), precedence(outer));
                inner_prec < outer_prec
                    || (inner_prec == outer_prec && !(*inner == outer && is_associative(outer)))
            }
        },
        Expr::Lambda(..) | Expr::Let(..) | Expr::If(..) => true,
    }
}

fn print_in(out: &mut String, expr: &Expr, indent: usize, position: Position) {
    if needs_parens(expr, position) {
        out.push('(');
        print(out, expr, indent);
        out.push(')');
    } else {
        print(out, expr, indent);
    }
}

fn push_indent(out: &mut String, indent: usize) {
    const SPACES: &str = "                                                                ";
    let mut left = indent;
    while left > 0 {
        let n = left.min(SPACES.len());
        out.push_str(&SPACES[..n]);
        left -= n;
    }
}

/// Writes an attribute name, quoted only when needed.
fn push_attr_name(out: &mut String, name: &str) {
    if is_identifier(name) {
        out.push_str(name);
    } else {
        out.push('"');
        push_double_quoted_lit(out, name, false);
        out.push('"');
    }
}

fn print(out: &mut String, expr: &Expr, indent: usize) {
    match expr {
        Expr::Null => out.push_str("null"),
        Expr::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Expr::Int(i) => out.push_str(&i.to_string()),
        Expr::Float(f) => out.push_str(&format_float(*f)),
        Expr::Str(s) => print_string(out, s, indent),
        Expr::Path(p) => out.push_str(p),
        Expr::Var(v) => out.push_str(v),
        Expr::Select(base, path) => {
            print_in(out, base, indent, Position::Operand);
            for segment in path {
                out.push('.');
                push_attr_name(out, segment);
            }
        }
        Expr::List(items) => {
            if items.is_empty() {
                out.push_str("[ ]");
                return;
            }
            out.push_str("[\n");
            for item in items {
                push_indent(out, indent + 2);
                print_in(out, item, indent + 2, Position::Operand);
                out.push('\n');
            }
            push_indent(out, indent);
            out.push(']');
        }
        Expr::Attrs(attrs) => print_attrs(out, attrs, indent),
        Expr::Apply(function, args) => {
            print_in(out, function, indent, Position::Operand);
            for arg in args {
                out.push(' ');
                print_in(out, arg, indent, Position::Operand);
            }
        }
        Expr::Lambda(Param::Ident(arg), body) => {
            out.push_str(arg);
            out.push_str(": ");
            print(out, body, indent);
        }
        Expr::Lambda(Param::Set(pattern), body) => {
            print_pattern(out, pattern);
            out.push_str(":\n");
            push_indent(out, indent);
            print(out, body, indent);
        }
        Expr::Let(bindings, body) => {
            out.push_str("let\n");
            for binding in bindings {
                print_binding(out, binding, indent + 2);
            }
            push_indent(out, indent);
            out.push_str("in\n");
            push_indent(out, indent);
            print(out, body, indent);
        }
        Expr::BinOp(left, op, right) => {
            print_in(out, left, indent, Position::BinOperand(*op));
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            print_in(out, right, indent, Position::BinOperand(*op));
        }
        Expr::If(cond, then, otherwise) => {
            out.push_str("if ");
            print(out, cond, indent);
            out.push_str(" then ");
            print(out, then, indent);
            out.push_str(" else ");
            print(out, otherwise, indent);
        }
    }
}

fn print_pattern(out: &mut String, pattern: &Pattern) {
    if let Some(bind) = &pattern.bind {
        out.push_str(bind);
        out.push('@');
    }
    let mut items: Vec<&str> = pattern.args.iter().map(String::as_str).collect();
    if pattern.ellipsis {
        items.push("...");
    }
    if items.is_empty() {
        out.push_str("{ }");
    } else {
        out.push_str("{ ");
        out.push_str(&items.join(", "));
        out.push_str(" }");
    }
}

fn print_attrs(out: &mut String, attrs: &AttrSet, indent: usize) {
    if attrs.recursive {
        out.push_str("rec ");
    }
    if attrs.bindings.is_empty() {
        out.push_str("{ }");
        return;
    }
    out.push_str("{\n");
    for binding in &attrs.bindings {
        print_binding(out, binding, indent + 2);
    }
    push_indent(out, indent);
    out.push('}');
}

fn print_binding(out: &mut String, binding: &Binding, indent: usize) {
    push_indent(out, indent);
    match binding {
        Binding::Assign(path, value) => {
            for (i, segment) in path.iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_attr_name(out, segment);
            }
            out.push_str(" = ");
            print(out, value, indent);
        }
        Binding::Inherit(names) => {
            out.push_str("inherit");
            for name in names {
                out.push(' ');
                push_attr_name(out, name);
            }
        }
    }
    out.push_str(";\n");
}

fn format_float(f: f64) -> String {
    if !f.is_finite() {
        // JSON cannot carry these; print something Nix accepts rather than invalid text.
        return "0.0".to_owned();
    }
    let text = format!("{f:?}");
    if text.contains(['.', 'e']) {
        text
    } else {
        format!("{text}.0")
    }
}

/// Multi-line text is printed as an indented string (`''…''`) when that round-trips exactly,
/// otherwise as a double-quoted string.
fn print_string(out: &mut String, s: &NixString, indent: usize) {
    match fits_indented(s).then(|| indented(s, indent)).flatten() {
        Some(text) => out.push_str(&text),
        None => print_double_quoted(out, s, indent),
    }
}

/// Nix strips the smallest indentation of the non-blank lines of an indented string, so the
/// text itself must have a line that starts without a space; and a trailing `'` would merge
/// with the closing quotes.
fn fits_indented(s: &NixString) -> bool {
    let has_newline = s
        .parts
        .iter()
        .any(|p| matches!(p, StrPart::Lit(t) if t.contains('\n')));
    if !has_newline {
        return false;
    }
    if let Some(StrPart::Lit(last)) = s.parts.last() {
        if last.ends_with('\'') {
            return false;
        }
    }
    let mut at_line_start = true;
    let mut line_is_blank = true;
    let mut unindented_line = false;
    for part in &s.parts {
        match part {
            StrPart::Interp(_) => {
                if at_line_start {
                    unindented_line = true;
                }
                at_line_start = false;
                line_is_blank = false;
            }
            StrPart::Lit(text) => {
                for c in text.chars() {
                    match c {
                        '\n' => {
                            at_line_start = true;
                            line_is_blank = true;
                        }
                        ' ' if line_is_blank => at_line_start = false,
                        _ => {
                            if at_line_start {
                                unindented_line = true;
                            }
                            at_line_start = false;
                            line_is_blank = false;
                        }
                    }
                }
            }
        }
    }
    // Nix drops a last line made only of spaces (it reads it as the closing quotes' indentation).
    let blank_last_line = line_is_blank && !at_line_start;
    unindented_line && !blank_last_line
}

/// The indented form, or `None` where a lone `'` would run into an escape that starts with
/// `''` (Nix would read the three quotes as an escaped `''`).
fn indented(s: &NixString, indent: usize) -> Option<String> {
    let mut out = String::from("''\n");
    let out = &mut out;
    let escape = |out: &mut String, seq: &str| {
        if out.ends_with('\'') {
            return false;
        }
        out.push_str(seq);
        true
    };
    let mut at_line_start = true;
    for (i, part) in s.parts.iter().enumerate() {
        match part {
            StrPart::Interp(expr) => {
                if at_line_start {
                    push_indent(out, indent + 2);
                    at_line_start = false;
                }
                out.push_str("${");
                print(out, expr, indent + 2);
                out.push('}');
            }
            StrPart::Lit(text) => {
                let before_interp = matches!(s.parts.get(i + 1), Some(StrPart::Interp(_)));
                let mut chars = text.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '\n' {
                        out.push('\n');
                        at_line_start = true;
                        continue;
                    }
                    if at_line_start {
                        push_indent(out, indent + 2);
                        at_line_start = false;
                    }
                    let escaped = match c {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            out.push_str("'''");
                            true
                        }
                        '$' if chars.peek() == Some(&'{') => escape(out, "''$"),
                        '$' if chars.peek().is_none() && before_interp => escape(out, "''$"),
                        '\0' => true,
                        '\t' => escape(out, "''\\t"),
                        '\r' => escape(out, "''\\r"),
                        _ => {
                            out.push(c);
                            true
                        }
                    };
                    if !escaped {
                        return None;
                    }
                }
            }
        }
    }
    if at_line_start {
        push_indent(out, indent);
    }
    out.push_str("''");
    Some(std::mem::take(out))
}

fn print_double_quoted(out: &mut String, s: &NixString, indent: usize) {
    out.push('"');
    for (i, part) in s.parts.iter().enumerate() {
        match part {
            StrPart::Lit(text) => {
                let before_interp = matches!(s.parts.get(i + 1), Some(StrPart::Interp(_)));
                push_double_quoted_lit(out, text, before_interp);
            }
            StrPart::Interp(expr) => {
                out.push_str("${");
                print(out, expr, indent);
                out.push('}');
            }
        }
    }
    out.push('"');
}

fn push_double_quoted_lit(out: &mut String, text: &str, before_interp: bool) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Nix strings cannot hold NUL (validation reports it); never emit it.
            '\0' => {}
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            '$' if chars.peek().is_none() && before_interp => out.push_str("\\$"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::expr::{mk_override, module_function};

    #[test]
    fn identifiers_are_bare_and_others_quoted() {
        assert_eq!(attr_name("services"), "services");
        assert_eq!(attr_name("thymis-device"), "thymis-device");
        assert_eq!(attr_name("x'"), "x'");
        assert_eq!(attr_name("1abc"), "\"1abc\"");
        assert_eq!(attr_name("a.b"), "\"a.b\"");
        assert_eq!(attr_name("or"), "\"or\"");
        assert_eq!(attr_name(""), "\"\"");
        assert_eq!(attr_name("${x}"), "\"\\${x}\"");
    }

    #[test]
    fn double_quoted_escapes() {
        assert_eq!(
            Expr::str("a\"b\\c${d}\t\r$e").to_nix(),
            r#""a\"b\\c\${d}\t\r$e""#
        );
        assert_eq!(
            Expr::str("a\"b\\c${d}\n\t\r$e").to_nix(),
            "''\n  a\"b\\c''${d}\n  ''\\t''\\r$e''"
        );
    }

    #[test]
    fn dollar_before_interpolation_is_escaped() {
        let s = NixString::new().text("$").interp(Expr::var("x"));
        assert_eq!(Expr::Str(s).to_nix(), r#""\$${x}""#);
    }

    #[test]
    fn multi_line_text_becomes_indented_string() {
        let mut attrs = AttrSet::new();
        attrs.set("script", "echo ''hi''\nprintf \"${HOME}\"\n");
        assert_eq!(
            Expr::Attrs(attrs).to_nix(),
            "{\n  script = ''\n    echo '''hi'''\n    printf \"''${HOME}\"\n  '';\n}"
        );
    }

    #[test]
    fn text_indented_everywhere_stays_double_quoted() {
        assert_eq!(Expr::str("  a\n  b").to_nix(), r#""  a\n  b""#);
    }

    #[test]
    fn lone_quote_before_an_escape_stays_double_quoted() {
        assert_eq!(Expr::str("a\n'${b}").to_nix(), r#""a\n'\${b}""#);
    }

    #[test]
    fn nul_is_never_emitted() {
        assert_eq!(Expr::str("a\0b").to_nix(), "\"ab\"");
    }

    #[test]
    fn trailing_quote_stays_double_quoted() {
        assert_eq!(Expr::str("a\nb'").to_nix(), r#""a\nb'""#);
    }

    #[test]
    fn module_file_shape() {
        let mut body = AttrSet::new();
        body.set("time.timeZone", mk_override(80, "Europe/Berlin"));
        body.set(
            "imports",
            Expr::List(vec![Expr::var("inputs.thymis.nixosModules.x")]),
        );
        body.set("empty", Expr::List(vec![]));
        body.set("neg", Expr::var("f").apply(vec![Expr::Int(-1)]));
        assert_eq!(
            module_function(body).to_nix(),
            "{ pkgs, lib, inputs, config, ... }:\n{\n  time.timeZone = lib.mkOverride 80 \"Europe/Berlin\";\n  imports = [\n    inputs.thymis.nixosModules.x\n  ];\n  empty = [ ];\n  neg = f (-1);\n}"
        );
    }

    #[test]
    fn applications_in_lists_are_parenthesised() {
        let list = Expr::List(vec![Expr::var("f").apply(vec![Expr::Int(1)])]);
        assert_eq!(list.to_nix(), "[\n  (f 1)\n]");
    }

    #[test]
    fn floats_keep_a_decimal_point() {
        assert_eq!(Expr::Float(2.0).to_nix(), "2.0");
        assert_eq!(Expr::Float(0.5).to_nix(), "0.5");
    }
}
