//! Startup stage, TLS toward clients: the acceptor that answers a client's SSLRequest.
//!
//! With no certificate configured, lockroute generates a self-signed one at start, so that an
//! existing DSN with `sslmode=require` keeps working unedited (`require` checks no certificate).
//! The config is built on an explicit ring provider, never the process default: a second
//! provider in the dependency graph would make the default ambiguous and rustls would panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::ClientTls;

/// The ALPN name PostgreSQL 17+ defines. libpq 17+ offers it; older clients offer nothing.
pub const POSTGRESQL_ALPN: &[u8] = b"postgresql";

/// The names the generated certificate is valid for: a sidecar is reached on loopback.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why the client TLS acceptor could not be built. Raised once, at start.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path}: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The acceptor for `tls`, or `None` when client TLS is disabled (SSLRequest gets `N`).
pub fn acceptor(tls: &ClientTls) -> Result<Option<TlsAcceptor>, TlsSetupError> {
    let (chain, key) = match tls {
        ClientTls::Disabled => return Ok(None),
        ClientTls::Files { cert, key } => (load_chain(cert)?, load_key(key)?),
        ClientTls::SelfSigned => self_signed()?,
    };
    Ok(Some(TlsAcceptor::from(Arc::new(server_config(
        chain, key,
    )?))))
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // Selected when offered (libpq 17+); a client that offers no ALPN at all is still accepted.
    config.alpn_protocols = vec![POSTGRESQL_ALPN.to_vec()];
    Ok(config)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::BadPem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// The first private key in the file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let pem = read(path)?;
    // The parse error names only the PEM section problem; the key bytes are never echoed.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsSetupError::BadPem {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// An end-entity certificate (not a CA: rustls clients reject a CA used as an end entity).
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsSetupError> {
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|n| n.to_string()).collect();
    let generated = rcgen::generate_simple_self_signed(names)?;
    let key = PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der());
    Ok((vec![generated.cert.der().clone()], key.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{ServerName, UnixTime};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::config::{SslMode, UpstreamTarget};
    use crate::upstream::tls::UpstreamTls;

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lockroute-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn connector_trusting(
        root: CertificateDer<'static>,
        alpn: &[&[u8]],
    ) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// One handshake over an in-memory pipe and one byte each way; returns the negotiated ALPN
    /// and the certificate the server presented.
    async fn handshake(
        acceptor: TlsAcceptor,
        connector: &tokio_rustls::TlsConnector,
    ) -> (Option<Vec<u8>>, CertificateDer<'static>) {
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let server = tokio::spawn(async move {
            let mut tls = acceptor.accept(server_io).await.unwrap();
            tls.write_all(b"S").await.unwrap();
            tls.flush().await.unwrap();
        });
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, client_io).await.unwrap();
        assert_eq!(tls.read_u8().await.unwrap(), b'S');
        server.await.unwrap();
        let conn = tls.get_ref().1;
        let served = conn.peer_certificates().unwrap()[0].clone().into_owned();
        (conn.alpn_protocol().map(|p| p.to_vec()), served)
    }

    /// A CA and a `localhost` certificate it signed, written as PEM files.
    fn ca_signed_files(dir: &Path) -> (CertificateDer<'static>, PathBuf, PathBuf) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&cert, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        (ca.der().clone(), cert, key)
    }

    #[test]
    fn acceptor_disabled_is_none() {
        assert!(acceptor(&ClientTls::Disabled).unwrap().is_none());
    }

    #[tokio::test]
    async fn acceptor_files_serves_chain_and_alpn_is_optional() {
        let dir = temp_dir("files");
        let (ca, cert, key) = ca_signed_files(&dir);
        let acceptor = acceptor(&ClientTls::Files { cert, key })
            .unwrap()
            .expect("an acceptor");
        std::fs::remove_dir_all(&dir).unwrap();
        let with_alpn = handshake(
            acceptor.clone(),
            &connector_trusting(ca.clone(), &[POSTGRESQL_ALPN]),
        )
        .await;
        assert_eq!(with_alpn.0.as_deref(), Some(POSTGRESQL_ALPN));
        let without_alpn = handshake(acceptor, &connector_trusting(ca, &[])).await;
        assert_eq!(without_alpn.0, None);
    }

    #[tokio::test]
    async fn acceptor_self_signed_serves_loopback_names_to_require_client() {
        let acceptor = acceptor(&ClientTls::SelfSigned)
            .unwrap()
            .expect("an acceptor");
        // A client with sslmode=require, as an unedited DSN would have.
        let target = UpstreamTarget {
            host: "localhost".into(),
            port: 5432,
            user: "app".into(),
            password: None,
            database: "app".into(),
            sslmode: SslMode::Require,
            sslrootcert: None,
        };
        let require = UpstreamTls::for_target(&target).unwrap();
        let (_, served) = handshake(acceptor, require.connector().unwrap().0).await;
        // The certificate is an end entity valid for every loopback name.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(served.clone()).unwrap();
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
        for name in SELF_SIGNED_NAMES {
            let name = ServerName::try_from(name).unwrap();
            let verified = verifier.verify_server_cert(&served, &[], &name, &[], UnixTime::now());
            assert!(verified.is_ok(), "{name:?}: {verified:?}");
        }
    }

    #[test]
    fn acceptor_missing_file_names_the_path() {
        let tls = ClientTls::Files {
            cert: "/nonexistent/lockroute.crt".into(),
            key: "/nonexistent/lockroute.key".into(),
        };
        let Err(err) = acceptor(&tls) else {
            panic!("a missing file must be an error")
        };
        assert!(matches!(err, TlsSetupError::Read { .. }));
        assert!(
            err.to_string().contains("/nonexistent/lockroute.crt"),
            "{err}"
        );
    }

    #[test]
    fn load_key_each_pem_label_is_accepted() {
        let dir = temp_dir("keys");
        let path = dir.join("key.pem");
        let body = "MIIBAAAA\n";
        let table = [
            ("PRIVATE KEY", Some("pkcs8")),
            ("RSA PRIVATE KEY", Some("pkcs1")),
            ("EC PRIVATE KEY", Some("sec1")),
            ("CERTIFICATE", None),
        ];
        for (label, want) in table {
            std::fs::write(
                &path,
                format!("-----BEGIN {label}-----\n{body}-----END {label}-----\n"),
            )
            .unwrap();
            let got = load_key(&path).ok().map(|k| match k {
                PrivateKeyDer::Pkcs8(_) => "pkcs8",
                PrivateKeyDer::Pkcs1(_) => "pkcs1",
                PrivateKeyDer::Sec1(_) => "sec1",
                _ => "other",
            });
            assert_eq!(got, want, "{label}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_chain_without_certificate_is_an_error() {
        let dir = temp_dir("nocert");
        let path = dir.join("empty.crt");
        std::fs::write(&path, "nothing here\n").unwrap();
        let err = load_chain(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(err, TlsSetupError::NoCertificate { .. }), "{err}");
    }
}
