//! A small, strict HTTP/1.1 request parser and response writer.
//!
//! Limits: request head (request line + headers) at most [`MAX_HEAD_BYTES`], at most
//! [`MAX_HEADERS`] header fields, bodies (Content-Length only) at most
//! [`MAX_BODY_BYTES`]. `Transfer-Encoding` request bodies are not supported (501).

use std::io::{self, BufRead};

pub const MAX_HEAD_BYTES: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path part of the request target (no query string).
    pub path: String,
    pub query: Option<String>,
    /// HTTP/1.1 (true) or HTTP/1.0 (false).
    pub http11: bool,
    /// Header names are lower-cased; values are trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First value of header `name` (give it lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn keep_alive(&self) -> bool {
        if self.http11 {
            !self.connection_has("close")
        } else {
            self.connection_has("keep-alive")
        }
    }

    /// Value of cookie `name` from the Cookie header(s).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().trim_matches('"'))
    }
}

/// Why a request could not be parsed; each maps to an error status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// 400
    Malformed(&'static str),
    /// 431
    HeadTooLarge,
    /// 413
    BodyTooLarge,
    /// 501
    UnsupportedTransferEncoding,
    /// 505
    UnsupportedVersion,
}

impl ParseError {
    pub fn status(self) -> u16 {
        match self {
            ParseError::Malformed(_) => 400,
            ParseError::HeadTooLarge => 431,
            ParseError::BodyTooLarge => 413,
            ParseError::UnsupportedTransferEncoding => 501,
            ParseError::UnsupportedVersion => 505,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ParseError::Malformed(m) => m,
            ParseError::HeadTooLarge => "request head too large",
            ParseError::BodyTooLarge => "request body too large",
            ParseError::UnsupportedTransferEncoding => {
                "transfer-encoding is not supported; send Content-Length"
            }
            ParseError::UnsupportedVersion => "HTTP version not supported",
        }
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// The connection failed, timed out or closed mid-request: just close it.
    Io(io::Error),
    /// The client sent something invalid: answer with an error status, then close.
    Parse(ParseError),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<ParseError> for ReadError {
    fn from(e: ParseError) -> Self {
        ReadError::Parse(e)
    }
}

fn malformed(msg: &'static str) -> ReadError {
    ReadError::Parse(ParseError::Malformed(msg))
}

/// RFC 9110 token characters.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Reads one line (up to and excluding LF, a preceding CR is dropped) charging its
/// length to `budget`. Returns Ok(false) on a clean EOF before any byte.
fn read_line<R: BufRead>(
    r: &mut R,
    line: &mut Vec<u8>,
    budget: &mut usize,
) -> Result<bool, ReadError> {
    line.clear();
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(false)
            } else {
                Err(io::Error::from(io::ErrorKind::UnexpectedEof).into())
            };
        }
        let (take, done) = match buf.iter().position(|&c| c == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if take > *budget {
            return Err(ParseError::HeadTooLarge.into());
        }
        *budget -= take;
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(true);
        }
    }
}

/// Reads the next request from a connection. Ok(None) means the client closed the
/// connection cleanly between requests.
pub fn read_request<R: BufRead>(r: &mut R) -> Result<Option<Request>, ReadError> {
    let mut budget = MAX_HEAD_BYTES;
    let mut line = Vec::with_capacity(256);

    // Request line; a few empty lines before it are tolerated (RFC 9112 2.2).
    let mut empties = 0;
    loop {
        if !read_line(r, &mut line, &mut budget)? {
            return Ok(None);
        }
        if !line.is_empty() {
            break;
        }
        empties += 1;
        if empties > 4 {
            return Err(malformed("empty request line"));
        }
    }
    let (method, target, http11) = parse_request_line(&line)?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target, None),
    };

    let mut headers: Vec<(String, String)> = Vec::with_capacity(16);
    loop {
        if !read_line(r, &mut line, &mut budget)? {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::HeadTooLarge.into());
        }
        headers.push(parse_header(&line)?);
    }

    let mut req = Request {
        method,
        path,
        query,
        http11,
        headers,
        body: Vec::new(),
    };

    if req.header("transfer-encoding").is_some() {
        return Err(ParseError::UnsupportedTransferEncoding.into());
    }
    let mut length: Option<usize> = None;
    for (_, v) in req.headers.iter().filter(|(n, _)| n == "content-length") {
        if v.is_empty() || v.len() > 18 || !v.bytes().all(|c| c.is_ascii_digit()) {
            return Err(malformed("invalid Content-Length"));
        }
        let n: usize = v.parse().map_err(|_| malformed("invalid Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(malformed("conflicting Content-Length headers"));
        }
        length = Some(n);
    }
    if let Some(n) = length {
        if n > MAX_BODY_BYTES {
            return Err(ParseError::BodyTooLarge.into());
        }
        req.body = vec![0; n];
        r.read_exact(&mut req.body)?;
    }
    Ok(Some(req))
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, bool), ReadError> {
    let mut parts = line.split(|&c| c == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("malformed request line"));
    };
    if method.is_empty() || !method.iter().all(|&c| is_tchar(c)) {
        return Err(malformed("invalid method"));
    }
    if target.first() != Some(&b'/') || !target.iter().all(|&c| (0x21..0x7f).contains(&c)) {
        return Err(malformed("invalid request target"));
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        v if v.len() == 8
            && v.starts_with(b"HTTP/")
            && v[5].is_ascii_digit()
            && v[6] == b'.'
            && v[7].is_ascii_digit() =>
        {
            return Err(ParseError::UnsupportedVersion.into())
        }
        _ => return Err(malformed("invalid HTTP version")),
    };
    // All three parts are ASCII by now.
    Ok((
        String::from_utf8_lossy(method).into_owned(),
        String::from_utf8_lossy(target).into_owned(),
        http11,
    ))
}

fn parse_header(line: &[u8]) -> Result<(String, String), ReadError> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(malformed("obsolete header line folding"));
    }
    let colon = line
        .iter()
        .position(|&c| c == b':')
        .ok_or_else(|| malformed("header line without ':'"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
        return Err(malformed("invalid header name"));
    }
    if value.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f) {
        return Err(malformed("invalid character in header value"));
    }
    let value = std::str::from_utf8(value).map_err(|_| malformed("header value is not UTF-8"))?;
    Ok((
        String::from_utf8_lossy(name).to_ascii_lowercase(),
        value.trim_matches(|c| c == ' ' || c == '\t').to_string(),
    ))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status, JSON, body)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serialises the response into `out` (status line, headers, body unless `head_only`).
    pub fn encode(&self, out: &mut Vec<u8>, keep_alive: bool, head_only: bool) {
        use std::io::Write;
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        let _ = write!(
            out,
            "Content-Type: {}\r\nContent-Length: {}\r\n",
            self.content_type,
            self.body.len()
        );
        for (n, v) in &self.headers {
            let _ = write!(out, "{}: {}\r\n", n, v);
        }
        out.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(raw: &[u8]) -> Result<Option<Request>, ReadError> {
        read_request(&mut Cursor::new(raw.to_vec()))
    }

    fn parse_err(raw: &[u8]) -> ParseError {
        match parse(raw) {
            Err(ReadError::Parse(e)) => e,
            other => panic!(
                "{:?}: expected a parse error, got {other:?}",
                String::from_utf8_lossy(raw)
            ),
        }
    }

    #[test]
    fn parses_a_simple_get() {
        let req =
            parse(b"GET /api/products?x=1 HTTP/1.1\r\nHost: a\r\nCookie: a=b; cart=abc\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/api/products");
        assert_eq!(req.query.as_deref(), Some("x=1"));
        assert!(req.http11 && req.keep_alive());
        assert_eq!(req.header("host"), Some("a"));
        assert_eq!(req.cookie("cart"), Some("abc"));
        assert_eq!(req.cookie("nope"), None);
        assert!(req.body.is_empty());
    }

    #[test]
    fn keep_alive_rules() {
        let r = |raw: &[u8]| parse(raw).unwrap().unwrap().keep_alive();
        assert!(!r(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!r(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(r(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(r(b"GET / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn reads_bodies_and_pipelined_requests() {
        let raw = b"POST /api/cart/items HTTP/1.1\r\ncontent-length: 5\r\n\r\nhelloGET /healthz HTTP/1.1\n\n";
        let mut cur = Cursor::new(raw.to_vec());
        let a = read_request(&mut cur).unwrap().unwrap();
        assert_eq!(a.body, b"hello");
        let b = read_request(&mut cur).unwrap().unwrap();
        assert_eq!(b.path, "/healthz");
        assert!(read_request(&mut cur).unwrap().is_none());
    }

    #[test]
    fn rejects_malformed_requests() {
        for raw in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: \xff\xfe\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_err(raw), ParseError::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn enforces_limits() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(vec![b'a'; MAX_HEAD_BYTES]);
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_err(&big), ParseError::HeadTooLarge);

        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_err(&many), ParseError::HeadTooLarge);

        let body = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert_eq!(parse_err(body.as_bytes()), ParseError::BodyTooLarge);
        assert_eq!(
            parse_err(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            ParseError::Malformed("invalid Content-Length")
        );
        assert_eq!(
            parse_err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            ParseError::UnsupportedTransferEncoding
        );
        assert_eq!(
            parse_err(b"GET / HTTP/2.0\r\n\r\n"),
            ParseError::UnsupportedVersion
        );
    }

    #[test]
    fn truncated_input_is_an_io_error_and_clean_eof_is_none() {
        assert!(parse(b"").unwrap().is_none());
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Err(ReadError::Io(_))
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
            Err(ReadError::Io(_))
        ));
    }

    #[test]
    fn encodes_responses() {
        let mut out = Vec::new();
        Response::json(201, "{}")
            .with_header("Set-Cookie", "cart=x")
            .encode(&mut out, true, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\nSet-Cookie: cart=x\r\nConnection: keep-alive\r\n\r\n{}"
        );
        let mut out = Vec::new();
        Response::new(200, TEXT, "ok").encode(&mut out, false, true);
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n"));
    }
}
