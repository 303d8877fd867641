//! Prometheus metrics (text exposition format 0.0.4). Label sets are bounded: routes
//! are patterns from a fixed list, methods are folded into a fixed list, status codes
//! come from the few this server produces.

use crate::routes::Route;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets; +Inf is implicit.
pub const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default, Clone)]
struct Histogram {
    /// Per-bucket (non-cumulative) counts; the last slot is (5s, +Inf).
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

#[derive(Default)]
struct Inner {
    durations: BTreeMap<(Route, &'static str), Histogram>,
    requests: BTreeMap<(Route, &'static str, u16), u64>,
    errors: BTreeMap<Route, u64>,
}

pub struct Metrics {
    inner: Mutex<Inner>,
    version: String,
}

/// Folds any request method into a bounded set of label values.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new(version: &str) -> Metrics {
        Metrics {
            inner: Mutex::new(Inner::default()),
            version: version.to_string(),
        }
    }

    /// Records one finished request.
    pub fn observe(&self, route: Route, method: &'static str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let h = m.durations.entry((route, method)).or_default();
        h.counts[bucket] += 1;
        h.sum += secs;
        *m.requests.entry((route, method, status)).or_default() += 1;
        if (500..600).contains(&status) {
            *m.errors.entry(route).or_default() += 1;
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(4096 + m.durations.len() * 1200);

        out.push_str("# HELP storefront_http_request_duration_seconds Time to answer an HTTP request, by route pattern and method.\n");
        out.push_str("# TYPE storefront_http_request_duration_seconds histogram\n");
        for ((route, method), h) in &m.durations {
            let labels = format!(
                "route=\"{}\",method=\"{}\"",
                escape_label(route.label()),
                method
            );
            let mut cumulative = 0u64;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(out, "storefront_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            cumulative += h.counts[BUCKETS.len()];
            let _ = writeln!(out, "storefront_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
            let _ = writeln!(
                out,
                "storefront_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "storefront_http_request_duration_seconds_count{{{labels}}} {cumulative}"
            );
        }

        out.push_str("# HELP storefront_http_requests_total HTTP requests answered, by route pattern, method and status code.\n");
        out.push_str("# TYPE storefront_http_requests_total counter\n");
        for ((route, method, code), n) in &m.requests {
            let _ = writeln!(
                out,
                "storefront_http_requests_total{{route=\"{}\",method=\"{}\",code=\"{}\"}} {}",
                escape_label(route.label()),
                method,
                code,
                n
            );
        }

        out.push_str("# HELP storefront_http_errors_total HTTP requests answered with a 5xx status, by route pattern.\n");
        out.push_str("# TYPE storefront_http_errors_total counter\n");
        // Every application route is always present (0 until the first error), so
        // that rate() over it works from the start.
        for route in Route::COUNTED {
            let n = m.errors.get(&route).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "storefront_http_errors_total{{route=\"{}\"}} {}",
                escape_label(route.label()),
                n
            );
        }
        for (route, n) in m.errors.iter().filter(|(r, _)| !Route::COUNTED.contains(r)) {
            let _ = writeln!(
                out,
                "storefront_http_errors_total{{route=\"{}\"}} {}",
                escape_label(route.label()),
                n
            );
        }

        out.push_str("# HELP storefront_build_info Build information; the value is always 1.\n");
        out.push_str("# TYPE storefront_build_info gauge\n");
        let _ = writeln!(
            out,
            "storefront_build_info{{version=\"{}\"}} 1",
            escape_label(&self.version)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let m = Metrics::new("1.0.0");
        let ms = Duration::from_millis;
        for d in [ms(1), ms(3), ms(7), ms(30), ms(30), ms(400), ms(6000)] {
            m.observe(Route::ApiProducts, "GET", 200, d);
        }
        let t = m.render();
        let b = |le: &str| {
            value(&t, &format!("storefront_http_request_duration_seconds_bucket{{route=\"/api/products\",method=\"GET\",le=\"{le}\"}}")).unwrap()
        };
        let expected = [
            ("0.005", 2.0),
            ("0.01", 3.0),
            ("0.025", 3.0),
            ("0.05", 5.0),
            ("0.1", 5.0),
            ("0.25", 5.0),
            ("0.5", 6.0),
            ("1", 6.0),
            ("2.5", 6.0),
            ("5", 6.0),
            ("+Inf", 7.0),
        ];
        for (le, n) in expected {
            assert_eq!(b(le), n, "le={le}");
        }
        let count = value(&t, "storefront_http_request_duration_seconds_count{route=\"/api/products\",method=\"GET\"}").unwrap();
        assert_eq!(count, 7.0);
        let sum = value(
            &t,
            "storefront_http_request_duration_seconds_sum{route=\"/api/products\",method=\"GET\"}",
        )
        .unwrap();
        assert!((sum - 6.471).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn counters_gauge_and_help_lines() {
        let m = Metrics::new("2.0.0-rc.1");
        m.observe(Route::ApiProduct, "GET", 200, Duration::ZERO);
        m.observe(Route::ApiProduct, "GET", 404, Duration::ZERO);
        m.observe(Route::ApiProduct, "GET", 404, Duration::ZERO);
        m.observe(Route::CartItems, "POST", 500, Duration::ZERO);
        m.observe(Route::Unmatched, "other", 503, Duration::ZERO);
        let t = m.render();
        assert_eq!(value(&t, "storefront_http_requests_total{route=\"/api/products/{id}\",method=\"GET\",code=\"404\"}"), Some(2.0));
        assert_eq!(value(&t, "storefront_http_requests_total{route=\"/api/products/{id}\",method=\"GET\",code=\"200\"}"), Some(1.0));
        assert_eq!(
            value(
                &t,
                "storefront_http_errors_total{route=\"/api/cart/items\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                "storefront_http_errors_total{route=\"/api/products/{id}\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&t, "storefront_http_errors_total{route=\"/\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&t, "storefront_http_errors_total{route=\"unmatched\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&t, "storefront_build_info{version=\"2.0.0-rc.1\"}"),
            Some(1.0)
        );
        for name in [
            "storefront_http_request_duration_seconds histogram",
            "storefront_http_requests_total counter",
            "storefront_http_errors_total counter",
            "storefront_build_info gauge",
        ] {
            assert!(t.contains(&format!("# TYPE {name}\n")), "{name}");
            let metric = name.split(' ').next().unwrap();
            assert!(t.contains(&format!("# HELP {metric} ")), "{metric}");
        }
        // every line is a comment or `name{labels} value`
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let (series, v) = line.rsplit_once(' ').unwrap();
            assert!(
                series.starts_with("storefront_") && series.ends_with('}'),
                "{line}"
            );
            v.parse::<f64>().unwrap();
        }
    }

    #[test]
    fn labels_are_bounded_and_escaped() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(method_label("get"), "other");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
