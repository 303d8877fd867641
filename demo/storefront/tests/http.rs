//! Real HTTP over TcpStream against a server bound to an ephemeral loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use storefront::{app::App, config::Config, server};

fn start(vars: &[(&str, &str)]) -> SocketAddr {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config =
        Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Arc::new(App::new(config));
    std::thread::spawn(move || server::serve(listener, app));
    addr
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn {
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).unwrap();
    }

    /// Reads one response (Content-Length framed); `head` for responses to HEAD.
    fn recv(&mut self, head: bool) -> Resp {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .unwrap_or_else(|| panic!("status line {line:?}"))
            .parse()
            .unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .unwrap()
            .1
            .parse()
            .unwrap();
        let mut body = vec![0; if head { 0 } else { len }];
        self.reader.read_exact(&mut body).unwrap();
        Resp {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }

    fn request(&mut self, method: &str, path: &str, extra: &str, body: &str) -> Resp {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send(raw.as_bytes());
        self.recv(method == "HEAD")
    }

    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

#[test]
fn keep_alive_routes_cart_and_metrics() {
    let addr = start(&[("STOREFRONT_VERSION", "it-1")]);
    let mut c = Conn::open(addr);

    let home = c.request("GET", "/", "", "");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("<title>Storefront</title>") && home.body.contains("it-1"));
    assert_eq!(home.header("X-Storefront-Version"), Some("it-1"));
    assert_eq!(home.header("Connection"), Some("keep-alive"));

    let head = c.request("HEAD", "/products", "", "");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(
        head.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 100
    );

    assert_eq!(c.request("GET", "/products", "", "").status, 200);
    assert!(c
        .request("GET", "/api/products", "", "")
        .body
        .starts_with("[{\"id\":1"));
    assert_eq!(
        c.request("GET", "/api/products/5", "", "").body,
        r#"{"id":5,"name":"Hand Grinder","price_cents":5999}"#
    );
    assert_eq!(c.request("GET", "/api/products/50", "", "").status, 404);
    assert_eq!(c.request("GET", "/healthz", "", "").body, "ok\n");
    assert_eq!(c.request("GET", "/elsewhere", "", "").status, 404);

    let added = c.request(
        "POST",
        "/api/cart/items",
        "Content-Type: application/json\r\n",
        r#"{"product_id":1,"quantity":2}"#,
    );
    assert_eq!(added.status, 201);
    assert_eq!(
        added.body,
        r#"{"items":[{"product_id":1,"quantity":2}],"total_cents":2598}"#
    );
    let cookie = added
        .header("Set-Cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("cart="));

    let more = c.request(
        "POST",
        "/api/cart/items",
        &format!("Cookie: {cookie}\r\n"),
        r#"{"product_id":2,"quantity":1}"#,
    );
    assert_eq!(more.status, 201);
    assert!(more.header("Set-Cookie").is_none());
    let cart = c.request("GET", "/api/cart", &format!("Cookie: {cookie}\r\n"), "");
    assert_eq!(
        cart.body,
        r#"{"items":[{"product_id":1,"quantity":2},{"product_id":2,"quantity":1}],"total_cents":3497}"#
    );
    assert_eq!(
        c.request("GET", "/api/cart", "", "").body,
        r#"{"items":[],"total_cents":0}"#
    );
    assert_eq!(
        c.request("POST", "/api/cart/items", "", "{oops").status,
        400
    );
    assert_eq!(
        c.request(
            "POST",
            "/api/cart/items",
            "",
            r#"{"product_id":77,"quantity":1}"#
        )
        .status,
        404
    );

    let m = c.request("GET", "/metrics", "", "");
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(m.body.contains("storefront_http_requests_total{route=\"/api/cart/items\",method=\"POST\",code=\"201\"} 2\n"), "{}", m.body);
    assert!(m.body.contains("storefront_http_requests_total{route=\"/api/products/{id}\",method=\"GET\",code=\"404\"} 1\n"));
    assert!(m.body.contains(
        "storefront_http_request_duration_seconds_count{route=\"/\",method=\"GET\"} 1\n"
    ));
    assert!(m
        .body
        .contains("storefront_build_info{version=\"it-1\"} 1\n"));

    // Connection: close is honoured
    let last = c.request("GET", "/healthz", "Connection: close\r\n", "");
    assert_eq!(last.header("Connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let addr = start(&[]);
    let mut c = Conn::open(addr);
    c.send(b"GET /api/products/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /api/products/2 HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n");
    assert!(c.recv(false).body.contains("\"id\":1"));
    assert!(c.recv(false).body.contains("\"id\":2"));
    let r = c.recv(false);
    assert_eq!(
        (r.status, r.header("Connection")),
        (200, Some("close")),
        "HTTP/1.0 without keep-alive closes"
    );
    assert!(c.closed());
}

#[test]
fn malformed_and_oversized_requests_get_4xx_and_the_server_survives() {
    let addr = start(&[]);
    for (raw, status) in [
        (&b"HELLO\r\n\r\n"[..], 400),
        (b"GET / HTTP/1.1\r\nBroken header\r\n\r\n", 400),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", 400),
        (b"\xff\xfe\xfd\r\n\r\n", 400),
        (
            b"POST /api/cart/items HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            400,
        ),
        (
            b"POST /api/cart/items HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n",
            413,
        ),
        (
            b"POST /api/cart/items HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        (b"GET / HTTP/3.0\r\n\r\n", 505),
    ] {
        let mut c = Conn::open(addr);
        c.send(raw);
        let r = c.recv(false);
        assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(c.closed());
    }
    let mut huge = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(vec![b'x'; 20_000]);
    huge.extend_from_slice(b"\r\n\r\n");
    let mut c = Conn::open(addr);
    c.send(&huge);
    assert_eq!(c.recv(false).status, 431);

    // a client that disconnects mid-request does not hurt anyone
    let mut c = Conn::open(addr);
    c.send(b"POST /api/cart/items HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"prod");
    drop(c);

    let mut c = Conn::open(addr);
    assert_eq!(c.request("GET", "/healthz", "", "").status, 200);
    let m = c.request("GET", "/metrics", "", "");
    assert!(
        m.body.contains(
            "storefront_http_requests_total{route=\"invalid\",method=\"other\",code=\"400\"} 5\n"
        ),
        "{}",
        m.body
    );
}

#[test]
fn connection_limit_answers_503() {
    let addr = start(&[("STOREFRONT_MAX_CONNECTIONS", "2")]);
    let mut a = Conn::open(addr);
    let mut b = Conn::open(addr);
    assert_eq!(a.request("GET", "/healthz", "", "").status, 200);
    assert_eq!(b.request("GET", "/healthz", "", "").status, 200);
    let mut c = Conn::open(addr);
    let r = c.recv(false);
    assert_eq!((r.status, r.header("Retry-After")), (503, Some("1")));
    drop(a);
    // the slot is released once the server notices the close
    let mut ok = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let mut d = Conn::open(addr);
        d.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        if d.recv(false).status == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok);
    assert_eq!(b.request("GET", "/healthz", "", "").status, 200);
}

#[test]
fn many_concurrent_clients() {
    let addr = start(&[]);
    let threads: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                for i in 0..200 {
                    let r = c.request("GET", &format!("/api/products/{}", i % 6 + 1), "", "");
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = Conn::open(addr);
    let m = c.request("GET", "/metrics", "", "");
    assert!(m.body.contains("storefront_http_request_duration_seconds_count{route=\"/api/products/{id}\",method=\"GET\"} 3200\n"));
}
