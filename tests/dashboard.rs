//! The dashboard in a real browser: Debian's chromium, headless, driven over WebDriver
//! (chromedriver + fantoccini) against the real `gantry serve` and the real engine. A
//! developer signs in and is offered no decision; a release manager signs in, approves a
//! parked promotion with one click and watches it land; production then serves the site.
//! Every form goes through the session's checks (origin, CSRF token kept by the page's
//! script) as a real browser passes them, under the dashboard's Content-Security-Policy;
//! tests/dashboard_security.rs is about what does not pass them.
//!
//! The app is busybox's httpd serving one page (as in tests/approval.rs), so the run takes
//! seconds and the test spends its time in the browser.

mod common;

use std::time::{Duration, Instant};

use common::browser::{path_of, text_of, wait_for_text, Chromedriver, PATIENCE};
use common::service::{Service, DEV, RM};
use common::{http_get, GatedSite};
use fantoccini::{Client, Locator};
use serde_json::json;

/// What the browser part of the test needs to know.
struct Site {
    base: String,
    run: String,
    staging: String,
    prod: String,
    prod_port: u16,
}

/// The runs page lists the run, linked to its page, with its state.
async fn runs_page_lists(b: &Client, site: &Site, state: &str) {
    let row = format!("//table[contains(@class,'runs')]//tr[td/a[@href='/runs/{}']]", site.run);
    let row = b.find(Locator::XPath(&row)).await.unwrap_or_else(|_| panic!("the runs page lists run {}", site.run));
    assert_eq!(row.find(Locator::Css("td a")).await.unwrap().text().await.unwrap(), site.run);
    assert_eq!(row.find(Locator::Css(".badge")).await.unwrap().text().await.unwrap(), state);
    assert!(row.text().await.unwrap().contains("site / gated"), "the row names project and pipeline");
}

/// The browser's part: a developer is offered nothing; a release manager approves and
/// watches the promotion to the end.
async fn approve_in_the_browser(b: Client, site: Site) {
    let approve_id = format!("approve-{}", site.run);

    // A developer sees the pending promotion, and no button to decide on it.
    common::browser::sign_in(&b, &site.base, DEV).await;
    assert_eq!(text_of(&b, ".who .user").await.as_deref(), Some("dev"));
    runs_page_lists(&b, &site, "awaiting approval").await;
    b.goto(&format!("{}/approvals", site.base)).await.unwrap();
    let card = b.find(Locator::Id(&format!("run-{}", site.run))).await.expect("the developer sees the pending run's card");
    assert!(card.find_all(Locator::Css("button")).await.unwrap().is_empty(), "a developer is offered no decision");
    assert!(b.find_all(Locator::Id(&approve_id)).await.unwrap().is_empty());
    let why = card.text().await.unwrap();
    assert!(why.contains("Deciding needs the role release-manager; you are signed in as developer"), "{why}");
    b.goto(&format!("{}/runs/{}", site.base, site.run)).await.unwrap();
    wait_for_text(&b, "h1 .badge", "awaiting approval", false).await;
    assert!(b.find_all(Locator::Id("approve")).await.unwrap().is_empty(), "nor on the run page");
    b.find(Locator::Id("sign-out")).await.unwrap().click().await.unwrap();
    wait_for_text(&b, "h1", "Sign in", false).await;

    // The release manager signs in, finds the run waiting, and approves it.
    common::browser::sign_in(&b, &site.base, RM).await;
    assert_eq!(text_of(&b, ".who .user").await.as_deref(), Some("rita"));
    assert_eq!(text_of(&b, ".who .role").await.as_deref(), Some("release-manager"));
    runs_page_lists(&b, &site, "awaiting approval").await;
    b.find(Locator::LinkText("Approvals")).await.unwrap().click().await.unwrap();
    wait_for_text(&b, "h1", "Approvals", false).await;
    assert_eq!(b.title().await.unwrap(), "Approvals (1) · Gantry");
    let card = format!("#run-{}", site.run);
    let summary = text_of(&b, &format!("{card} .approval")).await.unwrap();
    assert!(summary.contains(&format!("{} → {}", site.staging, site.prod)), "{summary}");
    assert!(summary.contains("0/1 approvals by a release-manager"), "{summary}");
    b.find(Locator::Id(&format!("comment-{}", site.run))).await.unwrap().send_keys("green in staging").await.unwrap();
    b.find(Locator::Id(&approve_id)).await.expect("a release manager is offered the approve button").click().await.unwrap();

    // The browser lands on the run page, which shows the promotion as it goes and ends.
    let run_path = format!("/runs/{}", site.run);
    let start = Instant::now();
    while path_of(&b).await != run_path {
        assert!(start.elapsed() < PATIENCE, "approving did not lead to the run page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_text(&b, ".approval .badge", "promoted", true).await;
    wait_for_text(&b, "h1 .badge", "succeeded", true).await;

    // The stages timeline: every stage with its bar and state, in order.
    let stages = b.find_all(Locator::Css(".timeline .stage")).await.unwrap();
    let mut names = Vec::new();
    for s in &stages {
        names.push(s.find(Locator::Css(".name")).await.unwrap().text().await.unwrap());
        assert_eq!(s.find(Locator::Css(".info .badge")).await.unwrap().text().await.unwrap(), "succeeded");
        let bar = s.find(Locator::Css(".track .bar")).await.expect("a bar on the timeline");
        assert!(bar.attr("style").await.unwrap().is_some_and(|s| s.contains("width:")));
    }
    assert_eq!(names, ["image", "staging", "release"]);
    let release = text_of(&b, "#stage-release .result").await.unwrap();
    assert!(release.contains(&format!("live in {}", site.prod)), "{release}");

    // The gate's verdict on the promotion: passed, check by check.
    let verdict = b.find(Locator::Css("#stage-release table.verdict")).await.expect("the release stage shows its gate verdict");
    let caption = verdict.find(Locator::Css("caption")).await.unwrap();
    assert!(caption.text().await.unwrap().starts_with("Gate verdict"));
    assert_eq!(caption.find(Locator::Css(".badge")).await.unwrap().text().await.unwrap(), "passed");
    let checks = verdict.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert!(!checks.is_empty(), "the verdict lists its checks");
    for c in &checks {
        let row = c.text().await.unwrap();
        assert!(row.contains("pass") && !row.contains("FAIL"), "{row}");
    }
    assert!(b.find_all(Locator::Css("#stage-release tr.fail")).await.unwrap().is_empty());

    // The approval: who decided, with the comment, and on whose approval it was promoted.
    let decision = text_of(&b, ".approval ul.decisions li").await.unwrap();
    assert!(decision.contains("approved by rita (release-manager)"), "{decision}");
    assert_eq!(text_of(&b, ".approval ul.decisions li q").await.as_deref(), Some("green in staging"), "the comment is kept");
    let approval = text_of(&b, ".approval").await.unwrap();
    assert!(approval.contains("Promotion performed on rita's approval."), "{approval}");
    assert!(b.find_all(Locator::Id("approve")).await.unwrap().is_empty(), "a decided run offers no decision");
    let triggered = "//dl[contains(@class,'facts')]/dt[.='Triggered by']/following-sibling::dd[1]";
    assert_eq!(b.find(Locator::XPath(triggered)).await.unwrap().text().await.unwrap(), "dev");

    // Production serves the approved site; the runs page and the approvals page agree.
    let served = http_get(site.prod_port, "/index.html").map(|(_, body)| body);
    assert_eq!(served.as_deref().map(str::trim), Some("version 1"), "production serves the approved site");
    b.goto(&format!("{}/", site.base)).await.unwrap();
    runs_page_lists(&b, &site, "succeeded").await;
    b.goto(&format!("{}/approvals", site.base)).await.unwrap();
    wait_for_text(&b, "main p.muted", "Nothing waits for approval.", false).await;
}

#[test]
fn a_release_manager_approves_in_the_browser_and_sees_the_promotion_while_a_developer_cannot() {
    let gated = GatedSite::new("{role: release-manager, count: 1}");
    let (w, staging, prod, prod_port) = (&gated.w, &gated.staging, &gated.prod, gated.port);
    let project = format!("  site:\n    repo: {}\n    pipeline: gantry.yml\n    branches: [main]\n", w.repo().display());
    // The service's data dir is the world's: `Env` destroys the environments through it.
    let svc = Service::start(w.dir.path(), &project, "{global: 1, per_project: 1}");
    assert_eq!(svc.data, w.data_dir());

    let run = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    let parked = svc.wait_for(&run, &["awaiting_approval", "failed", "succeeded"]);
    assert_eq!(parked["state"], "awaiting_approval", "{parked}");
    assert_eq!(http_get(prod_port, "/index.html"), None, "nothing reaches production before approval");

    let driver = Chromedriver::start(&w.dir.path().join("chromedriver.log"));
    let site = Site { base: format!("http://127.0.0.1:{}", svc.port), run: run.clone(), staging: staging.name.clone(), prod: prod.name.clone(), prod_port };
    common::browser::drive(driver, &[], |b| approve_in_the_browser(b, site));

    // The API agrees with what the browser showed.
    let done = svc.run(&run);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["approval"]["state"], "promoted", "{done}");
    assert_eq!(done["approval"]["claimed_by"], "rita", "{done}");
}
