//! Smoke journey templates (`{{name}}`): rendering text and JSON bodies with captured
//! values, and the spec check that finds the names used, never panic.
#![no_main]

use gantry::smoke::templates::{placeholders, render, render_json, Vars};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut vars = Vars::new();
    vars.insert("id".into(), serde_json::json!(7));
    vars.insert("name".into(), serde_json::json!("mug"));
    let names = placeholders(text);
    if let Ok(out) = render(text, &vars) {
        // Every placeholder found was known, so none is left in the output's place.
        assert!(names.iter().all(|n| vars.contains_key(*n)));
        let _ = out;
    }
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = render_json(&json, &vars);
    }
    let _ = gantry::smoke::SmokeSpec::from_json(text).map(|s| s.validate());
});
