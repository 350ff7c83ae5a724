//! SOQL: a lexer, a recursive-descent parser to an AST, a compiler that resolves names
//! against the schema, and an evaluator over the org's tables.
//!
//! Errors carry Salesforce's codes and message shapes: the query line, a caret under the
//! offending token, `ERROR at Row:R:Column:C`, then the reason.

pub mod ast;
pub mod eval;
pub mod lexer;
pub mod parser;
mod render;

pub use eval::{compile, CompiledQuery, QueryOutput};
pub use parser::parse;

use crate::error::SfError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

impl SoqlError {
    fn at(
        code: &'static str,
        source: &str,
        row: usize,
        column: usize,
        reason: String,
    ) -> SoqlError {
        let line = source.lines().nth(row.saturating_sub(1)).unwrap_or(source);
        let caret = " ".repeat(column.saturating_sub(1));
        SoqlError {
            code,
            message: format!("{line}\n{caret}^\nERROR at Row:{row}:Column:{column}\n{reason}"),
        }
    }

    pub fn malformed_at(source: &str, row: usize, column: usize, reason: String) -> SoqlError {
        SoqlError::at("MALFORMED_QUERY", source, row, column, reason)
    }

    pub fn invalid_field_at(source: &str, row: usize, column: usize, reason: String) -> SoqlError {
        SoqlError::at("INVALID_FIELD", source, row, column, reason)
    }

    pub fn invalid_type_at(source: &str, row: usize, column: usize, reason: String) -> SoqlError {
        SoqlError::at("INVALID_TYPE", source, row, column, reason)
    }

    pub fn filter_at(source: &str, row: usize, column: usize, reason: String) -> SoqlError {
        SoqlError::at("INVALID_QUERY_FILTER_OPERATOR", source, row, column, reason)
    }

    pub fn plain(code: &'static str, message: impl Into<String>) -> SoqlError {
        SoqlError {
            code,
            message: message.into(),
        }
    }
}

impl From<SoqlError> for SfError {
    fn from(err: SoqlError) -> SfError {
        SfError::new(400, err.code, err.message)
    }
}
