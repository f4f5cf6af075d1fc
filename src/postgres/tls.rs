//! rustls client configuration for each `sslmode`, shared by the replication
//! connection and the SQL connections.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

use super::conn::{ConnParams, ParamsError, SslMode};

/// The checks short of verify-full, which webpki does alone:
/// - no chain (sslmode prefer/require without a root certificate): any certificate;
/// - a chain (verify-ca, or require with a root certificate): the chain must lead to
///   the root certificate, the host name is not checked.
///
/// Either way the server must prove it owns the key it presents (the handshake
/// signature is verified).
#[derive(Debug)]
struct Relaxed {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
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
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn load_roots(params: &ConnParams) -> Result<Option<RootCertStore>, ParamsError> {
    let path = match &params.sslrootcert {
        Some(p) => p.clone(),
        None => {
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            match home.map(|h| h.join(".postgresql/root.crt")) {
                Some(p) if p.is_file() => p,
                _ => return Ok(None),
            }
        }
    };
    let bad = |e: String| {
        ParamsError::Tls(format!(
            "cannot read sslrootcert {}: {e}; give a PEM file with the CA certificate",
            path.display()
        ))
    };
    let mut roots = RootCertStore::empty();
    if path.as_os_str() == "system" {
        // libpq's `sslrootcert=system`: the operating system's trusted roots.
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // Unparsable system certificates are skipped, as libpq/OpenSSL do.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(ParamsError::Tls(format!(
                "sslrootcert=system but no trusted root certificate was found on this \
                 machine ({} errors); install ca-certificates or give a PEM file",
                found.errors.len()
            )));
        }
        return Ok(Some(roots));
    }
    for cert in CertificateDer::pem_file_iter(&path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(Some(roots))
}

/// A TLS connector for the replication connection.
pub fn connector(params: &ConnParams) -> Result<TlsConnector, ParamsError> {
    Ok(TlsConnector::from(Arc::new(client_config(params)?)))
}

/// The rustls configuration for `params.sslmode`.
pub fn client_config(params: &ConnParams) -> Result<ClientConfig, ParamsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ParamsError::Tls(e.to_string()))?;
    let roots = load_roots(params)?;
    let verifier: Arc<dyn ServerCertVerifier> = match (params.sslmode, roots) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(ParamsError::Tls(format!(
                "sslmode={} needs the CA certificate: set sslrootcert=/path/to/ca.pem in the \
                 source URL",
                if params.sslmode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            )))
        }
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => Arc::new(Relaxed {
            provider,
            chain: None,
        }),
        (mode, Some(roots)) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| ParamsError::Tls(e.to_string()))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(Relaxed {
                    provider,
                    chain: Some(webpki),
                })
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&params.sslcert, &params.sslkey) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let (chain, der) = load_client_identity(cert, key)?;
            builder.with_client_auth_cert(chain, der).map_err(|e| {
                ParamsError::Tls(format!(
                    "client certificate {} and key {} do not form a usable identity: {e}",
                    cert.display(),
                    key.display()
                ))
            })
        }
        (Some(_), None) => Err(ParamsError::Tls(
            "sslcert is set without sslkey: give both in the source URL".into(),
        )),
        (None, Some(_)) => Err(ParamsError::Tls(
            "sslkey is set without sslcert: give both in the source URL".into(),
        )),
    }
}

/// Reads the client certificate chain and its private key (PEM).
fn load_client_identity(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ParamsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ParamsError::Tls(format!(
                "cannot read sslcert {}: {e}; give a PEM file with the client certificate",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(ParamsError::Tls(format!(
            "sslcert {} holds no certificate; give a PEM file with the client certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ParamsError::Tls(format!(
            "cannot read sslkey {}: {e}; give a PEM file with the client's private key \
             (PKCS#8, PKCS#1 or SEC1)",
            key.display()
        ))
    })?;
    Ok((chain, key))
}
