use std::collections::BTreeSet;
use std::fmt;

/// OAuth-style scopes, as in API-CONVENTIONS.md. A `write` scope implies the matching `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    ContactsRead,
    ContactsWrite,
    CampaignsRead,
    CampaignsWrite,
    AnalyticsRead,
    AutomationWrite,
    ConnectorsManage,
    WorkspaceRead,
    WorkspaceAdmin,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::ContactsRead,
        Scope::ContactsWrite,
        Scope::CampaignsRead,
        Scope::CampaignsWrite,
        Scope::AnalyticsRead,
        Scope::AutomationWrite,
        Scope::ConnectorsManage,
        Scope::WorkspaceRead,
        Scope::WorkspaceAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ContactsRead => "contacts:read",
            Scope::ContactsWrite => "contacts:write",
            Scope::CampaignsRead => "campaigns:read",
            Scope::CampaignsWrite => "campaigns:write",
            Scope::AnalyticsRead => "analytics:read",
            Scope::AutomationWrite => "automation:write",
            Scope::ConnectorsManage => "connectors:manage",
            Scope::WorkspaceRead => "workspace:read",
            Scope::WorkspaceAdmin => "workspace:admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    /// The read scope a write scope implies.
    fn implied(self) -> Option<Scope> {
        match self {
            Scope::ContactsWrite => Some(Scope::ContactsRead),
            Scope::CampaignsWrite => Some(Scope::CampaignsRead),
            Scope::WorkspaceAdmin => Some(Scope::WorkspaceRead),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    pub fn all() -> ScopeSet {
        ScopeSet(Scope::ALL.into_iter().collect())
    }

    /// Parses a space- or comma-separated list; unknown names are an error naming them.
    pub fn parse(text: &str) -> Result<ScopeSet, String> {
        let mut scopes = BTreeSet::new();
        for name in text.split([' ', ',']).filter(|part| !part.is_empty()) {
            let scope = Scope::parse(name).ok_or_else(|| {
                let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope `{name}`; known scopes: {}", known.join(", "))
            })?;
            scopes.insert(scope);
        }
        if scopes.is_empty() {
            return Err("at least one scope is required".into());
        }
        Ok(ScopeSet(scopes))
    }

    pub fn allows(&self, wanted: Scope) -> bool {
        self.0
            .iter()
            .any(|&held| held == wanted || held.implied() == Some(wanted))
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The storage and display form: names separated by single spaces, sorted.
    pub fn to_text(&self) -> String {
        self.0.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_implies_read_but_not_the_reverse() {
        let write = ScopeSet::parse("contacts:write").unwrap();
        assert!(write.allows(Scope::ContactsRead));
        assert!(write.allows(Scope::ContactsWrite));
        assert!(!write.allows(Scope::CampaignsRead));
        let read = ScopeSet::parse("contacts:read").unwrap();
        assert!(!read.allows(Scope::ContactsWrite));
    }

    #[test]
    fn unknown_and_empty_scopes_are_rejected() {
        assert!(
            ScopeSet::parse("contacts:read,contacts:delete")
                .unwrap_err()
                .contains("contacts:delete")
        );
        assert!(ScopeSet::parse(" ").is_err());
    }
}
