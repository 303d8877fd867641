//! APM series selectors (`name{label=~"re"}`): parsed and compiled within their limits,
//! and matched against a series without a panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(selector) = gantry::gate::apm::Selector::parse(text) {
        let labels: BTreeMap<String, String> = [("code".to_string(), "503".to_string())].into();
        for m in &selector.matchers {
            let _ = m.matches(&labels);
            let _ = m.requires_label();
        }
    }
});
