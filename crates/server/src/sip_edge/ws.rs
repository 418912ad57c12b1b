//! SIP over WebSocket (RFC 7118) on the `ws:` and `wss:` listeners of `[sip] listen` (`wss:`
//! runs the TLS handshake of `tls.rs` first, with the `[tls]` certificate).
//!
//! The handshake must offer the `sip` subprotocol, which is echoed back; anything else is
//! refused with HTTP 400. After it, every text or binary frame is one whole SIP message (no
//! Content-Length framing) and every message the endpoint sends on the connection leaves as
//! one text frame. Like a TCP connection, the connection is a stream of the endpoint
//! ([`Inbound::Opened`] … [`Inbound::Closed`]): a browser's registration is bound to it
//! (RFC 5626 flow), requests to that agent go down it, and its bindings go when it closes.
//! The WebSocket protocol itself (frames, masking, ping/pong, close) is `tokio-tungstenite`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_sip::Transport;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tracing::{Instrument, debug, info_span, warn};

use crate::sip_edge::transport::{self, Inbound, StreamContext, StreamId};

/// Messages queued for one connection's writer before it counts as saturated.
const WRITER_QUEUE: usize = 256;

/// The subprotocol of RFC 7118 §4.1.
const SUBPROTOCOL: &str = "sip";

/// How long a client may take to complete the HTTP upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the `Sec-WebSocket-Protocol` values of a handshake offer `sip`.
fn offers_sip<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|value| {
        value.split(|b| *b == b',').any(|token| {
            token
                .trim_ascii()
                .eq_ignore_ascii_case(SUBPROTOCOL.as_bytes())
        })
    })
}

/// The handshake callback: accept only clients that speak SIP, and say that we do.
// The error type is tungstenite's callback signature, not ours to box.
#[allow(clippy::result_large_err)]
fn negotiate(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .map(HeaderValue::as_bytes);
    if !offers_sip(offered) {
        let mut refusal = ErrorResponse::new(Some(
            "the WebSocket subprotocol \"sip\" (RFC 7118) is required".to_owned(),
        ));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(response)
}

/// A frame for one outgoing SIP message: text when it is UTF-8 (every message Switchboard
/// writes is), binary otherwise, as RFC 7118 §5.1 allows.
fn frame(bytes: Vec<u8>) -> Message {
    match String::from_utf8(bytes) {
        Ok(text) => Message::Text(Utf8Bytes::from(text)),
        Err(e) => Message::Binary(e.into_bytes().into()),
    }
}

/// Accepts connections on a `ws:` listener, or on a `wss:` one with `tls` (the TLS handshake
/// first), each counted against `max_tcp_connections` from the start.
pub async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, ctx: StreamContext) {
    let transport = if tls.is_some() {
        Transport::Wss
    } else {
        Transport::Ws
    };
    let kind = transport.via_token().to_ascii_lowercase();
    while let Some((stream, id)) = transport::accept(&listener, &ctx, transport).await {
        let span = info_span!("conn", transport = %kind, conn = id.conn, peer = %id.from);
        let tls = tls.clone();
        let ctx = ctx.clone();
        tokio::spawn(
            async move {
                match tls {
                    None => connection(id, stream, ctx).await,
                    Some(acceptor) => {
                        if let Some(stream) =
                            crate::sip_edge::tls::handshake(&acceptor, stream, &ctx).await
                        {
                            connection(id, stream, ctx).await;
                        }
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// Serves one accepted connection as a SIP WebSocket until either side closes it.
async fn connection<S>(id: StreamId, stream: S, ctx: StreamContext)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // `id` holds the connection's slot of `max_tcp_connections` until the end.
    let key = (id.conn, id.transport, id.from);
    let StreamContext {
        limits,
        inbound,
        stats,
        stop,
        ..
    } = ctx;
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_message_size))
        .max_frame_size(Some(limits.max_message_size));
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, negotiate, Some(config));
    let socket = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(e)) => {
            stats.ws_handshake_failures.fetch_add(1, Ordering::Relaxed);
            warn!("WebSocket handshake refused: {e}");
            return;
        }
        Err(_) => {
            stats.ws_handshake_failures.fetch_add(1, Ordering::Relaxed);
            warn!("WebSocket handshake timed out");
            return;
        }
    };
    debug!("WebSocket connection opened");
    let (mut sink, mut source) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITER_QUEUE);
    let opened = Inbound::Opened {
        conn: id.conn,
        transport: id.transport,
        from: id.from,
        writer: tx,
    };
    inbound.send(opened).await;
    let write_stop = stop.clone();
    let write_task = tokio::spawn(async move {
        loop {
            let bytes = tokio::select! {
                () = write_stop.cancelled() => break,
                b = rx.recv() => match b { Some(b) => b, None => break },
            };
            if sink.send(frame(bytes)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            r = tokio::time::timeout(limits.tcp_idle_timeout, source.next()) => r,
        };
        let message = match next {
            Err(_) => {
                debug!("idle timeout");
                break;
            }
            Ok(None) => break,
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => {
                if matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)) {
                    stats.oversized.fetch_add(1, Ordering::Relaxed);
                    warn!("closing WebSocket connection: {e}");
                } else {
                    debug!("WebSocket read error: {e}");
                }
                break;
            }
        };
        let bytes: Vec<u8> = match message {
            Message::Text(text) => text.as_bytes().to_vec(),
            Message::Binary(bytes) => bytes.to_vec(),
            Message::Close(_) => break,
            // Pings are answered by tungstenite; pongs and raw frames carry no SIP.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        // A CRLF keep-alive sent as a frame carries no message.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        transport::deliver(&inbound, key, bytes).await;
    }
    inbound.send(Inbound::Closed { conn: id.conn }).await;
    // The writer ends once the endpoint task drops its sender (on `Closed`) or at shutdown;
    // give it a moment to send the close frame, then stop it.
    let _ = tokio::time::timeout(Duration::from_secs(1), write_task).await;
    drop(id);
    debug!("WebSocket connection closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sip_subprotocol_is_found_among_others_in_any_case() {
        assert!(offers_sip([b"sip".as_slice()]));
        assert!(offers_sip([b"chat, SIP".as_slice()]));
        assert!(offers_sip([b"chat".as_slice(), b" sip ".as_slice()]));
        assert!(!offers_sip([b"chat, sips".as_slice()]));
        assert!(!offers_sip(std::iter::empty()));
    }

    #[test]
    fn a_handshake_without_sip_is_refused_and_with_it_echoed() {
        let request = Request::builder()
            .header(header::SEC_WEBSOCKET_PROTOCOL, "chat")
            .body(())
            .unwrap();
        let refused = negotiate(&request, Response::new(())).unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

        let request = Request::builder()
            .header(header::SEC_WEBSOCKET_PROTOCOL, "sip")
            .body(())
            .unwrap();
        let accepted = negotiate(&request, Response::new(())).unwrap();
        assert_eq!(
            accepted.headers().get(header::SEC_WEBSOCKET_PROTOCOL),
            Some(&HeaderValue::from_static("sip"))
        );
    }

    #[test]
    fn messages_leave_as_text_frames_unless_they_are_not_utf8() {
        assert!(matches!(
            frame(b"OPTIONS sip:a SIP/2.0\r\n\r\n".to_vec()),
            Message::Text(_)
        ));
        assert!(matches!(frame(vec![0xff, 0xfe]), Message::Binary(_)));
    }
}
