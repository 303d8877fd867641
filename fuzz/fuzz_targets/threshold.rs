//! Threshold expressions: load thresholds (`metric` on the first line, the expression
//! after) and APM thresholds and baselines; every accepted limit is a finite number.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (metric, expression) = text.split_once('\n').unwrap_or(("http_req_duration", text));
    if let Ok(t) = gantry::gate::threshold::Threshold::parse(metric, expression) {
        assert!(t.limit.is_finite(), "{expression:?} gave limit {}", t.limit);
    }
    if let Ok(t) = gantry::gate::apm::Threshold::parse(text) {
        assert!(t.limit.is_finite(), "{text:?} gave limit {}", t.limit);
        let _ = t.passes(1.0);
    }
    let _ = gantry::gate::apm::BaselineRule::parse(text);
});
