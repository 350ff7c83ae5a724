//! The SOQL syntax tree. Names are kept as written, with their position, until the compiler
//! resolves them against the schema.

#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub text: String,
    pub row: usize,
    pub column: usize,
}

/// A dotted field path: `Name`, `Profile.UserLicense.Name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub parts: Vec<Name>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field(Path),
    Count,
    /// A child relationship subquery: `(SELECT Id FROM PermissionSetAssignments)`.
    Subquery(Box<Query>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Name,
    pub filter: Option<Condition>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Number(f64),
    Bool(bool),
    Null,
    Date(i32),
    DateTime(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        path: Path,
        op: CompareOp,
        value: Literal,
        value_at: (usize, usize),
    },
    In {
        path: Path,
        negated: bool,
        values: InValues,
        value_at: (usize, usize),
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum InValues {
    List(Vec<Literal>),
    /// A semi-join (`IN`) or anti-join (`NOT IN`) on one field of another object.
    Subquery(Box<Query>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub path: Path,
    pub descending: bool,
    pub nulls_last: bool,
}
