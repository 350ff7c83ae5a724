//! Running SQL on either database, so that the store's queries are written once, as plain
//! Rust the compiler and editors can follow.
//!
//! A [`Sql`] is statement text and the values bound to its parameters (`$1`, `$2`... in the
//! text, or `?` pushed by [`Sql::push_bind`]), collected as [`Param`]s; it runs on a
//! [`Pool`], a [`Tx`] or a timed connection ([`On`]), and only there, in one place, becomes a
//! query of the backend's sqlx driver. Rows are read with `sqlx::FromRow`, derived once per row
//! type for both drivers. Where the two databases' SQL differs, the text comes from
//! [`Backend`] methods of the store (its dialect), never from input.

use std::borrow::Cow;

use provost_connector::times::{rfc3339, Timestamp};
use serde_json::value::RawValue;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::types::Json;
use sqlx::{Arguments, FromRow, PgPool, Postgres, Sqlite, SqlitePool};

use super::Backend;

/// A connection pool of one of the two databases.
#[derive(Clone)]
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub(super) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    pub(super) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    pub(super) async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// How many connections the pool holds, how many of them are idle, and its maximum.
    pub(super) fn usage(&self) -> super::PoolUsage {
        let (open, idle, max) = match self {
            Pool::Sqlite(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
            Pool::Postgres(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
        };
        super::PoolUsage {
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            max,
        }
    }
}

/// A transaction; dropped without [`Tx::commit`], it rolls back.
pub(super) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(super) fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    /// Sends `rows` (COPY's text format, see [`copy_text`]) to `statement`, a `COPY ... FROM
    /// STDIN` of the code's own making (PostgreSQL). `None` on SQLite, which has no COPY:
    /// the caller inserts the rows instead.
    pub(super) async fn copy_in(
        &mut self,
        statement: &str,
        rows: Vec<u8>,
    ) -> Result<Option<u64>, sqlx::Error> {
        match self {
            Tx::Sqlite(_) => Ok(None),
            Tx::Postgres(tx) => {
                let mut copy = tx.copy_in_raw(statement).await?;
                copy.send(rows).await?;
                copy.finish().await.map(Some)
            }
        }
    }

    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub(super) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// Where a statement runs.
pub(super) enum On<'c> {
    Pool(&'c Pool),
    Tx(&'c mut Tx),
    Sqlite(&'c mut sqlx::SqliteConnection),
    Postgres(&'c mut sqlx::PgConnection),
}

impl<'c> From<&'c Pool> for On<'c> {
    fn from(pool: &'c Pool) -> Self {
        On::Pool(pool)
    }
}

impl<'c> From<&'c mut Tx> for On<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        On::Tx(tx)
    }
}

impl<'c> From<&'c mut sqlx::SqliteConnection> for On<'c> {
    fn from(connection: &'c mut sqlx::SqliteConnection) -> Self {
        On::Sqlite(connection)
    }
}

impl<'c> From<&'c mut sqlx::PgConnection> for On<'c> {
    fn from(connection: &'c mut sqlx::PgConnection) -> Self {
        On::Postgres(connection)
    }
}

/// A value bound to a parameter.
#[derive(Debug, Clone)]
pub(super) enum Param<'q> {
    I64(Option<i64>),
    Bool(Option<bool>),
    Text(Option<Cow<'q, str>>),
    Time(Option<Timestamp>),
    /// JSON, serialised once when bound.
    Json(Option<Box<RawValue>>),
}

impl<'q> From<i64> for Param<'q> {
    fn from(v: i64) -> Self {
        Param::I64(Some(v))
    }
}

impl<'q> From<Option<i64>> for Param<'q> {
    fn from(v: Option<i64>) -> Self {
        Param::I64(v)
    }
}

impl<'q> From<i32> for Param<'q> {
    fn from(v: i32) -> Self {
        Param::I64(Some(i64::from(v)))
    }
}

impl<'q> From<u32> for Param<'q> {
    fn from(v: u32) -> Self {
        Param::I64(Some(i64::from(v)))
    }
}

impl<'q> From<bool> for Param<'q> {
    fn from(v: bool) -> Self {
        Param::Bool(Some(v))
    }
}

impl<'q> From<Option<bool>> for Param<'q> {
    fn from(v: Option<bool>) -> Self {
        Param::Bool(v)
    }
}

impl<'q> From<&'q str> for Param<'q> {
    fn from(v: &'q str) -> Self {
        Param::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'q> From<&'q String> for Param<'q> {
    fn from(v: &'q String) -> Self {
        Param::Text(Some(Cow::Borrowed(v.as_str())))
    }
}

impl<'q> From<String> for Param<'q> {
    fn from(v: String) -> Self {
        Param::Text(Some(Cow::Owned(v)))
    }
}

impl<'q> From<Option<&'q str>> for Param<'q> {
    fn from(v: Option<&'q str>) -> Self {
        Param::Text(v.map(Cow::Borrowed))
    }
}

impl<'q> From<Option<String>> for Param<'q> {
    fn from(v: Option<String>) -> Self {
        Param::Text(v.map(Cow::Owned))
    }
}

impl<'q> From<&'q Option<String>> for Param<'q> {
    fn from(v: &'q Option<String>) -> Self {
        Param::Text(v.as_deref().map(Cow::Borrowed))
    }
}

/// Appends one field of a row of COPY's text format: `\N` for NULL, the text with its
/// backslashes and control characters escaped, then `separator` (a tab, or the newline that
/// ends the row).
pub(super) fn copy_text(row: &mut Vec<u8>, value: Option<&str>, separator: u8) {
    match value {
        None => row.extend_from_slice(b"\\N"),
        Some(text) => {
            for byte in text.bytes() {
                match byte {
                    b'\\' => row.extend_from_slice(b"\\\\"),
                    b'\n' => row.extend_from_slice(b"\\n"),
                    b'\r' => row.extend_from_slice(b"\\r"),
                    b'\t' => row.extend_from_slice(b"\\t"),
                    other => row.push(other),
                }
            }
        }
    }
    row.push(separator);
}

/// A time as SQLite keeps it: RFC 3339 in UTC with all nine fraction digits
/// (`2026-11-01T10:00:00.120000000Z`), so that comparing the text compares the times
/// (migration 0014 brought older, trimmed values to this form). The driver's own encoding
/// (`+00:00`, a trimmed fraction) would not sort.
pub(super) fn sqlite_time(at: Timestamp) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    // Written field by field: chrono's `format` parses its pattern on every call, and a
    // sync binds a time for each of a million staged rows. Years outside four digits and leap
    // seconds take chrono's own path, which this must equal.
    let (year, nanos) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
    }
    let mut text = String::with_capacity(30);
    write!(
        text,
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
    .expect("writing to a String cannot fail");
    text
}

impl<'q> From<Timestamp> for Param<'q> {
    fn from(v: Timestamp) -> Self {
        Param::Time(Some(v))
    }
}

impl<'q> From<Option<Timestamp>> for Param<'q> {
    fn from(v: Option<Timestamp>) -> Self {
        Param::Time(v)
    }
}

impl<'q, T: serde::Serialize> From<Json<T>> for Param<'q> {
    fn from(value: Json<T>) -> Self {
        Param::Json(Some(
            serde_json::value::to_raw_value(&value.0).expect("stored values serialise to JSON"),
        ))
    }
}

impl<'q, T: serde::Serialize> From<Option<Json<T>>> for Param<'q> {
    fn from(value: Option<Json<T>>) -> Self {
        match value {
            Some(json) => json.into(),
            None => Param::Json(None),
        }
    }
}

/// Where a pushed parameter stands in a statement's text until it runs (no SQL holds NUL).
const PARAMETER: char = '\u{0}';

/// A statement and its parameters.
#[derive(Debug, Clone, Default)]
pub(super) struct Sql<'q> {
    text: String,
    params: Vec<Param<'q>>,
    /// Whether parameters are pushed as `?` (numbered when run on PostgreSQL).
    pushed: bool,
    /// Whether the connection keeps the prepared statement for the next run of the same text.
    kept: bool,
}

/// Starts a statement whose text numbers its own parameters (`$1`, `$2`...).
pub(super) fn sql<'q>(text: impl Into<String>) -> Sql<'q> {
    Sql {
        text: text.into(),
        params: Vec::new(),
        pushed: false,
        kept: true,
    }
}

/// Starts a statement built piece by piece, its values pushed with [`Sql::push_bind`].
pub(super) fn build<'q>(text: impl Into<String>) -> Sql<'q> {
    Sql {
        text: text.into(),
        params: Vec::new(),
        pushed: true,
        kept: true,
    }
}

impl<'q> Sql<'q> {
    /// Binds the next numbered parameter.
    pub(super) fn bind(mut self, value: impl Into<Param<'q>>) -> Self {
        self.params.push(value.into());
        self
    }

    /// Not kept prepared after it has run: for large multi-row statements whose texts vary
    /// with their number of rows, each of which a connection's statement cache would
    /// otherwise hold (megabytes apiece for SQLite's compiled form).
    pub(super) fn once(mut self) -> Self {
        self.kept = false;
        self
    }

    /// Appends text of the code's own making, never input.
    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a parameter for `value`.
    pub(super) fn push_bind(&mut self, value: impl Into<Param<'q>>) -> &mut Self {
        debug_assert!(
            self.pushed,
            "a statement numbering its own parameters takes bind()"
        );
        self.params.push(value.into());
        self.text.push(PARAMETER);
        self
    }

    /// Appends `(?, ?, ...)`, one parameter per value.
    pub(super) fn push_list<V: Into<Param<'q>>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        self.push("(");
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(value);
        }
        self.push(")")
    }

    /// Values and text pushed with `separator` between them (`a, b, c`).
    pub(super) fn separated(&mut self, separator: &'static str) -> Separated<'_, 'q> {
        Separated {
            sql: self,
            separator,
            first: true,
        }
    }

    /// Appends `VALUES (...), (...)`: one parenthesised row per item, written by `row`.
    pub(super) fn push_values<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut row: impl FnMut(Separated<'_, 'q>, T),
    ) -> &mut Self {
        self.push("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("(");
            row(self.separated(", "), item);
            self.push(")");
        }
        self
    }

    /// The text with `?` for each pushed parameter, and the parameters' values as text: for
    /// tests and logs.
    pub(super) fn describe(&self) -> (String, Vec<String>) {
        let text = self.text.replace(PARAMETER, "?");
        let values = self
            .params
            .iter()
            .map(|param| match param {
                Param::I64(v) => v.map_or("NULL".to_owned(), |v| v.to_string()),
                Param::Bool(v) => v.map_or("NULL".to_owned(), |v| v.to_string()),
                Param::Text(v) => v.as_deref().unwrap_or("NULL").to_owned(),
                Param::Time(v) => v.map_or("NULL".to_owned(), rfc3339),
                Param::Json(v) => v.as_ref().map_or("NULL".to_owned(), |v| v.get().to_owned()),
            })
            .collect();
        (text, values)
    }

    /// The text as `backend` takes it (pushed parameters become `$1`, `$2`... on PostgreSQL
    /// and `?` on SQLite), and the parameters.
    fn into_parts(self, backend: Backend) -> (Cow<'static, str>, Vec<Param<'q>>) {
        if !self.pushed {
            return (Cow::Owned(self.text), self.params);
        }
        let mut text = String::with_capacity(self.text.len() + self.params.len() * 3);
        let mut n = 0;
        for c in self.text.chars() {
            if c == PARAMETER {
                n += 1;
                match backend {
                    Backend::Sqlite => text.push('?'),
                    Backend::Postgres => {
                        text.push('$');
                        text.push_str(&n.to_string());
                    }
                }
            } else {
                text.push(c);
            }
        }
        (Cow::Owned(text), self.params)
    }

    fn sqlite_arguments(params: Vec<Param<'q>>) -> Result<SqliteArguments<'q>, sqlx::Error> {
        let mut args = SqliteArguments::default();
        for param in params {
            let added = match param {
                Param::I64(v) => args.add(v),
                Param::Bool(v) => args.add(v),
                Param::Text(Some(Cow::Borrowed(v))) => args.add(v),
                Param::Text(Some(Cow::Owned(v))) => args.add(v),
                Param::Text(None) => args.add(None::<&str>),
                Param::Time(v) => args.add(v.map(sqlite_time)),
                Param::Json(v) => args.add(v.map(|raw| String::from(Box::<str>::from(raw)))),
            };
            added.map_err(sqlx::Error::Encode)?;
        }
        Ok(args)
    }

    fn pg_arguments(params: Vec<Param<'q>>) -> Result<PgArguments, sqlx::Error> {
        let mut args = PgArguments::default();
        for param in params {
            let added = match param {
                Param::I64(v) => args.add(v),
                Param::Bool(v) => args.add(v),
                Param::Text(Some(Cow::Borrowed(v))) => args.add(v),
                Param::Text(Some(Cow::Owned(v))) => args.add(v),
                Param::Text(None) => args.add(None::<&str>),
                Param::Time(v) => args.add(v),
                Param::Json(v) => args.add(v.map(Json)),
            };
            added.map_err(sqlx::Error::Encode)?;
        }
        Ok(args)
    }

    /// Runs the statement; how many rows it changed.
    pub(super) async fn execute<'c>(self, on: impl Into<On<'c>>) -> Result<u64, sqlx::Error> {
        let on = on.into();
        let kept = self.kept;
        let (text, params) = self.into_parts(backend_of(&on));
        Ok(match on {
            On::Pool(Pool::Sqlite(pool)) => {
                let args = Self::sqlite_arguments(params)?;
                sqlx::query_with(&text, args)
                    .persistent(kept)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            On::Pool(Pool::Postgres(pool)) => {
                let args = Self::pg_arguments(params)?;
                sqlx::query_with(&text, args)
                    .persistent(kept)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            On::Tx(Tx::Sqlite(tx)) => {
                let args = Self::sqlite_arguments(params)?;
                sqlx::query_with(&text, args)
                    .persistent(kept)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
            On::Tx(Tx::Postgres(tx)) => {
                let args = Self::pg_arguments(params)?;
                sqlx::query_with(&text, args)
                    .persistent(kept)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
            On::Sqlite(connection) => {
                let args = Self::sqlite_arguments(params)?;
                sqlx::query_with(&text, args)
                    .persistent(kept)
                    .execute(connection)
                    .await?
                    .rows_affected()
            }
            On::Postgres(connection) => {
                let args = Self::pg_arguments(params)?;
                sqlx::query_with(&text, args)
                    .persistent(kept)
                    .execute(connection)
                    .await?
                    .rows_affected()
            }
        })
    }

    /// Every row, as `R`.
    pub(super) async fn fetch_all<'c, R>(self, on: impl Into<On<'c>>) -> Result<Vec<R>, sqlx::Error>
    where
        R: Row,
    {
        let on = on.into();
        let (text, params) = self.into_parts(backend_of(&on));
        match on {
            On::Pool(Pool::Sqlite(pool)) => {
                let args = Self::sqlite_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_all(pool)
                    .await
            }
            On::Pool(Pool::Postgres(pool)) => {
                let args = Self::pg_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_all(pool)
                    .await
            }
            On::Tx(Tx::Sqlite(tx)) => {
                let args = Self::sqlite_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_all(&mut **tx)
                    .await
            }
            On::Tx(Tx::Postgres(tx)) => {
                let args = Self::pg_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_all(&mut **tx)
                    .await
            }
            On::Sqlite(connection) => {
                let args = Self::sqlite_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_all(connection)
                    .await
            }
            On::Postgres(connection) => {
                let args = Self::pg_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_all(connection)
                    .await
            }
        }
    }

    /// The first row, if any, as `R`.
    pub(super) async fn fetch_optional<'c, R>(
        self,
        on: impl Into<On<'c>>,
    ) -> Result<Option<R>, sqlx::Error>
    where
        R: Row,
    {
        let on = on.into();
        let (text, params) = self.into_parts(backend_of(&on));
        match on {
            On::Pool(Pool::Sqlite(pool)) => {
                let args = Self::sqlite_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_optional(pool)
                    .await
            }
            On::Pool(Pool::Postgres(pool)) => {
                let args = Self::pg_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_optional(pool)
                    .await
            }
            On::Tx(Tx::Sqlite(tx)) => {
                let args = Self::sqlite_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_optional(&mut **tx)
                    .await
            }
            On::Tx(Tx::Postgres(tx)) => {
                let args = Self::pg_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_optional(&mut **tx)
                    .await
            }
            On::Sqlite(connection) => {
                let args = Self::sqlite_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_optional(connection)
                    .await
            }
            On::Postgres(connection) => {
                let args = Self::pg_arguments(params)?;
                sqlx::query_as_with::<_, R, _>(&text, args)
                    .fetch_optional(connection)
                    .await
            }
        }
    }

    /// The one row, as `R`; an error when there is none.
    pub(super) async fn fetch_one<'c, R>(self, on: impl Into<On<'c>>) -> Result<R, sqlx::Error>
    where
        R: Row,
    {
        self.fetch_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// The first column of every row.
    pub(super) async fn fetch_column<'c, T>(
        self,
        on: impl Into<On<'c>>,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        (T,): Row,
    {
        Ok(self
            .fetch_all::<(T,)>(on)
            .await?
            .into_iter()
            .map(|(value,)| value)
            .collect())
    }

    /// The first column of the one row.
    pub(super) async fn fetch_value<'c, T>(self, on: impl Into<On<'c>>) -> Result<T, sqlx::Error>
    where
        (T,): Row,
    {
        Ok(self.fetch_one::<(T,)>(on).await?.0)
    }
}

/// Pieces of a statement with a separator between them (see [`Sql::separated`]).
pub(super) struct Separated<'b, 'q> {
    sql: &'b mut Sql<'q>,
    separator: &'static str,
    first: bool,
}

impl<'q> Separated<'_, 'q> {
    fn next(&mut self) {
        if !self.first {
            self.sql.push(self.separator);
        }
        self.first = false;
    }

    pub(super) fn push_bind(&mut self, value: impl Into<Param<'q>>) -> &mut Self {
        self.next();
        self.sql.push_bind(value);
        self
    }
}

fn backend_of(on: &On<'_>) -> Backend {
    match on {
        On::Pool(pool) => pool.backend(),
        On::Tx(Tx::Sqlite(_)) | On::Sqlite(_) => Backend::Sqlite,
        On::Tx(Tx::Postgres(_)) | On::Postgres(_) => Backend::Postgres,
    }
}

/// A row type both drivers read (derive `sqlx::FromRow`, or a tuple of readable values).
pub(super) trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<R> Row for R where R: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

#[cfg(test)]
mod tests {
    use super::{copy_text, sqlite_time};
    use proptest::prelude::*;

    #[test]
    fn copy_fields_escape_what_the_text_format_reads_as_syntax() {
        let mut row = Vec::new();
        copy_text(&mut row, Some("a\\b\tc\nd\re \\N ü"), b'\t');
        copy_text(&mut row, None, b'\t');
        copy_text(&mut row, Some(""), b'\n');
        assert_eq!(
            String::from_utf8(row).unwrap(),
            "a\\\\b\\tc\\nd\\re \\\\N ü\t\\N\t\n"
        );
    }

    proptest! {
        /// The hand-written form equals chrono's for every time, including leap seconds and
        /// years of more than four digits (which take chrono's path).
        #[test]
        fn a_time_is_written_as_chrono_writes_it(seconds in -80_000_000_000i64..300_000_000_000, nanos in 0u32..2_000_000_000) {
            if let Some(at) = chrono::DateTime::from_timestamp(seconds, nanos) {
                prop_assert_eq!(sqlite_time(at), at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string());
            }
        }
    }
}
