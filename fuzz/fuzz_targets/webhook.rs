//! Webhook bodies as a forge would send them (after the signature check, the body is
//! still whatever the sender wrote): a Push or an error, never a panic.
#![no_main]

use gantry::server::webhook::{parse_push, Forge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let (forge, header, event) = match which % 3 {
        0 => (Forge::GitHub, "x-github-event", "push"),
        1 => (Forge::GitLab, "x-gitlab-event", "Push Hook"),
        _ => (Forge::Gitea, "x-gitea-event", "push"),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(header, http::HeaderValue::from_static(event));
    let _ = parse_push(forge, &headers, body);
});
