//! Computes a `Report` (the DORA four keys, their bands and trends, the weekly series) from
//! the store's deployment records and the commits each deployment brought.
//!
//! # Definitions
//!
//! The README quotes these; the tests below check each on hand-computed figures.
//!
//! - **Counted deployments.** Only deployments of the report's environment (and of its
//!   pipeline, when one is given) count. A deployment *went live* when it `Succeeded` or
//!   `FailedVerification` (live, then rolled back by Gantry). `Failed` deployments never went
//!   live: they are counted apart as `refused` and change nothing else. A deployment belongs
//!   to the window when its `finished_at` is in `[since, until)`.
//! - **Deployment frequency.** `per_day` = live deployments / window days; `per_week` =
//!   `per_day` × 7; `deployment_days_per_week` = distinct UTC dates with a live deployment /
//!   (window days / 7). Band, as the Four Keys dashboard (dora-team/fourkeys,
//!   dashboard/fourkeys_dashboard.json) computes it, over the weeks of the window (UTC,
//!   Monday start, partial first and last weeks included): median of deployment days per week
//!   ≥ 3 → elite ("daily"); median of "the week had a deployment" (1 or 0) ≥ 1, i.e. most
//!   weeks had one → high ("weekly"); median over the calendar months (UTC) of the window of
//!   deployments per month ≥ 1 → medium ("monthly"); else low. No live deployment → low.
//! - **Lead time for changes.** Each live deployment in the window brought the commits
//!   reachable from its commit and not from the previous live deployment's (of the
//!   environment; of the same pipeline when the report has one). Each commit counts once, at
//!   the first live deployment that brought it: a redeploy adds nothing, and a commit
//!   deployed through two environments counts in each environment's own report. Sample =
//!   `finished_at − commit time`, as absolute instants (the commit's time zone does not
//!   matter). When the repository cannot be read, the deployment's head commit alone counts
//!   (at `commit_time`), and the deployment counts in `head_only`. Median and p90 by linear
//!   interpolation between closest ranks (`PERCENTILE_CONT`, as Four Keys; p at rank
//!   p × (n − 1)). Band (Four Keys): median < 24 h elite, < 168 h high, < 730 h medium,
//!   else low.
//! - **Change failure rate.** Failed live deployments in the window / live deployments in the
//!   window. A live deployment failed, for the first of these reasons that holds:
//!   (a) `FailedVerification`; (b) `RolledBack`: the next live deployment of the environment
//!   (any pipeline) puts back the commit of a live deployment before this one, other than
//!   this one's own commit (redeploying the same commit is no rollback); (c) `FollowedByFix`:
//!   the next live deployment of the environment, finished at most 24 h after this one,
//!   brought a commit whose summary starts (case-insensitive, after leading spaces) with
//!   "fix", "hotfix" or "revert" (unknown when the repository cannot be read: not counted).
//!   Band (DORA, Accelerate State of DevOps 2023 clusters 5 %, 10 %, 15 %, 64 %): rate ≤ 5 %
//!   elite, ≤ 10 % high, ≤ 15 % medium, else low.
//! - **Time to restore.** Per failed deployment in the window: `restored_at − finished_at`
//!   when Gantry's rollback recorded `restored_at`; otherwise the `finished_at` of the next
//!   live deployment of the environment that did not itself fail, minus this `finished_at`;
//!   no such deployment → unrestored. Median (linear interpolation) over the restored ones;
//!   none restored → no figure. Band (Four Keys): < 24 h elite, < 168 h high, < 730 h
//!   medium, else low.
//! - **Trends.** The same figures over the window before, `[since − (until − since), since)`.
//!   More frequent, shorter lead time and time to restore, lower failure rate are better; a
//!   difference within 1 % of the previous figure is the same; a window before without the
//!   figure (no live deployment, no lead time sample, no restored failure) makes it new.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use git2::{Oid, Repository, Sort};

use super::model::{
    Band, ChangeFailure, Failure, FailureReason, Frequency, LeadTime, Report, TimeToRestore, Trend, Week,
};
use crate::events::{Deployment, DeploymentOutcome};

const HOUR: f64 = 3600.0;
/// Where each band boundary comes from, in the report.
const SOURCES: [&str; 2] = [
    "Deployment frequency, lead time for changes and time to restore: Four Keys dashboard \
     (dora-team/fourkeys, dashboard/fourkeys_dashboard.json): daily = median week with >= 3 \
     deployment days, weekly = most weeks deployed, monthly = median month deployed; \
     < 24 h, < 168 h (a week), < 730 h (a month).",
    "Change failure rate: DORA, Accelerate State of DevOps Report 2023, performance clusters \
     elite 5%, high 10%, medium 15%, low 64%.",
];

/// The period a report covers: `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Window {
    /// The window of the same length just before this one.
    pub fn previous(&self) -> Window {
        Window { since: self.since - (self.until - self.since), until: self.since }
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.since <= at && at < self.until
    }

    fn days(&self) -> f64 {
        (self.until - self.since).num_milliseconds() as f64 / 86_400_000.0
    }

    /// The Mondays (UTC) of the weeks the window overlaps, oldest first.
    fn mondays(&self) -> Vec<NaiveDate> {
        if self.until <= self.since {
            return Vec::new();
        }
        let last = monday(last_instant(self.until).date_naive());
        let mut week = monday(self.since.date_naive());
        let mut mondays = Vec::new();
        while week <= last {
            mondays.push(week);
            week += Duration::days(7);
        }
        mondays
    }

    /// The calendar months (UTC) the window overlaps, as (year, month), oldest first.
    fn months(&self) -> Vec<(i32, u32)> {
        if self.until <= self.since {
            return Vec::new();
        }
        let last = last_instant(self.until);
        let (mut year, mut month) = (self.since.year(), self.since.month());
        let mut months = Vec::new();
        while (year, month) <= (last.year(), last.month()) {
            months.push((year, month));
            (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        }
        months
    }
}

/// The last instant before `until` (the window is open at its end).
fn last_instant(until: DateTime<Utc>) -> DateTime<Utc> {
    until - Duration::nanoseconds(1)
}

fn monday(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

/// One commit a deployment brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub time: DateTime<FixedOffset>,
    pub summary: String,
}

/// What a deployment brought: every commit reachable from its commit and not from the
/// previous live deployment's commit, with commit time and summary. None: the repository
/// could not be read (then only the head commit counts).
pub trait Commits {
    fn brought(&self, deployment: &Deployment, previous: Option<&Deployment>) -> Option<Vec<Commit>>;
}

/// `Commits` read with git2 from the repository each run was built from. `repo_of` maps a
/// run id to its repository's path (None: unknown). Repositories are opened once per path.
pub struct GitCommits<F: Fn(&str) -> Option<PathBuf>> {
    repo_of: F,
    /// Opened repositories by path; None: the path is not a readable repository.
    repos: RefCell<HashMap<PathBuf, Option<Repository>>>,
}

impl<F: Fn(&str) -> Option<PathBuf>> GitCommits<F> {
    pub fn new(repo_of: F) -> Self {
        GitCommits { repo_of, repos: RefCell::new(HashMap::new()) }
    }
}

impl<F: Fn(&str) -> Option<PathBuf>> Commits for GitCommits<F> {
    /// Walks from the deployment's commit, hiding the previous deployment's commit when the
    /// repository has it. An environment's first deployment brings its head commit only:
    /// the history before it was never waiting for this environment, and counting it would
    /// turn years of commits into one lead time. Any git error gives None.
    fn brought(&self, deployment: &Deployment, previous: Option<&Deployment>) -> Option<Vec<Commit>> {
        let path = (self.repo_of)(&deployment.run_id)?;
        let mut repos = self.repos.borrow_mut();
        let repo = repos.entry(path).or_insert_with_key(|path| Repository::discover(path).ok()).as_ref()?;
        let mut commits = walk(repo, &deployment.commit, previous.map(|p| p.commit.as_str())).ok()?;
        if previous.is_none() {
            commits.truncate(1);
        }
        Some(commits)
    }
}

/// Commits reachable from `head` and not from `hide` (when `hide` names a commit of `repo`),
/// newest first.
fn walk(repo: &Repository, head: &str, hide: Option<&str>) -> Result<Vec<Commit>, git2::Error> {
    let mut revwalk = repo.revwalk()?;
    revwalk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
    revwalk.push(Oid::from_str(head)?)?;
    if let Some(oid) = hide.and_then(|sha| Oid::from_str(sha).ok()) {
        if repo.find_commit(oid).is_ok() {
            revwalk.hide(oid)?;
        }
    }
    revwalk
        .map(|oid| {
            let commit = repo.find_commit(oid?)?;
            let when = commit.time();
            let time = FixedOffset::east_opt(when.offset_minutes() * 60)
                .and_then(|offset| offset.timestamp_opt(when.seconds(), 0).single())
                .ok_or_else(|| git2::Error::from_str("commit time out of range"))?;
            Ok(Commit { sha: commit.id().to_string(), time, summary: commit.summary().unwrap_or("").to_string() })
        })
        .collect()
}

fn went_live(deployment: &Deployment) -> bool {
    !matches!(deployment.outcome, DeploymentOutcome::Failed { .. })
}

fn is_fix(summary: &str) -> bool {
    let summary = summary.trim_start().to_lowercase();
    ["fix", "hotfix", "revert"].iter().any(|word| summary.starts_with(word))
}

fn secs(duration: Duration) -> f64 {
    duration.num_milliseconds() as f64 / 1000.0
}

/// The p-quantile (0..=1) of sorted values, interpolating linearly between closest ranks
/// (rank p × (n − 1), as `PERCENTILE_CONT`). None for no values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p.clamp(0.0, 1.0) * last as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 0.5)
}

/// Four Keys' band for lead time and time to restore.
fn duration_band(median_secs: f64) -> Band {
    match median_secs / HOUR {
        hours if hours < 24.0 => Band::Elite,
        hours if hours < 168.0 => Band::High,
        hours if hours < 730.0 => Band::Medium,
        _ => Band::Low,
    }
}

/// DORA 2023's band for the change failure rate, on integers so that 1 in 20 is exactly 5 %.
fn failure_band(failed: usize, total: usize) -> Band {
    match failed * 100 {
        percent if percent <= 5 * total => Band::Elite,
        percent if percent <= 10 * total => Band::High,
        percent if percent <= 15 * total => Band::Medium,
        _ => Band::Low,
    }
}

/// Four Keys' deployment frequency band from the instants of the window's live deployments.
fn frequency_band(window: Window, deployed: &[DateTime<Utc>]) -> Band {
    let mut days_by_week: BTreeMap<NaiveDate, BTreeSet<NaiveDate>> =
        window.mondays().into_iter().map(|week| (week, BTreeSet::new())).collect();
    let mut by_month: BTreeMap<(i32, u32), f64> = window.months().into_iter().map(|month| (month, 0.0)).collect();
    for at in deployed {
        let date = at.date_naive();
        days_by_week.entry(monday(date)).or_default().insert(date);
        *by_month.entry((date.year(), date.month())).or_default() += 1.0;
    }
    let days: Vec<f64> = days_by_week.values().map(|days| days.len() as f64).collect();
    let weeks_deployed: Vec<f64> = days.iter().map(|&days| if days > 0.0 { 1.0 } else { 0.0 }).collect();
    let monthly: Vec<f64> = by_month.into_values().collect();
    let at_least = |values: &[f64], floor: f64| median(values).is_some_and(|m| m >= floor);
    if at_least(&days, 3.0) {
        Band::Elite
    } else if at_least(&weeks_deployed, 1.0) {
        Band::High
    } else if at_least(&monthly, 1.0) {
        Band::Medium
    } else {
        Band::Low
    }
}

/// Better, worse or the same as the previous figure (within 1 % of it), or new without one.
fn trend(current: f64, previous: Option<f64>, higher_is_better: bool) -> Trend {
    let Some(previous) = previous else { return Trend::New };
    if (current - previous).abs() <= 0.01 * previous.abs() {
        Trend::Same
    } else if (current > previous) == higher_is_better {
        Trend::Better
    } else {
        Trend::Worse
    }
}

/// The live deployments of one environment, every pipeline, oldest first, with what each
/// brought (asked once per pair) and, from a point on, whether each failed.
struct History<'a> {
    live: Vec<&'a Deployment>,
    commits: &'a dyn Commits,
    brought: HashMap<(usize, Option<usize>), Option<Vec<Commit>>>,
    /// Why each live deployment failed (None: it did not); judged from `judged_from` on.
    failed: Vec<Option<FailureReason>>,
    judged_from: usize,
}

impl<'a> History<'a> {
    fn new(live: Vec<&'a Deployment>, commits: &'a dyn Commits) -> Self {
        let failed = vec![None; live.len()];
        History { judged_from: live.len(), live, commits, brought: HashMap::new(), failed }
    }

    fn brought(&mut self, index: usize, previous: Option<usize>) -> Option<&[Commit]> {
        let (commits, live) = (self.commits, &self.live);
        self.brought
            .entry((index, previous))
            .or_insert_with(|| commits.brought(live[index], previous.map(|p| live[p])))
            .as_deref()
    }

    /// Judges every live deployment finished at or after `from` (and all after them).
    fn judge_from(&mut self, from: DateTime<Utc>) {
        let start = self.live.partition_point(|d| d.finished_at < from);
        let mut first_live: HashMap<&str, usize> = HashMap::new();
        for (index, deployment) in self.live.iter().enumerate() {
            first_live.entry(deployment.commit.as_str()).or_insert(index);
        }
        for index in start..self.live.len() {
            let reason = self.failure(index, &first_live);
            self.failed[index] = reason;
        }
        self.judged_from = start;
    }

    fn failure(&mut self, index: usize, first_live: &HashMap<&str, usize>) -> Option<FailureReason> {
        let deployment = self.live[index];
        if matches!(deployment.outcome, DeploymentOutcome::FailedVerification { .. }) {
            return Some(FailureReason::FailedVerification);
        }
        let next = *self.live.get(index + 1)?;
        let put_back =
            next.commit != deployment.commit && first_live.get(next.commit.as_str()).is_some_and(|&i| i < index);
        if put_back {
            return Some(FailureReason::RolledBack);
        }
        let soon = next.finished_at - deployment.finished_at <= Duration::hours(24);
        let fixed = soon && self.brought(index + 1, Some(index)).is_some_and(|c| c.iter().any(|c| is_fix(&c.summary)));
        fixed.then_some(FailureReason::FollowedByFix)
    }

    /// When a healthy version served again after the failed deployment `index`.
    fn restored_at(&self, index: usize) -> Option<DateTime<Utc>> {
        debug_assert!(index >= self.judged_from);
        if let DeploymentOutcome::FailedVerification { restored_at: Some(at), .. } = self.live[index].outcome {
            return Some(at);
        }
        (index + 1..self.live.len()).find(|&i| self.failed[i].is_none()).map(|i| self.live[i].finished_at)
    }
}

/// What one counted live deployment brought that no earlier one had: a lead time sample
/// (seconds) per new commit, and whether only its head commit could be known.
struct Brought {
    samples: Vec<f64>,
    head_only: bool,
}

/// Walks the counted live deployments finished before `until`, oldest first, counting each
/// commit at the first deployment that brought it.
fn lead_times(history: &mut History, counted: &[usize], until: DateTime<Utc>) -> HashMap<usize, Brought> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut by_deployment = HashMap::new();
    for (k, &index) in counted.iter().enumerate() {
        let deployment = history.live[index];
        if deployment.finished_at >= until {
            break;
        }
        let previous = k.checked_sub(1).map(|k| counted[k]);
        let finished = deployment.finished_at;
        let mut new = |sha: &str, time: DateTime<FixedOffset>| {
            seen.insert(sha.to_string()).then(|| secs(finished - time.with_timezone(&Utc)))
        };
        let entry = match history.brought(index, previous) {
            Some(commits) => {
                let samples: Vec<f64> = commits.iter().filter_map(|c| new(&c.sha, c.time)).collect();
                Brought { samples, head_only: false }
            }
            None => {
                let samples: Vec<f64> = new(&deployment.commit, deployment.commit_time).into_iter().collect();
                Brought { samples, head_only: true }
            }
        };
        by_deployment.insert(index, entry);
    }
    by_deployment
}

/// The figures of one window.
struct Figures {
    /// Counted live deployments in the window (indices in the history), oldest first.
    live: Vec<usize>,
    per_day: f64,
    deployment_days_per_week: f64,
    frequency_band: Band,
    /// Lead time samples (seconds), one per commit counted, and the deployments whose head
    /// commit alone could be known.
    samples: Vec<f64>,
    head_only: usize,
    failures: Vec<Failure>,
}

impl Figures {
    fn new(window: Window, history: &History, counted: &[usize], brought: &HashMap<usize, Brought>) -> Self {
        let live: Vec<usize> =
            counted.iter().copied().filter(|&i| window.contains(history.live[i].finished_at)).collect();
        let deployed: Vec<DateTime<Utc>> = live.iter().map(|&i| history.live[i].finished_at).collect();
        let days = window.days();
        let distinct_days = deployed.iter().map(|at| at.date_naive()).collect::<BTreeSet<_>>().len();
        let (per_day, deployment_days_per_week) =
            if days > 0.0 { (live.len() as f64 / days, distinct_days as f64 / (days / 7.0)) } else { (0.0, 0.0) };
        let of_window = || live.iter().filter_map(|i| brought.get(i));
        let samples = of_window().flat_map(|b| b.samples.iter().copied()).collect();
        let head_only = of_window().filter(|b| b.head_only).count();
        let failures = live
            .iter()
            .filter_map(|&i| {
                let deployment = history.live[i];
                Some(Failure {
                    run_id: deployment.run_id.clone(),
                    commit: deployment.commit.clone(),
                    deployed_at: deployment.finished_at,
                    reason: history.failed[i].clone()?,
                    restored_at: history.restored_at(i),
                })
            })
            .collect();
        Figures {
            frequency_band: frequency_band(window, &deployed),
            live,
            per_day,
            deployment_days_per_week,
            samples,
            head_only,
            failures,
        }
    }

    /// `per_week`, when the window had a live deployment.
    fn per_week(&self) -> Option<f64> {
        (!self.live.is_empty()).then_some(self.per_day * 7.0)
    }

    fn lead_median(&self) -> Option<f64> {
        median(&self.samples)
    }

    fn failure_rate(&self) -> Option<f64> {
        (!self.live.is_empty()).then(|| self.failures.len() as f64 / self.live.len() as f64)
    }

    fn restore_secs(&self) -> Vec<f64> {
        self.failures.iter().filter_map(|f| f.restored_at.map(|at| secs(at - f.deployed_at))).collect()
    }
}

/// The report of `environment` (and `pipeline`, when given) over `window`. `all` holds every
/// deployment record, oldest first, including those before the window (the previous
/// deployment of the window's first, and the window before for trends) and after it.
pub fn compute(
    environment: &str,
    pipeline: Option<&str>,
    all: &[Deployment],
    window: Window,
    commits: &dyn Commits,
) -> Report {
    let mut of_environment: Vec<&Deployment> = all.iter().filter(|d| d.environment == environment).collect();
    of_environment.sort_by_key(|d| d.finished_at);
    let of_pipeline = |d: &Deployment| pipeline.is_none_or(|p| d.pipeline == p);
    let refused =
        of_environment.iter().filter(|d| !went_live(d) && of_pipeline(d) && window.contains(d.finished_at)).count();

    let mut history = History::new(of_environment.into_iter().filter(|d| went_live(d)).collect(), commits);
    let counted: Vec<usize> = (0..history.live.len()).filter(|&i| of_pipeline(history.live[i])).collect();
    let before = window.previous();
    history.judge_from(before.since);
    let brought = lead_times(&mut history, &counted, window.until);
    let current = Figures::new(window, &history, &counted, &brought);
    let previous = Figures::new(before, &history, &counted, &brought);

    let per_week = current.per_day * 7.0;
    let frequency = Frequency {
        per_day: current.per_day,
        per_week,
        deployment_days_per_week: current.deployment_days_per_week,
        band: current.frequency_band,
        trend: trend(per_week, previous.per_week(), true),
        previous_per_week: previous.per_week(),
    };

    let mut samples = current.samples.clone();
    samples.sort_by(f64::total_cmp);
    let lead_time = current.lead_median().map(|median_secs| LeadTime {
        median_secs,
        p90_secs: percentile(&samples, 0.9).unwrap_or(median_secs),
        commits: samples.len(),
        head_only: current.head_only,
        band: duration_band(median_secs),
        trend: trend(median_secs, previous.lead_median(), false),
        previous_median_secs: previous.lead_median(),
    });

    let change_failure = current.failure_rate().map(|rate| ChangeFailure {
        failed: current.failures.len(),
        total: current.live.len(),
        rate,
        band: failure_band(current.failures.len(), current.live.len()),
        trend: trend(rate, previous.failure_rate(), false),
        previous_rate: previous.failure_rate(),
        failures: current.failures.clone(),
    });

    let restores = current.restore_secs();
    let previous_restore = median(&previous.restore_secs());
    let time_to_restore = median(&restores).map(|median_secs| TimeToRestore {
        median_secs,
        restored: restores.len(),
        unrestored: current.failures.len() - restores.len(),
        band: duration_band(median_secs),
        trend: trend(median_secs, previous_restore, false),
        previous_median_secs: previous_restore,
    });

    Report {
        environment: environment.to_string(),
        pipeline: pipeline.map(str::to_string),
        since: window.since,
        until: window.until,
        deployments: current.live.len(),
        refused,
        frequency,
        lead_time,
        change_failure,
        time_to_restore,
        weeks: weeks(window, &history, &current),
        lead_time_samples: current.samples,
        sources: SOURCES.iter().map(|s| s.to_string()).collect(),
    }
}

/// Every week (Monday, UTC) the window overlaps, with a column for every pipeline that
/// deployed in the window.
fn weeks(window: Window, history: &History, current: &Figures) -> Vec<Week> {
    let pipelines: BTreeSet<&str> = current.live.iter().map(|&i| history.live[i].pipeline.as_str()).collect();
    window
        .mondays()
        .into_iter()
        .map(|start| {
            let of_week: Vec<usize> = current
                .live
                .iter()
                .copied()
                .filter(|&i| monday(history.live[i].finished_at.date_naive()) == start)
                .collect();
            Week {
                start,
                deployments: of_week.len(),
                failed: of_week.iter().filter(|&&i| history.failed[i].is_some()).count(),
                by_pipeline: pipelines
                    .iter()
                    .map(|&p| (p.to_string(), of_week.iter().filter(|&&i| history.live[i].pipeline == p).count()))
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Known answers: every figure below was computed by hand, the arithmetic in a comment.
    //! The default window is March 2024 from Monday the 4th: [2024-03-04, 2024-04-01), 28
    //! days, weeks starting 03-04, 03-11, 03-18, 03-25; the window before is [02-05, 03-04).

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn march() -> Window {
        Window { since: utc("2024-03-04T00:00:00Z"), until: utc("2024-04-01T00:00:00Z") }
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    /// A repository as a map from each sha to every commit reachable from it: `brought` is
    /// reachable(deployment) minus reachable(previous), as git computes it. Unknown sha: the
    /// repository cannot be read.
    #[derive(Default)]
    struct FakeCommits(HashMap<String, Vec<Commit>>);

    impl FakeCommits {
        /// A straight line of commits (sha, time, summary), oldest first.
        fn linear(commits: &[(&str, &str, &str)]) -> Self {
            let mut chain = Vec::new();
            let mut reachable = HashMap::new();
            for (sha, time, summary) in commits {
                let time = DateTime::parse_from_rfc3339(time).unwrap();
                chain.push(Commit { sha: sha.to_string(), time, summary: summary.to_string() });
                reachable.insert(sha.to_string(), chain.clone());
            }
            FakeCommits(reachable)
        }
    }

    impl Commits for FakeCommits {
        fn brought(&self, deployment: &Deployment, previous: Option<&Deployment>) -> Option<Vec<Commit>> {
            let reachable = self.0.get(&deployment.commit)?;
            let hidden: HashSet<&str> = previous
                .and_then(|p| self.0.get(&p.commit))
                .map(|commits| commits.iter().map(|c| c.sha.as_str()).collect())
                .unwrap_or_default();
            Some(reachable.iter().filter(|c| !hidden.contains(c.sha.as_str())).cloned().collect())
        }
    }

    /// A successful deployment of `sha` to `environment` by pipeline "release", live at
    /// `finished` (its commit_time is `finished`: only head-only lead times read it).
    fn deployed(environment: &str, sha: &str, finished: &str) -> Deployment {
        let finished_at = utc(finished);
        Deployment {
            environment: environment.to_string(),
            app: "shop".into(),
            image: format!("shop:{sha}"),
            image_id: format!("sha256:{sha}"),
            commit: sha.to_string(),
            commit_time: finished_at.fixed_offset(),
            author: "Ada".into(),
            run_id: format!("{environment}-{sha}-{finished}"),
            pipeline: "release".into(),
            started_at: finished_at - Duration::minutes(5),
            finished_at,
            outcome: DeploymentOutcome::Succeeded,
            url: None,
            replaced: Vec::new(),
        }
    }

    fn prod(sha: &str, finished: &str) -> Deployment {
        deployed("production", sha, finished)
    }

    fn failed_verification(deployment: Deployment, restored_at: Option<&str>) -> Deployment {
        let outcome = DeploymentOutcome::FailedVerification {
            reason: "error rate 4% > 1%".into(),
            restored_at: restored_at.map(utc),
            restored_to: Some("shop:previous".into()),
        };
        Deployment { outcome, ..deployment }
    }

    fn report(all: &[Deployment], commits: &FakeCommits) -> Report {
        compute("production", None, all, march(), commits)
    }

    /// Deployments of commit "a" at noon UTC on each day (frequency tests).
    fn at_noon(days: &[&str]) -> Vec<Deployment> {
        days.iter().map(|day| prod("a", &format!("{day}T12:00:00Z"))).collect()
    }

    fn frequency_band_of(days: &[&str], window: Window) -> Band {
        compute("production", None, &at_noon(days), window, &FakeCommits::default()).frequency.band
    }

    #[test]
    fn no_deployments_give_zero_frequency_and_no_other_figure() {
        let report = report(&[], &FakeCommits::default());
        assert_eq!(report.deployments, 0);
        assert_eq!(report.refused, 0);
        assert_eq!(report.frequency.per_day, 0.0);
        assert_eq!(report.frequency.per_week, 0.0);
        assert_eq!(report.frequency.deployment_days_per_week, 0.0);
        assert_eq!(report.frequency.band, Band::Low);
        assert_eq!(report.frequency.trend, Trend::New);
        assert_eq!(report.frequency.previous_per_week, None);
        assert_eq!(report.lead_time, None);
        assert_eq!(report.change_failure, None);
        assert_eq!(report.time_to_restore, None);
        assert!(report.lead_time_samples.is_empty());
        assert_eq!(report.sources.len(), 2);
        let weeks: Vec<NaiveDate> = report.weeks.iter().map(|w| w.start).collect();
        assert_eq!(weeks, ["2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25"].map(date));
        assert!(report.weeks.iter().all(|w| w.deployments == 0 && w.failed == 0 && w.by_pipeline.is_empty()));
    }

    #[test]
    fn one_deployment_counts_every_commit_it_brought() {
        let commits = FakeCommits::linear(&[
            ("a", "2024-03-04T08:00:00Z", "Add cart"),
            ("b", "2024-03-04T09:00:00Z", "Add checkout"),
            ("c", "2024-03-04T10:00:00Z", "Add receipt"),
        ]);
        let report = report(&[prod("c", "2024-03-05T10:00:00Z")], &commits);
        // Lead times: a 26 h = 93600 s, b 25 h = 90000 s, c 24 h = 86400 s.
        assert_eq!(report.lead_time_samples, vec![93600.0, 90000.0, 86400.0]);
        let lead = report.lead_time.unwrap();
        assert_eq!(lead.commits, 3);
        assert_eq!(lead.head_only, 0);
        // Median of [86400, 90000, 93600] = 90000 (25 h: >= 24 h, so high).
        assert_close(lead.median_secs, 90000.0);
        // p90: rank 0.9 x (3 - 1) = 1.8 -> 90000 + 0.8 x (93600 - 90000) = 92880.
        assert_close(lead.p90_secs, 92880.0);
        assert_eq!(lead.band, Band::High);
        assert_eq!(lead.trend, Trend::New);
        assert_eq!(lead.previous_median_secs, None);
        // 1 deployment / 28 days; x 7 = 0.25 a week; 1 deployment day / 4 weeks = 0.25.
        assert_close(report.frequency.per_day, 1.0 / 28.0);
        assert_close(report.frequency.per_week, 0.25);
        assert_close(report.frequency.deployment_days_per_week, 0.25);
        // Weeks deployed [1, 0, 0, 0]: median 0, not weekly; March had 1 >= 1: monthly.
        assert_eq!(report.frequency.band, Band::Medium);
        let failures = report.change_failure.unwrap();
        assert_eq!((failures.failed, failures.total, failures.rate), (0, 1, 0.0));
        assert_eq!(failures.band, Band::Elite);
        assert_eq!(failures.trend, Trend::New);
        assert_eq!(report.time_to_restore, None);
        assert_eq!(report.weeks[0].by_pipeline, vec![("release".to_string(), 1)]);
        assert_eq!(report.weeks[1].by_pipeline, vec![("release".to_string(), 0)]);
    }

    #[test]
    fn redeploying_a_commit_counts_its_commits_once_and_is_no_rollback() {
        let commits = FakeCommits::linear(&[
            ("a", "2024-03-04T08:00:00Z", "Add cart"),
            ("b", "2024-03-04T09:00:00Z", "Add checkout"),
        ]);
        let all =
            [prod("b", "2024-03-04T10:00:00Z"), prod("b", "2024-03-05T10:00:00Z"), prod("b", "2024-03-06T10:00:00Z")];
        let report = report(&all, &commits);
        assert_eq!(report.deployments, 3);
        // Only the first brought anything: a 2 h = 7200 s, b 1 h = 3600 s.
        assert_eq!(report.lead_time_samples, vec![7200.0, 3600.0]);
        assert_eq!(report.lead_time.unwrap().commits, 2);
        let failures = report.change_failure.unwrap();
        assert_eq!(failures.failed, 0);
        assert!(failures.failures.is_empty());
    }

    #[test]
    fn a_commit_deployed_through_two_environments_counts_in_each() {
        let commits = FakeCommits::linear(&[("a", "2024-03-04T08:00:00Z", "Add cart")]);
        let all = [deployed("staging", "a", "2024-03-04T09:00:00Z"), prod("a", "2024-03-05T08:00:00Z")];
        let staging = compute("staging", None, &all, march(), &commits);
        let production = compute("production", None, &all, march(), &commits);
        // Staging: 09:00 - 08:00 = 1 h; production: the next day 08:00 - 08:00 = 24 h.
        assert_eq!(staging.lead_time_samples, vec![3600.0]);
        assert_eq!(production.lead_time_samples, vec![86400.0]);
        assert_eq!((staging.deployments, production.deployments), (1, 1));
    }

    #[test]
    fn a_failed_verification_fails_and_restores_at_gantrys_rollback() {
        let commits = FakeCommits::linear(&[
            ("a", "2024-03-04T08:00:00Z", "Add cart"),
            ("b", "2024-03-05T08:00:00Z", "Add checkout"),
            ("c", "2024-03-06T08:00:00Z", "Add receipt"),
        ]);
        let never_live = Deployment {
            outcome: DeploymentOutcome::Failed { reason: "unhealthy".into() },
            ..prod("c", "2024-03-06T09:00:00Z")
        };
        let all = [
            prod("a", "2024-03-04T10:00:00Z"),
            failed_verification(prod("b", "2024-03-05T10:00:00Z"), Some("2024-03-05T10:20:00Z")),
            never_live,
            prod("c", "2024-03-06T10:00:00Z"),
        ];
        let report = report(&all, &commits);
        assert_eq!(report.refused, 1);
        assert_eq!(report.deployments, 3);
        let failures = report.change_failure.unwrap();
        // 1 failed of 3 live: 33 % > 15 %: low.
        assert_eq!((failures.failed, failures.total), (1, 3));
        assert_close(failures.rate, 1.0 / 3.0);
        assert_eq!(failures.band, Band::Low);
        assert_eq!(
            failures.failures,
            vec![Failure {
                run_id: all[1].run_id.clone(),
                commit: "b".into(),
                deployed_at: utc("2024-03-05T10:00:00Z"),
                reason: FailureReason::FailedVerification,
                restored_at: Some(utc("2024-03-05T10:20:00Z")),
            }]
        );
        // 10:20 - 10:00 = 20 min = 1200 s: elite.
        let restore = report.time_to_restore.unwrap();
        assert_close(restore.median_secs, 1200.0);
        assert_eq!((restore.restored, restore.unrestored), (1, 0));
        assert_eq!(restore.band, Band::Elite);
        assert_eq!(report.weeks[0].failed, 1);
    }

    #[test]
    fn putting_back_an_earlier_commit_fails_the_deployment_it_replaced() {
        let commits = FakeCommits::linear(&[
            ("a", "2024-03-04T08:00:00Z", "Add cart"),
            ("b", "2024-03-04T09:00:00Z", "Add checkout"),
        ]);
        let all =
            [prod("a", "2024-03-04T10:00:00Z"), prod("b", "2024-03-04T11:00:00Z"), prod("a", "2024-03-04T11:45:00Z")];
        let report = report(&all, &commits);
        let failures = report.change_failure.unwrap();
        assert_eq!((failures.failed, failures.total), (1, 3));
        assert_eq!(failures.failures[0].commit, "b");
        assert_eq!(failures.failures[0].reason, FailureReason::RolledBack);
        // Restored when a served again: 11:45 - 11:00 = 45 min = 2700 s.
        assert_eq!(failures.failures[0].restored_at, Some(utc("2024-03-04T11:45:00Z")));
        assert_close(report.time_to_restore.unwrap().median_secs, 2700.0);
        // The rollback brought nothing new: a (2 h) and b (2 h) only.
        assert_eq!(report.lead_time_samples, vec![7200.0, 7200.0]);
    }

    #[test]
    fn a_fix_deployed_within_24_hours_fails_the_deployment_before_it() {
        let commits = FakeCommits::linear(&[
            ("a", "2024-03-04T08:00:00Z", "Add cart"),
            ("b", "2024-03-05T08:00:00Z", "Add checkout"),
            ("c", "2024-03-06T09:00:00Z", "FIX: round checkout totals"),
        ]);
        // c goes live exactly 24 h after b: still within.
        let all =
            [prod("a", "2024-03-04T10:00:00Z"), prod("b", "2024-03-05T10:00:00Z"), prod("c", "2024-03-06T10:00:00Z")];
        let report = report(&all, &commits);
        let failures = report.change_failure.unwrap();
        assert_eq!(failures.failed, 1);
        assert_eq!(failures.failures[0].commit, "b");
        assert_eq!(failures.failures[0].reason, FailureReason::FollowedByFix);
        // Restored by the fix: 24 h = 86400 s, not < 24 h: high.
        let restore = report.time_to_restore.unwrap();
        assert_close(restore.median_secs, 86400.0);
        assert_eq!(restore.band, Band::High);
    }

    #[test]
    fn a_fix_deployed_after_24_hours_fails_nothing() {
        let commits = FakeCommits::linear(&[
            ("a", "2024-03-04T08:00:00Z", "Add cart"),
            ("b", "2024-03-05T08:00:00Z", "Add checkout"),
            ("c", "2024-03-06T09:00:00Z", "Fix rounding of checkout totals"),
        ]);
        // 24 h 1 min after b.
        let all =
            [prod("a", "2024-03-04T10:00:00Z"), prod("b", "2024-03-05T10:00:00Z"), prod("c", "2024-03-06T10:01:00Z")];
        let report = report(&all, &commits);
        assert_eq!(report.change_failure.unwrap().failed, 0);
        assert_eq!(report.time_to_restore, None);
    }

    #[test]
    fn a_failed_verification_followed_by_a_rollback_fails_once_for_its_verification() {
        let commits = FakeCommits::linear(&[
            ("a", "2024-03-04T08:00:00Z", "Add cart"),
            ("b", "2024-03-04T09:00:00Z", "Add checkout"),
        ]);
        // Gantry's rollback failed (no restored_at); a redeployed by hand at 12:00.
        let all = [
            prod("a", "2024-03-04T10:00:00Z"),
            failed_verification(prod("b", "2024-03-04T11:00:00Z"), None),
            prod("a", "2024-03-04T12:00:00Z"),
        ];
        let report = report(&all, &commits);
        let failures = report.change_failure.unwrap();
        assert_eq!(failures.failed, 1);
        assert_eq!(failures.failures[0].reason, FailureReason::FailedVerification);
        // Restored by the next live deployment that did not fail: 12:00 - 11:00 = 3600 s.
        assert_eq!(failures.failures[0].restored_at, Some(utc("2024-03-04T12:00:00Z")));
        assert_close(report.time_to_restore.unwrap().median_secs, 3600.0);
    }

    #[test]
    fn a_failure_with_no_healthy_deployment_since_is_unrestored() {
        let all = [prod("a", "2024-03-04T10:00:00Z"), failed_verification(prod("b", "2024-03-05T10:00:00Z"), None)];
        let report = report(&all, &FakeCommits::default());
        let failures = report.change_failure.unwrap();
        assert_eq!(failures.failures[0].restored_at, None);
        // No restored failure: no time-to-restore figure.
        assert_eq!(report.time_to_restore, None);
    }

    #[test]
    fn weekend_deployments_count_in_the_week_of_the_monday_before() {
        let all = [
            prod("a", "2024-03-09T12:00:00Z"), // Saturday
            prod("b", "2024-03-10T23:59:00Z"), // Sunday
            prod("c", "2024-03-11T00:00:00Z"), // Monday: next week
        ];
        let report = report(&all, &FakeCommits::default());
        let counts: Vec<(NaiveDate, usize)> = report.weeks.iter().map(|w| (w.start, w.deployments)).collect();
        assert_eq!(
            counts,
            vec![(date("2024-03-04"), 2), (date("2024-03-11"), 1), (date("2024-03-18"), 0), (date("2024-03-25"), 0)]
        );
    }

    #[test]
    fn lead_time_compares_instants_whatever_the_commit_time_zone() {
        let commits = FakeCommits::linear(&[("a", "2024-03-05T09:00:00+02:00", "Add cart")]);
        // 09:00+02:00 is 07:00Z: deployed at 08:00Z, one hour later.
        let report = report(&[prod("a", "2024-03-05T08:00:00Z")], &commits);
        assert_eq!(report.lead_time_samples, vec![3600.0]);
    }

    #[test]
    fn a_sunday_evening_deployment_west_of_utc_counts_on_monday() {
        // Sunday 23:30-05:00 is Monday 04:30Z.
        let report = report(&[prod("a", "2024-03-10T23:30:00-05:00")], &FakeCommits::default());
        assert_eq!(report.weeks[0].deployments, 0);
        assert_eq!((report.weeks[1].start, report.weeks[1].deployments), (date("2024-03-11"), 1));
    }

    #[test]
    fn a_median_week_of_three_deployment_days_is_elite() {
        // Days per week [3, 3, 3, 2]: median (3 + 3) / 2 = 3 >= 3.
        let days = ["03-04", "03-05", "03-06", "03-11", "03-12", "03-13", "03-18", "03-19", "03-20", "03-25", "03-26"];
        let days = days.map(|d| format!("2024-{d}"));
        assert_eq!(frequency_band_of(&days.each_ref().map(String::as_str), march()), Band::Elite);
    }

    #[test]
    fn a_median_week_under_three_deployment_days_is_high_when_most_weeks_deploy() {
        // Days per week [3, 3, 2, 2]: median 2.5 < 3; weeks deployed [1, 1, 1, 1]: median 1.
        let days = ["03-04", "03-05", "03-06", "03-11", "03-12", "03-13", "03-18", "03-19", "03-25", "03-26"];
        let days = days.map(|d| format!("2024-{d}"));
        assert_eq!(frequency_band_of(&days.each_ref().map(String::as_str), march()), Band::High);
    }

    #[test]
    fn three_weeks_deployed_of_four_is_high() {
        // Weeks deployed [1, 1, 1, 0], sorted [0, 1, 1, 1]: median 1.
        assert_eq!(frequency_band_of(&["2024-03-04", "2024-03-11", "2024-03-18"], march()), Band::High);
    }

    #[test]
    fn two_weeks_deployed_of_four_is_medium() {
        // Weeks deployed [1, 1, 0, 0]: median 0.5 < 1; March had 2 deployments >= 1.
        assert_eq!(frequency_band_of(&["2024-03-04", "2024-03-11"], march()), Band::Medium);
    }

    #[test]
    fn the_median_month_having_a_deployment_is_medium_and_not_having_one_is_low() {
        // 2024-01-01 is a Monday: 13 whole weeks over January, February, March.
        let quarter = Window { since: utc("2024-01-01T00:00:00Z"), until: utc("2024-04-01T00:00:00Z") };
        // Months [1, 1, 0]: median 1.
        assert_eq!(frequency_band_of(&["2024-01-10", "2024-02-10"], quarter), Band::Medium);
        // Months [1, 0, 0]: median 0.
        assert_eq!(frequency_band_of(&["2024-01-10"], quarter), Band::Low);
    }

    #[test]
    fn trends_compare_each_figure_with_the_window_before() {
        let commits = FakeCommits::linear(&[
            ("p1", "2024-02-12T09:00:00Z", "Add cart"),
            ("p2", "2024-02-19T09:00:00Z", "Add checkout"),
            ("c1", "2024-03-04T08:00:00Z", "Add receipt"),
            ("c2", "2024-03-11T08:00:00Z", "Add invoice"),
            ("c3", "2024-03-18T08:00:00Z", "Add refund"),
            ("c4", "2024-03-25T08:00:00Z", "Add coupon"),
        ]);
        let all = [
            prod("p1", "2024-02-12T10:00:00Z"),
            prod("p2", "2024-02-19T10:00:00Z"),
            prod("c1", "2024-03-04T10:00:00Z"),
            prod("c2", "2024-03-11T10:00:00Z"),
            prod("c3", "2024-03-18T10:00:00Z"),
            prod("c4", "2024-03-25T10:00:00Z"),
        ];
        let report = report(&all, &commits);
        // Before: 2 / 28 days x 7 = 0.5 a week; now 4 / 28 x 7 = 1.0: more frequent, better.
        assert_close(report.frequency.previous_per_week.unwrap(), 0.5);
        assert_close(report.frequency.per_week, 1.0);
        assert_eq!(report.frequency.trend, Trend::Better);
        // Lead time before 1 h (3600 s), now 2 h (7200 s): worse.
        let lead = report.lead_time.unwrap();
        assert_eq!(lead.previous_median_secs, Some(3600.0));
        assert_close(lead.median_secs, 7200.0);
        assert_eq!(lead.trend, Trend::Worse);
        // No failure before or now: 0 % and 0 %, the same.
        let failures = report.change_failure.unwrap();
        assert_eq!(failures.previous_rate, Some(0.0));
        assert_eq!(failures.trend, Trend::Same);
    }

    #[test]
    fn a_difference_within_one_percent_is_the_same() {
        assert_eq!(trend(1.0099, Some(1.0), true), Trend::Same);
        assert_eq!(trend(1.02, Some(1.0), true), Trend::Better);
        assert_eq!(trend(1.02, Some(1.0), false), Trend::Worse);
        assert_eq!(trend(1.0, None, true), Trend::New);
    }

    #[test]
    fn percentiles_interpolate_linearly_between_ranks() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        // p90: rank 0.9 x (10 - 1) = 8.1 -> 9 + 0.1 x (10 - 9) = 9.1.
        assert_close(percentile(&values, 0.9).unwrap(), 9.1);
        // Median of [1, 2, 3, 4]: rank 1.5 -> 2.5.
        assert_close(median(&[4.0, 1.0, 3.0, 2.0]).unwrap(), 2.5);
        assert_eq!(percentile(&[], 0.9), None);
    }

    #[test]
    fn an_unreadable_repository_counts_the_head_commit_alone() {
        let deployment = Deployment {
            commit_time: DateTime::parse_from_rfc3339("2024-03-04T06:00:00-03:00").unwrap(),
            ..prod("a", "2024-03-04T10:00:00Z")
        };
        let report = report(&[deployment], &FakeCommits::default());
        // 06:00-03:00 is 09:00Z: one hour before 10:00Z.
        let lead = report.lead_time.unwrap();
        assert_eq!((lead.commits, lead.head_only), (1, 1));
        assert_eq!(report.lead_time_samples, vec![3600.0]);
    }

    #[test]
    fn a_pipeline_report_counts_that_pipeline_and_the_table_has_a_column_per_pipeline() {
        let all = [
            prod("a", "2024-03-04T10:00:00Z"),
            Deployment { pipeline: "hotfix".into(), ..prod("b", "2024-03-11T10:00:00Z") },
        ];
        let hotfix = compute("production", Some("hotfix"), &all, march(), &FakeCommits::default());
        assert_eq!(hotfix.deployments, 1);
        assert_eq!(hotfix.weeks[1].by_pipeline, vec![("hotfix".to_string(), 1)]);
        let every = report(&all, &FakeCommits::default());
        let column = |week: usize| every.weeks[week].by_pipeline.clone();
        assert_eq!(column(0), vec![("hotfix".to_string(), 0), ("release".to_string(), 1)]);
        assert_eq!(column(1), vec![("hotfix".to_string(), 1), ("release".to_string(), 0)]);
    }

    #[test]
    fn git_commits_lists_exactly_the_commits_between_two_deployments() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let tree = repo.find_tree(repo.treebuilder(None).unwrap().write().unwrap()).unwrap();
        let start = utc("2024-03-04T08:00:00Z").timestamp();
        let mut parent: Option<Oid> = None;
        let mut shas = Vec::new();
        // a 08:00Z (+00:00), b 09:00Z (+02:00), c 10:00Z (-05:00), d 11:00Z (+00:00).
        for (hour, (summary, offset)) in
            [("Add cart", 0), ("Add checkout", 120), ("Fix totals", -300), ("Add receipt", 0)].into_iter().enumerate()
        {
            let signature =
                git2::Signature::new("Ada", "ada@example.com", &git2::Time::new(start + 3600 * hour as i64, offset))
                    .unwrap();
            let parents: Vec<git2::Commit> = parent.iter().map(|&oid| repo.find_commit(oid).unwrap()).collect();
            let parents: Vec<&git2::Commit> = parents.iter().collect();
            let oid = repo.commit(Some("HEAD"), &signature, &signature, summary, &tree, &parents).unwrap();
            parent = Some(oid);
            shas.push(oid.to_string());
        }
        let path = dir.path().to_path_buf();
        let git = GitCommits::new(|run: &str| (run != "lost").then(|| path.clone()));
        let at_b = prod(&shas[1], "2024-03-04T12:00:00Z");
        let at_d = prod(&shas[3], "2024-03-04T13:00:00Z");

        let between = git.brought(&at_d, Some(&at_b)).unwrap();
        let listed: Vec<(&str, &str)> = between.iter().map(|c| (c.sha.as_str(), c.summary.as_str())).collect();
        assert_eq!(listed, vec![(shas[3].as_str(), "Add receipt"), (shas[2].as_str(), "Fix totals")]);
        // c at 10:00Z, written at -05:00: 05:00-05:00.
        assert_eq!(between[1].time, DateTime::parse_from_rfc3339("2024-03-04T05:00:00-05:00").unwrap());
        assert_eq!(between[1].time.offset().local_minus_utc(), -5 * 3600);

        // An environment's first deployment brings its head commit only, not all history.
        let first: Vec<String> = git.brought(&at_b, None).unwrap().into_iter().map(|c| c.sha).collect();
        assert_eq!(first, vec![shas[1].clone()]);
        assert_eq!(git.repos.borrow().len(), 1, "the repository is opened once");

        let lost = Deployment { run_id: "lost".into(), ..at_d.clone() };
        assert_eq!(git.brought(&lost, Some(&at_b)), None);
        let unknown = prod("0123456789abcdef0123456789abcdef01234567", "2024-03-04T13:00:00Z");
        assert_eq!(git.brought(&unknown, None), None);
    }
}
