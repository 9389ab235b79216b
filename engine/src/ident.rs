//! The one way this project writes a name into SQL text.
//!
//! Every identifier is double-quoted, always, with embedded quotes doubled: `a"b` becomes
//! `"a""b"`. Quoting always (rather than only when needed, as `quote_ident` does) means no keyword
//! list to keep in step with the server and no case-folding surprise: the name in the catalog is the
//! name in the SQL. Values never go through here: they are bound as `$n` parameters.

/// Surround `text` with `quote`, doubling every `quote` inside.
fn quote_with(text: &str, quote: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for ch in text.chars() {
        if ch == quote {
            out.push(quote);
        }
        out.push(ch);
    }
    out.push(quote);
    out
}

/// Quote one identifier.
pub fn quote_ident(name: &str) -> String {
    quote_with(name, '"')
}

/// Quote a schema-qualified name: `"schema"."name"`.
pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A name as PostgreSQL prints it in messages: bare when it is a plain lower-case identifier,
/// quoted otherwise. For messages only, never for SQL text.
pub fn display_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

/// `schema.name` for messages.
pub fn display_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", display_ident(schema), display_ident(name))
}

/// A SQL string literal, for the few places where SQL text cannot take a `$n` parameter (DDL such
/// as a trigger's arguments) or carries a constant of this project's own: `'it''s'`. A value with a
/// backslash becomes an `E''` literal with the backslashes doubled, as PostgreSQL's own
/// `quote_literal` does, so the text means the same whatever `standard_conforming_strings` is.
pub fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E{}", quote_with(&value.replace('\\', "\\\\"), '\''))
    } else {
        quote_with(value, '\'')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_every_identifier() {
        assert_eq!(quote_ident("customers"), "\"customers\"");
        assert_eq!(quote_ident("CUSTOMER_ID"), "\"CUSTOMER_ID\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("x; DROP TABLE t; --"),
            "\"x; DROP TABLE t; --\""
        );
        assert_eq!(quote_ident(""), "\"\"");
        assert_eq!(quote_ident("ünïcødé"), "\"ünïcødé\"");
    }

    #[test]
    fn quoted_text_has_balanced_quotes() {
        for name in ["\"", "\"\"", "a\"", "\"a", "a\"\"b", "select"] {
            let q = quote_ident(name);
            let inner = &q[1..q.len() - 1];
            // every quote inside comes in pairs, so the identifier cannot end early
            assert_eq!(inner.replace("\"\"", "").matches('"').count(), 0, "{q}");
        }
    }

    #[test]
    fn qualified_names() {
        assert_eq!(quote_qualified("my schema", "T"), "\"my schema\".\"T\"");
        assert_eq!(
            display_qualified("production", "customers"),
            "production.customers"
        );
        assert_eq!(
            display_qualified("production", "Customers"),
            "production.\"Customers\""
        );
    }

    #[test]
    fn literals_double_single_quotes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("\\"), "E'\\\\'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }
}
