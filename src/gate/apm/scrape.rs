//! Reading an application's own `/metrics` page. Two scrapes, before and after a window of
//! traffic, give a window (`window::Window::new`) whose counter deltas are what the window measured.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::exposition::{parse_exposition, Sample};
use super::{request_error, ApmError};

/// How long one scrape may take; a `/metrics` page that slow is as good as down.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// One reading of a `/metrics` page.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub url: String,
    /// When the request was sent; monotonic, so window lengths survive clock changes.
    pub at: Instant,
    /// The same moment on the wall clock, for reports.
    pub wall: DateTime<Utc>,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// A scrape from text already fetched (tests, or pages read another way).
    pub fn from_text(url: &str, text: &str, at: Instant) -> Result<Scrape, ApmError> {
        let samples = parse_exposition(text).map_err(|source| ApmError::Exposition {
            url: url.to_string(),
            source,
        })?;
        Ok(Scrape {
            url: url.to_string(),
            at,
            wall: Utc::now(),
            samples,
        })
    }
}

/// GETs `url` (a `/metrics` page) and parses it. Connection failures and timeouts are
/// [`ApmError::Unreachable`]; a non-2xx answer is [`ApmError::Http`].
pub async fn scrape(url: &str) -> Result<Scrape, ApmError> {
    let client = reqwest::Client::builder()
        .timeout(SCRAPE_TIMEOUT)
        .build()
        .map_err(|e| request_error(url, e))?;
    scrape_with(&client, url).await
}

/// [`scrape`] with a caller's client (to reuse connections across the two scrapes).
pub async fn scrape_with(client: &reqwest::Client, url: &str) -> Result<Scrape, ApmError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ApmError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApmError::BadUrl {
            url: url.to_string(),
            reason: "only http:// and https:// are supported".into(),
        });
    }
    let at = Instant::now();
    let wall = Utc::now();
    let resp = client
        .get(parsed)
        // Ask for the text format: some exposers default to OpenMetrics or protobuf.
        .header("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
        .send()
        .await
        .map_err(|e| request_error(url, e))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| request_error(url, e))?;
    if !status.is_success() {
        return Err(ApmError::Http {
            url: url.to_string(),
            status: status.as_u16(),
            body: text.chars().take(500).collect(),
        });
    }
    let mut s = Scrape::from_text(url, &text, at)?;
    s.wall = wall;
    Ok(s)
}
