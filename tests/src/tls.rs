//! A TLS front for a node, as a county puts one before its node: a test
//! certificate authority, a certificate for `127.0.0.1` it signs, and a TLS
//! listener on loopback that forwards each connection to the node's plain
//! HTTP port. Stops when dropped.

use crate::{Context, HarnessError, Result};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{crypto, ServerConfig};

/// A certificate authority made for one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new() -> Result<TestCa> {
        let key = KeyPair::generate().context(|| "a CA key".into())?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).context(|| "CA parameters".into())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wrapsync test CA");
        let cert = params.self_signed(&key).context(|| "the CA".into())?;
        Ok(TestCa { cert, key })
    }

    /// The CA certificate, PEM: what a node's `federation_ca_file` holds.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// A TLS listener forwarding to a node.
pub struct TlsFront {
    url: String,
    _runtime: tokio::runtime::Runtime,
}

impl TlsFront {
    /// Serves `https://127.0.0.1:PORT` with a certificate from `ca`,
    /// forwarding to `target` (a node's `http://host:port`).
    pub fn start(ca: &TestCa, target: &str) -> Result<TlsFront> {
        let upstream = target
            .strip_prefix("http://")
            .ok_or_else(|| HarnessError::new(format!("not a plain HTTP node URL: {target}")))?
            .trim_end_matches('/')
            .to_string();
        let key = KeyPair::generate().context(|| "a server key".into())?;
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .context(|| "server certificate parameters".into())?;
        let cert = params
            .signed_by(&key, &ca.cert, &ca.key)
            .context(|| "the server certificate".into())?;
        let provider = Arc::new(crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context(|| "TLS versions".into())?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .context(|| "the TLS server config".into())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context(|| "a runtime for the TLS front".into())?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context(|| "binding the TLS front".into())?;
        let port = listener
            .local_addr()
            .context(|| "the TLS front's port".into())?
            .port();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut node) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut node).await;
                });
            }
        });
        Ok(TlsFront {
            url: format!("https://127.0.0.1:{port}"),
            _runtime: runtime,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}
