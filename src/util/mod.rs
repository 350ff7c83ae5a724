//! Small helpers every part of Provost uses: times as shown, and bytes as hex.

pub mod times;

/// `bytes` as lower-case hex (digests in manifests, audit hashes, signatures).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
