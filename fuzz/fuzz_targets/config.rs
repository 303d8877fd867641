//! The operator config reader: a Config or an error with its line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = gantry::config::Config::parse(std::path::Path::new("config.yml"), text) {
        // Globs and rules that were read must work when a push is judged.
        for project in config.projects.values() {
            let _ = project.tracks("main");
        }
        for protection in config.protections.values() {
            let _ = protection.allows_branch("main");
        }
    }
});
