//! The typed Nix expression tree that modules and the flake renderer build instead of text.

use serde_json::Value as Json;

/// A Nix expression. Build it with the helper functions of [`crate::nix`] and print it with
/// [`Expr::to_nix`]; the printer takes care of escaping, quoting and indentation.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A string, possibly with `${…}` interpolations.
    Str(NixString),
    /// A relative or absolute path literal such as `./hosts`.
    Path(String),
    /// A variable reference such as `lib` or `pkgs`.
    Var(String),
    /// Attribute selection `expr.a."b".c`.
    Select(Box<Expr>, Vec<String>),
    /// A list `[ … ]`.
    List(Vec<Expr>),
    /// An attribute set `{ … }`.
    Attrs(AttrSet),
    /// Function application `f a b`.
    Apply(Box<Expr>, Vec<Expr>),
    /// A function `x: body` or `{ a, b, ... }: body`.
    Lambda(Param, Box<Expr>),
    /// `let … in body`.
    Let(Vec<Binding>, Box<Expr>),
    /// A binary operator application.
    BinOp(Box<Expr>, BinOp, Box<Expr>),
    /// `if c then a else b`
    If(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// Binary operators the generator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `++`
    Concat,
    /// `+`
    Add,
    /// `==`
    Eq,
    /// `//`
    Update,
    /// `!=`
    NotEq,
    /// `&&`
    And,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Concat => "++",
            BinOp::Add => "+",
            BinOp::Eq => "==",
            BinOp::Update => "//",
            BinOp::NotEq => "!=",
            BinOp::And => "&&",
        }
    }
}

/// A function parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// `x: …`
    Ident(String),
    /// `{ a, b, ... }: …`
    Set(Pattern),
}

/// A function argument pattern `{ a, b, ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// The named arguments, in order.
    pub args: Vec<String>,
    /// Whether `...` ends the pattern.
    pub ellipsis: bool,
    /// `name@{ … }` binding of the whole argument set.
    pub bind: Option<String>,
}

/// One part of a string: literal text or an interpolated expression.
#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    /// Literal text, stored unescaped.
    Lit(String),
    /// `${expr}`
    Interp(Expr),
}

/// A Nix string made of literal text and interpolations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NixString {
    /// The parts in order; adjacent literals are merged by [`NixString::push_str`].
    pub parts: Vec<StrPart>,
}

impl NixString {
    /// An empty string.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends literal text.
    pub fn push_str(&mut self, text: &str) -> &mut Self {
        if text.is_empty() {
            return self;
        }
        if let Some(StrPart::Lit(last)) = self.parts.last_mut() {
            last.push_str(text);
        } else {
            self.parts.push(StrPart::Lit(text.to_owned()));
        }
        self
    }

    /// Appends an interpolation `${expr}`.
    pub fn push_interp(&mut self, expr: Expr) -> &mut Self {
        self.parts.push(StrPart::Interp(expr));
        self
    }

    /// Builder form of [`NixString::push_str`].
    pub fn text(mut self, text: &str) -> Self {
        self.push_str(text);
        self
    }

    /// Builder form of [`NixString::push_interp`].
    pub fn interp(mut self, expr: Expr) -> Self {
        self.push_interp(expr);
        self
    }
}

impl From<NixString> for Expr {
    fn from(s: NixString) -> Self {
        Expr::Str(s)
    }
}

/// A binding `path = value;` or `inherit a b;` inside an attribute set or `let`.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// `a.b."c" = value;`
    Assign(Vec<String>, Expr),
    /// `inherit a b;`
    Inherit(Vec<String>),
}

/// An attribute set: ordered bindings, printed in the order they were added.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttrSet {
    /// The bindings in order.
    pub bindings: Vec<Binding>,
    /// `rec { … }`
    pub recursive: bool,
}

impl AttrSet {
    /// An empty attribute set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path = value;` where `path` is a dotted path like `"services.xserver.enable"`.
    /// Use [`AttrSet::set_path`] when a segment may itself contain dots.
    pub fn set(&mut self, dotted: &str, value: impl Into<Expr>) -> &mut Self {
        let path = dotted.split('.').map(str::to_owned).collect();
        self.set_path(path, value)
    }

    /// Adds `seg1.seg2… = value;` with each segment taken literally (quoted when needed).
    pub fn set_path(&mut self, path: Vec<String>, value: impl Into<Expr>) -> &mut Self {
        self.bindings.push(Binding::Assign(path, value.into()));
        self
    }

    /// Adds `inherit names…;`.
    pub fn inherit(&mut self, names: &[&str]) -> &mut Self {
        self.bindings.push(Binding::Inherit(
            names.iter().map(|n| (*n).to_owned()).collect(),
        ));
        self
    }

    /// Builder form of [`AttrSet::set`].
    pub fn with(mut self, dotted: &str, value: impl Into<Expr>) -> Self {
        self.set(dotted, value);
        self
    }

    /// Builder form of [`AttrSet::set_path`].
    pub fn with_path(mut self, path: Vec<String>, value: impl Into<Expr>) -> Self {
        self.set_path(path, value);
        self
    }

    /// Whether no binding was added.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

impl From<AttrSet> for Expr {
    fn from(a: AttrSet) -> Self {
        Expr::Attrs(a)
    }
}

impl From<&str> for Expr {
    fn from(s: &str) -> Self {
        Expr::Str(NixString::new().text(s))
    }
}

impl From<String> for Expr {
    fn from(s: String) -> Self {
        Expr::from(s.as_str())
    }
}

impl From<bool> for Expr {
    fn from(b: bool) -> Self {
        Expr::Bool(b)
    }
}

impl From<i64> for Expr {
    fn from(i: i64) -> Self {
        Expr::Int(i)
    }
}

impl From<Vec<Expr>> for Expr {
    fn from(items: Vec<Expr>) -> Self {
        Expr::List(items)
    }
}

impl Expr {
    /// A variable reference; `var("lib.mkOverride")` selects through dots.
    pub fn var(dotted: &str) -> Expr {
        let mut segments = dotted.split('.');
        let head = Expr::Var(segments.next().unwrap_or_default().to_owned());
        let rest: Vec<String> = segments.map(str::to_owned).collect();
        if rest.is_empty() {
            head
        } else {
            Expr::Select(Box::new(head), rest)
        }
    }

    /// `self.a.b` with each segment taken literally (quoted when needed).
    pub fn select(self, path: Vec<String>) -> Expr {
        match self {
            Expr::Select(base, mut existing) => {
                existing.extend(path);
                Expr::Select(base, existing)
            }
            other => Expr::Select(Box::new(other), path),
        }
    }

    /// `self arg1 arg2 …`
    pub fn apply(self, args: Vec<Expr>) -> Expr {
        match self {
            Expr::Apply(f, mut existing) => {
                existing.extend(args);
                Expr::Apply(f, existing)
            }
            other => Expr::Apply(Box::new(other), args),
        }
    }

    /// `self ++ other`
    pub fn concat(self, other: Expr) -> Expr {
        Expr::BinOp(Box::new(self), BinOp::Concat, Box::new(other))
    }

    /// A string literal.
    pub fn str(s: &str) -> Expr {
        Expr::from(s)
    }

    /// Converts a JSON value to the equivalent Nix value: objects become attribute sets,
    /// `null` list elements are dropped (as upstream Thymis does).
    pub fn from_json(value: &Json) -> Expr {
        match value {
            Json::Null => Expr::Null,
            Json::Bool(b) => Expr::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Expr::Int(i),
                None => Expr::Float(n.as_f64().unwrap_or(0.0)),
            },
            Json::String(s) => Expr::str(s),
            Json::Array(items) => Expr::List(
                items
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(Expr::from_json)
                    .collect(),
            ),
            Json::Object(map) => {
                let mut attrs = AttrSet::new();
                for (k, v) in map {
                    attrs.set_path(vec![k.clone()], Expr::from_json(v));
                }
                Expr::Attrs(attrs)
            }
        }
    }
}

/// `lib.mkOverride priority value`: how every Thymis setting is given its priority.
pub fn mk_override(priority: i64, value: impl Into<Expr>) -> Expr {
    Expr::var("lib.mkOverride").apply(vec![Expr::Int(priority), value.into()])
}

/// The standard header of a Thymis module file: `{ pkgs, lib, inputs, config, ... }: body`.
pub fn module_function(body: AttrSet) -> Expr {
    Expr::Lambda(
        Param::Set(Pattern {
            args: ["pkgs", "lib", "inputs", "config"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            ellipsis: true,
            bind: None,
        }),
        Box::new(Expr::Attrs(body)),
    )
}

/// A single-argument function `arg: body`.
pub fn lambda(arg: &str, body: Expr) -> Expr {
    Expr::Lambda(Param::Ident(arg.to_owned()), Box::new(body))
}
