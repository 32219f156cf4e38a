//! A loopback HTTPS server (rustls, blocking, one thread) with a certificate from the test CA in
//! this directory (`test-ca.pem`; the server's `test-server.pem` / `test-server.key` are for
//! `127.0.0.1` and `localhost`, valid until 2126, made with openssl for these tests only). It
//! answers every request with the same JSON body and records each request's head.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The test CA's PEM file.
pub(crate) fn ca_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/secrets_support/test-ca.pem")
}

/// A running server: its port and the heads of the requests it read.
pub(crate) struct TlsServer {
    /// The port on 127.0.0.1.
    pub(crate) port: u16,
    /// Request heads (request line and headers), in order.
    pub(crate) requests: Arc<Mutex<Vec<String>>>,
}

/// Starts a server that answers `200` with `body` (JSON) to every request.
pub(crate) fn serve(body: &'static str) -> TlsServer {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(include_bytes!("test-server.pem"))
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("test-server.key")).unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = BufReader::new(rustls::StreamOwned::new(conn, stream));
            let mut head = String::new();
            loop {
                let mut line = String::new();
                // A client that rejects the certificate ends the handshake: an error here.
                match tls.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => {
                        seen.lock().unwrap().push(std::mem::take(&mut head));
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let tls = tls.get_mut();
                        let _ = tls.write_all(response.as_bytes());
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                        break;
                    }
                    Ok(_) => head.push_str(&line),
                }
            }
        }
    });
    TlsServer { port, requests }
}
