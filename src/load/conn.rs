//! One keep-alive HTTP/1.1 connection, owned by one worker: hyper's connection-level
//! client without a pool, because a worker never shares its connection and a pool's
//! bookkeeping would only cost throughput.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
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

pub struct Conn {
    host: String,
    port: u16,
    /// The address last connected to; kept so a server that closes every connection
    /// does not cost a DNS lookup per request, dropped after a failed connect so a
    /// Docker network alias that moves to a new container is followed.
    addr: Option<SocketAddr>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(host: &str, port: u16) -> Conn {
        Conn { host: host.to_string(), port, addr: None, sender: None }
    }

    /// Forgets the connection (after a timeout or error its state is unknown).
    pub fn reset(&mut self) {
        self.sender = None;
    }

    /// Opens the connection if there is none usable; a no-op on a live keep-alive one.
    pub async fn ready(&mut self) -> Result<(), SendError> {
        if let Some(sender) = &mut self.sender {
            // A server may close after N requests (nginx: keepalive_requests) or when idle;
            // that is not the request's fault, so reconnect instead of failing it.
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Ok(());
            }
            self.sender = None;
        }
        let stream = match self.addr {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((self.host.as_str(), self.port)).await,
        };
        let stream = stream.inspect_err(|_| self.addr = None)?;
        self.addr = stream.peer_addr().ok();
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the peer closes; errors surface on send.
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one request and reads the whole response; returns the status and the bytes
    /// received (status line and headers as serialised, plus the body).
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(u16, u64), SendError> {
        self.ready().await?;
        let sender = self.sender.as_mut().expect("ready leaves a sender");
        let result = async {
            let resp = sender.send_request(req).await?;
            let (parts, mut body) = resp.into_parts();
            let mut received = head_bytes(&parts);
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame?.data_ref() {
                    received += data.len() as u64;
                }
            }
            Ok::<_, hyper::Error>((parts.status.as_u16(), received))
        }
        .await;
        if result.is_err() {
            self.sender = None;
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
