//! Recursive-descent SOQL parser.
//!
//! ```text
//! query     := SELECT item (',' item)* FROM name [WHERE or] [ORDER BY order (',' order)*]
//!              [LIMIT n] [OFFSET n]
//! item      := COUNT '(' ')' | '(' query ')' | path
//! or        := and (OR and)*          -- mixing AND and OR needs parentheses, as in SOQL
//! and       := not (AND not)*
//! not       := NOT not | '(' or ')' | path op literal | path [NOT] IN '(' (literals | query) ')'
//! ```

use super::ast::*;
use super::lexer::{tokenize, Spanned, Token};
use super::SoqlError;

pub fn parse(source: &str) -> Result<Query, SoqlError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        source,
        tokens,
        at: 0,
    };
    let query = parser.query()?;
    parser.expect_end()?;
    Ok(query)
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Spanned>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Spanned {
        &self.tokens[self.at]
    }

    fn next(&mut self) -> Spanned {
        let token = self.tokens[self.at].clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        token
    }

    fn unexpected(&self, token: &Spanned) -> SoqlError {
        let reason = if token.token == Token::End {
            "unexpected token: <EOF>".to_owned()
        } else {
            format!("unexpected token: {}", token.text)
        };
        SoqlError::malformed_at(self.source, token.row, token.column, reason)
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.peek().token, Token::Ident(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.is_keyword(keyword) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), SoqlError> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.unexpected(&self.peek().clone()))
        }
    }

    fn expect(&mut self, expected: Token) -> Result<Spanned, SoqlError> {
        if self.peek().token == expected {
            Ok(self.next())
        } else {
            Err(self.unexpected(&self.peek().clone()))
        }
    }

    fn expect_end(&mut self) -> Result<(), SoqlError> {
        if self.peek().token == Token::End {
            Ok(())
        } else {
            Err(self.unexpected(&self.peek().clone()))
        }
    }

    fn name(&mut self) -> Result<Name, SoqlError> {
        let token = self.next();
        match &token.token {
            Token::Ident(text) if !is_reserved(text) => Ok(Name {
                text: text.clone(),
                row: token.row,
                column: token.column,
            }),
            _ => Err(self.unexpected(&token)),
        }
    }

    fn path(&mut self) -> Result<Path, SoqlError> {
        let mut parts = vec![self.name()?];
        while self.peek().token == Token::Dot {
            self.next();
            parts.push(self.name()?);
        }
        Ok(Path { parts })
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_keyword("SELECT")?;
        let mut select = vec![self.select_item()?];
        while self.peek().token == Token::Comma {
            self.next();
            select.push(self.select_item()?);
        }
        self.expect_keyword("FROM")?;
        let from = self.name()?;
        let filter = if self.eat_keyword("WHERE") {
            Some(self.or_condition()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.eat_keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                order_by.push(self.order_item()?);
                if self.peek().token != Token::Comma {
                    break;
                }
                self.next();
            }
        }
        let limit = if self.eat_keyword("LIMIT") {
            Some(self.count()?)
        } else {
            None
        };
        let offset = if self.eat_keyword("OFFSET") {
            Some(self.count()?)
        } else {
            None
        };
        Ok(Query {
            select,
            from,
            filter,
            order_by,
            limit,
            offset,
        })
    }

    fn count(&mut self) -> Result<u64, SoqlError> {
        let token = self.next();
        match &token.token {
            Token::Number(text) => text.parse::<u64>().map_err(|_| self.unexpected(&token)),
            _ => Err(self.unexpected(&token)),
        }
    }

    fn select_item(&mut self) -> Result<SelectItem, SoqlError> {
        if self.is_keyword("COUNT")
            && self.tokens.get(self.at + 1).map(|t| &t.token) == Some(&Token::LParen)
        {
            self.next();
            self.next();
            self.expect(Token::RParen)?;
            return Ok(SelectItem::Count);
        }
        if self.peek().token == Token::LParen {
            self.next();
            let query = self.query()?;
            self.expect(Token::RParen)?;
            return Ok(SelectItem::Subquery(Box::new(query)));
        }
        Ok(SelectItem::Field(self.path()?))
    }

    fn order_item(&mut self) -> Result<OrderItem, SoqlError> {
        let path = self.path()?;
        let descending = if self.eat_keyword("DESC") {
            true
        } else {
            self.eat_keyword("ASC");
            false
        };
        // Salesforce's default: nulls first ascending, last descending.
        let mut nulls_last = descending;
        if self.eat_keyword("NULLS") {
            if self.eat_keyword("LAST") {
                nulls_last = true;
            } else {
                self.expect_keyword("FIRST")?;
                nulls_last = false;
            }
        }
        Ok(OrderItem {
            path,
            descending,
            nulls_last,
        })
    }

    fn or_condition(&mut self) -> Result<Condition, SoqlError> {
        let first = self.not_condition()?;
        let conjunction = if self.is_keyword("AND") {
            "AND"
        } else if self.is_keyword("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let mut items = vec![first];
        while self.eat_keyword(conjunction) {
            items.push(self.not_condition()?);
            let other = if conjunction == "AND" { "OR" } else { "AND" };
            if self.is_keyword(other) {
                // SOQL refuses `a AND b OR c`: the grouping must be spelt out.
                return Err(self.unexpected(&self.peek().clone()));
            }
        }
        Ok(if conjunction == "AND" {
            Condition::And(items)
        } else {
            Condition::Or(items)
        })
    }

    fn not_condition(&mut self) -> Result<Condition, SoqlError> {
        if self.eat_keyword("NOT") {
            return Ok(Condition::Not(Box::new(self.not_condition()?)));
        }
        if self.peek().token == Token::LParen {
            self.next();
            let inner = self.or_condition()?;
            self.expect(Token::RParen)?;
            return Ok(inner);
        }
        let path = self.path()?;
        let operator = self.peek().clone();
        let negated_in = self.is_keyword("NOT");
        if negated_in || self.is_keyword("IN") {
            self.next();
            if negated_in {
                self.expect_keyword("IN")?;
            }
            let open = self.expect(Token::LParen)?;
            let value_at = (open.row, open.column);
            let values = if self.is_keyword("SELECT") {
                InValues::Subquery(Box::new(self.query()?))
            } else {
                let mut values = vec![self.literal()?.0];
                while self.peek().token == Token::Comma {
                    self.next();
                    values.push(self.literal()?.0);
                }
                InValues::List(values)
            };
            self.expect(Token::RParen)?;
            return Ok(Condition::In {
                path,
                negated: negated_in,
                values,
                value_at,
            });
        }
        let op = match &operator.token {
            Token::Op("=") => CompareOp::Eq,
            Token::Op("!=") => CompareOp::Ne,
            Token::Op("<") => CompareOp::Lt,
            Token::Op("<=") => CompareOp::Le,
            Token::Op(">") => CompareOp::Gt,
            Token::Op(">=") => CompareOp::Ge,
            Token::Ident(word) if word.eq_ignore_ascii_case("LIKE") => CompareOp::Like,
            _ => return Err(self.unexpected(&operator)),
        };
        self.next();
        let (value, value_at) = self.literal()?;
        Ok(Condition::Compare {
            path,
            op,
            value,
            value_at,
        })
    }

    fn literal(&mut self) -> Result<(Literal, (usize, usize)), SoqlError> {
        let token = self.next();
        let at = (token.row, token.column);
        let literal = match &token.token {
            Token::Str(s) => Literal::Str(s.clone()),
            Token::Number(n) => Literal::Number(n.parse().map_err(|_| self.unexpected(&token))?),
            Token::Date(d) => Literal::Date(*d),
            Token::DateTime(t) => Literal::DateTime(*t),
            Token::Ident(word) if word.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Token::Ident(word) if word.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Token::Ident(word) if word.eq_ignore_ascii_case("null") => Literal::Null,
            _ => return Err(self.unexpected(&token)),
        };
        Ok((literal, at))
    }
}

fn is_reserved(word: &str) -> bool {
    const RESERVED: &[&str] = &[
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT",
        "OFFSET", "ASC", "DESC", "NULLS", "NULL", "TRUE", "FALSE",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_full_grammar() {
        let query = parse(
            "SELECT Id, Profile.UserLicense.Name, (SELECT Id FROM PermissionSetAssignments WHERE IsActive = true) \
             FROM User WHERE (IsActive = true OR LastLoginDate = null) AND NOT Username LIKE '%test%' \
             AND Id IN (SELECT AssigneeId FROM PermissionSetAssignment) AND UserType NOT IN ('Guest', 'CspLitePortal') \
             ORDER BY LastName DESC NULLS LAST, Id LIMIT 10 OFFSET 5",
        )
        .unwrap();
        assert_eq!(query.select.len(), 3);
        assert_eq!(query.from.text, "User");
        assert_eq!(query.limit, Some(10));
        assert_eq!(query.offset, Some(5));
        assert!(query.order_by[0].descending && query.order_by[0].nulls_last);
        assert!(!query.order_by[1].descending && !query.order_by[1].nulls_last);
        let Some(Condition::And(parts)) = query.filter else {
            panic!("an AND")
        };
        assert_eq!(parts.len(), 4);
        assert!(matches!(parts[0], Condition::Or(_)));
        assert!(matches!(parts[1], Condition::Not(_)));
    }

    #[test]
    fn count_and_literals() {
        let query = parse("select count() from User where CreatedDate >= 2024-01-01T00:00:00Z and Name = 'It\\'s'").unwrap();
        assert_eq!(query.select, vec![SelectItem::Count]);
    }

    #[test]
    fn mixing_and_with_or_needs_parentheses() {
        let err = parse(
            "SELECT Id FROM User WHERE IsActive = true AND UserType = 'Standard' OR Id = null",
        )
        .unwrap_err();
        assert_eq!(err.code, "MALFORMED_QUERY");
        assert!(
            err.message.contains("unexpected token: OR"),
            "{}",
            err.message
        );
    }

    #[test]
    fn errors_point_at_the_token() {
        let err = parse("SELECT Id FORM User").unwrap_err();
        assert_eq!(err.code, "MALFORMED_QUERY");
        assert_eq!(
            err.message,
            "SELECT Id FORM User\n          ^\nERROR at Row:1:Column:11\nunexpected token: FORM"
        );
    }
}
