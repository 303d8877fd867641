//! JUnit XML for CI tools: one `<testsuite>` per journey, one `<testcase>` per step.

use super::report::{Outcome, SmokeReport, StepReport};
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

/// Renders `report` as JUnit XML under `<testsuites name="suite">`.
///
/// quick-xml escapes markup characters; characters XML 1.0 cannot carry at all
/// (control characters from a binary body, say) are replaced first, so the result
/// always parses.
pub fn junit_xml(report: &SmokeReport, suite: &str) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail; `expect` documents that rather than hiding an error.
    write_report(&mut w, report, suite).expect("writing XML to memory");
    String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8")
}

fn write_report(w: &mut Writer<Vec<u8>>, report: &SmokeReport, suite: &str) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let (passed, failed, skipped) = report.counts();
    w.create_element("testsuites")
        .with_attributes([
            ("name", attr(suite).as_str()),
            ("tests", (passed + failed + skipped).to_string().as_str()),
            ("failures", failed.to_string().as_str()),
            ("errors", "0"),
            ("skipped", skipped.to_string().as_str()),
            ("time", secs(report.duration_ms).as_str()),
        ])
        .write_inner_content(|w| {
            for journey in &report.journeys {
                let count = |o: Outcome| journey.steps.iter().filter(|s| s.outcome == o).count().to_string();
                w.create_element("testsuite")
                    .with_attributes([
                        ("name", attr(&journey.name).as_str()),
                        ("tests", journey.steps.len().to_string().as_str()),
                        ("failures", count(Outcome::Failed).as_str()),
                        ("errors", "0"),
                        ("skipped", count(Outcome::Skipped).as_str()),
                        ("time", secs(journey.duration_ms).as_str()),
                    ])
                    .write_inner_content(|w| {
                        for step in &journey.steps {
                            write_case(w, &journey.name, step)?;
                        }
                        Ok(())
                    })?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_case(w: &mut Writer<Vec<u8>>, journey: &str, step: &StepReport) -> std::io::Result<()> {
    let case = w.create_element("testcase").with_attributes([
        ("classname", attr(journey).as_str()),
        ("name", attr(&step.name).as_str()),
        ("time", secs(step.duration_ms).as_str()),
    ]);
    match step.outcome {
        Outcome::Passed => {
            case.write_empty()?;
        }
        Outcome::Skipped => {
            case.write_inner_content(|w| {
                w.create_element("skipped").with_attribute(("message", "an earlier step of this journey failed")).write_empty()?;
                Ok(())
            })?;
        }
        Outcome::Failed => {
            // `type` is the first failed check (or `error` when there was no response),
            // `message` the one-line summary, the text every detail.
            let kind = if step.error.is_some() { "error".to_string() } else { step.failures.first().map(|f| f.check.clone()).unwrap_or_default() };
            let message = step.problem().unwrap_or_default();
            let details = failure_details(step);
            case.write_inner_content(|w| {
                w.create_element("failure")
                    .with_attributes([("message", attr(&message).as_str()), ("type", attr(&kind).as_str())])
                    .write_text_content(BytesText::new(&xml_chars(&details)))?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn failure_details(step: &StepReport) -> String {
    let mut lines = Vec::new();
    if let Some(status) = step.status {
        lines.push(format!("status: {status}"));
    }
    if let Some(error) = &step.error {
        lines.push(format!("error: {error}"));
    }
    for f in &step.failures {
        lines.push(format!("{}: expected {}\n  got: {}", f.check, f.expected, f.got));
    }
    lines.join("\n")
}

/// Attribute text: XML-safe characters, and no line breaks (parsers would turn them into spaces anyway).
fn attr(s: &str) -> String {
    xml_chars(s).replace(['\n', '\r', '\t'], " ")
}

/// Replaces characters that XML 1.0 forbids even escaped.
fn xml_chars(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::report::{Failure, JourneyReport};

    fn step(name: &str, outcome: Outcome, failures: Vec<Failure>, error: Option<&str>) -> StepReport {
        StepReport { name: name.into(), outcome, duration_ms: 1234, status: Some(500), failures, error: error.map(Into::into) }
    }

    fn report() -> SmokeReport {
        let nasty = "<b>\"x\" & 'y'</b>\u{1}\u{0}";
        SmokeReport {
            passed: false,
            duration_ms: 2500,
            journeys: vec![
                JourneyReport {
                    name: "browse & buy <fast>".into(),
                    passed: false,
                    duration_ms: 2000,
                    steps: vec![
                        step("home", Outcome::Passed, vec![], None),
                        step(
                            "add \"cart\"",
                            Outcome::Failed,
                            vec![Failure { check: "body_contains".into(), expected: "Storefront".into(), got: nasty.into() }],
                            None,
                        ),
                        StepReport::skipped("pay"),
                    ],
                },
                JourneyReport {
                    name: "login".into(),
                    passed: false,
                    duration_ms: 5,
                    steps: vec![step("form", Outcome::Failed, vec![], Some("connection refused: os error 111"))],
                },
            ],
        }
    }

    #[test]
    fn counts_and_escaping_survive_a_round_trip() {
        let xml = junit_xml(&report(), "smoke <staging>");
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let a = |n: roxmltree::Node, k: &str| n.attribute(k).unwrap().to_string();
        assert_eq!(a(root, "name"), "smoke <staging>");
        assert_eq!((a(root, "tests"), a(root, "failures"), a(root, "skipped")), ("4".into(), "2".into(), "1".into()));
        assert_eq!(a(root, "time"), "2.500");

        let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
        assert_eq!(suites.len(), 2);
        assert_eq!(a(suites[0], "name"), "browse & buy <fast>");
        assert_eq!((a(suites[0], "tests"), a(suites[0], "failures"), a(suites[0], "skipped")), ("3".into(), "1".into(), "1".into()));

        let cases: Vec<_> = suites[0].children().filter(|n| n.has_tag_name("testcase")).collect();
        assert_eq!(a(cases[1], "classname"), "browse & buy <fast>");
        assert_eq!(a(cases[1], "name"), "add \"cart\"");
        assert_eq!(a(cases[1], "time"), "1.234");
        let failure = cases[1].children().find(|n| n.has_tag_name("failure")).unwrap();
        assert_eq!(a(failure, "type"), "body_contains");
        assert!(a(failure, "message").starts_with("expected body_contains Storefront, got <b>\"x\" & 'y'</b>"));
        assert!(failure.text().unwrap().contains("got: <b>\"x\" & 'y'</b>\u{FFFD}\u{FFFD}"));
        assert!(cases[2].children().any(|n| n.has_tag_name("skipped")));
        assert_eq!(cases[0].children().count(), 0);

        let error_case = suites[1].children().find(|n| n.has_tag_name("testcase")).unwrap();
        let failure = error_case.children().find(|n| n.has_tag_name("failure")).unwrap();
        assert_eq!(a(failure, "type"), "error");
        assert!(a(failure, "message").starts_with("connection refused"));
    }
}
