//! Every `io.gantry.*` label and every name Gantry gives an object on the engine, in one
//! place. Labels are how Gantry finds its objects again (sweeps, environments, locks),
//! across processes and data dirs: changing one changes what older objects are found by,
//! so they are part of the contract with objects already on an engine.
//!
//! Depends on nothing of Gantry's: the engine backends, the stages and the sweeps all read
//! from here.

// --- Labels every object of a run carries -------------------------------------------

/// Carried by every object a run creates; sweeps find a run's objects by it.
pub const RUN_LABEL: &str = "io.gantry.run";
/// The stage that made a container.
pub const STAGE_LABEL: &str = "io.gantry.stage";

// --- Environments ---------------------------------------------------------------------

/// Objects of a deployed environment: they outlive runs by design, and sweeps leave them.
pub const ENVIRONMENT_LABEL: &str = "io.gantry.environment";
/// What a container does in an environment (`docker::environments::Role`).
pub const ROLE_LABEL: &str = "io.gantry.role";
pub const SERVICE_LABEL: &str = "io.gantry.service";
pub const APP_LABEL: &str = "io.gantry.app";
pub const SPEC_LABEL: &str = "io.gantry.spec";
/// The commit an app version or an image was built from.
pub const COMMIT_LABEL: &str = "io.gantry.commit";
/// The deployed commit's time (RFC 3339), for lead time and for telling which of two
/// versions is newer.
pub const COMMIT_TIME_LABEL: &str = "io.gantry.commit-time";
/// The deployed commit's author, for the record of a rollback to it.
pub const AUTHOR_LABEL: &str = "io.gantry.author";
/// The deploy's health check (JSON), so a rollback checks the kept version as it was.
pub const HEALTH_LABEL: &str = "io.gantry.health";
pub const PORT_LABEL: &str = "io.gantry.port";
pub const PUBLISHED_LABEL: &str = "io.gantry.published";
/// The image reference a version was deployed as (the engine's listing shows a bare id
/// once the tag has moved on).
pub const IMAGE_LABEL: &str = "io.gantry.image";
/// On Swarm: the image id a version was built as (its tasks run it by registry digest).
pub const IMAGE_ID_LABEL: &str = "io.gantry.image-id";
/// On Swarm: the service a checked version becomes when it goes live (JSON), carried by
/// the version's candidate container so that a go-live resumed after a crash has it.
pub const SWARM_SPEC_LABEL: &str = "io.gantry.swarm-spec";
/// On Swarm: the version a live service replaced (JSON), Swarm's previous spec as Gantry
/// describes it, for a rollback.
pub const PREVIOUS_LABEL: &str = "io.gantry.previous";

// --- Images ---------------------------------------------------------------------------

/// Images a `kind: build` made: the project whose pipeline built them, so that another
/// project's build cannot take the tag over.
pub const PROJECT_LABEL: &str = "io.gantry.project";

// --- Locks ----------------------------------------------------------------------------

/// The environment a lock container holds.
pub const LOCK_LABEL: &str = "io.gantry.lock";
/// The environment a waiting run's ticket waits for.
pub const WAITING_LABEL: &str = "io.gantry.waiting";
/// The project of a waiting run's ticket: a newer run of the same project finds the older
/// ones waiting by it.
pub const WAITING_PROJECT_LABEL: &str = "io.gantry.waiting-project";

// --- Object names ---------------------------------------------------------------------

/// A run's own network.
pub fn run_network(run_id: &str) -> String {
    format!("gantry-{run_id}")
}

/// A run's workspace volume (the checked-out commit, shared by its command stages).
pub fn run_workspace(run_id: &str) -> String {
    format!("gantry-{run_id}-workspace")
}

/// The container of one attempt of a stage (a command, or an agent).
pub fn stage_container(run_id: &str, stage: &str, attempt: u32) -> String {
    format!("gantry-{run_id}-{stage}-{attempt}")
}

/// A health probe of one attempt of a stage; `unique` tells probes of one attempt apart.
pub fn probe_container(run_id: &str, stage: &str, attempt: u32, unique: &str) -> String {
    format!("gantry-{run_id}-{stage}-{attempt}-probe-{unique}")
}

/// An environment's network.
pub fn environment_network(env: &str) -> String {
    format!("gantry-env-{env}")
}

/// A provisioned service of an environment.
pub fn service_container(env: &str, service: &str) -> String {
    format!("gantry-env-{env}-{service}")
}

/// One version of an app in an environment; `unique` tells two deploys of one commit apart.
pub fn app_container(env: &str, app: &str, commit_short: &str, unique: &str) -> String {
    format!("gantry-env-{env}-{app}-{commit_short}-{unique}")
}

/// The router in front of an app's versions.
pub fn router_container(env: &str, app: &str) -> String {
    format!("gantry-env-{env}-{app}-router")
}

/// On Swarm: the service whose tasks serve an app's live version.
pub fn live_service(env: &str, app: &str) -> String {
    format!("gantry-env-{env}-{app}-live")
}

/// On Swarm: the kept version started again to be checked before a rollback.
pub fn revived_container(env: &str, app: &str) -> String {
    format!("gantry-env-{env}-{app}-kept")
}

/// The lock of an environment: a created, never started container, unique by name.
pub fn lock_container(env: &str) -> String {
    format!("gantry-lock-{env}")
}

/// A run's ticket while it waits for an environment.
pub fn waiting_ticket(env: &str, run_id: &str) -> String {
    format!("gantry-wait-{env}-{run_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_what_objects_already_on_engines_are_called() {
        // Objects made by earlier versions are found (and swept) by these names.
        assert_eq!(run_network("01h"), "gantry-01h");
        assert_eq!(run_workspace("01h"), "gantry-01h-workspace");
        assert_eq!(stage_container("01h", "unit", 2), "gantry-01h-unit-2");
        assert_eq!(environment_network("prod"), "gantry-env-prod");
        assert_eq!(service_container("prod", "db"), "gantry-env-prod-db");
        assert_eq!(router_container("prod", "web"), "gantry-env-prod-web-router");
        assert_eq!(lock_container("prod"), "gantry-lock-prod");
    }

    #[test]
    fn every_label_is_in_gantrys_namespace_and_unique() {
        let all = [
            RUN_LABEL,
            STAGE_LABEL,
            ENVIRONMENT_LABEL,
            ROLE_LABEL,
            SERVICE_LABEL,
            APP_LABEL,
            SPEC_LABEL,
            COMMIT_LABEL,
            COMMIT_TIME_LABEL,
            AUTHOR_LABEL,
            HEALTH_LABEL,
            PORT_LABEL,
            PUBLISHED_LABEL,
            IMAGE_LABEL,
            PROJECT_LABEL,
            LOCK_LABEL,
            WAITING_LABEL,
            WAITING_PROJECT_LABEL,
        ];
        assert!(all.iter().all(|l| l.starts_with("io.gantry.")));
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
    }
}

/// A short unique suffix for helper object names.
pub fn short_id() -> String {
    let u = ulid::Ulid::new().to_string().to_ascii_lowercase();
    u[u.len() - 6..].to_string()
}

/// A stable fingerprint of a spec (FNV-1a over its JSON), kept in a label so that a later
/// provision can tell "same spec" from "changed" across gantry versions.
pub fn fingerprint(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}
