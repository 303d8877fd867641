//! The dashboard as a program outside a browser sees it: plain HTTP requests whose every
//! header the test chooses (as an app replaying a captured cookie would), answers with
//! their headers, and signing in as the sign-in form does.
#![allow(dead_code)]

use std::io::{Read, Write};

/// An answer: status, headers (names lowercase, in order) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// One HTTP/1.0 request to 127.0.0.1:port with exactly these headers (and Host).
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the service listens");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        s.write_all(b).unwrap();
    }
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).expect("a status line");
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    Answer { status, headers, body: body.to_string() }
}

/// `application/x-www-form-urlencoded` of `fields`.
pub fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// The dashboard's origin, as its own pages send it.
pub fn origin(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// POSTs a form with the headers the dashboard's own page would send, plus `cookie`.
pub fn post_form(port: u16, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Answer {
    let own = origin(port);
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded"), ("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")];
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    request(port, "POST", path, &headers, Some(form(fields).as_bytes()))
}

/// A signed-in session: the cookie as a `Cookie` header sends it, and the CSRF token the
/// sign-in page handed out.
#[derive(Debug, Clone)]
pub struct Signed {
    pub cookie: String,
    pub csrf: String,
}

/// The `name=value` of the session cookie an answer sets.
pub fn session_cookie(answer: &Answer) -> Option<String> {
    answer.all("set-cookie").into_iter().find(|c| c.contains("gantry_session=") && !c.contains("Max-Age=0")).map(|c| c.split(';').next().unwrap().to_string())
}

/// Signs in with `token` as the sign-in form does.
pub fn sign_in(port: u16, token: &str) -> Signed {
    let answer = post_form(port, "/login", None, &[("token", token)]);
    assert_eq!(answer.status, 200, "signing in: {answer:?}");
    let cookie = session_cookie(&answer).unwrap_or_else(|| panic!("no session cookie: {answer:?}"));
    let csrf = answer.body.split("data-csrf=\"").nth(1).and_then(|r| r.split('"').next()).expect("the sign-in page hands out the CSRF token").to_string();
    Signed { cookie, csrf }
}
