//! The target and the requests, prepared once so the hot loop only clones cheap handles.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, Uri};

use crate::load::spec::{LoadSpec, Mode, RequestSpec, SpecError};

/// Where the requests go: `http://host:port[/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `host[:port]` as given, for the Host header.
    pub authority: String,
    /// Path prefix without a trailing slash ("" for none).
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, SpecError> {
        let err = |reason: &str| SpecError::BaseUrl { url: url.to_string(), reason: reason.to_string() };
        let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| err(&e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(err("must start with http:// (the agent speaks plain HTTP/1.1)"));
        }
        let authority = uri.authority().ok_or_else(|| err("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(err("user info is not supported; send an Authorization header instead"));
        }
        if uri.query().is_some() {
            return Err(err("must not have a query; put it in the request paths"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(err("has no host"));
        }
        Ok(Target {
            host,
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_string(),
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

// Validation lives beside what it checks against (URL parsing, methods, headers), so
// the spec is plain data that depends on nothing here.
impl LoadSpec {
    /// Checks everything that can be checked before sending: a spec that passes never
    /// fails later for a reason of its own (only the target can).
    pub fn validate(&self) -> Result<(), SpecError> {
        Target::parse(&self.base_url)?;
        if self.requests.is_empty() {
            return Err(SpecError::NoRequests);
        }
        for (index, r) in self.requests.iter().enumerate() {
            check_request(r).map_err(|reason| SpecError::Request { index, reason })?;
        }
        if self.requests.iter().all(|r| r.weight == 0) {
            return Err(SpecError::ZeroWeight);
        }
        if let Some(rate) = self.rate {
            if !rate.is_finite() || rate < 0.0 {
                return Err(SpecError::Rate(rate));
            }
        }
        for (index, s) in self.stages.iter().enumerate() {
            if !s.target.is_finite() || s.target < 0.0 {
                return Err(SpecError::Stage { index, reason: format!("target {} must be a finite rate >= 0", s.target) });
            }
        }
        match self.mode {
            Mode::MaxThroughput if !self.stages.is_empty() => return Err(SpecError::StagesInMaxThroughput),
            Mode::ConstantArrivalRate if self.stages.is_empty() && self.rate.is_none() => return Err(SpecError::NoRate),
            _ => {}
        }
        if !self.stages.is_empty() {
            let stages_ms: u64 = self.stages.iter().map(|s| s.duration_ms).sum();
            if let Some(duration_ms) = self.duration_ms {
                if duration_ms != stages_ms {
                    return Err(SpecError::DurationMismatch { duration_ms, stages_ms });
                }
            }
        }
        if self.duration().is_zero() {
            return Err(SpecError::NoDuration);
        }
        if self.connections == 0 {
            return Err(SpecError::NoConnections);
        }
        if self.timeout_ms == 0 {
            return Err(SpecError::NoTimeout);
        }
        Ok(())
    }
}

/// Checks one request of a spec; the reason becomes `requests[i]: reason`.
pub fn check_request(r: &RequestSpec) -> Result<(), String> {
    Method::from_bytes(r.method.as_bytes()).map_err(|_| format!("`{}` is not an HTTP method", r.method))?;
    if !r.path.starts_with('/') {
        return Err(format!("path `{}` must start with `/`", r.path));
    }
    r.path.parse::<hyper::http::uri::PathAndQuery>().map_err(|e| format!("path `{}`: {e}", r.path))?;
    for (name, value) in &r.headers {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a header name"))?;
        HeaderValue::from_str(value).map_err(|_| format!("header `{name}` has a value that cannot be sent"))?;
    }
    if r.weight > MAX_WEIGHT {
        return Err(format!("weight {} is above the maximum {MAX_WEIGHT}", r.weight));
    }
    Ok(())
}

const MAX_WEIGHT: u32 = 10_000;

/// A request ready to send: everything but the body handle is cloned per send.
#[derive(Debug, Clone)]
pub struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    /// Bytes on the wire as HTTP/1.1 would serialise it (request line, headers, body);
    /// hyper does not report what it wrote, so this is computed once here.
    pub wire_bytes: u64,
}

impl Prepared {
    fn new(target: &Target, r: &RequestSpec) -> Prepared {
        // check_request has run, so the unwraps below cannot fail.
        let method = Method::from_bytes(r.method.as_bytes()).expect("validated method");
        let uri: Uri = format!("{}{}", target.prefix, r.path).parse().expect("validated path");
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(&target.authority).expect("authority is a valid header"));
        let body = match &r.body {
            None | Some(serde_json::Value::Null) => Bytes::new(),
            Some(serde_json::Value::String(s)) => Bytes::from(s.clone()),
            Some(v) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(serde_json::to_vec(v).expect("a JSON value serialises"))
            }
        };
        for (name, value) in &r.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("validated header name");
            headers.insert(name, HeaderValue::from_str(value).expect("validated header value"));
        }
        let mut wire = method.as_str().len() + 1 + uri.to_string().len() + " HTTP/1.1\r\n".len();
        for (name, value) in &headers {
            wire += name.as_str().len() + 2 + value.len() + 2;
        }
        if !body.is_empty() {
            wire += "content-length: \r\n".len() + body.len().to_string().len() + body.len();
        }
        wire += 2;
        Prepared { method, uri, headers, body, wire_bytes: wire as u64 }
    }

    pub fn build(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// All requests of a spec and the fixed weighted order they are sent in: request `i` of
/// the run is `order[i % order.len()]`, interleaved (smooth weighted round robin) so any
/// window of the run has the spec's mix, without a random number generator.
#[derive(Debug, Clone)]
pub struct RequestSet {
    prepared: Vec<Prepared>,
    order: Vec<u32>,
}

impl RequestSet {
    pub fn new(spec: &LoadSpec) -> Result<RequestSet, SpecError> {
        let target = Target::parse(&spec.base_url)?;
        let prepared = spec.requests.iter().map(|r| Prepared::new(&target, r)).collect();
        let weights: Vec<u32> = spec.requests.iter().map(|r| r.weight).collect();
        let order = smooth_order(&weights);
        if order.is_empty() {
            return Err(SpecError::ZeroWeight);
        }
        Ok(RequestSet { prepared, order })
    }

    pub fn get(&self, i: u64) -> &Prepared {
        &self.prepared[self.order[(i % self.order.len() as u64) as usize] as usize]
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// nginx's smooth weighted round robin over the weights reduced by their gcd.
fn smooth_order(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().fold(0, gcd);
    if g == 0 {
        return Vec::new();
    }
    let w: Vec<i64> = weights.iter().map(|&x| (x / g) as i64).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    (0..total)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&w) {
                *c += w;
            }
            let best = (0..w.len()).max_by_key(|&k| (current[k], std::cmp::Reverse(k))).expect("non-empty");
            current[best] -= total;
            best as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = Target::parse("http://storefront:8080/shop/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.authority.as_str(), t.prefix.as_str()), ("storefront", 8080, "storefront:8080", "/shop"));
        let t = Target::parse("http://web").unwrap();
        assert_eq!((t.port, t.prefix.as_str()), (80, ""));
        assert!(Target::parse("ftp://web").is_err());
        assert!(Target::parse("http://web/?q=1").is_err());
    }

    #[test]
    fn weighted_order_is_interleaved_and_exact() {
        assert_eq!(smooth_order(&[3, 1]), vec![0, 0, 1, 0]);
        assert_eq!(smooth_order(&[2, 2]), vec![0, 1]);
        assert_eq!(smooth_order(&[0, 5]), vec![1]);
        assert!(smooth_order(&[0, 0]).is_empty());
    }
}
