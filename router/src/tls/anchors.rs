//! Where a local client finds the CA to trust without flags: nodes started without operator
//! certificates generate a development CA and leave a copy of its certificate in a per-user
//! directory (`$XDG_DATA_HOME/atoll/dev-cas/`, else `$HOME/.local/share/atoll/dev-cas/`);
//! the node's own `<data-dir>/certs/ca.pem` is read too.

use super::DEV_CA_SUBDIR;
use crate::error::TrustError;
use std::path::{Path, PathBuf};

/// The node's default data directory, relative to where it was started.
const DATA_DIR_DEFAULT: &str = "atoll-data";
/// The CA certificate inside a data directory.
const DATA_DIR_CA: &str = "certs/ca.pem";
/// Largest CA file read; a CA bundle is a few KiB, so anything bigger is a wrong path.
const CA_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// The per-user directories holding development CA certificates, the one to write to first:
/// `$XDG_DATA_HOME/atoll/dev-cas` (if set to an absolute path) and
/// `$HOME/.local/share/atoll/dev-cas`.
pub fn dev_trust_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
        // The XDG spec says relative values are invalid and must be ignored.
        if xdg.is_absolute() {
            dirs.push(xdg.join(DEV_CA_SUBDIR));
        }
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let dir = PathBuf::from(home).join(".local/share").join(DEV_CA_SUBDIR);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// The CA certificates (DER) a client trusts by default: the `extra_ca` file if given (an
/// error if it cannot be read); otherwise every `*.pem` in [`dev_trust_dirs`] plus
/// `<data_dir_hint or ./atoll-data>/certs/ca.pem` if present.
pub fn default_trust_anchors(
    extra_ca: Option<&Path>,
    data_dir_hint: Option<&Path>,
) -> Result<Vec<Vec<u8>>, TrustError> {
    trust_anchors_from(extra_ca, data_dir_hint, &dev_trust_dirs())
}

/// [`default_trust_anchors`] with the per-user directories given (tests use their own).
pub fn trust_anchors_from(
    extra_ca: Option<&Path>,
    data_dir_hint: Option<&Path>,
    trust_dirs: &[PathBuf],
) -> Result<Vec<Vec<u8>>, TrustError> {
    if let Some(path) = extra_ca {
        return read_pem_certs(path);
    }
    let data_dir_ca = data_dir_hint.unwrap_or(Path::new(DATA_DIR_DEFAULT)).join(DATA_DIR_CA);
    let mut candidates: Vec<PathBuf> = trust_dirs.iter().flat_map(|d| pem_files_in(d)).collect();
    candidates.push(data_dir_ca.clone());
    let mut anchors: Vec<Vec<u8>> = Vec::new();
    for path in candidates.iter().filter(|p| p.is_file()) {
        match read_pem_certs(path) {
            Ok(certs) => anchors.extend(certs),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping unusable ca file")
            }
        }
    }
    anchors.sort();
    anchors.dedup();
    if anchors.is_empty() {
        let mut searched: Vec<String> =
            trust_dirs.iter().map(|d| d.display().to_string()).collect();
        searched.push(data_dir_ca.display().to_string());
        return Err(TrustError::NothingFound { searched: searched.join(", ") });
    }
    Ok(anchors)
}

/// The `*.pem` files directly in `dir`, sorted; none if it cannot be read.
fn pem_files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "pem"))
        .collect();
    files.sort();
    files
}

/// Reads every certificate of a PEM file, as DER.
pub fn read_pem_certs(path: &Path) -> Result<Vec<Vec<u8>>, TrustError> {
    let unreadable =
        |reason: String| TrustError::Unreadable { path: path.display().to_string(), reason };
    let len = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?.len();
    if len > CA_FILE_BYTES_MAX {
        return Err(unreadable(format!(
            "{len} bytes is more than a CA file ({CA_FILE_BYTES_MAX})"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut bytes.as_slice())
        .map(|c| c.map(|der| der.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TrustError::NoCertificate { path: path.display().to_string() });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn must_new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "atoll-router-{tag}-{}-{}",
                std::process::id(),
                crate::retry::jitter().to_bits()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A syntactically valid PEM block; trust anchors are parsed later by rustls.
    fn pem(body: &[u8]) -> String {
        use std::fmt::Write;
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in body.chunks(3) {
            let n =
                chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
        let _ = writeln!(out, "\n-----END CERTIFICATE-----");
        out
    }

    #[test]
    fn explicit_ca_wins_and_must_be_readable() {
        let tmp = TempDir::must_new("explicit");
        let ca = tmp.0.join("ca.pem");
        std::fs::write(&ca, pem(b"abcdef")).expect("write");
        let got = trust_anchors_from(Some(&ca), None, &[]).expect("reads");
        assert_eq!(got, vec![b"abcdef".to_vec()]);
        let missing = trust_anchors_from(Some(&tmp.0.join("nope.pem")), None, &[]);
        assert!(matches!(missing, Err(TrustError::Unreadable { .. })), "{missing:?}");
        std::fs::write(&ca, "not pem").expect("write");
        let empty = trust_anchors_from(Some(&ca), None, &[]);
        assert!(matches!(empty, Err(TrustError::NoCertificate { .. })), "{empty:?}");
    }

    #[test]
    fn dev_dirs_and_data_dir_are_searched_and_deduplicated() {
        let tmp = TempDir::must_new("search");
        let dev = tmp.0.join("dev-cas");
        let data = tmp.0.join("data");
        std::fs::create_dir_all(&dev).expect("mkdir");
        std::fs::create_dir_all(data.join("certs")).expect("mkdir");
        std::fs::write(dev.join("a.pem"), pem(b"one")).expect("write");
        std::fs::write(dev.join("b.pem"), pem(b"two")).expect("write");
        std::fs::write(dev.join("ignored.txt"), pem(b"three")).expect("write");
        std::fs::write(data.join("certs/ca.pem"), pem(b"one")).expect("write");
        let got = trust_anchors_from(None, Some(&data), &[dev.clone(), tmp.0.join("absent")]);
        assert_eq!(got.expect("found"), vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn nothing_found_says_what_to_do() {
        let tmp = TempDir::must_new("nothing");
        let err = trust_anchors_from(None, Some(&tmp.0), &[tmp.0.join("dev-cas")])
            .expect_err("nothing there")
            .to_string();
        for hint in ["--cacert", "start a node", "--insecure-skip-tls-verify", "dev-cas"] {
            assert!(err.contains(hint), "{hint} missing from {err}");
        }
    }
}
