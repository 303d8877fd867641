//! PromQL's `histogram_quantile` on cumulative buckets, so that a quantile measured from
//! two scrapes equals what a Prometheus server would compute from the same increases.

/// One cumulative bucket: observations `<= upper_bound`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub upper_bound: f64,
    pub count: f64,
}

/// Why no quantile can be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantileError {
    #[error("the histogram has no +Inf bucket")]
    NoInfBucket,
    #[error("the histogram has fewer than two buckets")]
    TooFewBuckets,
    #[error("no observations")]
    NoObservations,
    #[error("quantile {0} is outside 0..=1")]
    OutOfRange(String),
}

/// The q-quantile, as Prometheus computes it (promql/quantile.go, `bucketQuantile`):
/// find the bucket where the rank `q * total` falls and interpolate linearly inside it,
/// assuming observations spread evenly. The lowest bucket starts at 0 (unless its upper
/// bound is <= 0); a rank in the +Inf bucket answers the highest finite bound, since
/// nothing is known about how far above it the observations are.
pub fn histogram_quantile(q: f64, buckets: &[Bucket]) -> Result<f64, QuantileError> {
    if !(0.0..=1.0).contains(&q) {
        return Err(QuantileError::OutOfRange(q.to_string()));
    }
    let mut b: Vec<Bucket> = buckets.to_vec();
    b.sort_by(|x, y| x.upper_bound.total_cmp(&y.upper_bound));
    if b.last().map(|l| l.upper_bound) != Some(f64::INFINITY) {
        return Err(QuantileError::NoInfBucket);
    }
    if b.len() < 2 {
        return Err(QuantileError::TooFewBuckets);
    }
    // Counts must not fall with the bound; deltas of buckets that reset at different moments
    // can break that, and Prometheus repairs it the same way (running maximum).
    let mut max = 0.0f64;
    for bucket in &mut b {
        max = max.max(bucket.count);
        bucket.count = max;
    }
    let total = b[b.len() - 1].count;
    if total <= 0.0 {
        return Err(QuantileError::NoObservations);
    }
    let rank = q * total;
    let i = b[..b.len() - 1]
        .iter()
        .position(|x| x.count >= rank)
        .unwrap_or(b.len() - 1);
    if i == b.len() - 1 {
        return Ok(b[b.len() - 2].upper_bound);
    }
    if i == 0 && b[0].upper_bound <= 0.0 {
        return Ok(b[0].upper_bound);
    }
    let (start, below) = if i > 0 {
        (b[i - 1].upper_bound, b[i - 1].count)
    } else {
        (0.0, 0.0)
    };
    let end = b[i].upper_bound;
    let in_bucket = b[i].count - below;
    Ok(start + (end - start) * ((rank - below) / in_bucket))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(upper_bound, count)| Bucket { upper_bound, count })
            .collect()
    }

    #[test]
    fn interpolates_like_prometheus() {
        let inf = f64::INFINITY;
        // 100 observations: 10 <= 0.1, 90 in (0.1, 0.25].
        let b = h(&[(0.05, 0.0), (0.1, 10.0), (0.25, 100.0), (inf, 100.0)]);
        // rank 95 → 0.1 + 0.15 * (85/90)
        let p95 = histogram_quantile(0.95, &b).unwrap();
        assert!((p95 - (0.1 + 0.15 * 85.0 / 90.0)).abs() < 1e-12, "{p95}");
        // rank 5 in the first non-empty bucket (0.05, 0.1]
        let p05 = histogram_quantile(0.05, &b).unwrap();
        assert!((p05 - 0.075).abs() < 1e-12, "{p05}");
        // Lowest bucket starts at 0.
        let low = h(&[(1.0, 4.0), (inf, 4.0)]);
        assert_eq!(histogram_quantile(0.5, &low).unwrap(), 0.5);
        // Order of input does not matter.
        let mut rev = b.clone();
        rev.reverse();
        assert_eq!(histogram_quantile(0.95, &rev).unwrap(), p95);
    }

    #[test]
    fn rank_in_inf_bucket_answers_highest_finite_bound() {
        let b = h(&[(0.5, 1.0), (1.0, 2.0), (f64::INFINITY, 10.0)]);
        assert_eq!(histogram_quantile(0.99, &b).unwrap(), 1.0);
    }

    #[test]
    fn repairs_non_monotonic_counts() {
        let b = h(&[(0.1, 5.0), (0.2, 3.0), (f64::INFINITY, 10.0)]);
        // After repair: 5, 5, 10 → p50 rank 5 lands in the first bucket at its top.
        assert_eq!(histogram_quantile(0.5, &b).unwrap(), 0.1);
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        let inf = f64::INFINITY;
        assert_eq!(
            histogram_quantile(0.5, &h(&[(0.1, 0.0), (inf, 0.0)])),
            Err(QuantileError::NoObservations)
        );
        assert_eq!(
            histogram_quantile(0.5, &h(&[(0.1, 3.0)])),
            Err(QuantileError::NoInfBucket)
        );
        assert_eq!(
            histogram_quantile(0.5, &h(&[(inf, 3.0)])),
            Err(QuantileError::TooFewBuckets)
        );
        assert!(matches!(
            histogram_quantile(1.5, &h(&[(0.1, 1.0), (inf, 1.0)])),
            Err(QuantileError::OutOfRange(_))
        ));
    }
}
