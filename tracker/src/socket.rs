//! Drive one tracker connection over a WebSocket: read text frames into the state machine,
//! write replies and relayed messages out, close on silence, on oversized or binary messages,
//! and when the tracker drops the connection for being too slow.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Reject;
use crate::state::Connection;

/// A frame read from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary,
    /// Ping/pong: answered by the WebSocket library; counts as activity.
    Control,
    Close,
}

/// The few WebSocket operations the tracker needs; implemented for axum's socket in the node
/// and over channels in tests.
pub trait WsSocket: Send {
    /// The next frame; `None` when the socket is closed or failed.
    fn recv(&mut self) -> impl Future<Output = Option<Frame>> + Send;
    /// Send a text frame; `false` when the socket failed.
    fn send_text(&mut self, text: String) -> impl Future<Output = bool> + Send;
    /// Close the socket (best effort).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// How long one write may take before the client is considered gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve one connection until it ends; returns why it ended (for logs and tests).
pub async fn serve<S: WsSocket>(conn: Connection, mut rx: mpsc::Receiver<String>, mut socket: S) -> &'static str {
    let cfg = conn.tracker().config().clone();
    let idle = cfg.idle_timeout();
    let mut deadline = Instant::now() + idle;
    let why = loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(text) => {
                    if !send(&mut socket, text).await {
                        break "write failed";
                    }
                }
                None => break "dropped by the tracker",
            },
            frame = tokio::time::timeout_at(deadline, socket.recv()) => {
                deadline = Instant::now() + idle;
                match frame {
                    Err(_) => {
                        conn.tracker().metrics().idle_closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        break "idle";
                    }
                    Ok(None | Some(Frame::Close)) => break "closed by the client",
                    Ok(Some(Frame::Control)) => {}
                    Ok(Some(Frame::Binary)) => {
                        let _ = send(&mut socket, conn.refuse(Reject::Binary, None, None)).await;
                        break "binary message";
                    }
                    Ok(Some(Frame::Text(text))) => {
                        if text.len() > cfg.max_message_bytes {
                            let _ = send(&mut socket, conn.refuse(Reject::TooLarge, None, None)).await;
                            break "message too large";
                        }
                        if let Some(reply) = conn.handle_text(&text)
                            && !send(&mut socket, reply).await
                        {
                            break "write failed";
                        }
                    }
                }
            }
        }
    };
    tracing::debug!(conn = conn.id(), reason = why, "tracker connection ended");
    drop(conn);
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.close()).await;
    why
}

async fn send<S: WsSocket>(socket: &mut S, text: String) -> bool {
    tokio::time::timeout(SEND_TIMEOUT, socket.send_text(text))
        .await
        .unwrap_or(false)
}
