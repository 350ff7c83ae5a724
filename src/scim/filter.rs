//! SCIM filters (RFC 7644 section 3.4.2.2): the whole grammar, parsed into a [`Filter`] that
//! [`super::sql`] turns into SQL. Operators and keywords are case-insensitive; precedence is
//! `not` over `and` over `or`; parentheses group; `attr[...]` filters a complex attribute's
//! values; attribute paths may carry their schema URN
//! (`urn:ietf:params:scim:schemas:core:2.0:User:userName`).
//!
//! PATCH paths (`members[value eq "x"].display`) use the same parser through [`parse_path`].

use std::fmt;

use serde_json::Value;

use super::error::ScimError;

/// `[schema:]name[.sub]`, names as written (matching is case-insensitive).
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub schema: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Co => "co",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: Op,
        value: Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued (or complex) `attr` matches `filter`,
    /// whose paths are relative to it.
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

/// A PATCH operation's target: an attribute, optionally narrowed to the values matching a
/// filter, optionally a sub-attribute of those values.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after `]` (`members[value eq "x"].display`).
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// A name, keyword, number or literal, as written.
    Word(String),
    Str(String),
}

const MAX_FILTER_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

fn invalid(message: impl Into<String>) -> ScimError {
    ScimError::invalid_filter(message)
}

fn tokenize(text: &str) -> Result<Vec<Token>, ScimError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '[' => {
                chars.next();
                tokens.push(Token::OpenBracket);
            }
            ']' => {
                chars.next();
                tokens.push(Token::CloseBracket);
            }
            '"' => {
                // A JSON string: find its end, honouring escapes, and let serde decode it.
                chars.next();
                let mut escaped = false;
                let mut end = None;
                for (i, ch) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if ch == '\\' {
                        escaped = true;
                    } else if ch == '"' {
                        end = Some(i);
                        break;
                    }
                }
                let end = end.ok_or_else(|| {
                    invalid(format!(
                        "the string starting at character {at} is not closed with `\"`"
                    ))
                })?;
                let decoded: String = serde_json::from_str(&text[at..=end]).map_err(|err| {
                    invalid(format!(
                        "the string starting at character {at} is not a valid JSON string: {err}"
                    ))
                })?;
                tokens.push(Token::Str(decoded));
            }
            _ => {
                let start = at;
                let mut end = text.len();
                while let Some(&(i, ch)) = chars.peek() {
                    if matches!(ch, ' ' | '\t' | '\n' | '\r' | '(' | ')' | '[' | ']' | '"') {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token::Word(text[start..end].to_owned()));
            }
        }
    }
    Ok(tokens)
}

/// Parses `schema:name.sub` and checks each part is an attribute name.
pub fn parse_attr_path(word: &str) -> Result<AttrPath, ScimError> {
    let urn = word.len() > 4
        && word
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (schema, rest) = if urn {
        match word.rfind(':') {
            Some(at) => (Some(word[..at].to_owned()), &word[at + 1..]),
            None => (None, word),
        }
    } else {
        (None, word)
    };
    let mut parts = rest.splitn(2, '.');
    let name = parts.next().unwrap_or_default();
    let sub = parts.next();
    let valid = |part: &str| {
        let mut chars = part.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '$')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !valid(name) || sub.is_some_and(|s| !valid(s)) {
        return Err(invalid(format!(
            "`{word}` is not an attribute path (expected a name such as `userName`, `name.familyName` or `urn:...:User:userName`)"
        )));
    }
    Ok(AttrPath {
        schema,
        name: name.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid(format!(
                "the filter nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    /// or-expression: and-expression *("or" and-expression)
    fn or(&mut self, inner: bool) -> Result<Filter, ScimError> {
        let mut left = self.and(inner)?;
        while self.keyword("or") {
            self.next();
            let right = self.and(inner)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, inner: bool) -> Result<Filter, ScimError> {
        let mut left = self.unary(inner)?;
        while self.keyword("and") {
            self.next();
            let right = self.unary(inner)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, inner: bool) -> Result<Filter, ScimError> {
        self.enter()?;
        let result = self.unary_inner(inner);
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self, inner: bool) -> Result<Filter, ScimError> {
        if self.keyword("not") && matches!(self.tokens.get(self.at + 1), Some(Token::Open)) {
            self.next();
            self.next();
            let filter = self.or(inner)?;
            self.expect_close()?;
            return Ok(Filter::Not(Box::new(filter)));
        }
        match self.next() {
            Some(Token::Open) => {
                let filter = self.or(inner)?;
                self.expect_close()?;
                Ok(filter)
            }
            Some(Token::Word(word)) => {
                let path = parse_attr_path(&word)?;
                if matches!(self.peek(), Some(Token::OpenBracket)) {
                    if inner {
                        return Err(invalid(format!(
                            "`{word}[` inside `[...]`: value filters do not nest"
                        )));
                    }
                    self.next();
                    let filter = self.or(true)?;
                    match self.next() {
                        Some(Token::CloseBracket) => {}
                        _ => return Err(invalid(format!("`{word}[` is not closed with `]`"))),
                    }
                    if path.sub.is_some() {
                        return Err(invalid(format!(
                            "`{path}[...]`: a value filter applies to an attribute, not a sub-attribute"
                        )));
                    }
                    return Ok(Filter::ValuePath {
                        attr: path,
                        filter: Box::new(filter),
                    });
                }
                let op_word = match self.next() {
                    Some(Token::Word(w)) => w,
                    Some(other) => {
                        return Err(invalid(format!(
                            "after `{word}` expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr), found {}",
                            describe(&other)
                        )))
                    }
                    None => {
                        return Err(invalid(format!(
                            "the filter ends after `{word}`: expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"
                        )))
                    }
                };
                if op_word.eq_ignore_ascii_case("pr") {
                    return Ok(Filter::Present(path));
                }
                let op = Op::parse(&op_word).ok_or_else(|| {
                    invalid(format!(
                        "`{op_word}` is not an operator (expected eq, ne, co, sw, ew, gt, ge, lt, le or pr)"
                    ))
                })?;
                let value = match self.next() {
                    Some(Token::Str(s)) => Value::String(s),
                    Some(Token::Word(w)) => literal(&w)?,
                    Some(other) => {
                        return Err(invalid(format!(
                            "`{path} {}` needs a value (a \"string\", number, true, false or null), found {}",
                            op.as_str(),
                            describe(&other)
                        )))
                    }
                    None => {
                        return Err(invalid(format!(
                            "the filter ends after `{path} {}`: expected a value",
                            op.as_str()
                        )))
                    }
                };
                Ok(Filter::Compare { path, op, value })
            }
            Some(other) => Err(invalid(format!(
                "expected an attribute, `(` or `not (`, found {}",
                describe(&other)
            ))),
            None => Err(invalid("the filter ends where an expression was expected")),
        }
    }

    fn expect_close(&mut self) -> Result<(), ScimError> {
        match self.next() {
            Some(Token::Close) => Ok(()),
            Some(other) => Err(invalid(format!("expected `)`, found {}", describe(&other)))),
            None => Err(invalid("a `(` is not closed")),
        }
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::OpenBracket => "`[`".into(),
        Token::CloseBracket => "`]`".into(),
        Token::Word(w) => format!("`{w}`"),
        Token::Str(s) => format!("the string \"{s}\""),
    }
}

fn literal(word: &str) -> Result<Value, ScimError> {
    match word.to_ascii_lowercase().as_str() {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        "null" => return Ok(Value::Null),
        _ => {}
    }
    serde_json::from_str::<serde_json::Number>(word)
        .map(Value::Number)
        .map_err(|_| {
            invalid(format!(
                "`{word}` is not a value: quote strings (\"{word}\"); other values are numbers, true, false and null"
            ))
        })
}

fn parser(text: &str) -> Result<Parser, ScimError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(invalid(format!(
            "the filter is {} characters long; at most {MAX_FILTER_LEN} are accepted",
            text.len()
        )));
    }
    Ok(Parser {
        tokens: tokenize(text)?,
        at: 0,
        depth: 0,
    })
}

/// Parses a whole filter.
pub fn parse(text: &str) -> Result<Filter, ScimError> {
    let mut parser = parser(text)?;
    if parser.tokens.is_empty() {
        return Err(invalid("the filter is empty"));
    }
    let filter = parser.or(false)?;
    match parser.next() {
        None => Ok(filter),
        Some(extra) => Err(invalid(format!(
            "unexpected {} after a complete expression (join expressions with `and` or `or`)",
            describe(&extra)
        ))),
    }
}

/// Parses a PATCH `path`: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`. Errors are
/// `invalidPath`.
pub fn parse_path(text: &str) -> Result<PatchPath, ScimError> {
    let as_path = |err: ScimError| ScimError::invalid_path(err.detail);
    let text = text.trim();
    let Some(open) = text.find('[') else {
        let attr = parse_attr_path(text).map_err(as_path)?;
        return Ok(PatchPath {
            attr,
            filter: None,
            sub: None,
        });
    };
    let close = text.rfind(']').ok_or_else(|| {
        ScimError::invalid_path(format!("`{text}`: the `[` is not closed with `]`"))
    })?;
    let attr = parse_attr_path(&text[..open]).map_err(as_path)?;
    let filter = parse(&text[open + 1..close]).map_err(as_path)?;
    let rest = &text[close + 1..];
    let sub = match rest.strip_prefix('.') {
        Some(sub) if !sub.is_empty() => Some(sub.to_owned()),
        None if rest.is_empty() => None,
        _ => {
            return Err(ScimError::invalid_path(format!(
                "`{text}`: after `]` only `.subAttribute` may follow"
            )))
        }
    };
    Ok(PatchPath {
        attr,
        filter: Some(filter),
        sub,
    })
}

#[cfg(test)]
mod fuzz {
    //! The parser and the SQL compiler on arbitrary input: made of the grammar's own pieces,
    //! so that most of it gets deep into both, and of anything at all. Neither may panic; a
    //! filter is parsed, or refused as `invalidFilter` (a 400), never anything else.

    use proptest::prelude::*;

    use super::*;
    use crate::scim::criteria::{resolve, Target};
    use crate::scim::schema::RESOURCE_TYPES;
    use crate::store::scim::{criterion_sql, ScimTable};
    use crate::store::Backend;

    fn pieces() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(vec![
            "userName",
            "name.familyName",
            "emails",
            "emails.value",
            "entitlements",
            "roles",
            "members",
            "groups",
            "display",
            "value",
            "type",
            "primary",
            "active",
            "meta.created",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "urn:",
            "eq",
            "ne",
            "co",
            "sw",
            "ew",
            "gt",
            "ge",
            "lt",
            "le",
            "pr",
            "and",
            "or",
            "not",
            "(",
            ")",
            "[",
            "]",
            " ",
            "\"x\"",
            "\"\"",
            "\"\\u00e9\"",
            "\"\\\"",
            "true",
            "false",
            "null",
            "5",
            "-1e999",
            "\"2024-01-01T00:00:00Z\"",
            ".",
            "\"",
            "\\",
            "%",
        ]);
        proptest::collection::vec(piece, 0..40).prop_map(|p| p.join(" "))
    }

    fn check(text: &str) {
        if let Err(err) = parse_path(text) {
            assert_eq!(err.status.as_u16(), 400, "{text}: {err:?}");
        }
        match parse(text) {
            Ok(filter) => {
                for resource in RESOURCE_TYPES {
                    match resolve(&Target { resource }, &filter) {
                        Ok(criterion) => {
                            for backend in [Backend::Sqlite, Backend::Postgres] {
                                criterion_sql(backend, ScimTable::Accounts, &criterion);
                            }
                        }
                        Err(err) => assert_eq!(err.status.as_u16(), 400, "{text}: {err:?}"),
                    }
                }
            }
            Err(err) => {
                assert_eq!(err.scim_type, Some("invalidFilter"), "{text}: {err:?}");
                assert_eq!(err.status.as_u16(), 400);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn grammar_pieces_never_panic(text in pieces()) {
            check(&text);
        }

        #[test]
        fn any_text_never_panics(text in ".{0,300}") {
            check(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(name: &str) -> AttrPath {
        parse_attr_path(name).unwrap()
    }

    #[test]
    fn a_name_starting_with_wide_characters_is_refused_not_a_panic() {
        // Found by the fuzz tests: slicing four bytes of `繘Ѩ` cut a character in two.
        for text in ["繘Ѩ/0< eq \"x\"", "uЯn:x eq \"y\"", "ürn:a:b pr"] {
            assert_eq!(parse(text).unwrap_err().scim_type, Some("invalidFilter"));
        }
    }

    fn cmp(name: &str, op: Op, value: Value) -> Filter {
        Filter::Compare {
            path: path(name),
            op,
            value,
        }
    }

    #[test]
    fn every_operator_and_literal() {
        for (word, op) in [
            ("eq", Op::Eq),
            ("NE", Op::Ne),
            ("co", Op::Co),
            ("Sw", Op::Sw),
            ("ew", Op::Ew),
            ("gt", Op::Gt),
            ("ge", Op::Ge),
            ("lt", Op::Lt),
            ("le", Op::Le),
        ] {
            assert_eq!(
                parse(&format!("userName {word} \"bjensen\"")).unwrap(),
                cmp("userName", op, json!("bjensen"))
            );
        }
        assert_eq!(
            parse("active eq True").unwrap(),
            cmp("active", Op::Eq, json!(true))
        );
        assert_eq!(parse("x eq null").unwrap(), cmp("x", Op::Eq, Value::Null));
        assert_eq!(parse("n gt 4.5").unwrap(), cmp("n", Op::Gt, json!(4.5)));
        assert_eq!(parse("title pr").unwrap(), Filter::Present(path("title")));
    }

    #[test]
    fn precedence_not_over_and_over_or() {
        let a = || cmp("a", Op::Eq, json!("1"));
        let b = || cmp("b", Op::Eq, json!("2"));
        let c = || cmp("c", Op::Eq, json!("3"));
        assert_eq!(
            parse(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap(),
            Filter::Or(
                Box::new(a()),
                Box::new(Filter::And(Box::new(b()), Box::new(c())))
            )
        );
        assert_eq!(
            parse(r#"(a eq "1" or b eq "2") and not (c eq "3")"#).unwrap(),
            Filter::And(
                Box::new(Filter::Or(Box::new(a()), Box::new(b()))),
                Box::new(Filter::Not(Box::new(c())))
            )
        );
    }

    #[test]
    fn value_paths_urns_and_escapes() {
        let parsed =
            parse(r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp"]"#)
                .unwrap();
        let Filter::Or(left, _) = parsed else {
            panic!("{parsed:?}")
        };
        assert!(matches!(*left, Filter::ValuePath { ref attr, .. } if attr.name == "emails"));
        let urn = parse(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "005""#,
        )
        .unwrap();
        assert_eq!(
            urn,
            Filter::Compare {
                path: AttrPath {
                    schema: Some(
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into()
                    ),
                    name: "manager".into(),
                    sub: Some("value".into())
                },
                op: Op::Eq,
                value: json!("005")
            }
        );
        assert_eq!(
            parse(r#"displayName eq "a \"quoted\" (name)""#).unwrap(),
            cmp("displayName", Op::Eq, json!("a \"quoted\" (name)"))
        );
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("userName", "ends after"),
            ("userName eqq \"x\"", "not an operator"),
            ("userName eq", "expected a value"),
            ("userName eq bjensen", "quote strings"),
            ("(userName eq \"x\"", "not closed"),
            (
                "userName eq \"x\" userName eq \"y\"",
                "after a complete expression",
            ),
            ("userName eq \"x", "not closed"),
            ("emails[type eq \"work\"", "not closed"),
            ("emails[a[b eq \"1\"]]", "do not nest"),
            ("1abc eq \"x\"", "not an attribute path"),
            ("and eq \"x\" and", "ends where an expression"),
            (") a eq \"1\"", "expected an attribute"),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.scim_type, Some("invalidFilter"), "{text}");
            assert!(err.detail.contains(says), "{text}: {}", err.detail);
        }
        let deep = format!("{}a eq \"1\"{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().detail.contains("deeper"));
    }

    #[test]
    fn patch_paths() {
        assert_eq!(
            parse_path("members[value eq \"005A\"]").unwrap(),
            PatchPath {
                attr: path("members"),
                filter: Some(cmp("value", Op::Eq, json!("005A"))),
                sub: None
            }
        );
        let with_sub = parse_path("emails[type eq \"work\"].value").unwrap();
        assert_eq!(with_sub.sub.as_deref(), Some("value"));
        assert_eq!(
            parse_path("name.familyName").unwrap().attr.sub.as_deref(),
            Some("familyName")
        );
        let err = parse_path("members[value eq").unwrap_err();
        assert_eq!(err.scim_type, Some("invalidPath"));
    }
}
