//! TLS to PostgreSQL, with libpq's meanings of `sslmode` (and `PGSSLMODE`, `PGSSLROOTCERT`):
//!
//! - `disable`: plain TCP; `prefer` (the default): TLS when the server offers it; `require`:
//!   TLS or nothing. These encrypt without checking the server's certificate, as libpq does.
//! - `verify-ca` / `verify-full`, or a root certificate given in `PGSSLROOTCERT`: TLS, and the
//!   server's certificate must chain to a trusted root (the system's, or that file) and name
//!   the host connected to.
//!
//! Unix-socket connections never use TLS.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// The TLS connector for tokio-postgres.
#[derive(Clone)]
pub struct Tls(MakeRustlsConnect);

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for Tls
where
    MakeRustlsConnect: tokio_postgres::tls::MakeTlsConnect<S>,
{
    type Stream = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Error;

    fn make_tls_connect(
        &mut self,
        domain: &str,
    ) -> std::result::Result<Self::TlsConnect, Self::Error> {
        // A unix socket has no host name (tokio-postgres passes ""), and PostgreSQL never
        // encrypts one, so any valid name serves.
        let domain = if domain.is_empty() {
            "localhost"
        } else {
            domain
        };
        self.0.make_tls_connect(domain)
    }
}

/// Whether the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Encrypt only (sslmode prefer/require).
    None,
    /// Chain to these roots and match the host name: a PEM file, or the system's roots.
    Roots(Option<std::path::PathBuf>),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn connector(verification: &Verification) -> Result<Tls> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::System(format!("TLS set-up: {e}")))?;
    let config = match verification {
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider())))
            .with_no_client_auth(),
        Verification::Roots(file) => {
            let mut roots = RootCertStore::empty();
            match file {
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|source| Error::File {
                        path: path.clone(),
                        source,
                    })?;
                    let mut reader = std::io::BufReader::new(pem.as_slice());
                    for cert in rustls_pemfile_certs(&mut reader, path)? {
                        roots.add(cert).map_err(|e| {
                            Error::Usage(format!(
                                "{}: not a usable certificate: {e}",
                                path.display()
                            ))
                        })?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            if roots.is_empty() {
                return Err(Error::Usage(
                    "no trusted root certificate to verify the server with (set PGSSLROOTCERT)"
                        .into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Tls(MakeRustlsConnect::new(config)))
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(
    reader: &mut dyn std::io::BufRead,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let mut text = Vec::new();
    reader
        .read_to_end(&mut text)
        .map_err(|source| Error::File {
            path: path.to_path_buf(),
            source,
        })?;
    CertificateDer::pem_slice_iter(&text)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Usage(format!(
                "{}: not a PEM certificate file: {e}",
                path.display()
            ))
        })
}

/// Accepts any certificate but still checks that the server holds its key (the handshake
/// signature): encryption against passive eavesdropping, as libpq's sslmode=require.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
