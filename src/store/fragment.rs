//! A piece of SQL with its parameters, made outside the store (SCIM filters compile to one)
//! and run by each backend through its query builder: the text comes from constants of the
//! code, every value from a request is a parameter.

/// A value bound to a query parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// SQL text made by this module from constants.
    Sql(String),
    Bind(Bind),
}

/// SQL with its parameters in order, for the store to run through its query builder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pub pieces: Vec<Piece>,
}

impl Sql {
    pub fn push(&mut self, text: &str) {
        if let Some(Piece::Sql(last)) = self.pieces.last_mut() {
            last.push_str(text);
        } else {
            self.pieces.push(Piece::Sql(text.to_owned()));
        }
    }

    pub fn bind(&mut self, value: Bind) {
        self.pieces.push(Piece::Bind(value));
    }

    pub fn bind_text(&mut self, value: impl Into<String>) {
        self.bind(Bind::Text(value.into()));
    }

    /// The text with `?` for each parameter (for tests and logs).
    pub fn text(&self) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Sql(s) => s.as_str(),
                Piece::Bind(_) => "?",
            })
            .collect()
    }

    pub fn binds(&self) -> Vec<&Bind> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Bind(b) => Some(b),
                Piece::Sql(_) => None,
            })
            .collect()
    }
}
