//! Development CA and node certificates, operator-provided certificates, and the rustls
//! configurations built from them.
//!
//! A node started without certificates generates a development CA and a node certificate
//! once, into `<data-dir>/certs/`, and loads them on later starts; existing files are never
//! overwritten. A copy of the CA certificate goes to the per-user directory that local
//! clients search ([`atoll_router::tls::dev_trust_dirs`]), so `atollctl` on the same machine
//! trusts the node without flags. All TLS uses the ring provider only
//! ([`atoll_router::tls::crypto_provider`]).

use atoll_router::tls::crypto_provider;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls::RootCertStore;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Directory under the data directory holding the certificates.
pub const CERTS_SUBDIR: &str = "certs";
/// The CA certificate.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The node certificate, signed by the CA.
pub const NODE_CERT_FILE: &str = "node.pem";
/// The node's private key (mode 0600).
pub const NODE_KEY_FILE: &str = "node-key.pem";
/// Names every development node certificate carries, so local clients can dial
/// `localhost`, `127.0.0.1` or `[::1]`.
pub const DEV_CERT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// Mode of private key files: readable by the node's user only.
const KEY_FILE_MODE: u32 = 0o600;
/// Mode of certificate files: certificates are public.
const CERT_FILE_MODE: u32 = 0o644;
/// Years a development certificate stays valid. Long, because an expired development CA
/// only breaks a developer's cluster in a confusing way; production uses operator files.
const DEV_CERT_VALIDITY_YEARS: i32 = 10;
/// Average Gregorian year, to find the current year without a calendar dependency.
const SECONDS_PER_YEAR: u64 = 31_556_952;
/// Hex digits of the CA certificate's SHA-256 naming its copy in the per-user directory.
const TRUST_FILE_HASH_HEX_DIGITS: usize = 16;
/// Largest PEM file read: certificates and keys are a few KiB, so more is a wrong path.
const PEM_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// PEM-encoded certificates and key of one node.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    /// The CA certificate(s) that peers' and this node's certificates chain to.
    pub ca_cert_pem: String,
    /// This node's certificate, then any intermediates.
    pub cert_chain_pem: String,
    /// This node's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_cert_pem_bytes", &self.ca_cert_pem.len())
            .field("cert_chain_pem_bytes", &self.cert_chain_pem.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Why certificates could not be generated, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {reason}; check the data directory's permissions")]
    Write {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A certificate or key does not parse or does not fit.
    #[error("{what} is not usable: {reason}")]
    Invalid {
        /// Which file or item.
        what: String,
        /// Why.
        reason: String,
    },
    /// Some but not all development certificate files exist.
    #[error(
        "{dir} has {present} but not {missing}; restore the missing files, or move the \
         directory away to generate new development certificates"
    )]
    Partial {
        /// The certificate directory.
        dir: String,
        /// Files present.
        present: String,
        /// Files missing.
        missing: String,
    },
    /// Certificate generation failed.
    #[error("cannot generate development certificates: {reason}")]
    Generate {
        /// Why.
        reason: String,
    },
}

impl TlsMaterial {
    /// The CA certificates, as DER.
    pub fn ca_certs_der(&self) -> Result<Vec<CertificateDer<'static>>, CertError> {
        parse_certs(&self.ca_cert_pem, "the CA certificate")
    }

    /// A TLS 1.3 server configuration (ring) presenting this node's certificate and
    /// offering `alpn`. Client certificates are optional, so native clients need none, but
    /// one that is presented must chain to the CA; peer connections check that one was.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, CertError> {
        self.server_config_with(alpn, true)
    }

    /// [`TlsMaterial::server_config`] for the peer endpoint: a client certificate chaining
    /// to the CA is mandatory, so a node without one is refused during the handshake.
    pub fn peer_server_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, CertError> {
        self.server_config_with(alpn, false)
    }

    fn server_config_with(
        &self,
        alpn: &[&[u8]],
        client_cert_optional: bool,
    ) -> Result<rustls::ServerConfig, CertError> {
        let invalid = |e: &dyn std::fmt::Display| invalid("the TLS server configuration", e);
        let provider = crypto_provider();
        let mut verifier =
            WebPkiClientVerifier::builder_with_provider(self.root_store()?, provider.clone());
        if client_cert_optional {
            verifier = verifier.allow_unauthenticated();
        }
        let verifier = verifier.build().map_err(|e| invalid(&e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| invalid(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain()?, self.private_key()?)
            .map_err(|e| invalid(&e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// A TLS 1.3 client configuration (ring) for node-to-node connections: trusts the CA and
    /// presents this node's certificate.
    pub fn peer_client_config(&self, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, CertError> {
        let invalid = |e: &dyn std::fmt::Display| invalid("the TLS client configuration", e);
        let roots = Arc::unwrap_or_clone(self.root_store()?);
        let mut config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| invalid(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.cert_chain()?, self.private_key()?)
            .map_err(|e| invalid(&e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    fn root_store(&self) -> Result<Arc<RootCertStore>, CertError> {
        let mut roots = RootCertStore::empty();
        for der in self.ca_certs_der()? {
            roots.add(der).map_err(|e| invalid("the CA certificate", &e))?;
        }
        Ok(Arc::new(roots))
    }

    fn cert_chain(&self) -> Result<Vec<CertificateDer<'static>>, CertError> {
        parse_certs(&self.cert_chain_pem, "the node certificate")
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, CertError> {
        rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .map_err(|e| invalid("the node key", &e))?
            .ok_or_else(|| invalid("the node key", &"no PEM private key found"))
    }
}

fn invalid(what: &str, e: &dyn std::fmt::Display) -> CertError {
    CertError::Invalid { what: what.to_string(), reason: e.to_string() }
}

fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, &e))?;
    if certs.is_empty() {
        return Err(invalid(what, &"no PEM certificate found"));
    }
    Ok(certs)
}

/// Loads operator-provided certificate, key and CA files, and checks that they form a usable
/// server configuration.
pub fn load_tls(cert: &Path, key: &Path, ca: &Path) -> Result<TlsMaterial, CertError> {
    let material = TlsMaterial {
        ca_cert_pem: read_pem_file(ca)?,
        cert_chain_pem: read_pem_file(cert)?,
        key_pem: read_pem_file(key)?,
    };
    parse_certs(&material.ca_cert_pem, &ca.display().to_string())?;
    parse_certs(&material.cert_chain_pem, &cert.display().to_string())?;
    material.private_key().map_err(|e| match e {
        CertError::Invalid { reason, .. } => {
            CertError::Invalid { what: key.display().to_string(), reason }
        }
        other => other,
    })?;
    material.server_config(&[])?;
    Ok(material)
}

fn read_pem_file(path: &Path) -> Result<String, CertError> {
    let read_error = |reason: String| CertError::Read { path: path.display().to_string(), reason };
    let len = std::fs::metadata(path).map_err(|e| read_error(e.to_string()))?.len();
    if len > PEM_FILE_BYTES_MAX {
        return Err(read_error(format!("{len} bytes is too large for a PEM file")));
    }
    std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))
}

/// On first start, generates a development CA and node certificate into
/// `<data_dir>/certs/` (names: `localhost`, `127.0.0.1`, `::1` and `extra_hosts`); on later
/// starts loads them (`extra_hosts` then change nothing). Never overwrites a file. Publishes
/// the CA certificate to the first of [`atoll_router::tls::dev_trust_dirs`] (a warning if
/// that fails).
pub fn ensure_dev_certs(data_dir: &Path, extra_hosts: &[String]) -> Result<TlsMaterial, CertError> {
    let trust_dirs = atoll_router::tls::dev_trust_dirs();
    ensure_dev_certs_with_trust_dir(data_dir, extra_hosts, trust_dirs.first().map(PathBuf::as_path))
}

/// [`ensure_dev_certs`] publishing the CA to `trust_dir` instead (`None`: nowhere), for
/// tests and for callers that manage trust themselves.
pub fn ensure_dev_certs_with_trust_dir(
    data_dir: &Path,
    extra_hosts: &[String],
    trust_dir: Option<&Path>,
) -> Result<TlsMaterial, CertError> {
    let dir = data_dir.join(CERTS_SUBDIR);
    let names = [CA_CERT_FILE, CA_KEY_FILE, NODE_CERT_FILE, NODE_KEY_FILE];
    let (present, missing): (Vec<&str>, Vec<&str>) =
        names.iter().partition(|n| dir.join(n).exists());
    let material = if missing.is_empty() {
        load_tls(&dir.join(NODE_CERT_FILE), &dir.join(NODE_KEY_FILE), &dir.join(CA_CERT_FILE))?
    } else if present.is_empty() {
        let material = generate_dev_certs(&dir, extra_hosts)?;
        tracing::info!(dir = %dir.display(), "generated development certificates");
        material
    } else {
        return Err(CertError::Partial {
            dir: dir.display().to_string(),
            present: present.join(", "),
            missing: missing.join(", "),
        });
    };
    if let Some(trust_dir) = trust_dir
        && let Err(e) = publish_dev_ca(trust_dir, &material)
    {
        let dir = trust_dir.display();
        tracing::warn!(dir = %dir, error = %e, "cannot publish development ca for local clients");
    }
    Ok(material)
}

/// Generates the CA and node certificate and writes the four files. Keys are written before
/// their certificates so that an interrupted run leaves a partial set, which the next start
/// reports, rather than certificates whose keys are lost.
fn generate_dev_certs(dir: &Path, extra_hosts: &[String]) -> Result<TlsMaterial, CertError> {
    create_ca(dir)?;
    issue_node_cert(dir, dir, extra_hosts)
}

fn generate_error(e: rcgen::Error) -> CertError {
    CertError::Generate { reason: e.to_string() }
}

/// Creates a cluster CA in `dir`: `ca.pem` and `ca-key.pem` (mode 0600). Never overwrites:
/// an existing file is an error (`atoll certs ca`).
pub fn create_ca(dir: &Path) -> Result<(), CertError> {
    let ca_key = KeyPair::generate().map_err(generate_error)?;
    let ca_cert = ca_params(&ca_key)?.self_signed(&ca_key).map_err(generate_error)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| CertError::Write { path: dir.display().to_string(), reason: e.to_string() })?;
    write_new_file(&dir.join(CA_KEY_FILE), &ca_key.serialize_pem(), KEY_FILE_MODE)?;
    write_new_file(&dir.join(CA_CERT_FILE), &ca_cert.pem(), CERT_FILE_MODE)
}

/// Issues a node certificate signed by the CA in `ca_dir` (made by [`create_ca`] or by a
/// node's first start) into `out_dir`: `node.pem`, `node-key.pem` and, when `out_dir` is
/// another directory, a copy of `ca.pem`: the three files of `--cert-file`, `--key-file` and
/// `--trusted-ca-file` (`atoll certs node`). The certificate names `localhost`, `127.0.0.1`,
/// `::1` and `hosts`, and serves both as server and as client (peers dial each other).
pub fn issue_node_cert(
    ca_dir: &Path,
    out_dir: &Path,
    hosts: &[String],
) -> Result<TlsMaterial, CertError> {
    let ca_cert_pem = read_pem_file(&ca_dir.join(CA_CERT_FILE))?;
    let ca_key = KeyPair::from_pem(&read_pem_file(&ca_dir.join(CA_KEY_FILE))?)
        .map_err(|e| invalid("the CA key", &e))?;
    // An atoll CA's subject is derived from its key (see `ca_params`), so the issuer is
    // rebuilt exactly from the key alone, without parsing the CA certificate.
    let issuer = Issuer::new(ca_params(&ca_key)?, ca_key);
    let node_key = KeyPair::generate().map_err(generate_error)?;
    let node_cert = node_params(hosts)?.signed_by(&node_key, &issuer).map_err(generate_error)?;
    let material = TlsMaterial {
        ca_cert_pem,
        cert_chain_pem: node_cert.pem(),
        key_pem: node_key.serialize_pem(),
    };
    // A CA made by another tool has another subject: the chain would not verify. Say so now
    // rather than at the first handshake.
    material.server_config(&[]).and_then(|_| verify_chain(&material)).map_err(|e| {
        CertError::Invalid {
            what: format!("the CA in {}", ca_dir.display()),
            reason: format!("{e}; was it made by 'atoll certs ca'?"),
        }
    })?;
    std::fs::create_dir_all(out_dir).map_err(|e| CertError::Write {
        path: out_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    write_new_file(&out_dir.join(NODE_KEY_FILE), &material.key_pem, KEY_FILE_MODE)?;
    write_new_file(&out_dir.join(NODE_CERT_FILE), &material.cert_chain_pem, CERT_FILE_MODE)?;
    if out_dir.join(CA_CERT_FILE) != ca_dir.join(CA_CERT_FILE) {
        write_new_file(&out_dir.join(CA_CERT_FILE), &material.ca_cert_pem, CERT_FILE_MODE)?;
    }
    Ok(material)
}

/// Checks that the node certificate chains to the CA, as a client dialing `localhost` would.
fn verify_chain(material: &TlsMaterial) -> Result<(), CertError> {
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        material.root_store()?,
        crypto_provider(),
    )
    .build()
    .map_err(|e| invalid("the CA certificate", &e))?;
    let chain = material.cert_chain()?;
    let (end_entity, intermediates) =
        chain.split_first().ok_or_else(|| invalid("the node certificate", &"empty"))?;
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .map_err(|e| invalid("the server name", &e))?;
    let now = rustls::pki_types::UnixTime::now();
    verifier
        .verify_server_cert(end_entity, intermediates, &name, &[], now)
        .map(|_| ())
        .map_err(|e| invalid("the node certificate", &e))
}

fn ca_params(ca_key: &KeyPair) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    // A fingerprint in the name tells CAs apart in a trust directory, and deriving the name
    // from the key lets `issue_node_cert` rebuild the issuer from the key alone.
    let fingerprint = sha256_hex(ca_key.public_key_raw())?;
    let short = fingerprint.get(..8).unwrap_or(&fingerprint);
    params.distinguished_name.push(DnType::CommonName, format!("atoll development CA {short}"));
    params.distinguished_name.push(DnType::OrganizationName, "atoll");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    Ok(params)
}

fn node_params(extra_hosts: &[String]) -> Result<CertificateParams, CertError> {
    let mut hosts: Vec<String> = DEV_CERT_HOSTS.iter().map(|h| h.to_string()).collect();
    for host in extra_hosts.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
        if !hosts.iter().any(|h| h == host) {
            hosts.push(host.to_string());
        }
    }
    let mut params = CertificateParams::new(hosts.clone()).map_err(|e| CertError::Generate {
        reason: format!("{e} (host names: {})", hosts.join(", ")),
    })?;
    params.distinguished_name.push(DnType::CommonName, "atoll node");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Server for clients and peers, client when dialing peers.
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    set_validity(&mut params);
    Ok(params)
}

/// Valid from the start of last year (tolerates the approximate year and clock skew).
fn set_validity(params: &mut CertificateParams) {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let year = 1970 + i32::try_from(since_epoch / SECONDS_PER_YEAR).unwrap_or(0);
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + DEV_CERT_VALIDITY_YEARS, 1, 1);
}

/// Creates `path` with `contents`; fails if it exists (files are never overwritten).
fn write_new_file(path: &Path, contents: &str, mode: u32) -> Result<(), CertError> {
    let write_error = |e: std::io::Error| CertError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(contents.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// Copies the CA certificate to `<trust_dir>/<sha256 prefix>.pem` unless already there.
fn publish_dev_ca(trust_dir: &Path, material: &TlsMaterial) -> Result<(), CertError> {
    let ca_der = material.ca_certs_der()?;
    let first = ca_der.first().ok_or_else(|| invalid("the CA certificate", &"empty"))?;
    let hash = sha256_hex(first)?;
    let name = format!("{}.pem", hash.get(..TRUST_FILE_HASH_HEX_DIGITS).unwrap_or(&hash));
    let path = trust_dir.join(name);
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(trust_dir).map_err(|e| CertError::Write {
        path: trust_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    match write_new_file(&path, &material.ca_cert_pem, CERT_FILE_MODE) {
        // Another node with the same CA published it first.
        Err(_) if path.exists() => Ok(()),
        result => result,
    }
}

/// SHA-256 as lower-case hex, from the ring provider's hash (no extra dependency).
fn sha256_hex(bytes: &[u8]) -> Result<String, CertError> {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let hash = suite
        .tls13()
        .map(|s| s.common.hash_provider)
        .filter(|h| h.algorithm() == rustls::crypto::hash::HashAlgorithm::SHA256)
        .ok_or_else(|| CertError::Generate { reason: "ring provides no SHA-256".into() })?;
    Ok(hash.hash(bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect())
}
