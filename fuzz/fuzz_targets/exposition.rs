//! The Prometheus text exposition parser on any scraped page: samples or an error with
//! its line, never a panic; no sample is infinite unless it says `+Inf`/`-Inf`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(samples) = gantry::gate::apm::parse_exposition(text) {
        for s in samples {
            if s.value.is_infinite() {
                assert!(text.to_ascii_lowercase().contains("inf"), "{text:?} gave an infinite sample");
            }
        }
    }
});
