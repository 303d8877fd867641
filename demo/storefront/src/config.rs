//! Settings, read from the environment (see main.rs / README.md for the list).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub port: u16,
    pub version: String,
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    pub error_rate: f64,
    pub fail_health: bool,
    pub max_connections: usize,
    pub max_carts: usize,
}

pub const MAX_LATENCY_MS: u64 = 60_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 8080,
            version: env!("CARGO_PKG_VERSION").to_string(),
            latency_ms: 0,
            latency_jitter_ms: 0,
            error_rate: 0.0,
            fail_health: false,
            max_connections: 1024,
            max_carts: 10_000,
        }
    }
}

impl Config {
    /// Reads the process environment. A variable that is set but empty counts as unset.
    pub fn from_env() -> Result<Config, String> {
        let mut bad_unicode = None;
        let cfg = Config::from_lookup(|k| match std::env::var(k) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                bad_unicode.get_or_insert_with(|| k.to_string());
                None
            }
        });
        if let Some(k) = bad_unicode {
            return Err(format!("{k}: value is not valid UTF-8"));
        }
        cfg
    }

    pub fn from_lookup(mut get: impl FnMut(&str) -> Option<String>) -> Result<Config, String> {
        let mut c = Config::default();
        let mut var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        if let Some(v) = var("STOREFRONT_PORT") {
            c.port = match v.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(format!(
                        "STOREFRONT_PORT={v:?}: expected a port number 1-65535"
                    ))
                }
            };
        }
        if let Some(v) = var("STOREFRONT_VERSION") {
            let ok_char = |ch: char| ch.is_ascii_alphanumeric() || "._-+:@/~".contains(ch);
            if v.len() > 64 || !v.chars().all(ok_char) {
                return Err(format!(
                    "STOREFRONT_VERSION={v:?}: expected at most 64 characters from A-Z a-z 0-9 . _ - + : @ / ~"
                ));
            }
            c.version = v;
        }
        c.latency_ms = millis(var("STOREFRONT_LATENCY_MS"), "STOREFRONT_LATENCY_MS")?;
        c.latency_jitter_ms = millis(
            var("STOREFRONT_LATENCY_JITTER_MS"),
            "STOREFRONT_LATENCY_JITTER_MS",
        )?;
        if let Some(v) = var("STOREFRONT_ERROR_RATE") {
            c.error_rate = match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    return Err(format!(
                        "STOREFRONT_ERROR_RATE={v:?}: expected a number from 0.0 to 1.0"
                    ))
                }
            };
        }
        if let Some(v) = var("STOREFRONT_FAIL_HEALTH") {
            c.fail_health =
                match v.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" => false,
                    _ => return Err(format!(
                        "STOREFRONT_FAIL_HEALTH={v:?}: expected 1/0, true/false, yes/no or on/off"
                    )),
                };
        }
        if let Some(v) = var("STOREFRONT_MAX_CONNECTIONS") {
            c.max_connections = match v.parse::<usize>() {
                Ok(n) if (1..=65_536).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "STOREFRONT_MAX_CONNECTIONS={v:?}: expected a number from 1 to 65536"
                    ))
                }
            };
        }
        if let Some(v) = var("STOREFRONT_MAX_CARTS") {
            c.max_carts = match v.parse::<usize>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "STOREFRONT_MAX_CARTS={v:?}: expected a number from 1 to 1000000"
                    ))
                }
            };
        }
        Ok(c)
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

fn millis(v: Option<String>, name: &str) -> Result<u64, String> {
    match v {
        None => Ok(0),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms <= MAX_LATENCY_MS => Ok(ms),
            _ => Err(format!(
                "{name}={v:?}: expected whole milliseconds from 0 to {MAX_LATENCY_MS}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.port, 8080);
        assert_eq!(c.version, env!("CARGO_PKG_VERSION"));
        assert_eq!((c.latency_ms, c.error_rate, c.fail_health), (0, 0.0, false));
        // empty means unset
        assert_eq!(
            cfg(&[("STOREFRONT_PORT", ""), ("STOREFRONT_ERROR_RATE", " ")]).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn reads_every_setting() {
        let c = cfg(&[
            ("STOREFRONT_PORT", "9000"),
            ("STOREFRONT_VERSION", "1.2.3-rc.1+abc"),
            ("STOREFRONT_LATENCY_MS", "300"),
            ("STOREFRONT_LATENCY_JITTER_MS", "50"),
            ("STOREFRONT_ERROR_RATE", "0.25"),
            ("STOREFRONT_FAIL_HEALTH", "1"),
            ("STOREFRONT_MAX_CONNECTIONS", "10"),
            ("STOREFRONT_MAX_CARTS", "5"),
        ])
        .unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.version, "1.2.3-rc.1+abc");
        assert_eq!(c.latency(), Duration::from_millis(300));
        assert_eq!(c.latency_jitter_ms, 50);
        assert_eq!(c.error_rate, 0.25);
        assert!(c.fail_health);
        assert_eq!((c.max_connections, c.max_carts), (10, 5));
        assert!(
            !cfg(&[("STOREFRONT_FAIL_HEALTH", "false")])
                .unwrap()
                .fail_health
        );
    }

    #[test]
    fn rejects_bad_settings_with_the_variable_name() {
        for (k, v) in [
            ("STOREFRONT_PORT", "0"),
            ("STOREFRONT_PORT", "65536"),
            ("STOREFRONT_PORT", "http"),
            ("STOREFRONT_VERSION", "1.0 beta"),
            ("STOREFRONT_VERSION", "<script>"),
            ("STOREFRONT_LATENCY_MS", "-5"),
            ("STOREFRONT_LATENCY_MS", "1.5"),
            ("STOREFRONT_LATENCY_MS", "60001"),
            ("STOREFRONT_LATENCY_JITTER_MS", "x"),
            ("STOREFRONT_ERROR_RATE", "1.5"),
            ("STOREFRONT_ERROR_RATE", "-0.1"),
            ("STOREFRONT_ERROR_RATE", "NaN"),
            ("STOREFRONT_ERROR_RATE", "50%"),
            ("STOREFRONT_FAIL_HEALTH", "maybe"),
            ("STOREFRONT_MAX_CONNECTIONS", "0"),
            ("STOREFRONT_MAX_CARTS", "many"),
        ] {
            let e = cfg(&[(k, v)]).expect_err(&format!("{k}={v}"));
            assert!(e.starts_with(k), "{e}");
        }
    }
}
