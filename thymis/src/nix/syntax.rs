//! Syntax checking of Nix text written by users (the Custom Nix module), with positions that
//! point the user at the mistake.

/// A Nix syntax error with a 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct NixSyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses `text` as a Nix expression and reports the first syntax error.
///
/// ```
/// let err = thymis::nix::check_syntax("{\n  a = 1\n}").unwrap_err();
/// assert_eq!((err.line, err.column), (3, 1));
/// ```
pub fn check_syntax(text: &str) -> Result<(), NixSyntaxError> {
    let parse = rnix::Root::parse(text);
    let Some(error) = parse.errors().first() else {
        return Ok(());
    };
    use rnix::ParseError as E;
    let (offset, message) = match error {
        E::Unexpected(range) => (range.start().into(), "unexpected input".to_owned()),
        E::UnexpectedExtra(range) => (
            range.start().into(),
            "unexpected text after the end of the expression".to_owned(),
        ),
        E::UnexpectedWanted(got, range, wanted) => (
            range.start().into(),
            format!(
                "unexpected {}, expected {}",
                kind_name(*got),
                kinds_list(wanted)
            ),
        ),
        E::UnexpectedDoubleBind(range) => {
            (range.start().into(), "pattern is bound twice".to_owned())
        }
        E::UnexpectedEOF => (text.len(), "unexpected end of input".to_owned()),
        E::UnexpectedEOFWanted(wanted) => (
            text.len(),
            format!("unexpected end of input, expected {}", kinds_list(wanted)),
        ),
        E::DuplicatedArgs(range, name) => (
            range.start().into(),
            format!("argument `{name}` is given twice"),
        ),
        E::RecursionLimitExceeded => (text.len(), "expression is nested too deeply".to_owned()),
        other => (text.len(), other.to_string()),
    };
    let (line, column) = line_column(text, offset);
    Err(NixSyntaxError {
        line,
        column,
        message,
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// `TOKEN_SEMICOLON` → `` `;` ``, `NODE_ATTR_SET` → `attr set`.
fn kind_name(kind: rnix::SyntaxKind) -> String {
    use rnix::SyntaxKind as K;
    let symbol = match kind {
        K::TOKEN_SEMICOLON => ";",
        K::TOKEN_ASSIGN => "=",
        K::TOKEN_L_BRACE => "{",
        K::TOKEN_R_BRACE => "}",
        K::TOKEN_L_PAREN => "(",
        K::TOKEN_R_PAREN => ")",
        K::TOKEN_L_BRACK => "[",
        K::TOKEN_R_BRACK => "]",
        K::TOKEN_COLON => ":",
        K::TOKEN_COMMA => ",",
        K::TOKEN_DOT => ".",
        K::TOKEN_STRING_START => "\"",
        K::TOKEN_IN => "in",
        K::TOKEN_THEN => "then",
        K::TOKEN_ELSE => "else",
        K::TOKEN_REC => "rec",
        K::TOKEN_IDENT => return "a name".to_owned(),
        _ => "",
    };
    if !symbol.is_empty() {
        return format!("`{symbol}`");
    }
    let raw = format!("{kind:?}");
    let name = raw
        .strip_prefix("TOKEN_")
        .or_else(|| raw.strip_prefix("NODE_"))
        .unwrap_or(&raw);
    name.to_lowercase().replace('_', " ")
}

fn kinds_list(kinds: &[rnix::SyntaxKind]) -> String {
    let names: Vec<String> = kinds.iter().map(|k| kind_name(*k)).collect();
    names.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_text_passes() {
        assert_eq!(check_syntax("{ pkgs, ... }: { a = 1; }"), Ok(()));
    }

    #[test]
    fn missing_semicolon_points_at_next_line() {
        let err = check_syntax("{\n  a = 1\n  b = 2;\n}").unwrap_err();
        // `1\n  b` reads as an application, so Nix stumbles at the `=` after it.
        assert_eq!((err.line, err.column), (3, 5));
        assert_eq!(err.message, "unexpected `=`, expected `;`");
    }

    #[test]
    fn unterminated_input_points_at_end() {
        let err = check_syntax("{\n  a = [ 1 2\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 1));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let err = check_syntax("{ a = \"ü\"; b = ; }").unwrap_err();
        assert_eq!((err.line, err.column), (1, 16));
    }
}
