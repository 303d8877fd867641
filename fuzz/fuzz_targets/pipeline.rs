//! The pipeline validator on any text a push can carry: a Plan or diagnostics, never a
//! panic or a stack overflow; and a Plan that validated must not panic when used.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(plan) = gantry::pipeline::parse("fuzz.yml", text) {
        // What the scheduler does with a validated plan: filter by branch, order stages.
        for stage in &plan.stages {
            if let Some(when) = &stage.when {
                let _ = when.matches(Some("main"));
            }
        }
        let _ = plan.levels();
        let _ = gantry::pipeline::plan_summary(&plan);
    }
});
