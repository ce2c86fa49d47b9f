//! Development certificates: generated once, reloaded unchanged, keys private, the CA
//! published where local clients look, and operator files checked with clear errors.

use atoll_node::certs::{
    CA_CERT_FILE, CA_KEY_FILE, CERTS_SUBDIR, CertError, NODE_CERT_FILE, NODE_KEY_FILE,
    ensure_dev_certs_with_trust_dir, load_tls,
};
use atoll_router::tls::{read_pem_certs, trust_anchors_from};
use std::path::Path;

fn init_logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
}

#[test]
fn certificates_are_generated_once_and_reloaded_identically() {
    init_logs();
    let data = tempfile::tempdir().expect("temp dir");
    let trust = tempfile::tempdir().expect("temp dir");
    let trust_dir = trust.path().join("atoll/dev-cas");
    tracing::info!("phase: the first start generates four files");
    let first = ensure_dev_certs_with_trust_dir(data.path(), &["db.test".into()], Some(&trust_dir))
        .expect("generates");
    let certs = data.path().join(CERTS_SUBDIR);
    for name in [CA_CERT_FILE, CA_KEY_FILE, NODE_CERT_FILE, NODE_KEY_FILE] {
        assert!(certs.join(name).is_file(), "{name} missing");
    }
    assert_eq!(std::fs::read_to_string(certs.join(CA_CERT_FILE)).expect("ca"), first.ca_cert_pem);
    assert!(!format!("{first:?}").contains("PRIVATE KEY"), "Debug must not print the key");
    tracing::info!("phase: later starts load the same files and overwrite nothing");
    let modified = std::fs::metadata(certs.join(NODE_KEY_FILE)).expect("meta").modified();
    let second =
        ensure_dev_certs_with_trust_dir(data.path(), &["other.test".into()], Some(&trust_dir))
            .expect("loads");
    assert_eq!(first, second);
    let again = std::fs::metadata(certs.join(NODE_KEY_FILE)).expect("meta").modified();
    assert_eq!(modified.expect("mtime"), again.expect("mtime"));
    tracing::info!("phase: the CA is published once under its hash for local clients");
    let published: Vec<_> = std::fs::read_dir(&trust_dir).expect("trust dir").collect();
    assert_eq!(published.len(), 1);
    let published = published[0].as_ref().expect("entry").path();
    let name = published.file_name().expect("name").to_string_lossy().to_string();
    assert!(name.len() == 16 + 4 && name.ends_with(".pem"), "{name}");
    let ca_der: Vec<Vec<u8>> =
        first.ca_certs_der().expect("ca").iter().map(|c| c.to_vec()).collect();
    assert_eq!(read_pem_certs(&published).expect("readable"), ca_der);
    let found = trust_anchors_from(None, Some(data.path()), &[trust_dir]).expect("found");
    assert_eq!(found, ca_der);
}

#[cfg(unix)]
#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().expect("temp dir");
    ensure_dev_certs_with_trust_dir(data.path(), &[], None).expect("generates");
    let mode = |name: &str| {
        let path = data.path().join(CERTS_SUBDIR).join(name);
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    };
    assert_eq!(mode(CA_KEY_FILE), 0o600);
    assert_eq!(mode(NODE_KEY_FILE), 0o600);
}

#[test]
fn a_partial_set_is_reported_not_replaced() {
    let data = tempfile::tempdir().expect("temp dir");
    ensure_dev_certs_with_trust_dir(data.path(), &[], None).expect("generates");
    let node_cert = data.path().join(CERTS_SUBDIR).join(NODE_CERT_FILE);
    std::fs::remove_file(&node_cert).expect("remove");
    let err = ensure_dev_certs_with_trust_dir(data.path(), &[], None).expect_err("partial");
    assert!(matches!(err, CertError::Partial { .. }), "{err:?}");
    assert!(err.to_string().contains(NODE_CERT_FILE), "{err}");
    assert!(!node_cert.exists(), "nothing may be regenerated over a partial set");
}

#[test]
fn operator_files_are_loaded_and_checked() {
    let data = tempfile::tempdir().expect("temp dir");
    let generated = ensure_dev_certs_with_trust_dir(data.path(), &[], None).expect("generates");
    let dir = data.path().join(CERTS_SUBDIR);
    let (cert, key, ca) =
        (dir.join(NODE_CERT_FILE), dir.join(NODE_KEY_FILE), dir.join(CA_CERT_FILE));
    assert_eq!(load_tls(&cert, &key, &ca).expect("loads"), generated);
    tracing::info!("phase: a missing file names its path");
    let missing = dir.join("absent.pem");
    let err = load_tls(&missing, &key, &ca).expect_err("missing");
    assert!(err.to_string().contains("absent.pem"), "{err}");
    tracing::info!("phase: a key file without a key, or a mismatched key, is refused");
    let err = load_tls(&cert, &ca, &ca).expect_err("no key");
    assert!(err.to_string().contains(&*ca.to_string_lossy()), "{err}");
    let other = tempfile::tempdir().expect("temp dir");
    ensure_dev_certs_with_trust_dir(other.path(), &[], None).expect("generates");
    let other_key = other.path().join(CERTS_SUBDIR).join(NODE_KEY_FILE);
    assert!(load_tls(&cert, &other_key, &ca).is_err(), "a key of another certificate");
    must_fail_as_invalid(&dir.join("garbage.pem"), &key, &ca);
}

fn must_fail_as_invalid(cert: &Path, key: &Path, ca: &Path) {
    std::fs::write(cert, "not a certificate").expect("write");
    let err = load_tls(cert, key, ca).expect_err("garbage");
    assert!(matches!(err, CertError::Invalid { .. }), "{err:?}");
}
