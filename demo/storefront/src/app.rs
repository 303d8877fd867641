//! Request handling: routing, pages, the JSON API, cart, health, metrics, and the
//! injected latency and errors.

use crate::cart::{self, CartError, CartStore};
use crate::catalog::{self, PRODUCTS};
use crate::config::Config;
use crate::http::{ParseError, Request, Response, HTML, JSON, TEXT};
use crate::json;
use crate::metrics::{self, method_label, Metrics};
use crate::rng::Rng;
use crate::routes::Route;
use std::time::{Duration, Instant};

pub const VERSION_HEADER: &str = "X-Storefront-Version";
pub const CART_COOKIE: &str = "cart";

pub struct App {
    pub config: Config,
    pub metrics: Metrics,
    pub carts: CartStore,
    rng: Rng,
    home_page: Vec<u8>,
    products_page: Vec<u8>,
    products_json: Vec<u8>,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, version: &str, body: &str) -> Vec<u8> {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n{body}\n<footer><p>Storefront version <span id=\"version\">{v}</span></p></footer>\n</body>\n</html>\n",
        title = html_escape(title),
        v = html_escape(version),
    )
    .into_bytes()
}

impl App {
    pub fn new(config: Config) -> App {
        App::with_rng(config, Rng::from_entropy())
    }

    /// With a given generator (tests use a fixed seed).
    pub fn with_rng(config: Config, rng: Rng) -> App {
        let v = config.version.as_str();
        let home_page = page(
            "Storefront",
            v,
            &format!(
                "<h1>Storefront</h1>\n<p>Version {}</p>\n<ul>\n<li><a href=\"/products\">Products</a></li>\n<li><a href=\"/api/products\">Products (JSON)</a></li>\n<li><a href=\"/api/cart\">Your cart (JSON)</a></li>\n<li><a href=\"/healthz\">Health</a></li>\n<li><a href=\"/metrics\">Metrics</a></li>\n</ul>",
                html_escape(v)
            ),
        );
        let rows: String = PRODUCTS
            .iter()
            .map(|p| {
                format!(
                    "<tr><td>{}</td><td><a href=\"/api/products/{}\">{}</a></td><td>${}</td></tr>\n",
                    p.id,
                    p.id,
                    html_escape(p.name),
                    catalog::format_price(p.price_cents)
                )
            })
            .collect();
        let products_page = page(
            "Products - Storefront",
            v,
            &format!(
                "<h1>Products</h1>\n<p><a href=\"/\">Home</a></p>\n<table>\n<tr><th>Id</th><th>Name</th><th>Price</th></tr>\n{rows}</table>"
            ),
        );
        App {
            metrics: Metrics::new(&config.version),
            carts: CartStore::new(config.max_carts),
            products_json: catalog::products_json().into_bytes(),
            home_page,
            products_page,
            rng,
            config,
        }
    }

    /// Answers one parsed request and records it in the metrics (except /metrics).
    pub fn handle(&self, req: &Request) -> Response {
        let start = Instant::now();
        let (route, param) = Route::match_path(&req.path);
        let injected = !matches!(route, Route::Healthz | Route::Metrics);
        let mut resp = None;
        if injected {
            self.inject_latency();
            if self.config.error_rate > 0.0 && self.rng.next_f64() < self.config.error_rate {
                resp = Some(Response::json(
                    500,
                    json::error_body("injected failure (STOREFRONT_ERROR_RATE)"),
                ));
            }
        }
        let resp = resp.unwrap_or_else(|| self.dispatch(route, param, req));
        let resp = self.finish(resp);
        if route != Route::Metrics {
            self.metrics.observe(
                route,
                method_label(&req.method),
                resp.status,
                start.elapsed(),
            );
        }
        resp
    }

    /// The answer to a request that could not be parsed (recorded as route "invalid").
    pub fn reject(&self, err: ParseError) -> Response {
        let resp = self.finish(Response::new(
            err.status(),
            TEXT,
            format!("{}\n", err.message()),
        ));
        self.metrics
            .observe(Route::Invalid, "other", resp.status, Duration::ZERO);
        resp
    }

    /// The answer when the server is at its connection limit.
    pub fn overloaded(&self) -> Response {
        let resp = self.finish(
            Response::new(503, TEXT, "server busy, retry later\n").with_header("Retry-After", "1"),
        );
        self.metrics
            .observe(Route::Overloaded, "other", resp.status, Duration::ZERO);
        resp
    }

    fn finish(&self, resp: Response) -> Response {
        resp.with_header(VERSION_HEADER, self.config.version.clone())
    }

    fn inject_latency(&self) {
        let ms = self.config.latency_ms + self.rng.up_to(self.config.latency_jitter_ms);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }

    fn dispatch(&self, route: Route, param: Option<&str>, req: &Request) -> Response {
        let method = req.method.as_str();
        let allowed = match route {
            Route::Unmatched | Route::Invalid | Route::Overloaded => true,
            Route::CartItems => method == "POST",
            _ => method == "GET" || method == "HEAD",
        };
        if !allowed {
            let body = format!("method {} not allowed; use {}", method, route.allowed());
            return if req.path.starts_with("/api/") {
                Response::json(405, json::error_body(&body))
            } else {
                Response::new(405, TEXT, body + "\n")
            }
            .with_header("Allow", route.allowed());
        }
        match route {
            Route::Home => Response::new(200, HTML, self.home_page.clone()),
            Route::Products => Response::new(200, HTML, self.products_page.clone()),
            Route::ApiProducts => Response::json(200, self.products_json.clone()),
            Route::ApiProduct => self.product(param.unwrap_or("")),
            Route::Cart => {
                let cart = self.carts.get(self.cart_cookie(req));
                Response::json(200, cart.to_json()).with_header("Cache-Control", "no-store")
            }
            Route::CartItems => self.add_to_cart(req),
            Route::Healthz => {
                if self.config.fail_health {
                    Response::new(503, TEXT, "failing (STOREFRONT_FAIL_HEALTH)\n")
                } else {
                    Response::new(200, TEXT, "ok\n")
                }
            }
            Route::Metrics => Response::new(200, metrics::CONTENT_TYPE, self.metrics.render()),
            Route::Unmatched | Route::Invalid | Route::Overloaded => {
                if req.path.starts_with("/api/") {
                    Response::json(404, json::error_body("not found"))
                } else {
                    Response::new(404, TEXT, "not found\n")
                }
            }
        }
    }

    fn product(&self, raw_id: &str) -> Response {
        let digits =
            !raw_id.is_empty() && raw_id.len() <= 19 && raw_id.bytes().all(|c| c.is_ascii_digit());
        let found = if digits {
            raw_id.parse().ok().and_then(catalog::find)
        } else {
            None
        };
        match found {
            Some(p) => Response::json(200, catalog::product_json(p)),
            None => Response::json(404, json::error_body("product not found")),
        }
    }

    /// A syntactically valid cart cookie, if any.
    fn cart_cookie<'r>(&self, req: &'r Request) -> Option<&'r str> {
        req.cookie(CART_COOKIE).filter(|id| cart::valid_id(id))
    }

    fn add_to_cart(&self, req: &Request) -> Response {
        let item = match json::parse_add_item(&req.body) {
            Ok(item) => item,
            Err(e) => {
                return Response::json(400, json::error_body(&format!("invalid request body: {e}")))
            }
        };
        match self.carts.add(
            self.cart_cookie(req),
            item.product_id,
            item.quantity,
            || self.rng.hex_id(),
        ) {
            Ok((id, created, cart)) => {
                let resp =
                    Response::json(201, cart.to_json()).with_header("Cache-Control", "no-store");
                if created {
                    resp.with_header(
                        "Set-Cookie",
                        format!("{CART_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"),
                    )
                } else {
                    resp
                }
            }
            Err(CartError::UnknownProduct) => {
                Response::json(404, json::error_body("unknown product"))
            }
            Err(CartError::BadQuantity) => Response::json(
                400,
                json::error_body(&format!(
                    "quantity must be from 1 to {}",
                    cart::MAX_QUANTITY_PER_REQUEST
                )),
            ),
            Err(CartError::LineLimit) => Response::json(
                400,
                json::error_body(&format!(
                    "at most {} units of one product per cart",
                    cart::MAX_LINE_QUANTITY
                )),
            ),
        }
    }
}

/// Whether a response content type is JSON (for tests and callers).
pub fn is_json(resp: &Response) -> bool {
    resp.content_type == JSON
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_with(vars: &[(&str, &str)]) -> App {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cfg =
            Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                .unwrap();
        App::with_rng(cfg, Rng::new(1))
    }

    fn req(method: &str, path: &str, cookie: Option<&str>, body: &str) -> Request {
        let mut headers = vec![("host".to_string(), "test".to_string())];
        if let Some(c) = cookie {
            headers.push(("cookie".to_string(), c.to_string()));
        }
        Request {
            method: method.into(),
            path: path.into(),
            query: None,
            http11: true,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn get(app: &App, path: &str) -> Response {
        app.handle(&req("GET", path, None, ""))
    }

    fn body(r: &Response) -> String {
        String::from_utf8(r.body.clone()).unwrap()
    }

    #[test]
    fn routes_and_statuses() {
        let app = app_with(&[("STOREFRONT_VERSION", "9.9.9")]);
        let home = get(&app, "/");
        assert_eq!((home.status, home.content_type), (200, HTML));
        assert!(body(&home).contains("<title>Storefront</title>") && body(&home).contains("9.9.9"));
        assert!(body(&home).contains("href=\"/products\""));
        assert_eq!(home.header(VERSION_HEADER), Some("9.9.9"));

        let products = get(&app, "/products");
        assert_eq!(products.status, 200);
        assert!(
            body(&products).contains("Espresso Beans 1kg") && body(&products).contains("$12.99")
        );

        let list = get(&app, "/api/products");
        assert!(is_json(&list) && body(&list).starts_with("[{\"id\":1,"));
        assert_eq!(body(&list).matches("\"price_cents\"").count(), 6);

        let one = get(&app, "/api/products/2");
        assert_eq!(
            (one.status, body(&one).as_str()),
            (200, r#"{"id":2,"name":"Ceramic Mug","price_cents":899}"#)
        );
        for missing in [
            "/api/products/7",
            "/api/products/0",
            "/api/products/x",
            "/api/products/+1",
            "/api/products/99999999999999999999",
        ] {
            let r = get(&app, missing);
            assert_eq!((r.status, is_json(&r)), (404, true), "{missing}");
            assert!(body(&r).contains("\"error\""));
        }

        let health = get(&app, "/healthz");
        assert_eq!((health.status, body(&health).as_str()), (200, "ok\n"));
        assert_eq!(get(&app, "/nope").status, 404);
        assert_eq!(get(&app, "/api/nope").status, 404);
        assert!(is_json(&get(&app, "/api/nope")));

        let head = app.handle(&req("HEAD", "/", None, ""));
        assert_eq!(head.status, 200);
        let post_home = app.handle(&req("POST", "/", None, ""));
        assert_eq!(
            (post_home.status, post_home.header("Allow")),
            (405, Some("GET, HEAD"))
        );
        let get_items = get(&app, "/api/cart/items");
        assert_eq!(
            (get_items.status, get_items.header("Allow")),
            (405, Some("POST"))
        );
    }

    #[test]
    fn failing_health() {
        let app = app_with(&[("STOREFRONT_FAIL_HEALTH", "1")]);
        assert_eq!(get(&app, "/healthz").status, 503);
        assert_eq!(get(&app, "/").status, 200);
    }

    #[test]
    fn cart_flow_with_cookie() {
        let app = app_with(&[]);
        let empty = get(&app, "/api/cart");
        assert_eq!(
            (empty.status, body(&empty).as_str()),
            (200, r#"{"items":[],"total_cents":0}"#)
        );

        let r = app.handle(&req(
            "POST",
            "/api/cart/items",
            None,
            r#"{"product_id":1,"quantity":2}"#,
        ));
        assert_eq!(r.status, 201);
        assert_eq!(
            body(&r),
            r#"{"items":[{"product_id":1,"quantity":2}],"total_cents":2598}"#
        );
        let set = r.header("Set-Cookie").unwrap().to_string();
        assert!(set.contains("; Path=/; HttpOnly"), "{set}");
        let id = set
            .strip_prefix("cart=")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        assert!(cart::valid_id(&id));
        let cookie = format!("theme=dark; cart={id}");

        let r = app.handle(&req(
            "POST",
            "/api/cart/items",
            Some(&cookie),
            r#"{"product_id":4,"quantity":1}"#,
        ));
        assert_eq!(r.status, 201);
        assert_eq!(
            r.header("Set-Cookie"),
            None,
            "no new cookie for a known cart"
        );
        assert_eq!(
            body(&r),
            r#"{"items":[{"product_id":1,"quantity":2},{"product_id":4,"quantity":1}],"total_cents":3097}"#
        );
        let r = app.handle(&req("GET", "/api/cart", Some(&cookie), ""));
        assert_eq!(
            body(&r),
            r#"{"items":[{"product_id":1,"quantity":2},{"product_id":4,"quantity":1}],"total_cents":3097}"#
        );

        // another client has its own cart
        let other = app.handle(&req(
            "POST",
            "/api/cart/items",
            None,
            r#"{"product_id":3,"quantity":1}"#,
        ));
        assert_ne!(other.header("Set-Cookie").unwrap(), set);

        // errors
        let r = app.handle(&req(
            "POST",
            "/api/cart/items",
            Some(&cookie),
            r#"{"product_id":42,"quantity":1}"#,
        ));
        assert_eq!(r.status, 404);
        for bad in [
            "",
            "{",
            "not json",
            r#"{"product_id":1}"#,
            r#"{"product_id":1,"quantity":0}"#,
            r#"{"product_id":1,"quantity":1001}"#,
        ] {
            let r = app.handle(&req("POST", "/api/cart/items", Some(&cookie), bad));
            assert_eq!((r.status, is_json(&r)), (400, true), "{bad:?}");
        }
        // a forged or unknown cookie gets a fresh cart and cookie
        let r = app.handle(&req(
            "POST",
            "/api/cart/items",
            Some("cart=../../etc"),
            r#"{"product_id":1,"quantity":1}"#,
        ));
        assert!(r.header("Set-Cookie").is_some());
        assert_eq!(app.carts.len(), 3);
    }

    #[test]
    fn error_rate_zero_one_and_half() {
        let none = app_with(&[]);
        assert!((0..500).all(|_| get(&none, "/api/products").status == 200));

        let all = app_with(&[("STOREFRONT_ERROR_RATE", "1")]);
        for path in ["/", "/products", "/api/products", "/api/cart", "/nope"] {
            let r = get(&all, path);
            assert_eq!(r.status, 500, "{path}");
            assert!(body(&r).contains("injected failure"));
        }
        assert_eq!(
            get(&all, "/healthz").status,
            200,
            "/healthz is never failed"
        );
        assert_eq!(
            get(&all, "/metrics").status,
            200,
            "/metrics is never failed"
        );
        let t = body(&get(&all, "/metrics"));
        assert!(
            t.contains("storefront_http_errors_total{route=\"/api/products\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("storefront_http_errors_total{route=\"/healthz\"} 0\n"));

        let half = app_with(&[("STOREFRONT_ERROR_RATE", "0.5")]);
        let failed = (0..10_000)
            .filter(|_| get(&half, "/api/products").status == 500)
            .count();
        assert!((4_600..5_400).contains(&failed), "{failed}");
        let t = body(&get(&half, "/metrics"));
        assert!(t.contains(&format!(
            "storefront_http_errors_total{{route=\"/api/products\"}} {failed}\n"
        )));
        assert!(t.contains(&format!(
            "storefront_http_requests_total{{route=\"/api/products\",method=\"GET\",code=\"500\"}} {failed}\n"
        )));
    }

    #[test]
    fn latency_is_added_and_measured() {
        let app = app_with(&[("STOREFRONT_LATENCY_MS", "60")]);
        let t0 = Instant::now();
        assert_eq!(get(&app, "/api/products").status, 200);
        assert!(t0.elapsed() >= Duration::from_millis(60));
        let t0 = Instant::now();
        get(&app, "/healthz");
        get(&app, "/metrics");
        assert!(
            t0.elapsed() < Duration::from_millis(60),
            "health and metrics are not delayed"
        );

        let t = body(&get(&app, "/metrics"));
        let series = |le: &str| {
            format!("storefront_http_request_duration_seconds_bucket{{route=\"/api/products\",method=\"GET\",le=\"{le}\"}} ")
        };
        assert!(t.contains(&(series("0.05") + "0\n")), "{t}");
        assert!(
            t.contains(&(series("0.1") + "1\n")) || t.contains(&(series("0.25") + "1\n")),
            "{t}"
        );
        assert!(t.contains(&(series("+Inf") + "1\n")));
        assert!(!t.contains("route=\"/metrics\""), "/metrics is not counted");
        assert!(t.contains(
            "storefront_http_requests_total{route=\"/healthz\",method=\"GET\",code=\"200\"} 1\n"
        ));
    }

    #[test]
    fn latency_jitter_stays_in_range() {
        let app = app_with(&[
            ("STOREFRONT_LATENCY_MS", "10"),
            ("STOREFRONT_LATENCY_JITTER_MS", "20"),
        ]);
        for _ in 0..5 {
            let t0 = Instant::now();
            get(&app, "/");
            let e = t0.elapsed();
            assert!(
                e >= Duration::from_millis(10) && e < Duration::from_millis(200),
                "{e:?}"
            );
        }
    }

    #[test]
    fn metrics_use_route_patterns_and_bounded_methods() {
        let app = app_with(&[]);
        for id in 1..=6 {
            get(&app, &format!("/api/products/{id}"));
        }
        get(&app, "/random/path/1");
        get(&app, "/random/path/2");
        app.handle(&req("BREW", "/", None, ""));
        app.reject(ParseError::Malformed("x"));
        let t = body(&get(&app, "/metrics"));
        assert!(t.contains("storefront_http_requests_total{route=\"/api/products/{id}\",method=\"GET\",code=\"200\"} 6\n"), "{t}");
        assert!(t.contains(
            "storefront_http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"} 2\n"
        ));
        assert!(t.contains(
            "storefront_http_requests_total{route=\"/\",method=\"other\",code=\"405\"} 1\n"
        ));
        assert!(t.contains(
            "storefront_http_requests_total{route=\"invalid\",method=\"other\",code=\"400\"} 1\n"
        ));
        assert!(!t.contains("/api/products/1") && !t.contains("/random"));
        assert!(t.contains("storefront_build_info{version=\"0.1.0\"} 1\n"));
    }
}
