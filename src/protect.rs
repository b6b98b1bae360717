//! `auth.protect({ permission })` semantics, applied to verified session claims.
//!
//! 1. (verification failures are 401, decided before this point)
//! 2. a required organization / workspace differs from the token's → 403
//! 3. none of the required permissions is in organization ∪ workspace permissions → 403
//!    (ANY of them suffices; a user with no active organization has none → 403)

use crate::claims::Claims;

#[derive(Debug, Clone, Copy)]
pub struct Requirements<'a> {
    pub permissions: &'a [String],
    pub organization: Option<&'a str>,
    pub workspace: Option<&'a str>,
}

#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    #[error("the session's active organization is not the one this API requires")]
    OrganizationMismatch,
    #[error("the session's active workspace is not the one this API requires")]
    WorkspaceMismatch,
    #[error("the session lacks the required permission")]
    MissingPermission,
}

pub fn protect(claims: &Claims, req: &Requirements<'_>) -> Result<(), Denied> {
    if let Some(org) = req.organization
        && claims.organization.as_deref() != Some(org)
    {
        return Err(Denied::OrganizationMismatch);
    }
    if let Some(ws) = req.workspace
        && claims.workspace.as_deref() != Some(ws)
    {
        return Err(Denied::WorkspaceMismatch);
    }
    let mut held = claims
        .organization_permissions
        .iter()
        .chain(&claims.workspace_permissions);
    if held.any(|p| req.permissions.contains(p)) {
        Ok(())
    } else {
        Err(Denied::MissingPermission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(org: &[&str], ws: &[&str]) -> Claims {
        Claims {
            validity: crate::claims::Validity {
                expires: 2_000_000_000,
                not_before: None,
            },
            subject: "1".into(),
            session_id: None,
            organization: Some("42".into()),
            workspace: Some("7".into()),
            organization_permissions: org.iter().map(|s| s.to_string()).collect(),
            workspace_permissions: ws.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn perms(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn any_required_permission_in_either_scope_suffices() {
        let required = perms(&["deployment:read", "deployment:admin"]);
        let req = Requirements {
            permissions: &required,
            organization: None,
            workspace: None,
        };
        assert_eq!(protect(&claims(&["deployment:read"], &[]), &req), Ok(()));
        assert_eq!(protect(&claims(&[], &["deployment:admin"]), &req), Ok(()));
        assert_eq!(
            protect(&claims(&["user:read"], &["deployment:write"]), &req),
            Err(Denied::MissingPermission)
        );
        // No active organization, no permissions: 403, not 401.
        assert_eq!(
            protect(&claims(&[], &[]), &req),
            Err(Denied::MissingPermission)
        );
    }

    #[test]
    fn permission_match_is_exact() {
        let required = perms(&["deployment:read"]);
        let req = Requirements {
            permissions: &required,
            organization: None,
            workspace: None,
        };
        for near in [
            "deployment:Read",
            "deployment:read ",
            "deployment:*",
            "deployment",
        ] {
            assert_eq!(
                protect(&claims(&[near], &[]), &req),
                Err(Denied::MissingPermission)
            );
        }
    }

    #[test]
    fn required_organization_and_workspace() {
        let required = perms(&["deployment:read"]);
        let c = claims(&["deployment:read"], &[]);
        let req = Requirements {
            permissions: &required,
            organization: Some("42"),
            workspace: Some("7"),
        };
        assert_eq!(protect(&c, &req), Ok(()));
        let req = Requirements {
            permissions: &required,
            organization: Some("43"),
            workspace: None,
        };
        assert_eq!(protect(&c, &req), Err(Denied::OrganizationMismatch));
        let req = Requirements {
            permissions: &required,
            organization: None,
            workspace: Some("8"),
        };
        assert_eq!(protect(&c, &req), Err(Denied::WorkspaceMismatch));
        let mut none = c.clone();
        none.organization = None;
        let req = Requirements {
            permissions: &required,
            organization: Some("42"),
            workspace: None,
        };
        assert_eq!(protect(&none, &req), Err(Denied::OrganizationMismatch));
    }
}
