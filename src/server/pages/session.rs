//! The pages and scripts of a dashboard session (see `server::csrf` for the design): the
//! page that hands a new session's CSRF token to the browser, the page that takes it back
//! at sign-out, and the script that adds it to every form a signed-in page posts.
//! Both scripts are constants (the Content-Security-Policy allows them by hash) reading
//! what they need from data attributes, as maud escaped them.

use maud::{html, Markup, PreEscaped};

use super::layout::page;

/// Where the browser keeps the session's CSRF token: `localStorage`, scoped to the
/// dashboard's origin (port included), so no app on another port can read it. The
/// scripts below spell it out; the test holds them to this name.
#[cfg(test)]
const CSRF_KEY: &str = "gantry-csrf";

/// Keeps (or, when empty, forgets) the token of `#handoff`'s `data-csrf` and moves on to
/// its `data-next` without leaving this page in the history.
pub const HANDOFF: &str = r#"
(function () {
  var handoff = document.getElementById('handoff');
  try {
    if (handoff.dataset.csrf) { window.localStorage.setItem('gantry-csrf', handoff.dataset.csrf); }
    else { window.localStorage.removeItem('gantry-csrf'); }
  } catch (e) {}
  window.location.replace(handoff.dataset.next);
})();
"#;

/// Adds the session's CSRF token to every form the page posts, as the field `csrf`.
pub const FORMS: &str = r#"
(function () {
  var token = '';
  try { token = window.localStorage.getItem('gantry-csrf') || ''; } catch (e) {}
  var forms = document.querySelectorAll('form[method="post"]');
  for (var i = 0; i < forms.length; i++) {
    var field = document.createElement('input');
    field.type = 'hidden';
    field.name = 'csrf';
    field.value = token;
    forms[i].appendChild(field);
  }
})();
"#;

fn handoff(title: &str, csrf: &str, next: &str, text: &str) -> Markup {
    let body = html! {
        section.narrow #handoff data-csrf=(csrf) data-next=(next) {
            h1 { (title) }
            p { a #continue href=(next) { (text) } }
        }
        script { (PreEscaped(HANDOFF)) }
    };
    page(title, None, None, body)
}

/// The answer to a successful `POST /login`: the only response that carries the
/// session's CSRF token (to someone who just proved the token).
pub fn signed_in(csrf: &str) -> Markup {
    handoff("Signed in", csrf, "/", "Continue to the runs")
}

/// The answer to `POST /logout`: the browser forgets the token, then shows sign-in.
pub fn signed_out() -> Markup {
    handoff("Signed out", "", "/login", "Sign in again")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::config::Role;

    #[test]
    fn signing_in_hands_the_token_to_the_handoff_script_and_moves_on() {
        let html = signed_in("c0ffee").into_string();
        assert!(html.contains(r#"id="handoff" data-csrf="c0ffee" data-next="/""#), "{html}");
        assert!(html.contains(&format!("<script>{HANDOFF}</script>")), "{html}");
        assert!(HANDOFF.contains(&format!("'{CSRF_KEY}'")) && FORMS.contains(&format!("'{CSRF_KEY}'")));
        let out = signed_out().into_string();
        assert!(out.contains(r#"data-csrf="" data-next="/login""#), "{out}");
    }

    #[test]
    fn every_signed_in_page_adds_the_token_to_its_forms_and_no_page_has_inline_handlers() {
        let v = viewer(Role::ReleaseManager);
        let pages = [
            super::super::approvals(&v, &[parked_run("r3")]).into_string(),
            super::super::run(&v, &running_run("r2"), &[]).into_string(),
            super::super::notice(Some(&v), "Not recorded", "why", "/").into_string(),
        ];
        for html in &pages {
            assert!(html.contains(&format!("<script>{FORMS}</script>")), "{html}");
            for handler in [" onclick=", " onsubmit=", " onload=", "javascript:"] {
                assert!(!html.contains(handler), "{handler} in {html}");
            }
        }
        let signed_out_pages = [super::super::login(None).into_string(), super::super::notice(None, "Refused", "why", "/").into_string()];
        for html in &signed_out_pages {
            assert!(!html.contains("<script>"), "no session, no script: {html}");
        }
    }
}
