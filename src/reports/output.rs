//! Report files: CSV (RFC 4180, through the `csv` crate, with spreadsheet formulas
//! neutralised), a JSON array, or JSON lines; written row by row while their SHA-256 and size
//! are computed, so nothing is held in memory and the manifest describes exactly what was
//! written.

use std::borrow::Cow;
use std::io::{self, Write};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A report file's format.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Json,
    Ndjson,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    pub fn parse(text: &str) -> Option<Format> {
        [Format::Csv, Format::Json, Format::Ndjson]
            .into_iter()
            .find(|f| f.as_str() == text)
    }
}

/// Counts and hashes what passes through to the inner writer.
pub struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a finished file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Writes rows with fixed columns in one format.
pub struct RowWriter<W: Write> {
    format: Format,
    columns: Vec<&'static str>,
    csv: Option<csv::Writer<Hashing<W>>>,
    plain: Option<Hashing<W>>,
    rows: u64,
}

impl<W: Write> RowWriter<W> {
    pub fn new(out: W, format: Format, columns: &[&'static str]) -> io::Result<RowWriter<W>> {
        let hashing = Hashing {
            inner: out,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let mut writer = RowWriter {
            format,
            columns: columns.to_vec(),
            csv: None,
            plain: None,
            rows: 0,
        };
        match format {
            Format::Csv => {
                let mut csv = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(hashing);
                csv.write_record(columns).map_err(io::Error::other)?;
                writer.csv = Some(csv);
            }
            Format::Json => {
                let mut plain = hashing;
                plain.write_all(b"[")?;
                writer.plain = Some(plain);
            }
            Format::Ndjson => writer.plain = Some(hashing),
        }
        Ok(writer)
    }

    /// Writes one row: `values` in the order of the columns.
    pub fn row(&mut self, values: &[Value]) -> io::Result<()> {
        debug_assert_eq!(values.len(), self.columns.len());
        match self.format {
            Format::Csv => {
                let csv = self.csv.as_mut().expect("a CSV writer");
                for value in values {
                    csv.write_field(csv_cell(value).as_bytes())
                        .map_err(io::Error::other)?;
                }
                csv.write_record(None::<&[u8]>).map_err(io::Error::other)?;
            }
            Format::Json | Format::Ndjson => {
                let out = self.plain.as_mut().expect("a plain writer");
                if self.format == Format::Json {
                    out.write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
                }
                serde_json::to_writer(&mut *out, &Row(&self.columns, values))?;
                if self.format == Format::Ndjson {
                    out.write_all(b"\n")?;
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Ends the file and says what it holds.
    pub fn finish(self) -> io::Result<Written> {
        let mut hashing = match (self.csv, self.plain) {
            (Some(csv), _) => csv
                .into_inner()
                .map_err(|e| io::Error::other(e.to_string()))?,
            (None, Some(mut plain)) => {
                if self.format == Format::Json {
                    plain.write_all(if self.rows == 0 { b"]\n" } else { b"\n]\n" })?;
                }
                plain
            }
            (None, None) => unreachable!("a writer is always set"),
        };
        hashing.flush()?;
        Ok(Written {
            rows: self.rows,
            bytes: hashing.bytes,
            sha256: crate::util::hex(&hashing.hasher.finalize()),
        })
    }
}

/// A row as a JSON object, its keys in column order, serialised without copying the values.
struct Row<'a>(&'a [&'static str], &'a [Value]);

impl serde::Serialize for Row<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (column, value) in self.0.iter().zip(self.1) {
            map.serialize_entry(column, value)?;
        }
        map.end()
    }
}

/// A cell as CSV text: empty for null, and text that a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) prefixed with `'`, which
/// spreadsheets show as text (OWASP's advice for CSV injection).
pub fn csv_cell(value: &Value) -> Cow<'_, str> {
    match value {
        Value::Null => Cow::Borrowed(""),
        Value::String(text) => neutralise(text),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Number(n) => Cow::Owned(n.to_string()),
        other => Cow::Owned(neutralise(&other.to_string()).into_owned()),
    }
}

fn neutralise(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formulas_are_neutralised_and_numbers_are_not() {
        for (input, expected) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("\rcmd", "'\rcmd"),
            ("plain", "plain"),
            ("a=b", "a=b"),
        ] {
            assert_eq!(csv_cell(&json!(input)), expected);
        }
        assert_eq!(csv_cell(&json!(-5)), "-5");
        assert_eq!(csv_cell(&Value::Null), "");
        assert_eq!(csv_cell(&json!(true)), "true");
    }

    #[test]
    fn each_format_is_hashed_as_written() {
        for format in [Format::Csv, Format::Json, Format::Ndjson] {
            let mut buffer = Vec::new();
            let mut writer = RowWriter::new(&mut buffer, format, &["a", "b"]).unwrap();
            writer
                .row(&[json!("x, \"quoted\"\nline"), json!(1)])
                .unwrap();
            writer.row(&[json!("=1+1"), Value::Null]).unwrap();
            let written = writer.finish().unwrap();
            assert_eq!(written.rows, 2);
            assert_eq!(written.bytes, buffer.len() as u64);
            assert_eq!(written.sha256, crate::util::hex(&Sha256::digest(&buffer)));
            let text = String::from_utf8(buffer).unwrap();
            match format {
                Format::Csv => {
                    assert_eq!(text, "a,b\r\n\"x, \"\"quoted\"\"\nline\",1\r\n'=1+1,\r\n")
                }
                Format::Json => {
                    let parsed: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(parsed[1], json!({"a": "=1+1", "b": null}));
                }
                Format::Ndjson => {
                    assert_eq!(text.lines().count(), 2);
                    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
                    assert_eq!(first["b"], json!(1));
                }
            }
        }
    }
}
