//! Small helpers every part of Provost uses: times as shown, bytes as hex, errors as one line.

pub mod memory;
pub mod times;

/// `bytes` as lower-case hex (digests in manifests, audit hashes, signatures).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An error and its causes as one line, `outer: cause: cause`, leaving out a cause whose text
/// the line already holds (errors that print their source in their own message).
pub fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the database: {0}")]
    struct Open(#[source] std::io::Error);

    #[test]
    fn error_lines_name_each_cause_once() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = anyhow::Error::new(Open(refused)).context("opening postgres://db");
        assert_eq!(
            super::error_line(err.as_ref()),
            "opening postgres://db: cannot open the database: connection refused"
        );
    }
}
