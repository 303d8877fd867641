//! One keep-alive HTTP/1.1 connection, owned by one worker: hyper's connection-level
//! client without a pool, because a worker never shares its connection and a pool's
//! bookkeeping would only cost throughput.
//!
//! The connection future (which does the socket I/O) is polled inside the worker's own
//! task together with the request, instead of in a spawned task: that saves a task wake-up,
//! often a cross-thread one, per request, which is most of the cost on a small machine.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect: {0}")]
    Connect(#[from] std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
}

struct Live {
    sender: SendRequest<Full<Bytes>>,
    connection: Io,
    /// The connection future has finished (peer closed, error): no more requests on it.
    done: bool,
}

type Io = Pin<Box<Connection<TokioIo<TcpStream>, Full<Bytes>>>>;

/// Polls `fut` to completion while driving the connection's I/O.
async fn drive<F: Future>(connection: &mut Io, done: &mut bool, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        if !*done && connection.as_mut().poll(cx).is_ready() {
            // Closed or failed; a pending request then fails through its channel.
            *done = true;
        }
        fut.as_mut().poll(cx)
    })
    .await
}

pub struct Conn {
    host: String,
    port: u16,
    /// The address last connected to; kept so a server that closes every connection
    /// does not cost a DNS lookup per request, dropped after a failed connect so a
    /// Docker network alias that moves to a new container is followed.
    addr: Option<SocketAddr>,
    live: Option<Live>,
}

impl Conn {
    pub fn new(host: &str, port: u16) -> Conn {
        Conn { host: host.to_string(), port, addr: None, live: None }
    }

    /// Forgets the connection (after a timeout or error its state is unknown).
    pub fn reset(&mut self) {
        self.live = None;
    }

    /// Opens the connection if there is none usable; a no-op on a live keep-alive one.
    pub async fn ready(&mut self) -> Result<(), SendError> {
        if let Some(live) = &mut self.live {
            // A server may close after N requests (nginx: keepalive_requests) or when idle;
            // that is not the request's fault, so reconnect instead of failing it.
            if !live.done && !live.sender.is_closed() {
                let ready = drive(&mut live.connection, &mut live.done, live.sender.ready()).await;
                if ready.is_ok() && !live.done {
                    return Ok(());
                }
            }
            self.live = None;
        }
        let stream = match self.addr {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((self.host.as_str(), self.port)).await,
        };
        let stream = stream.inspect_err(|_| self.addr = None)?;
        self.addr = stream.peer_addr().ok();
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        self.live = Some(Live { sender, connection: Box::pin(connection), done: false });
        Ok(())
    }

    /// Sends one request and reads the whole response; returns the status and the bytes
    /// received (status line and headers as serialised, plus the body).
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(u16, u64), SendError> {
        self.ready().await?;
        let live = self.live.as_mut().expect("ready leaves a live connection");
        let sender = &mut live.sender;
        let exchange = async move {
            let resp = sender.send_request(req).await?;
            let (parts, mut body) = resp.into_parts();
            let mut received = head_bytes(&parts);
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame?.data_ref() {
                    received += data.len() as u64;
                }
            }
            Ok::<_, hyper::Error>((parts.status.as_u16(), received))
        };
        let result = drive(&mut live.connection, &mut live.done, exchange).await;
        if result.is_err() {
            self.live = None;
        }
        Ok(result?)
    }
}

/// "HTTP/1.1 200 OK\r\n" + "name: value\r\n"... + "\r\n"
fn head_bytes(parts: &hyper::http::response::Parts) -> u64 {
    let reason = parts.status.canonical_reason().map_or(0, str::len);
    let mut n = "HTTP/1.1 200 \r\n".len() + reason + 2;
    for (name, value) in &parts.headers {
        n += name.as_str().len() + 2 + value.len() + 2;
    }
    n as u64
}
