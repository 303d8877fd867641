//! PromQL queries against a Prometheus server's HTTP API (`/api/v1/query`,
//! `/api/v1/query_range`), with the answer decoded into typed results.
//!
//! Three outcomes are kept apart, because a gate treats them differently: the server is
//! down ([`ApmError::Unreachable`]), it rejected the query ([`ApmError::Query`], with the
//! server's own message), or the query ran and found nothing ([`ApmError::Missing`]:
//! an empty vector or matrix, a NaN scalar).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::exposition::parse_value;
use super::{request_error, ApmError, Missing};

/// How long one query may take, connection included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// One series' value at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstantSample {
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub at: f64,
    pub value: f64,
}

/// One series' values over a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeSeries {
    pub labels: BTreeMap<String, String>,
    /// (seconds since the epoch, value), in time order.
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueryResult {
    Scalar { at: f64, value: f64 },
    Vector { samples: Vec<InstantSample> },
    Matrix { series: Vec<RangeSeries> },
    String { at: f64, value: String },
}

impl QueryResult {
    /// The one number a threshold can be checked against: a scalar, or a vector of exactly
    /// one series. Several series are missing data too: which one should be judged is not
    /// for us to guess (aggregate them in the query: `sum`, `max`, ...).
    pub fn single_value(&self, what: &str) -> Result<f64, Missing> {
        let v = match self {
            QueryResult::Scalar { value, .. } => *value,
            QueryResult::Vector { samples } if samples.len() == 1 => samples[0].value,
            QueryResult::Vector { samples } => {
                return Err(Missing::new(
                    what,
                    format!(
                        "the query returned {} series; a check needs exactly one (aggregate with sum/max/...)",
                        samples.len()
                    ),
                ))
            }
            QueryResult::Matrix { .. } => {
                return Err(Missing::new(what, "a range result has no single value"))
            }
            QueryResult::String { .. } => {
                return Err(Missing::new(what, "the query returned a string, not a number"))
            }
        };
        if v.is_nan() {
            // histogram_quantile over zero observations, 0/0 ratios: "no data", not a value.
            return Err(Missing::new(
                what,
                "the query returned NaN (no data in its range)",
            ));
        }
        Ok(v)
    }
}

/// An instant query, at `at` or (None) the server's now.
pub async fn query(
    base_url: &str,
    expr: &str,
    at: Option<DateTime<Utc>>,
) -> Result<QueryResult, ApmError> {
    let mut params = vec![("query", expr.to_string())];
    if let Some(t) = at {
        params.push(("time", epoch(t)));
    }
    call(base_url, "api/v1/query", expr, &params).await
}

/// A range query from `start` to `end` every `step`.
pub async fn query_range(
    base_url: &str,
    expr: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: Duration,
) -> Result<QueryResult, ApmError> {
    let params = vec![
        ("query", expr.to_string()),
        ("start", epoch(start)),
        ("end", epoch(end)),
        ("step", format!("{:.3}", step.as_secs_f64())),
    ];
    call(base_url, "api/v1/query_range", expr, &params).await
}

fn epoch(t: DateTime<Utc>) -> String {
    format!("{:.3}", t.timestamp_millis() as f64 / 1000.0)
}

/// The API's envelope: `status` plus either `data` or `errorType`/`error`.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Value,
}

async fn call(
    base_url: &str,
    path: &str,
    expr: &str,
    params: &[(&str, String)],
) -> Result<QueryResult, ApmError> {
    let mut url = reqwest::Url::parse(base_url).map_err(|e| ApmError::BadUrl {
        url: base_url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApmError::BadUrl {
            url: base_url.to_string(),
            reason: "only http:// and https:// are supported".into(),
        });
    }
    // Join relative to the base's path, so a Prometheus behind a prefix
    // (http://host/prometheus/) works: ensure one trailing slash first.
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    let mut url = url.join(path).map_err(|e| ApmError::BadUrl {
        url: base_url.to_string(),
        reason: e.to_string(),
    })?;
    url.query_pairs_mut()
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
    let shown = url.to_string();

    let client = reqwest::Client::builder()
        .timeout(QUERY_TIMEOUT)
        .build()
        .map_err(|e| request_error(&shown, e))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| request_error(base_url, e))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| request_error(base_url, e))?;

    // Errors come as JSON with a 4xx/5xx status; read the body before judging the status.
    let env: Envelope = match serde_json::from_str(&body) {
        Ok(env) => env,
        Err(e) if status.is_success() => {
            return Err(ApmError::Decode {
                url: base_url.to_string(),
                reason: format!("not the API's JSON: {e}"),
            })
        }
        Err(_) => {
            return Err(ApmError::Http {
                url: base_url.to_string(),
                status: status.as_u16(),
                body: body.chars().take(500).collect(),
            })
        }
    };
    if env.status != "success" {
        return Err(ApmError::Query {
            url: base_url.to_string(),
            error_type: env.error_type.unwrap_or_else(|| "unknown".into()),
            message: env
                .error
                .unwrap_or_else(|| format!("status '{}'", env.status)),
        });
    }
    let data = env.data.ok_or_else(|| ApmError::Decode {
        url: base_url.to_string(),
        reason: "a success without data".into(),
    })?;
    let result = decode(&data).map_err(|reason| ApmError::Decode {
        url: base_url.to_string(),
        reason,
    })?;
    let empty = match &result {
        QueryResult::Vector { samples } => samples.is_empty(),
        QueryResult::Matrix { series } => series.is_empty(),
        _ => false,
    };
    if empty {
        return Err(ApmError::Missing(Missing::new(
            expr,
            format!("no series in the result (Prometheus at {base_url})"),
        )));
    }
    Ok(result)
}

fn decode(data: &Data) -> Result<QueryResult, String> {
    match data.result_type.as_str() {
        "scalar" => {
            let (at, v) = point(&data.result)?;
            Ok(QueryResult::Scalar {
                at,
                value: number(v)?,
            })
        }
        "string" => {
            let (at, v) = point(&data.result)?;
            Ok(QueryResult::String {
                at,
                value: v.to_string(),
            })
        }
        "vector" => {
            let items = data
                .result
                .as_array()
                .ok_or("a vector result is not a list")?;
            let mut samples = Vec::with_capacity(items.len());
            for item in items {
                let (at, v) = point(item.get("value").ok_or("a vector element has no value")?)?;
                samples.push(InstantSample {
                    labels: labels(item)?,
                    at,
                    value: number(v)?,
                });
            }
            Ok(QueryResult::Vector { samples })
        }
        "matrix" => {
            let items = data
                .result
                .as_array()
                .ok_or("a matrix result is not a list")?;
            let mut series = Vec::with_capacity(items.len());
            for item in items {
                let values = item
                    .get("values")
                    .and_then(Value::as_array)
                    .ok_or("a matrix element has no values")?;
                let mut points = Vec::with_capacity(values.len());
                for p in values {
                    let (at, v) = point(p)?;
                    points.push((at, number(v)?));
                }
                series.push(RangeSeries {
                    labels: labels(item)?,
                    points,
                });
            }
            Ok(QueryResult::Matrix { series })
        }
        other => Err(format!("unknown result type '{other}'")),
    }
}

/// `[<unix seconds>, "<value>"]`
fn point(v: &Value) -> Result<(f64, &str), String> {
    match v.as_array().map(Vec::as_slice) {
        Some([t, Value::String(s)]) => Ok((t.as_f64().ok_or("a timestamp is not a number")?, s)),
        _ => Err(format!("expected [time, \"value\"], got {v}")),
    }
}

fn number(s: &str) -> Result<f64, String> {
    parse_value(s).ok_or_else(|| format!("'{s}' is not a number"))
}

fn labels(item: &Value) -> Result<BTreeMap<String, String>, String> {
    let Some(m) = item.get("metric") else {
        return Ok(BTreeMap::new());
    };
    let obj = m.as_object().ok_or("'metric' is not an object")?;
    obj.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| format!("label '{k}' is not a string"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> Data {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn decodes_every_result_type() {
        let v = decode(&data(r#"{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000000.5,"0.25"]}]}"#)).unwrap();
        assert_eq!(v.single_value("x").unwrap(), 0.25);
        let QueryResult::Vector { samples } = &v else {
            panic!()
        };
        assert_eq!(samples[0].labels["job"], "a");
        assert_eq!(samples[0].at, 1700000000.5);

        let s = decode(&data(r#"{"resultType":"scalar","result":[1,"+Inf"]}"#)).unwrap();
        assert_eq!(s.single_value("x").unwrap(), f64::INFINITY);

        let m = decode(&data(
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"3"]]}]}"#,
        ))
        .unwrap();
        let QueryResult::Matrix { series } = &m else {
            panic!()
        };
        assert_eq!(series[0].points, vec![(1.0, 1.0), (2.0, 3.0)]);
        assert!(m.single_value("x").is_err());

        assert!(decode(&data(r#"{"resultType":"weird","result":[]}"#)).is_err());
        assert!(decode(&data(
            r#"{"resultType":"vector","result":[{"value":[1,2]}]}"#
        ))
        .is_err());
    }

    #[test]
    fn nan_and_many_series_are_missing() {
        let nan = decode(&data(
            r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}"#,
        ))
        .unwrap();
        assert!(nan.single_value("p99").unwrap_err().why.contains("NaN"));
        let two = decode(&data(r#"{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}"#)).unwrap();
        assert!(two.single_value("x").unwrap_err().why.contains("2 series"));
    }
}
