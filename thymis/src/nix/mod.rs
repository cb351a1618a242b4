//! Nix generation: a typed expression builder and printer, the project flake renderer,
//! flake references and syntax checking of user-written Nix.

mod expr;
pub mod flake;
pub mod flake_ref;
pub mod log;
pub mod prefetch;
mod print;
mod syntax;

pub use expr::{
    lambda, mk_override, module_function, AttrSet, BinOp, Binding, Expr, NixString, Param, Pattern,
    StrPart,
};
pub use print::{attr_name, is_identifier};
pub use syntax::{check_syntax, NixSyntaxError};
