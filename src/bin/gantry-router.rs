//! The router agent: a tiny TCP proxy that owns an environment's published port and
//! forwards each new connection to `--upstream HOST:PORT`.
//!
//! HOST is a Docker network alias that Gantry moves from the old version's container to
//! the new one, so the upstream is resolved for every connection (no caching): after a
//! move, new connections reach the new version while established ones finish on the old.

use clap::Parser;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
#[command(name = "gantry-router", version, about = "Forwards each TCP connection to an upstream resolved per connection")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: String,
    /// HOST:PORT to forward to; HOST is resolved again for every connection.
    #[arg(long, value_parser = parse_upstream)]
    upstream: String,
    /// Give up connecting to the upstream after this long (the client is then closed).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
}

/// Checks the HOST:PORT shape only: the host may not exist yet (the alias is attached
/// later), so it is not resolved here.
fn parse_upstream(s: &str) -> Result<String, String> {
    let (host, port) = s.rsplit_once(':').ok_or("expected HOST:PORT")?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    port.parse::<u16>().map_err(|_| format!("{port:?} is not a port"))?;
    Ok(s.to_string())
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    /// Clients closed because the upstream could not be resolved or connected.
    upstream_failed: AtomicU64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gantry-router: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(1);
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| args.listen.clone());
    // Tests and operators wait for this line to know the port is open.
    eprintln!("gantry-router: listening on {local}, forwarding to {}", args.upstream);

    let counters = Arc::new(Counters::default());
    let upstream: Arc<str> = args.upstream.into();
    tokio::select! {
        _ = accept_loop(listener, upstream, args.connect_timeout, counters.clone()) => {}
        signal = terminated() => {
            eprintln!(
                "gantry-router: {signal}, exiting ({} connections, {} upstream failures)",
                counters.accepted.load(Ordering::Relaxed),
                counters.upstream_failed.load(Ordering::Relaxed)
            );
        }
    }
    std::process::ExitCode::SUCCESS
}

async fn accept_loop(listener: TcpListener, upstream: Arc<str>, connect_timeout: Duration, counters: Arc<Counters>) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let upstream = upstream.clone();
                let counters = counters.clone();
                tokio::spawn(async move {
                    if let Err(e) = forward(client, &upstream, connect_timeout, &counters).await {
                        eprintln!("gantry-router: connection from {peer}: {e}");
                    }
                });
            }
            Err(e) => {
                // Usually out of file descriptors: back off briefly instead of spinning.
                eprintln!("gantry-router: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn forward(mut client: TcpStream, upstream: &str, connect_timeout: Duration, counters: &Counters) -> Result<(), String> {
    // `TcpStream::connect` with a host name resolves it now, every time: that is what
    // makes an alias move take effect for new connections.
    let connected = tokio::time::timeout(connect_timeout, TcpStream::connect(upstream)).await;
    let mut server = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(upstream_failed(counters, upstream, &e.to_string())),
        Err(_) => return Err(upstream_failed(counters, upstream, &format!("connect timed out after {}", humantime::format_duration(connect_timeout)))),
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut client, &mut server).await.map(|_| ()).map_err(|e| format!("while forwarding: {e}"))
}

/// Counts the failure; the client is closed when its stream is dropped.
fn upstream_failed(counters: &Counters, upstream: &str, why: &str) -> String {
    let n = counters.upstream_failed.fetch_add(1, Ordering::Relaxed) + 1;
    format!("upstream {upstream} unreachable ({why}); client closed ({n} so far)")
}

/// Resolves on SIGTERM or SIGINT with the signal's name. PID 1 in a container has no
/// default SIGTERM action, so without this `docker stop` would wait and then kill.
async fn terminated() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
