//! Admin roles and what each may do: the permission matrix, in this one place.

use std::fmt;
use std::str::FromStr;

/// An admin's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, across tenants.
    SuperAdmin,
    /// One tenant's keys, budgets and policies.
    TenantAdmin,
    /// Runs the gateway: routes, breakers, health.
    Operator,
    /// Reads the audit trail and evidence, nothing else.
    Auditor,
    /// Reads configuration and state, changes nothing.
    Viewer,
}

/// Something an admin request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See routes, their targets, health and breakers.
    RoutesRead,
    /// Hold a target's breaker open (drain it) or close it.
    RoutesOperate,
    /// Read audit records (a tenant-admin: its own tenant's only).
    AuditRead,
    /// Read policy versions; lint and test policy text.
    PolicyRead,
    /// Apply, roll back and shadow policy versions; dry-run on every tenant's traffic.
    PolicyWrite,
    /// Erase tokenised personal data from the vault (a tenant-admin: its own tenant's).
    PiiErase,
    /// List tenants, teams, users and keys (a tenant-admin: its own tenant's).
    TenancyRead,
    /// Create teams, users and keys, move users, revoke keys (a tenant-admin: in its own
    /// tenant); create tenants (a super-admin only).
    TenancyWrite,
    /// See budgets with their spending, and rate limits (a tenant-admin: its own
    /// tenant's).
    QuotasRead,
    /// Set and delete budgets and rate limits (a tenant-admin: its own tenant's).
    QuotasWrite,
    /// See model prices.
    PricingRead,
    /// Set and remove model prices (they apply to every tenant).
    PricingWrite,
    /// Read chargeback reports (a tenant-admin: its own tenant's).
    ReportsRead,
    /// List provider credentials, by fingerprint (a tenant-scoped admin: its own
    /// tenant's).
    CredentialsRead,
    /// Create, rotate and revoke provider credentials (a tenant-admin: its own tenant's).
    CredentialsWrite,
}

impl Permission {
    pub const ALL: [Permission; 15] = [
        Permission::RoutesRead,
        Permission::RoutesOperate,
        Permission::AuditRead,
        Permission::PolicyRead,
        Permission::PolicyWrite,
        Permission::PiiErase,
        Permission::TenancyRead,
        Permission::TenancyWrite,
        Permission::QuotasRead,
        Permission::QuotasWrite,
        Permission::PricingRead,
        Permission::PricingWrite,
        Permission::ReportsRead,
        Permission::CredentialsRead,
        Permission::CredentialsWrite,
    ];
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::SuperAdmin,
        Role::TenantAdmin,
        Role::Operator,
        Role::Auditor,
        Role::Viewer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super-admin",
            Role::TenantAdmin => "tenant-admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role may do `permission`: the whole matrix.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match permission {
            RoutesRead => matches!(self, SuperAdmin | Operator | Viewer),
            RoutesOperate => matches!(self, SuperAdmin | Operator),
            AuditRead => matches!(self, SuperAdmin | TenantAdmin | Auditor),
            PolicyRead => matches!(self, SuperAdmin | TenantAdmin | Operator | Auditor | Viewer),
            // The policy governs every tenant: only a super-admin changes it.
            PolicyWrite => matches!(self, SuperAdmin),
            PiiErase => matches!(self, SuperAdmin | TenantAdmin),
            TenancyRead | QuotasRead | ReportsRead => {
                matches!(self, SuperAdmin | TenantAdmin | Operator | Viewer)
            }
            TenancyWrite | QuotasWrite => matches!(self, SuperAdmin | TenantAdmin),
            PricingRead => matches!(self, SuperAdmin | TenantAdmin | Operator | Viewer),
            // Prices apply to every tenant's costs.
            PricingWrite => matches!(self, SuperAdmin | Operator),
            // Fingerprints and states, never secrets: those who run the gateway see
            // them too (a provider's 401 is theirs to diagnose); the auditor does not.
            CredentialsRead => matches!(self, SuperAdmin | TenantAdmin | Operator | Viewer),
            CredentialsWrite => matches!(self, SuperAdmin | TenantAdmin),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                format!("unknown role `{s}`; one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The auditor reads audit and evidence, nothing else.
    const ALL_BUT_AUDITOR: [&str; 4] = ["super-admin", "tenant-admin", "operator", "viewer"];

    /// Every cell of the matrix, spelled out.
    #[test]
    fn the_permission_matrix() {
        let expected = [
            (
                Permission::RoutesRead,
                ["super-admin", "operator", "viewer"].as_slice(),
            ),
            (
                Permission::RoutesOperate,
                ["super-admin", "operator"].as_slice(),
            ),
            (
                Permission::AuditRead,
                ["super-admin", "tenant-admin", "auditor"].as_slice(),
            ),
            (
                Permission::PolicyRead,
                [
                    "super-admin",
                    "tenant-admin",
                    "operator",
                    "auditor",
                    "viewer",
                ]
                .as_slice(),
            ),
            (Permission::PolicyWrite, ["super-admin"].as_slice()),
            (
                Permission::PiiErase,
                ["super-admin", "tenant-admin"].as_slice(),
            ),
            (Permission::TenancyRead, ALL_BUT_AUDITOR.as_slice()),
            (
                Permission::TenancyWrite,
                ["super-admin", "tenant-admin"].as_slice(),
            ),
            (Permission::QuotasRead, ALL_BUT_AUDITOR.as_slice()),
            (
                Permission::QuotasWrite,
                ["super-admin", "tenant-admin"].as_slice(),
            ),
            (Permission::PricingRead, ALL_BUT_AUDITOR.as_slice()),
            (
                Permission::PricingWrite,
                ["super-admin", "operator"].as_slice(),
            ),
            (Permission::ReportsRead, ALL_BUT_AUDITOR.as_slice()),
            (
                Permission::CredentialsRead,
                ["super-admin", "tenant-admin", "operator", "viewer"].as_slice(),
            ),
            (
                Permission::CredentialsWrite,
                ["super-admin", "tenant-admin"].as_slice(),
            ),
        ];
        let listed: Vec<Permission> = expected.iter().map(|(p, _)| *p).collect();
        assert_eq!(listed, Permission::ALL, "every permission has its row");
        for (permission, allowed) in expected {
            for role in Role::ALL {
                assert_eq!(
                    role.allows(permission),
                    allowed.contains(&role.name()),
                    "{role} / {permission:?}"
                );
            }
        }
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert!("root".parse::<Role>().unwrap_err().contains("super-admin"));
    }
}
