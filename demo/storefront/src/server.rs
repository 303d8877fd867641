//! The TCP server: one thread per connection, HTTP/1.1 keep-alive and pipelining,
//! bounded by `Config::max_connections` (extra connections get an immediate 503).

use crate::app::App;
use crate::http::{self, ReadError};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How long a connection may sit idle (or a client may stall mid-request).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
const STACK_SIZE: usize = 256 * 1024;

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts connections forever (returns only if the listener itself fails hard).
pub fn serve(listener: TcpListener, app: Arc<App>) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    let max = app.config.max_connections;
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => match e.kind() {
                io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset => continue,
                _ if e.raw_os_error() == Some(24) || e.raw_os_error() == Some(23) => {
                    // EMFILE / ENFILE: out of descriptors; back off instead of spinning.
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
                _ if e.kind() == io::ErrorKind::InvalidInput => return Err(e),
                _ => {
                    eprintln!("storefront: accept failed: {e}");
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        if active.fetch_add(1, Ordering::AcqRel) >= max {
            active.fetch_sub(1, Ordering::AcqRel);
            refuse(stream, &app);
            continue;
        }
        let slot = Slot(active.clone());
        let app = app.clone();
        // If the thread cannot be spawned the closure (and the stream and slot in it)
        // is dropped: the connection closes and the slot is released.
        let _ = thread::Builder::new()
            .name("conn".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let _slot = slot;
                handle_connection(stream, &app);
            });
    }
}

fn refuse(stream: TcpStream, app: &App) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let mut out = Vec::new();
    app.overloaded().encode(&mut out, false, false);
    let _ = (&stream).write_all(&out);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Serves requests on one connection until the client closes it, asks to close it,
/// stalls, or sends something invalid.
pub fn handle_connection(stream: TcpStream, app: &App) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut reader = BufReader::with_capacity(16 * 1024, &stream);
    let mut out = Vec::with_capacity(8 * 1024);
    loop {
        out.clear();
        match http::read_request(&mut reader) {
            Ok(None) | Err(ReadError::Io(_)) => return,
            Ok(Some(req)) => {
                let resp = app.handle(&req);
                let keep_alive = req.keep_alive();
                resp.encode(&mut out, keep_alive, req.method == "HEAD");
                if (&stream).write_all(&out).is_err() {
                    return;
                }
                if !keep_alive {
                    let _ = stream.shutdown(Shutdown::Write);
                    drain(&stream);
                    return;
                }
            }
            Err(ReadError::Parse(e)) => {
                app.reject(e).encode(&mut out, false, false);
                let _ = (&stream).write_all(&out);
                let _ = stream.shutdown(Shutdown::Write);
                drain(&stream);
                return;
            }
        }
    }
}

/// Reads (and discards) what the client still sends for a short while before the
/// socket is closed, so that closing with unread data does not reset the connection
/// and destroy the response we just wrote.
fn drain(mut stream: &TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    while total < 256 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}
