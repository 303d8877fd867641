//! storefront: the demo web service that Gantry's example pipeline builds, deploys,
//! smoke-tests and load-tests.
//!
//! Settings (environment variables; a variable set to an empty string counts as unset;
//! an invalid value prints an error and exits with status 2):
//!
//! | variable                       | default                 | meaning |
//! |--------------------------------|-------------------------|---------|
//! | `STOREFRONT_PORT`              | 8080                    | TCP port, listening on 0.0.0.0 (1-65535) |
//! | `STOREFRONT_VERSION`           | the package version     | shown on the pages, in the `X-Storefront-Version` header and in `storefront_build_info`; at most 64 of `A-Za-z0-9._-+:@/~` |
//! | `STOREFRONT_LATENCY_MS`        | 0                       | extra latency added to every request except /healthz and /metrics (0-60000) |
//! | `STOREFRONT_LATENCY_JITTER_MS` | 0                       | plus a uniformly random 0..=N ms on top (0-60000) |
//! | `STOREFRONT_ERROR_RATE`        | 0                       | share (0.0-1.0) of requests except /healthz and /metrics answered 500 |
//! | `STOREFRONT_FAIL_HEALTH`       | 0                       | 1/true/yes/on: /healthz answers 503 (to test a failing deployment) |
//! | `STOREFRONT_MAX_CONNECTIONS`   | 1024                    | concurrent connections (one thread each); more get an immediate 503 |
//! | `STOREFRONT_MAX_CARTS`         | 10000                   | carts kept in memory; the oldest is evicted beyond that |
//!
//! Routes: `GET /`, `GET /products`, `GET /api/products`, `GET /api/products/{id}`,
//! `GET /api/cart`, `POST /api/cart/items`, `GET /healthz`, `GET /metrics`
//! (HEAD works wherever GET does). See README.md.
//!
//! Exits promptly (status 0) on SIGTERM/SIGINT; exits 1 if the port cannot be bound.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use storefront::{app::App, config::Config, server, signals};

fn main() {
    if std::env::args().nth(1).is_some() {
        eprintln!("storefront takes no arguments; it is configured with STOREFRONT_* environment variables (see README.md)");
        std::process::exit(2);
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("storefront: invalid setting: {e}");
            std::process::exit(2);
        }
    };
    signals::install_exit_handlers();
    let listener = match TcpListener::bind(("0.0.0.0", config.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("storefront: cannot listen on 0.0.0.0:{}: {e}", config.port);
            std::process::exit(1);
        }
    };
    println!(
        "storefront {} listening on 0.0.0.0:{} (latency {} ms + jitter up to {} ms, error rate {}, fail health {}, max connections {}, max carts {})",
        config.version,
        config.port,
        config.latency_ms,
        config.latency_jitter_ms,
        config.error_rate,
        config.fail_health,
        config.max_connections,
        config.max_carts
    );
    let _ = std::io::stdout().flush();
    let app = Arc::new(App::new(config));
    if let Err(e) = server::serve(listener, app) {
        eprintln!("storefront: server failed: {e}");
        std::process::exit(1);
    }
}
