//! Who may do what (API.md, "Authentication"). Console roles and API key scopes grant
//! actions; a key that acts as a user can do only what both its scope and the user's
//! role allow.

use serde::{Deserialize, Serialize};

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// What a running application needs: resolve, render, the event stream, lock.
    Serve,
    /// Send generations and scores (production telemetry).
    Ingest,
    /// List, history, diff, audit, generations, metrics.
    Read,
    /// Create prompts and versions, move labels that are not protected.
    Write,
    /// Move a protected label (`stable` and any label an admin protects).
    MoveProtectedLabel,
    /// Users, keys, label policies.
    Administer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Publisher,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// A running application: serve and ingest, nothing else.
    App,
    Read,
    Write,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Publisher, Role::Admin];

    pub fn allows(self, action: Action) -> bool {
        match action {
            Action::Serve | Action::Ingest | Action::Read => true,
            Action::Write => self >= Role::Editor,
            Action::MoveProtectedLabel => self >= Role::Publisher,
            Action::Administer => self == Role::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::App, Scope::Read, Scope::Write, Scope::Admin];

    pub fn allows(self, action: Action) -> bool {
        match action {
            Action::Serve | Action::Ingest => true,
            Action::Read => self >= Scope::Read,
            Action::Write => self >= Scope::Write,
            Action::MoveProtectedLabel | Action::Administer => self == Scope::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::App => "app",
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What one caller is granted: a role (people, keys acting as a person) and/or a scope
/// (API keys). Both must allow an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub role: Option<Role>,
    pub scope: Option<Scope>,
}

impl Grant {
    pub fn allows(self, action: Action) -> bool {
        (self.role.is_some() || self.scope.is_some())
            && self.role.is_none_or(|r| r.allows(action))
            && self.scope.is_none_or(|s| s.allows(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    #[test]
    fn roles() {
        let table = [
            (Role::Viewer, [true, false, false, false]),
            (Role::Editor, [true, true, false, false]),
            (Role::Publisher, [true, true, true, false]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, expected) in table {
            let got = [Read, Write, MoveProtectedLabel, Administer].map(|a| role.allows(a));
            assert_eq!(got, expected, "{role:?}");
        }
    }

    #[test]
    fn scopes() {
        let table = [
            (Scope::App, [false, false, false, false]),
            (Scope::Read, [true, false, false, false]),
            (Scope::Write, [true, true, false, false]),
            (Scope::Admin, [true, true, true, true]),
        ];
        for (scope, expected) in table {
            let got = [Read, Write, MoveProtectedLabel, Administer].map(|a| scope.allows(a));
            assert_eq!(got, expected, "{scope:?}");
            assert!(scope.allows(Serve) && scope.allows(Ingest), "{scope:?}");
        }
    }

    #[test]
    fn a_key_acting_as_a_user_gets_the_intersection() {
        let admin_key_for_editor = Grant { role: Some(Role::Editor), scope: Some(Scope::Admin) };
        assert!(admin_key_for_editor.allows(Write));
        assert!(!admin_key_for_editor.allows(MoveProtectedLabel));
        let read_key_for_admin = Grant { role: Some(Role::Admin), scope: Some(Scope::Read) };
        assert!(!read_key_for_admin.allows(Write));
        assert!(!Grant { role: None, scope: None }.allows(Read));
    }

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
