//! The operator's engines as one pool: where each run goes (a free slot, the labels the
//! pipeline asks for, least loaded first), which engines answer, and what each carries.
//! A run holds its `Slot` for its whole life: all its stages stay on one engine (the
//! workspace volume is local to it). An engine that stops answering is out of placement
//! until it answers again.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{connect, Engine, EngineChoice};

/// One engine of the pool, as the operator listed it.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub name: String,
    pub choice: EngineChoice,
    /// Runs it takes at once.
    pub slots: usize,
    pub labels: Vec<String>,
}

struct Member {
    config: MemberConfig,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Connected once it first answered.
    engine: Option<Engine>,
    up: bool,
    in_use: usize,
    placed: u64,
    lost: u64,
    /// Why it is down.
    reason: Option<String>,
}

/// What the dashboard, `/metrics` and `/api/engines` show of one engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineView {
    pub name: String,
    pub host: String,
    pub up: bool,
    pub slots: usize,
    pub in_use: usize,
    /// Runs placed on it since the service started.
    pub placed: u64,
    /// Runs it lost by no longer answering.
    pub lost: u64,
    pub labels: Vec<String>,
    /// Whether the environments live on it.
    pub environments: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A run's place on an engine; dropping it frees the slot.
pub struct Slot {
    member: Arc<Member>,
    pub engine: Engine,
    /// The engine's name, for the run record (None for the one engine of a pool-less
    /// service).
    pub name: Option<String>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.member.inner.lock().expect("engine pool");
        inner.in_use = inner.in_use.saturating_sub(1);
    }
}

/// Why a run could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplaced {
    /// Every engine it may use is busy or down now: it waits in the queue.
    Waiting,
    /// No engine of the pool carries these labels: it never can run.
    NoSuchEngine { runs_on: Vec<String>, home: Option<String>, known: Vec<String> },
}

impl std::fmt::Display for Unplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unplaced::Waiting => write!(f, "every engine it may run on is busy or down"),
            Unplaced::NoSuchEngine { runs_on, home: None, known } => write!(
                f,
                "runs_on: [{}] - no engine of the operator's pool carries every one of these labels (engines: {})",
                runs_on.join(", "),
                known.join(", ")
            ),
            Unplaced::NoSuchEngine { runs_on, home: Some(home), known } => write!(
                f,
                "the run deploys, so it runs on {home}, where the environments live, but runs_on: [{}] asks for labels {home} does not carry, or {home} takes no runs (engines: {})",
                runs_on.join(", "),
                known.join(", ")
            ),
        }
    }
}

/// The engines runs may be placed on.
pub struct Pool {
    members: Vec<Arc<Member>>,
    /// Whether the operator listed engines (then runs say where they ran).
    named: bool,
    home: Option<String>,
}

impl Pool {
    /// The one engine of a service without `engines:`: every run goes there.
    pub fn single(engine: Engine) -> Pool {
        let config = MemberConfig { name: "default".into(), choice: EngineChoice::default(), slots: usize::MAX, labels: Vec::new() };
        let inner = Inner { engine: Some(engine), up: true, ..Default::default() };
        Pool { members: vec![Arc::new(Member { config, inner: Mutex::new(inner) })], named: false, home: None }
    }

    /// The operator's engines, each connected if it answers now; one that does not is down
    /// until a `check` finds it answering. `home` is where the environments live.
    pub async fn connect(configs: Vec<MemberConfig>, home: Option<String>) -> Pool {
        let mut members = Vec::new();
        for config in configs {
            let inner = match connect(&config.choice).await {
                Ok(engine) => Inner { engine: Some(engine), up: true, ..Default::default() },
                Err(e) => {
                    tracing::warn!(engine = %config.name, error = %e, "engine does not answer; out of placement until it does");
                    Inner { reason: Some(e.to_string()), ..Default::default() }
                }
            };
            members.push(Arc::new(Member { config, inner: Mutex::new(inner) }));
        }
        Pool { members, named: true, home }
    }

    /// A pool of given engines (tests); the environments live on `home`.
    pub fn of(engines: Vec<(MemberConfig, Engine)>, home: Option<&str>) -> Pool {
        let members = engines
            .into_iter()
            .map(|(config, engine)| Arc::new(Member { config, inner: Mutex::new(Inner { engine: Some(engine), up: true, ..Default::default() }) }))
            .collect();
        Pool { members, named: true, home: home.map(str::to_string) }
    }

    /// A slot for a run asking for `runs_on`: among the engines that answer, carry every
    /// label and have a free slot, the least loaded (share of slots in use, then name).
    /// `at_home`: only the engine the environments live on (a run that deploys).
    pub fn place(&self, runs_on: &[String], at_home: bool) -> Result<Slot, Unplaced> {
        let home = self.home.as_deref().filter(|_| at_home);
        let fits = |m: &Member| {
            runs_on.iter().all(|l| m.config.labels.contains(l)) && m.config.slots > 0 && home.is_none_or(|h| h == m.config.name)
        };
        if !self.members.iter().any(|m| fits(m)) {
            let known = self.members.iter().map(|m| format!("{} [{}]", m.config.name, m.config.labels.join(", "))).collect();
            return Err(Unplaced::NoSuchEngine { runs_on: runs_on.to_vec(), home: home.map(str::to_string), known });
        }
        let mut best: Option<(f64, &Arc<Member>)> = None;
        for m in self.members.iter().filter(|m| fits(m)) {
            let inner = m.inner.lock().expect("engine pool");
            if !inner.up || inner.engine.is_none() || inner.in_use >= m.config.slots {
                continue;
            }
            let load = inner.in_use as f64 / m.config.slots as f64;
            if best.as_ref().is_none_or(|(b, _)| load < *b) {
                best = Some((load, m));
            }
        }
        let (_, member) = best.ok_or(Unplaced::Waiting)?;
        let mut inner = member.inner.lock().expect("engine pool");
        inner.in_use += 1;
        inner.placed += 1;
        let engine = inner.engine.clone().expect("an engine that is up is connected");
        drop(inner);
        Ok(Slot { member: member.clone(), engine, name: self.named.then(|| member.config.name.clone()) })
    }

    /// The engine named `name`, if it is connected (for sweeping what a run left there).
    pub fn engine(&self, name: Option<&str>) -> Option<Engine> {
        let member = match name {
            Some(n) => self.members.iter().find(|m| m.config.name == n)?,
            None => self.members.first()?,
        };
        let inner = member.inner.lock().expect("engine pool");
        inner.up.then(|| inner.engine.clone()).flatten()
    }

    /// Every engine that answers, with its name (None for the one engine of a pool-less
    /// service).
    pub fn up(&self) -> Vec<(Option<String>, Engine)> {
        self.members
            .iter()
            .filter_map(|m| {
                let inner = m.inner.lock().expect("engine pool");
                let engine = inner.up.then(|| inner.engine.clone()).flatten()?;
                Some((self.named.then(|| m.config.name.clone()), engine))
            })
            .collect()
    }

    /// Whether engine `name` answers, as of the last check.
    pub fn is_up(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.config.name == name && m.inner.lock().expect("engine pool").up)
    }

    /// Counts a run lost with engine `name`, which is out of placement from now until a
    /// `check` finds it answering (a run's own end may see the loss before the check).
    pub fn count_lost(&self, name: &str, reason: &str) {
        if let Some(m) = self.members.iter().find(|m| m.config.name == name) {
            let mut inner = m.inner.lock().expect("engine pool");
            inner.lost += 1;
            inner.up = false;
            inner.reason = Some(reason.to_string());
        }
    }

    /// Asks every engine whether it answers (connecting those never reached); returns
    /// the names of those that stopped answering since the last check.
    pub async fn check(&self) -> Vec<String> {
        let mut lost = Vec::new();
        for m in &self.members {
            let engine = m.inner.lock().expect("engine pool").engine.clone();
            let answer = match engine {
                Some(e) => e.steps.ping().await.map(|_| None),
                None => connect(&m.config.choice).await.map(Some),
            };
            let mut inner = m.inner.lock().expect("engine pool");
            match answer {
                Ok(connected) => {
                    if connected.is_some() {
                        inner.engine = connected;
                    }
                    if !inner.up {
                        tracing::info!(engine = %m.config.name, "engine answers again; back in placement");
                    }
                    inner.up = true;
                    inner.reason = None;
                }
                Err(e) => {
                    if inner.up {
                        tracing::warn!(engine = %m.config.name, error = %e, "engine stopped answering; out of placement");
                        lost.push(m.config.name.clone());
                    }
                    inner.up = false;
                    inner.reason = Some(e.to_string());
                }
            }
        }
        lost
    }

    /// Each engine's state, slots and runs, in the operator's order.
    pub fn views(&self) -> Vec<EngineView> {
        if !self.named {
            return Vec::new();
        }
        self.members
            .iter()
            .map(|m| {
                let inner = m.inner.lock().expect("engine pool");
                EngineView {
                    name: m.config.name.clone(),
                    host: m.config.choice.docker_host.clone().unwrap_or_default(),
                    up: inner.up,
                    slots: m.config.slots,
                    in_use: inner.in_use,
                    placed: inner.placed,
                    lost: inner.lost,
                    labels: m.config.labels.clone(),
                    environments: self.home.as_deref() == Some(m.config.name.as_str()),
                    reason: inner.reason.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{FakeEngine, Verb};

    fn member(name: &str, slots: usize, labels: &[&str]) -> (MemberConfig, Engine, Arc<FakeEngine>) {
        let fake = FakeEngine::new();
        let config = MemberConfig { name: name.into(), choice: EngineChoice::default(), slots, labels: labels.iter().map(|l| l.to_string()).collect() };
        (config, Engine::fake(fake.clone()), fake)
    }

    fn pool(members: &[(&str, usize, &[&str])]) -> (Pool, Vec<Arc<FakeEngine>>) {
        let mut fakes = Vec::new();
        let mut list = Vec::new();
        for (name, slots, labels) in members {
            let (c, e, f) = member(name, *slots, labels);
            fakes.push(f);
            list.push((c, e));
        }
        (Pool::of(list, Some("a")), fakes)
    }

    #[test]
    fn runs_go_to_the_least_loaded_engine_with_a_free_slot_and_wait_when_none_is_free() {
        let (pool, _) = pool(&[("a", 2, &[]), ("b", 1, &[]), ("c", 2, &[])]);
        let names = |slots: &[Slot]| slots.iter().map(|s| s.name.clone().unwrap()).collect::<Vec<_>>();
        let mut slots = Vec::new();
        for _ in 0..5 {
            slots.push(pool.place(&[], false).unwrap());
        }
        // Empty first (a, b, c by order), then the half-used a and c; b is full at one.
        assert_eq!(names(&slots), ["a", "b", "c", "a", "c"]);
        assert_eq!(pool.place(&[], false).err(), Some(Unplaced::Waiting));
        slots.remove(1); // b's run ends: its slot is free again
        assert_eq!(pool.place(&[], false).unwrap().name.as_deref(), Some("b"));
        let views = pool.views();
        assert_eq!(views.iter().map(|v| (v.in_use, v.placed)).collect::<Vec<_>>(), [(2, 2), (0, 2), (2, 2)]);
    }

    #[test]
    fn labels_choose_among_the_engines_and_an_unknown_label_is_said_at_once() {
        let (pool, _) = pool(&[("small", 4, &[]), ("big-1", 1, &["big"]), ("big-2", 1, &["big", "gpu"])]);
        let big = [String::from("big")];
        let first = pool.place(&big, false).unwrap();
        let second = pool.place(&big, false).unwrap();
        let mut got = [first.name.clone().unwrap(), second.name.clone().unwrap()];
        got.sort();
        assert_eq!(got, ["big-1", "big-2"]);
        assert_eq!(pool.place(&big, false).err(), Some(Unplaced::Waiting), "the small engine is never used for big runs");
        match pool.place(&[String::from("arm")], false) {
            Err(e @ Unplaced::NoSuchEngine { .. }) => assert!(e.to_string().contains("runs_on: [arm]") && e.to_string().contains("big-2 [big, gpu]"), "{e}"),
            other => panic!("{:?}", other.map(|s| s.name.clone())),
        }
    }

    #[test]
    fn a_run_that_deploys_goes_where_the_environments_live() {
        let (pool, _) = pool(&[("a", 1, &[]), ("b", 4, &["big"])]);
        let first = pool.place(&[], true).unwrap();
        assert_eq!(first.name.as_deref(), Some("a"));
        let busy = pool.place(&[], true);
        assert_eq!(busy.err(), Some(Unplaced::Waiting), "a is full; b holds no environments");
        match pool.place(&[String::from("big")], true) {
            Err(e @ Unplaced::NoSuchEngine { .. }) => assert!(e.to_string().contains("it runs on a, where the environments live"), "{e}"),
            other => panic!("{:?}", other.map(|s| s.name.clone())),
        }
    }

    #[tokio::test]
    async fn an_engine_that_stops_answering_is_out_of_placement_until_it_answers_again() {
        let (pool, fakes) = pool(&[("a", 1, &[]), ("b", 1, &[])]);
        fakes[0].fail(Verb::Ping, "connection refused");
        assert_eq!(pool.check().await, ["a"]);
        assert_eq!(pool.check().await, Vec::<String>::new(), "said once, when it went down");
        assert!(!pool.is_up("a") && pool.is_up("b"));
        let only = pool.place(&[], false).unwrap();
        assert_eq!(only.name.as_deref(), Some("b"));
        assert_eq!(pool.place(&[], false).err(), Some(Unplaced::Waiting));
        assert!(pool.views()[0].reason.as_deref().unwrap_or("").contains("connection refused"), "{:?}", pool.views()[0]);
        fakes[0].recover(Verb::Ping);
        assert!(pool.check().await.is_empty());
        assert_eq!(pool.place(&[], false).unwrap().name.as_deref(), Some("a"));
    }
}
