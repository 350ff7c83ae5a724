//! SOQL tokens. Keywords are case-insensitive; string literals use single quotes with
//! backslash escapes; date and date-time literals are bare (`2024-01-02`, `2024-01-02T03:04:05Z`).

use super::SoqlError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Ident(String),
    Str(String),
    Number(String),
    Date(i32),
    DateTime(i64),
    Comma,
    Dot,
    LParen,
    RParen,
    Colon,
    Op(&'static str),
    End,
}

/// A token and where it starts (1-based row and column), for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub row: usize,
    pub column: usize,
    pub text: String,
}

pub fn tokenize(source: &str) -> Result<Vec<Spanned>, SoqlError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let (mut row, mut line_start) = (1usize, 0usize);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            row += 1;
            line_start = i + 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let column = i - line_start + 1;
        let start = i;
        let token = match c {
            ',' => {
                i += 1;
                Token::Comma
            }
            '.' => {
                i += 1;
                Token::Dot
            }
            '(' => {
                i += 1;
                Token::LParen
            }
            ')' => {
                i += 1;
                Token::RParen
            }
            ':' => {
                i += 1;
                Token::Colon
            }
            '=' => {
                i += 1;
                Token::Op("=")
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                Token::Op("!=")
            }
            '<' if chars.get(i + 1) == Some(&'>') => {
                i += 2;
                Token::Op("!=")
            }
            '<' | '>' => {
                let op = match (c, chars.get(i + 1)) {
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', _) => "<",
                    _ => ">",
                };
                i += op.len();
                Token::Op(op)
            }
            '\'' => {
                i += 1;
                let mut value = String::new();
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(SoqlError::malformed_at(
                                source,
                                row,
                                column,
                                "unterminated string literal".to_owned(),
                            ))
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let escaped = match chars.get(i + 1) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some('b') => '\u{8}',
                                Some('f') => '\u{c}',
                                Some('\'') => '\'',
                                Some('"') => '"',
                                Some('\\') => '\\',
                                // Kept escaped: LIKE gives them their literal meaning.
                                Some('%') | Some('_') => {
                                    value.push('\\');
                                    chars[i + 1]
                                }
                                _ => {
                                    return Err(SoqlError::malformed_at(
                                        source,
                                        row,
                                        i - line_start + 1,
                                        "Invalid string literal. Illegal character sequence"
                                            .to_owned(),
                                    ))
                                }
                            };
                            value.push(escaped);
                            i += 2;
                        }
                        Some(other) => {
                            value.push(*other);
                            i += 1;
                        }
                    }
                }
                Token::Str(value)
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let mut end = i + 1;
                while end < chars.len()
                    && (chars[end].is_ascii_alphanumeric()
                        || matches!(chars[end], '.' | '-' | ':' | '+'))
                {
                    end += 1;
                }
                let text: String = chars[i..end].iter().collect();
                i = end;
                classify_number_or_date(&text).ok_or_else(|| {
                    SoqlError::malformed_at(
                        source,
                        row,
                        column,
                        format!("unexpected token: {text}"),
                    )
                })?
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut end = i + 1;
                while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                let text: String = chars[i..end].iter().collect();
                i = end;
                Token::Ident(text)
            }
            other => {
                return Err(SoqlError::malformed_at(
                    source,
                    row,
                    column,
                    format!("unexpected token: {other}"),
                ))
            }
        };
        let text: String = chars[start..i].iter().collect();
        tokens.push(Spanned {
            token,
            row,
            column,
            text,
        });
    }
    let column = chars.len() - line_start + 1;
    tokens.push(Spanned {
        token: Token::End,
        row,
        column,
        text: String::new(),
    });
    Ok(tokens)
}

fn classify_number_or_date(text: &str) -> Option<Token> {
    if text.parse::<f64>().is_ok() {
        return Some(Token::Number(text.to_owned()));
    }
    if text.contains('T') {
        return crate::record::parse_datetime(text).map(Token::DateTime);
    }
    crate::record::parse_date(text).map(Token::Date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_positions_and_literals_unescape() {
        let tokens = tokenize(
            "SELECT Id\nFROM User WHERE Name = 'O\\'Brien' AND CreatedDate > 2024-01-02T03:04:05Z",
        )
        .unwrap();
        assert_eq!(tokens[2].token, Token::Ident("FROM".into()));
        assert_eq!((tokens[2].row, tokens[2].column), (2, 1));
        assert!(tokens
            .iter()
            .any(|t| t.token == Token::Str("O'Brien".into())));
        assert!(tokens.iter().any(|t| matches!(t.token, Token::DateTime(_))));
    }

    #[test]
    fn an_unterminated_string_is_malformed() {
        let err = tokenize("SELECT Id FROM User WHERE Name = 'abc").unwrap_err();
        assert_eq!(err.code, "MALFORMED_QUERY");
    }
}
