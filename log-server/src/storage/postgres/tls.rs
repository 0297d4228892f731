//! TLS to PostgreSQL on rustls (spec `spec/storage-postgres.md` §1.1): the connector of every
//! connection of the store (the pool, the integrator-lock session and the `LISTEN` connection),
//! built once from the settings of [`sslmode`](super::sslmode).
//!
//! - `verify-full`: rustls' WebPKI verifier against the configured CA: chain, validity period
//!   and the host name connected to (a DNS name or an IP address in the certificate's SAN).
//! - `verify-ca`: the same chain check, the name not checked.
//! - `require` (with a CA: as `verify-ca`, as libpq does) and `prefer`: encrypted, the
//!   certificate not checked (the handshake signature still is); `require` never falls back to
//!   plain text (`tokio-postgres`' `SslMode::Require`), `prefer` does when the server has no TLS.
//! - `disable`: never TLS.
//!
//! No channel binding (`tls-server-end-point`) is offered: SCRAM runs without it, so a URL
//! with `channel_binding=require` fails to connect rather than silently run without it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Connection, Socket};

use super::sslmode::{self, PgTlsError, RootCert, SslMode, TlsSettings};

/// Connection settings and TLS connector of the store: what every connection is opened with.
#[derive(Clone)]
pub(super) struct PgConnect {
    /// `tokio-postgres` settings (its TLS mode set by [`sslmode::split`]).
    pub(super) config: tokio_postgres::Config,
    /// The connector.
    pub(super) tls: MakeConnector,
}

impl PgConnect {
    /// Parse `url` (and `postgres_ca_file`), load the CA and build the connector.
    ///
    /// # Errors
    /// [`PgTlsError`]: a bad URL or `sslmode`, a verifying mode without a CA, an unreadable
    /// or empty CA file.
    pub(super) fn new(url: &str, ca_file: Option<&std::path::Path>) -> Result<Self, PgTlsError> {
        let (config, settings) = sslmode::split(url, ca_file)?;
        let tls = MakeConnector::new(&settings)?;
        let mode = settings.mode;
        if mode.verifies() || sslmode::all_local(&config) {
            tracing::info!(sslmode = %mode, "postgres connections with sslmode={mode}");
        } else {
            // Written out by the operator (the default off loopback is verify-full).
            tracing::warn!(
                sslmode = %mode,
                "postgres connections to another machine with sslmode={mode}: an active network \
                 attacker can read or change them; use sslmode=verify-full"
            );
        }
        Ok(Self { config, tls })
    }

    /// Open one connection.
    pub(super) async fn connect(
        &self,
    ) -> Result<(Client, Connection<Socket, TlsStream>), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }
}

/// Check the TLS settings of `url` and `ca_file` as the store will use them (configuration
/// validation at start, exit 2); returns the mode in effect.
///
/// # Errors
/// As [`PgConnect::new`].
pub fn validate(url: &str, ca_file: Option<&std::path::Path>) -> Result<SslMode, PgTlsError> {
    let (_, settings) = sslmode::split(url, ca_file)?;
    MakeConnector::new(&settings)?;
    Ok(settings.mode)
}

/// The `MakeTlsConnect` of the store: one rustls configuration, or none for `disable`.
#[derive(Clone)]
pub(super) struct MakeConnector {
    config: Option<Arc<ClientConfig>>,
    mode: SslMode,
}

impl MakeConnector {
    fn new(settings: &TlsSettings) -> Result<Self, PgTlsError> {
        let config = match settings.mode {
            SslMode::Disable => None,
            mode => Some(Arc::new(client_config(mode, settings.root_cert.as_ref())?)),
        };
        Ok(Self {
            config,
            mode: settings.mode,
        })
    }
}

fn client_config(mode: SslMode, root: Option<&RootCert>) -> Result<ClientConfig, PgTlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let roots = match (mode, root) {
        (SslMode::Prefer, _) | (_, None) => None,
        (_, Some(root)) => Some(Arc::new(load_roots(root)?)),
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => {
            WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(verifier_error)?
        }
        (SslMode::VerifyFull | SslMode::VerifyCa, None) => {
            return Err(PgTlsError::NoCa { mode, default: "" })
        }
        (_, Some(roots)) => Arc::new(ChainOnly(
            WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(verifier_error)?,
        )),
        (_, None) => Arc::new(EncryptOnly(provider.signature_verification_algorithms)),
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // Required by PostgreSQL 17's direct TLS negotiation, accepted by older servers.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

fn verifier_error(error: rustls::client::VerifierBuilderError) -> PgTlsError {
    PgTlsError::Rustls(rustls::Error::General(error.to_string()))
}

/// The CA certificates of `root`.
fn load_roots(root: &RootCert) -> Result<RootCertStore, PgTlsError> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(PgTlsError::NoSystemRoots);
            }
        }
        RootCert::File(path) => {
            let invalid = |reason: String| PgTlsError::CaInvalid {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|source| PgTlsError::CaRead {
                path: path.clone(),
                source,
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| invalid(format!("is not valid PEM: {e}")))?;
                store
                    .add(cert)
                    .map_err(|e| invalid(format!("holds an unusable certificate: {e}")))?;
            }
            if store.is_empty() {
                return Err(invalid(
                    "holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)".into(),
                ));
            }
        }
    }
    Ok(store)
}

/// `verify-ca`: the chain and validity as `verify-full`, any host name.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The WebPKI verifier checks the chain first and the name last: a name error means the
        // chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
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
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA (libpq's meaning): encrypted against a passive
/// listener, any certificate accepted; the handshake signature is still checked.
#[derive(Debug)]
struct EncryptOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptOnly {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

impl MakeTlsConnect<Socket> for MakeConnector {
    type Stream = TlsStream;
    type TlsConnect = Connector;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connector, io::Error> {
        // Called for Unix sockets too (with ""), where no handshake follows: a name that is
        // not a DNS name or an IP address fails at the handshake, not here.
        Ok(Connector {
            config: self.config.clone(),
            mode: self.mode,
            host: domain.to_owned(),
        })
    }
}

/// One connection's TLS handshake (from [`MakeConnector`]).
pub(super) struct Connector {
    config: Option<Arc<ClientConfig>>,
    mode: SslMode,
    host: String,
}

impl TlsConnect<Socket> for Connector {
    type Stream = TlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let Some(config) = self.config else {
                return Err(io::Error::other("TLS is off (sslmode=disable)"));
            };
            let name = ServerName::try_from(self.host.clone()).map_err(|_| {
                io::Error::other(format!(
                    "host {:?} is not a DNS name or an IP address: no TLS to it",
                    self.host
                ))
            })?;
            tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map(TlsStream)
                .map_err(|e| explain(e, self.mode, &self.host))
        })
    }
}

/// A handshake error, with why in words for the certificate errors an operator meets.
fn explain(error: io::Error, mode: SslMode, host: &str) -> io::Error {
    let why = match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => format!("the server's certificate is not valid for host {host:?}"),
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            "the server's certificate is not signed by the configured CA".to_owned()
        }
        // An issuer with the configured CA's name but another key.
        Some(rustls::Error::InvalidCertificate(CertificateError::BadSignature)) => {
            "the server's certificate does not verify against the configured CA (bad signature)"
                .to_owned()
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => "the server's certificate has expired".to_owned(),
        _ => return io::Error::new(error.kind(), format!("sslmode={mode}: {error}")),
    };
    io::Error::new(error.kind(), format!("sslmode={mode}: {why} ({error})"))
}

/// A TLS connection to PostgreSQL.
pub(super) struct TlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl tokio_postgres::tls::TlsStream for TlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = "postgresql://u:hunter2@db.internal/v?sslmode=verify-full";
        let missing = dir.path().join("missing.pem");
        let err = validate(url, Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("cannot read the PostgreSQL CA file"), "{err}");
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = validate(url, Some(&empty)).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = validate(url, Some(&garbage)).unwrap_err().to_string();
        assert!(err.contains("unusable certificate"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // Modes that do not verify need no CA file.
        assert_eq!(
            validate("postgresql://db/v?sslmode=require", None).unwrap(),
            SslMode::Require
        );
        assert_eq!(
            validate("postgresql://db/v?sslmode=disable", None).unwrap(),
            SslMode::Disable
        );
    }
}
