//! Route patterns: the fixed set used for dispatch and as the `route` metric label.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    Home,
    Products,
    ApiProducts,
    ApiProduct,
    Cart,
    CartItems,
    Healthz,
    Metrics,
    /// No route matched (404).
    Unmatched,
    /// The request could not be parsed (400 and friends).
    Invalid,
    /// Refused because the server is at its connection limit (503).
    Overloaded,
}

impl Route {
    /// Application routes that are counted in the metrics (all but /metrics), in a
    /// stable order.
    pub const COUNTED: [Route; 7] = [
        Route::Home,
        Route::Products,
        Route::ApiProducts,
        Route::ApiProduct,
        Route::Cart,
        Route::CartItems,
        Route::Healthz,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Route::Home => "/",
            Route::Products => "/products",
            Route::ApiProducts => "/api/products",
            Route::ApiProduct => "/api/products/{id}",
            Route::Cart => "/api/cart",
            Route::CartItems => "/api/cart/items",
            Route::Healthz => "/healthz",
            Route::Metrics => "/metrics",
            Route::Unmatched => "unmatched",
            Route::Invalid => "invalid",
            Route::Overloaded => "overloaded",
        }
    }

    /// Methods this route answers (HEAD is allowed wherever GET is).
    pub fn allowed(self) -> &'static str {
        match self {
            Route::CartItems => "POST",
            _ => "GET, HEAD",
        }
    }

    /// Matches a request path (without query). For `/api/products/{id}` also returns
    /// the raw id segment.
    pub fn match_path(path: &str) -> (Route, Option<&str>) {
        let route = match path {
            "/" => Route::Home,
            "/products" => Route::Products,
            "/api/products" => Route::ApiProducts,
            "/api/cart" => Route::Cart,
            "/api/cart/items" => Route::CartItems,
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            _ => {
                return match path.strip_prefix("/api/products/") {
                    Some(id) if !id.is_empty() && !id.contains('/') => {
                        (Route::ApiProduct, Some(id))
                    }
                    _ => (Route::Unmatched, None),
                }
            }
        };
        (route, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_patterns() {
        assert_eq!(Route::match_path("/"), (Route::Home, None));
        assert_eq!(Route::match_path("/products"), (Route::Products, None));
        assert_eq!(
            Route::match_path("/api/products"),
            (Route::ApiProducts, None)
        );
        assert_eq!(
            Route::match_path("/api/products/3"),
            (Route::ApiProduct, Some("3"))
        );
        assert_eq!(
            Route::match_path("/api/products/abc"),
            (Route::ApiProduct, Some("abc"))
        );
        assert_eq!(
            Route::match_path("/api/products/"),
            (Route::Unmatched, None)
        );
        assert_eq!(
            Route::match_path("/api/products/1/x"),
            (Route::Unmatched, None)
        );
        assert_eq!(Route::match_path("/api/cart"), (Route::Cart, None));
        assert_eq!(
            Route::match_path("/api/cart/items"),
            (Route::CartItems, None)
        );
        assert_eq!(Route::match_path("/healthz"), (Route::Healthz, None));
        assert_eq!(Route::match_path("/metrics"), (Route::Metrics, None));
        assert_eq!(Route::match_path("/products/"), (Route::Unmatched, None));
        assert_eq!(Route::match_path("/nope"), (Route::Unmatched, None));
        assert_eq!(Route::ApiProduct.label(), "/api/products/{id}");
    }
}
