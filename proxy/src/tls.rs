//! Terminating a client's TLS for an intercepted host: the ClientHello's name must be one
//! pipgate intercepts (a certificate is never minted for anything else), then the leaf for it,
//! the handshake, and HTTP on the stream.

use std::sync::Arc;

use pipgate_policy::Refused;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::access::Access;
use crate::conn::Conn;
use crate::intercept::{self, Intercepted, Scheme};
use crate::respond::{Failure, Form};
use crate::serve::{self, Answer, Handler, Protocols, Serving};

/// Terminates TLS on `io` with a leaf for the SNI (or, without one, `host`) and serves
/// HTTP/1.1 or HTTP/2 on it. Requests must be for `host:port`, the name the connection was
/// decided for (a CONNECT's target, a redirected connection's SNI), whatever else the SNI names.
pub(crate) async fn intercept<IO>(conn: Conn, io: IO, host: String, port: u16)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = serve::guard(io, conn.limits().client_idle_timeout);
    // A task is as large as its largest state. The handshake is boxed (and freed once done),
    // and so is the serving of HTTP, so a connection that sits idle does not carry room for a
    // handshake (bench, 2,000 idle tunnels: 85 -> 76 MiB).
    let Some(tls) = Box::pin(handshake(&conn, io, &host, port)).await else {
        return;
    };
    serve_intercepted(conn, tls, host, port, Scheme::Https).await;
}

/// The client's ClientHello, checked, and the handshake with the leaf for its name; `None`
/// when the connection ended (refused with an alert, failed, or too slow: logged here).
async fn handshake<IO>(
    conn: &Conn,
    io: IO,
    host: &str,
    port: u16,
) -> Option<tokio_rustls::server::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let timeout = conn.limits().header_timeout;
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let mut start = match tokio::time::timeout(timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            conn.shared.metrics.client_tls_failure(failure_label(&e));
            tracing::info!(client = %conn.peer, %host, error = %e, "TLS ClientHello refused");
            return None;
        }
        Err(_) => {
            conn.shared.metrics.client_tls_failure("timeout");
            return None;
        }
    };
    let sni = start
        .client_hello()
        .server_name()
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase());
    let leaf = match sni {
        None => host.to_owned(),
        // Mint only for configured hosts: an SNI naming anything else gets no certificate.
        Some(sni) if !conn.rt.config.policy.intercepts(&sni) => {
            let reason = format!("SNI {sni} names no intercepted host");
            let failure = Failure::Forbidden(Refused::HostNotAllowed, reason.clone());
            let rule = failure.rule();
            conn.shared
                .metrics
                .refusal(conn.mode.as_str(), failure.refusal());
            failure.send_raw(&mut start.io, Form::Tls).await;
            Access {
                client: Some(conn.peer),
                user: conn.user.as_deref(),
                mode: Some(conn.mode),
                host: Some(host),
                port: Some(port),
                decision: Some("refuse"),
                rule: Some(rule),
                reason: Some(&reason),
                ..Access::default()
            }
            .emit();
            return None;
        }
        Some(sni) => sni,
    };
    let config = match conn.shared.leaves.server_config(&leaf) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(host = %leaf, error = %e, "cannot mint a leaf certificate");
            return None;
        }
    };
    match tokio::time::timeout(timeout, start.into_stream(config)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            let label = failure_label(&e);
            conn.shared.metrics.client_tls_failure(label);
            if matches!(
                label,
                "unknown_ca" | "bad_certificate" | "certificate_unknown"
            ) {
                // Which client it is cannot be told from its handshake: every variable is named.
                let ca = conn.rt.config.ca.cert.display();
                tracing::warn!(client = %conn.peer, %host, alert = label, "the client rejected pipgate's certificate for {host}: it does not trust pipgate's CA; set PIP_CERT={ca} for pip, SSL_CERT_FILE={ca} for uv and curl, REQUESTS_CA_BUNDLE={ca} for poetry and requests (it also overrides pip's PIP_CERT), or use a bundle with the system roots: pipgate ca bundle");
            } else {
                tracing::info!(client = %conn.peer, %host, error = %e, alert = label, "TLS handshake with client failed");
            }
            None
        }
        Err(_) => {
            conn.shared.metrics.client_tls_failure("timeout");
            None
        }
    }
}

/// The `alert` label of `pipgate_client_tls_failures_total` for a failed handshake: the alert
/// the client sent, or what went wrong.
fn failure_label(e: &std::io::Error) -> &'static str {
    use rustls::AlertDescription as A;
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "eof",
            std::io::ErrorKind::InvalidData => "not_tls",
            _ => "io",
        };
    };
    match tls {
        rustls::Error::AlertReceived(alert) => match alert {
            A::UnknownCA => "unknown_ca",
            A::BadCertificate => "bad_certificate",
            A::CertificateUnknown => "certificate_unknown",
            A::CertificateExpired => "certificate_expired",
            A::HandshakeFailure => "handshake_failure",
            A::ProtocolVersion => "protocol_version",
            A::DecryptError => "decrypt_error",
            A::DecodeError => "decode_error",
            A::InternalError => "internal_error",
            A::UserCanceled => "user_canceled",
            A::NoApplicationProtocol => "no_application_protocol",
            _ => "other_alert",
        },
        rustls::Error::InvalidMessage(_) => "not_tls",
        rustls::Error::PeerIncompatible(_) => "incompatible",
        rustls::Error::NoApplicationProtocol => "no_application_protocol",
        _ => "protocol",
    }
}

/// Serves the requests of an intercepted connection (TLS terminated, or plain HTTP to an
/// `http://` index) through the policy. `io` has been [`serve::guard`]ed.
pub(crate) fn serve_intercepted<IO>(
    conn: Conn,
    io: IO,
    host: String,
    port: u16,
    scheme: Scheme,
) -> Serving
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = conn.limits().clone();
    let stop = conn.stop.clone();
    let protocols = match scheme {
        Scheme::Https => Protocols::Auto,
        Scheme::Http => Protocols::Http1,
    };
    let site = Arc::new(Intercepted {
        host,
        port,
        scheme,
        conn,
    });
    serve::http(io, protocols, &limits, stop, Site(site))
}

/// An intercepted host's connection: every request goes through the policy as one for it.
struct Site(Arc<Intercepted>);

impl Handler for Site {
    fn answer(&self, req: http::Request<hyper::body::Incoming>) -> Answer {
        let site = self.0.clone();
        Box::pin(async move { Ok(intercept::handle(site, req).await) })
    }
}
