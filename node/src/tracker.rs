//! The tracker over axum WebSockets: embedded in the node at `GET /tracker`, and standalone as
//! `hlswarm tracker --listen ADDR`, which answers WebSocket upgrades at both `/` and `/tracker`
//! (so `ws://ADDR` and `ws://ADDR/tracker` both work) and serves `/metrics`.

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use futures::SinkExt;
use tracker::socket::{Frame, WsSocket};
use tracker::{Tracker, TrackerConfig};

use crate::cli::TrackerArgs;

/// axum's WebSocket as the tracker's socket.
struct AxumWs(WebSocket);

impl WsSocket for AxumWs {
    async fn recv(&mut self) -> Option<Frame> {
        Some(match self.0.recv().await? {
            Ok(Message::Text(t)) => Frame::Text(t.as_str().to_owned()),
            Ok(Message::Binary(_)) => Frame::Binary,
            Ok(Message::Ping(_) | Message::Pong(_)) => Frame::Control,
            Ok(Message::Close(_)) => Frame::Close,
            Err(e) => {
                if !is_capacity(e.into_inner()) {
                    return None;
                }
                Frame::TooLarge
            }
        })
    }

    /// Queued in the library's write buffer; [`WsSocket::flush`] writes the batch.
    async fn send_text(&mut self, text: String) -> bool {
        self.0.feed(Message::Text(text.into())).await.is_ok()
    }

    async fn flush(&mut self) -> bool {
        SinkExt::flush(&mut self.0).await.is_ok()
    }

    async fn close(&mut self) {
        let _ = self.0.send(Message::Close(None)).await;
    }
}

/// Whether the WebSocket library failed a read because the message or frame was over its
/// size limit (rather than because the connection broke).
fn is_capacity(e: Box<dyn std::error::Error + Send + Sync>) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    let capacity = matches!(e.downcast_ref::<Error>(), Some(Error::Capacity(_)));
    if !capacity {
        tracing::debug!(error = %e, "tracker WebSocket read failed");
    }
    capacity
}

/// Initial read buffer per tracker connection.
const READ_BUFFER: usize = 4 * 1024;

/// Admit a connection from `ip` (or answer 429) and hand the upgraded socket to the tracker.
pub fn upgrade(tracker: &Tracker, ws: WebSocketUpgrade, ip: IpAddr) -> Response {
    let (conn, rx) = match tracker.connect(ip) {
        Ok(c) => c,
        Err(why) => return (StatusCode::TOO_MANY_REQUESTS, why.to_string()).into_response(),
    };
    // The library closes on frames far past the limit; the tracker refuses (and counts) the rest.
    let max = tracker.config().max_message_bytes.saturating_mul(2);
    ws.max_message_size(max)
        .max_frame_size(max)
        // Tracker messages are small: the default 128 KiB read buffer per connection cost
        // 1.3 GB at 10,000 peers (bench/tracker.sh). It still grows for a larger message.
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            tracker::socket::serve(conn, rx, AxumWs(socket)).await;
        })
}

async fn ws_standalone(
    State(tracker): State<Tracker>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(&tracker, ws, peer.ip())
}

async fn metrics_standalone(State(tracker): State<Tracker>) -> Response {
    let mut text = String::new();
    tracker.render_metrics(&mut text);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// `hlswarm tracker`: the tracker alone, until SIGINT/SIGTERM.
pub async fn run(args: TrackerArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = TrackerConfig::default();
    if let Some(n) = args.max_connections_per_ip {
        cfg.max_connections_per_ip = n;
    }
    cfg.check().map_err(anyhow::Error::msg)?;
    let tracker = Tracker::new(cfg);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the tracker on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("tracker listening on {addr}");
    let app = Router::new()
        .route("/", get(ws_standalone))
        .route("/tracker", get(ws_standalone))
        .route("/metrics", get(metrics_standalone))
        .with_state(tracker.clone());
    // Replies are small and latency-bound: no Nagle delay behind a relayed offer.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(crate::shutdown_signal())
        .into_future();
    let expiry = tokio::spawn(tracker.run_expiry());
    let stop_expiry = expiry.abort_handle();
    tokio::select! {
        res = serve => {
            stop_expiry.abort();
            res.context("tracker server")?;
            Ok(ExitCode::SUCCESS)
        }
        res = expiry => {
            tracing::error!(task = "tracker-expiry", result = ?res.map_err(|e| e.to_string()), "task stopped unexpectedly");
            Ok(ExitCode::FAILURE)
        }
    }
}
