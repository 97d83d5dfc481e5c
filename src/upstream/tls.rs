//! Upstream stage, TLS: how lockroute talks TLS to a lane, following libpq's `sslmode`.
//!
//! <https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION>
//!
//! | sslmode | SSLRequest | answer `N` | certificate check |
//! |---|---|---|---|
//! | disable | never | — | — |
//! | prefer | yes | plain | none |
//! | require | yes | refused | none, or the chain when `sslrootcert` is given (libpq does this) |
//! | verify-ca | yes | refused | the chain (against `sslrootcert`, else webpki-roots) |
//! | verify-full | yes | refused | the chain and the host name (IP SANs for an IP host) |
//!
//! Every config is built on an explicit ring provider: if a second provider ever lands in the
//! dependency graph, the process default becomes ambiguous and rustls panics.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::{SslMode, UpstreamTarget};

/// Why the TLS settings of a target could not be built. Raised once, at start.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read sslrootcert {path}: {source}")]
    ReadRootCert {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sslrootcert {path} holds no usable PEM certificate")]
    NoRootCert { path: PathBuf },
    #[error("sslrootcert {path}: {reason}")]
    BadRootCert { path: PathBuf, reason: String },
    #[error("the upstream host {host:?} is not a valid TLS server name")]
    InvalidHost { host: String },
    #[error("cannot build the TLS client configuration: {0}")]
    Rustls(String),
}

/// How one target is reached: built once per target at start, shared by every connect.
#[derive(Clone)]
pub struct UpstreamTls {
    mode: SslMode,
    /// `None` for `disable`.
    client: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("mode", &self.mode)
            .field("server_name", &self.client.as_ref().map(|(_, name)| name))
            .finish()
    }
}

impl UpstreamTls {
    pub fn for_target(t: &UpstreamTarget) -> Result<UpstreamTls, TlsConfigError> {
        if t.sslmode == SslMode::Disable {
            return Ok(UpstreamTls {
                mode: t.sslmode,
                client: None,
            });
        }
        let host = bare_host(&t.host);
        let server_name =
            ServerName::try_from(host.to_owned()).map_err(|_| TlsConfigError::InvalidHost {
                host: host.to_owned(),
            })?;
        let config = client_config(t.sslmode, t.sslrootcert.as_deref())?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        Ok(UpstreamTls {
            mode: t.sslmode,
            client: Some((connector, server_name)),
        })
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Whether a server's `N` to SSLRequest ends the connect (everything but `prefer`).
    pub fn requires_tls(&self) -> bool {
        !matches!(self.mode, SslMode::Disable | SslMode::Prefer)
    }

    /// The connector and the name to verify and send as SNI; `None` when TLS is never tried.
    pub fn connector(&self) -> Option<(&tokio_rustls::TlsConnector, &ServerName<'static>)> {
        self.client.as_ref().map(|(c, n)| (c, n))
    }
}

/// A URL host may be a bracketed IPv6 literal; neither DNS nor TLS wants the brackets.
pub fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the certificate check covers, after libpq's rule that `require` with a root
/// certificate behaves as `verify-ca`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    Chain,
    ChainAndName,
}

fn check_for(mode: SslMode, has_root_cert: bool) -> Check {
    match mode {
        SslMode::Disable | SslMode::Prefer => Check::None,
        SslMode::Require if has_root_cert => Check::Chain,
        SslMode::Require => Check::None,
        SslMode::VerifyCa => Check::Chain,
        SslMode::VerifyFull => Check::ChainAndName,
    }
}

fn client_config(mode: SslMode, root_cert: Option<&Path>) -> Result<ClientConfig, TlsConfigError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Rustls(e.to_string()))?;
    let check = check_for(mode, root_cert.is_some());
    let builder = match check {
        Check::None => {
            let verifier = NoVerification {
                algorithms: provider.signature_verification_algorithms,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        Check::Chain | Check::ChainAndName => {
            let roots = match root_cert {
                Some(path) => load_roots(path)?,
                None => RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
            };
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsConfigError::Rustls(e.to_string()))?;
            if check == Check::ChainAndName {
                builder.with_webpki_verifier(webpki)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly { webpki }))
            }
        }
    };
    Ok(builder.with_no_client_auth())
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let pem = std::fs::read(path).map_err(|source| TlsConfigError::ReadRootCert {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsConfigError::BadRootCert {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| TlsConfigError::BadRootCert {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoRootCert {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// `prefer` and `require` without a root certificate: libpq encrypts but checks nothing about
/// the certificate. The handshake signature is still checked, so the peer must hold the key of
/// the certificate it shows.
#[derive(Debug)]
struct NoVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full webpki check, minus the host name. webpki checks the chain before the
/// name, so a name error means the chain was already accepted.
#[derive(Debug)]
struct ChainOnly {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(mode: SslMode, root: Option<PathBuf>) -> UpstreamTarget {
        UpstreamTarget {
            host: "db.example.com".into(),
            port: 5432,
            user: "app".into(),
            password: Some("secret".into()),
            database: "app".into(),
            sslmode: mode,
            sslrootcert: root,
        }
    }

    #[test]
    fn check_for_each_mode_follows_libpq() {
        let table = [
            (SslMode::Disable, false, Check::None),
            (SslMode::Prefer, false, Check::None),
            (SslMode::Prefer, true, Check::None),
            (SslMode::Require, false, Check::None),
            (SslMode::Require, true, Check::Chain),
            (SslMode::VerifyCa, false, Check::Chain),
            (SslMode::VerifyCa, true, Check::Chain),
            (SslMode::VerifyFull, false, Check::ChainAndName),
            (SslMode::VerifyFull, true, Check::ChainAndName),
        ];
        for (mode, root, want) in table {
            assert_eq!(check_for(mode, root), want, "{mode:?} root={root}");
        }
    }

    #[test]
    fn for_target_each_mode_sets_tls_requirement() {
        let table = [
            (SslMode::Disable, false, false),
            (SslMode::Prefer, true, false),
            (SslMode::Require, true, true),
            (SslMode::VerifyCa, true, true),
            (SslMode::VerifyFull, true, true),
        ];
        for (mode, tries_tls, requires) in table {
            let tls = UpstreamTls::for_target(&target(mode, None)).unwrap();
            assert_eq!(tls.connector().is_some(), tries_tls, "{mode:?}");
            assert_eq!(tls.requires_tls(), requires, "{mode:?}");
        }
    }

    #[test]
    fn for_target_missing_root_cert_names_the_path() {
        let path = PathBuf::from("/nonexistent/lockroute/root.crt");
        let err = UpstreamTls::for_target(&target(SslMode::VerifyFull, Some(path))).unwrap_err();
        assert!(matches!(err, TlsConfigError::ReadRootCert { .. }));
        assert!(
            err.to_string().contains("/nonexistent/lockroute/root.crt"),
            "{err}"
        );
    }

    #[test]
    fn for_target_root_cert_without_pem_is_an_error() {
        let path =
            std::env::temp_dir().join(format!("lockroute-empty-root-{}.crt", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err =
            UpstreamTls::for_target(&target(SslMode::VerifyCa, Some(path.clone()))).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, TlsConfigError::NoRootCert { .. }), "{err}");
    }

    #[test]
    fn bare_host_strips_ipv6_brackets_only() {
        for (input, want) in [
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("localhost", "localhost"),
            ("[x", "[x"),
        ] {
            assert_eq!(bare_host(input), want);
        }
    }

    #[test]
    fn for_target_ip_host_uses_ip_server_name() {
        let mut t = target(SslMode::VerifyFull, None);
        t.host = "[::1]".into();
        let tls = UpstreamTls::for_target(&t).unwrap();
        let (_, name) = tls.connector().unwrap();
        assert!(matches!(name, ServerName::IpAddress(_)));
    }
}
