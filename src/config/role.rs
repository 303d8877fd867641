//! Roles of the people who use Gantry, in order of what they may do: each role may do
//! everything the roles before it may (viewer < developer < release-manager < admin).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads runs, logs, environments and reports.
    Viewer,
    /// Also triggers runs.
    Developer,
    /// Also approves and rejects gated promotions.
    ReleaseManager,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Developer, Role::ReleaseManager, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::ReleaseManager => "release-manager",
            Role::Admin => "admin",
        }
    }

    /// Whether someone holding `self` may act as `needed`.
    pub fn covers(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_roles_cover_lower_ones_only() {
        assert!(Role::Admin.covers(Role::ReleaseManager));
        assert!(Role::ReleaseManager.covers(Role::ReleaseManager));
        assert!(!Role::Developer.covers(Role::ReleaseManager));
        assert!(!Role::Viewer.covers(Role::Developer));
    }

    #[test]
    fn names_round_trip_through_serde() {
        for role in Role::ALL {
            let yaml = serde_yaml::to_string(&role).unwrap();
            assert_eq!(yaml.trim(), role.name());
            assert_eq!(serde_yaml::from_str::<Role>(&yaml).unwrap(), role);
        }
    }
}
