//! The manifest written beside each report file (`FILE.manifest.json`), and its check.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a report file is, what it reflects, and how to know it was not changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub report: String,
    pub format: String,
    pub org: String,
    pub parameters: Value,
    /// The last successful sync the data comes from (changes Provost made since are in it too).
    pub sync_run: Option<i64>,
    pub data_as_of: Option<String>,
    pub generated_at: String,
    pub generated_by: String,
    /// The file's name (no directory) when written to a file.
    pub file: Option<String>,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Where the manifest of `file` lives.
pub fn path_of(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// What a check of a file against its manifest found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub file: String,
    pub manifest: String,
    pub ok: bool,
    /// What does not match, in words.
    pub problems: Vec<String>,
    pub report: Option<Manifest>,
}

/// Checks `file` against `manifest` (default: `FILE.manifest.json`): its size and SHA-256.
pub fn verify(file: &Path, manifest: Option<&Path>) -> anyhow::Result<Verification> {
    let manifest_path = manifest.map_or_else(|| path_of(file), Path::to_path_buf);
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the manifest {}: {e} (it is written beside the report as FILE.manifest.json; name another with --manifest)",
            manifest_path.display()
        )
    })?;
    let expected: Manifest = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a Provost report manifest: {e}",
            manifest_path.display()
        )
    })?;
    let mut input = std::fs::File::open(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    let sha256 = crate::util::hex(&hasher.finalize());
    let mut problems = Vec::new();
    if bytes != expected.bytes {
        problems.push(format!(
            "the file has {bytes} bytes where the manifest says {}",
            expected.bytes
        ));
    }
    if sha256 != expected.sha256 {
        problems.push(format!(
            "the file's SHA-256 is {sha256} where the manifest says {}: the file was changed after it was generated",
            expected.sha256
        ));
    }
    Ok(Verification {
        file: file.display().to_string(),
        manifest: manifest_path.display().to_string(),
        ok: problems.is_empty(),
        problems,
        report: Some(expected),
    })
}
