//! Who may do what: users, access tokens, roles and grants, with the permission levels and
//! rules of `mlflow server --app-name basic-auth` 3.17 (`mlflow/server/auth/permissions.py`).
//!
//! A grant is a role permission: (resource type, resource pattern — an id or `*`, level).
//! A user holds roles; a direct grant to a user lives in the user's own hidden role
//! `__user_<id>__`, as in MLflow. A user's permission on a resource is the highest level among
//! the grants that match it, except that any matching DENY wins; with no grant, the server's
//! default permission applies; admins may do everything.
use crate::{Error, Result};
use std::sync::Arc;

/// A permission level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Nothing.
    NoPermissions,
    /// Read.
    Read,
    /// Read and use (run inference on a model).
    Use,
    /// Read, use and change.
    Edit,
    /// Everything, including delete and grant.
    Manage,
    /// Explicitly nothing; wins over every other matching grant.
    Deny,
}

impl Permission {
    /// Every level, by MLflow's name.
    pub const ALL: [Permission; 6] = [
        Permission::Read,
        Permission::Use,
        Permission::Edit,
        Permission::Manage,
        Permission::NoPermissions,
        Permission::Deny,
    ];

    /// MLflow's name (`READ`, `USE`, `EDIT`, `MANAGE`, `NO_PERMISSIONS`, `DENY`).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::NoPermissions => "NO_PERMISSIONS",
            Permission::Read => "READ",
            Permission::Use => "USE",
            Permission::Edit => "EDIT",
            Permission::Manage => "MANAGE",
            Permission::Deny => "DENY",
        }
    }

    /// Parses MLflow's name.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid permission '{name}'. Valid permissions are: READ, USE, EDIT, MANAGE, NO_PERMISSIONS, DENY"
                ))
            })
    }

    /// MLflow's priority: DENY lowest (it wins by rule, not by rank).
    fn priority(self) -> i8 {
        match self {
            Permission::Deny => -1,
            Permission::NoPermissions => 0,
            Permission::Read => 1,
            Permission::Use => 2,
            Permission::Edit => 3,
            Permission::Manage => 4,
        }
    }

    /// Whether this level includes `needed` (DENY and NO_PERMISSIONS include nothing).
    pub fn allows(self, needed: Permission) -> bool {
        !matches!(self, Permission::Deny | Permission::NoPermissions)
            && self.priority() >= needed.priority()
    }

    /// Reads (`can_read`).
    pub fn can_read(self) -> bool {
        self.allows(Permission::Read)
    }

    /// Uses (`can_use`).
    pub fn can_use(self) -> bool {
        self.allows(Permission::Use)
    }

    /// The effective level from every grant that matches: any DENY wins, else the highest;
    /// `None` when nothing matches.
    pub fn combine(grants: impl IntoIterator<Item = Permission>) -> Option<Permission> {
        let mut best: Option<Permission> = None;
        for p in grants {
            if p == Permission::Deny {
                return Some(Permission::Deny);
            }
            if best.is_none_or(|b| p.priority() > b.priority()) {
                best = Some(p);
            }
        }
        best
    }
}

/// What a grant is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// An experiment (its runs, logged models and artifacts inherit).
    Experiment,
    /// A registered model (its versions, aliases and served endpoints inherit).
    RegisteredModel,
}

impl ResourceType {
    /// MLflow's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Experiment => "experiment",
            ResourceType::RegisteredModel => "registered_model",
        }
    }

    /// Parses MLflow's name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "experiment" => Ok(ResourceType::Experiment),
            "registered_model" => Ok(ResourceType::RegisteredModel),
            other => Err(Error::invalid(format!(
                "Unsupported resource_type '{other}'. Supported: experiment, registered_model"
            ))),
        }
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Numeric id.
    pub id: i64,
    /// Unique name.
    pub username: String,
    /// Argon2id PHC string; never leaves the server.
    pub password_hash: String,
    /// Admins may do everything.
    pub is_admin: bool,
}

/// One grant of a role.
#[derive(Debug, Clone, PartialEq)]
pub struct RolePermission {
    /// Numeric id.
    pub id: i64,
    /// The role.
    pub role_id: i64,
    /// `experiment` or `registered_model`.
    pub resource_type: ResourceType,
    /// The resource's id (experiment id, model name) or `*` for all.
    pub resource_pattern: String,
    /// The level.
    pub permission: Permission,
}

/// A role: a named set of grants.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    /// Numeric id.
    pub id: i64,
    /// Unique name (within the workspace).
    pub name: String,
    /// Always `default` in Cairn (MLflow's workspaces are not modelled).
    pub workspace: String,
    /// Free text.
    pub description: Option<String>,
    /// Its grants.
    pub permissions: Vec<RolePermission>,
}

/// A user holding a role.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleAssignment {
    /// Numeric id.
    pub id: i64,
    /// The user.
    pub user_id: i64,
    /// The role.
    pub role_id: i64,
}

/// A personal access token as stored: only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessToken {
    /// Numeric id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// A label the owner chose.
    pub name: String,
    /// BLAKE3 of the token, hex.
    pub token_hash: String,
    /// Creation time, ms.
    pub created_ms: i64,
    /// Expiry, ms (`None`: never).
    pub expires_ms: Option<i64>,
    /// Revoked tokens never authenticate again.
    pub revoked: bool,
}

/// Users, roles, grants and tokens. Every method is one transaction.
pub trait AuthStore: Send + Sync {
    /// Creates a user; `AlreadyExists` if the name is taken.
    fn create_user(&self, username: &str, password_hash: &str, is_admin: bool) -> Result<User>;
    /// A user by name.
    fn get_user(&self, username: &str) -> Result<Option<User>>;
    /// A user by id.
    fn get_user_by_id(&self, id: i64) -> Result<Option<User>>;
    /// Every user, by name.
    fn list_users(&self) -> Result<Vec<User>>;
    /// Replaces a password hash.
    fn set_password_hash(&self, user_id: i64, password_hash: &str) -> Result<()>;
    /// Sets the admin flag.
    fn set_admin(&self, user_id: i64, is_admin: bool) -> Result<()>;
    /// Deletes a user, their role assignments, their own role and their tokens.
    fn delete_user(&self, user_id: i64) -> Result<()>;
    /// Creates a role; `AlreadyExists` if the name is taken in the workspace.
    fn create_role(&self, name: &str, workspace: &str, description: Option<&str>) -> Result<Role>;
    /// A role with its grants.
    fn get_role(&self, id: i64) -> Result<Option<Role>>;
    /// A role by name.
    fn get_role_by_name(&self, workspace: &str, name: &str) -> Result<Option<Role>>;
    /// Roles (with grants) of a workspace, or of all.
    fn list_roles(&self, workspace: Option<&str>) -> Result<Vec<Role>>;
    /// Renames a role or changes its description.
    fn update_role(&self, id: i64, name: Option<&str>, description: Option<&str>) -> Result<()>;
    /// Deletes a role, its grants and assignments.
    fn delete_role(&self, id: i64) -> Result<()>;
    /// Adds a grant to a role, or changes the level of the same (type, pattern) grant.
    fn upsert_role_permission(
        &self,
        role_id: i64,
        resource_type: ResourceType,
        pattern: &str,
        permission: Permission,
    ) -> Result<RolePermission>;
    /// One grant.
    fn get_role_permission(&self, id: i64) -> Result<Option<RolePermission>>;
    /// Changes a grant's level.
    fn set_role_permission(&self, id: i64, permission: Permission) -> Result<()>;
    /// Removes a grant.
    fn delete_role_permission(&self, id: i64) -> Result<()>;
    /// Removes a role's grants on (type, pattern); whether one existed.
    fn delete_role_permission_for(
        &self,
        role_id: i64,
        resource_type: ResourceType,
        pattern: &str,
    ) -> Result<bool>;
    /// Gives a user a role (idempotent).
    fn assign_role(&self, user_id: i64, role_id: i64) -> Result<RoleAssignment>;
    /// Takes a role away; `NotFound` if the user did not hold it.
    fn unassign_role(&self, user_id: i64, role_id: i64) -> Result<()>;
    /// The roles a user holds (with grants).
    fn user_roles(&self, user_id: i64) -> Result<Vec<Role>>;
    /// Who holds a role.
    fn role_assignments(&self, role_id: i64) -> Result<Vec<RoleAssignment>>;
    /// The levels of every grant, across the user's roles, on `resource_id` or `*`.
    fn matching_grants(
        &self,
        user_id: i64,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<Vec<Permission>>;
    /// Removes every grant on a resource (it was deleted; a new one of the same id must not
    /// inherit them).
    fn delete_grants_on(&self, resource_type: ResourceType, resource_id: &str) -> Result<()>;
    /// Moves every grant on a resource to its new id (a renamed model keeps its grants).
    fn rename_grants(&self, resource_type: ResourceType, old_id: &str, new_id: &str) -> Result<()>;
    /// Stores a token.
    fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        created_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<AccessToken>;
    /// A token by its hash.
    fn token_by_hash(&self, token_hash: &str) -> Result<Option<AccessToken>>;
    /// A user's tokens, newest first.
    fn list_tokens(&self, user_id: i64) -> Result<Vec<AccessToken>>;
    /// Revokes a token of a user; `NotFound` if there is no such token.
    fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<()>;
}

/// Shortest password taken (MLflow 3.17's rule, after CVE-2025-11200).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Prefix of Cairn's access tokens (so a leaked one is recognisable and greppable).
pub const TOKEN_PREFIX: &str = "cairn_";
/// The workspace every role lives in.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Checks a new password.
pub fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(format!(
            "Password must be at least {MIN_PASSWORD_CHARS} characters."
        )));
    }
    Ok(())
}

/// Checks a username: non-empty, printable, no `:` (HTTP Basic splits on it), at most 256.
pub fn validate_username(username: &str) -> Result<()> {
    if username.is_empty() {
        return Err(Error::invalid("Username cannot be empty."));
    }
    if username.contains(':') || username.chars().any(char::is_control) || username.len() > 256 {
        return Err(Error::invalid(format!(
            "Invalid username '{username}': no ':', no control characters, at most 256 bytes"
        )));
    }
    Ok(())
}

/// The hidden role that holds a user's direct grants.
pub fn personal_role_name(user_id: i64) -> String {
    format!("__user_{user_id}__")
}

/// Whether a role name is reserved for a user's direct grants.
pub fn is_personal_role_name(name: &str) -> bool {
    name.strip_prefix("__user_")
        .and_then(|r| r.strip_suffix("__"))
        .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
}

/// Hashes passwords (memory-hard, salted) and checks them; tokens' hashes. Kept behind a trait
/// so the domain does not pick the algorithm's parameters.
pub trait PasswordHasher: Send + Sync {
    /// A PHC string for `password`.
    fn hash(&self, password: &str) -> Result<String>;
    /// Whether `password` matches `hash` (constant time in the password).
    fn verify(&self, password: &str, hash: &str) -> bool;
}

/// The authorization service: users, grants and permission resolution.
#[derive(Clone)]
pub struct Auth {
    store: Arc<dyn AuthStore>,
    hasher: Arc<dyn PasswordHasher>,
    default_permission: Permission,
    /// A hash of a random password, checked for unknown users so they cost what known do.
    decoy: Arc<std::sync::OnceLock<String>>,
}

impl Auth {
    /// A service over `store`; resources without a grant get `default_permission`.
    pub fn new(
        store: Arc<dyn AuthStore>,
        hasher: Arc<dyn PasswordHasher>,
        default_permission: Permission,
    ) -> Self {
        Auth {
            store,
            hasher,
            default_permission,
            decoy: Arc::default(),
        }
    }

    /// The store (for listings the API shapes itself).
    pub fn store(&self) -> &dyn AuthStore {
        self.store.as_ref()
    }

    /// The level resources without a grant get.
    pub fn default_permission(&self) -> Permission {
        self.default_permission
    }

    /// Creates a user after checking name and password.
    pub fn create_user(&self, username: &str, password: &str, is_admin: bool) -> Result<User> {
        validate_username(username)?;
        validate_password(password)?;
        let hash = self.hasher.hash(password)?;
        self.store
            .create_user(username, &hash, is_admin)
            .map_err(|e| match e {
                Error::AlreadyExists(_) => {
                    Error::AlreadyExists(format!("User (username={username}) already exists."))
                }
                other => other,
            })
    }

    /// A user by name; `NotFound` in MLflow's words.
    pub fn user(&self, username: &str) -> Result<User> {
        self.store
            .get_user(username)?
            .ok_or_else(|| Error::not_found(format!("User with username={username} not found")))
    }

    /// The user whose password this is, or `None` (unknown user or wrong password; the two are
    /// not told apart). The hash is checked even for unknown users, so timing does not tell.
    pub fn check_password(&self, username: &str, password: &str) -> Result<Option<User>> {
        match self.store.get_user(username)? {
            Some(user) if self.hasher.verify(password, &user.password_hash) => Ok(Some(user)),
            Some(_) => Ok(None),
            None => {
                let decoy = self.decoy.get_or_init(|| {
                    let random: String = (0..24).map(|_| rand::random::<char>()).collect();
                    self.hasher.hash(&random).unwrap_or_default()
                });
                let _ = self.hasher.verify(password, decoy);
                Ok(None)
            }
        }
    }

    /// Changes a password.
    pub fn set_password(&self, username: &str, password: &str) -> Result<()> {
        validate_password(password)?;
        let user = self.user(username)?;
        let hash = self.hasher.hash(password)?;
        self.store.set_password_hash(user.id, &hash)
    }

    /// The effective permission of `user` on a resource.
    pub fn permission(
        &self,
        user: &User,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<Permission> {
        if user.is_admin {
            return Ok(Permission::Manage);
        }
        let grants = self
            .store
            .matching_grants(user.id, resource_type, resource_id)?;
        Ok(Permission::combine(grants).unwrap_or(self.default_permission))
    }

    /// The user's own role (created on first use).
    pub fn personal_role(&self, user: &User) -> Result<Role> {
        let name = personal_role_name(user.id);
        if let Some(role) = self.store.get_role_by_name(DEFAULT_WORKSPACE, &name)? {
            return Ok(role);
        }
        let role = match self.store.create_role(&name, DEFAULT_WORKSPACE, None) {
            Ok(role) => role,
            // Created by a concurrent request.
            Err(Error::AlreadyExists(_)) => self
                .store
                .get_role_by_name(DEFAULT_WORKSPACE, &name)?
                .ok_or_else(|| Error::Storage("personal role vanished".into()))?,
            Err(e) => return Err(e),
        };
        self.store.assign_role(user.id, role.id)?;
        Ok(role)
    }

    /// Grants `user` a level on a resource directly (replacing an earlier direct grant).
    pub fn grant(
        &self,
        user: &User,
        resource_type: ResourceType,
        resource_id: &str,
        permission: Permission,
    ) -> Result<()> {
        if resource_id.is_empty() {
            return Err(Error::invalid("resource_id cannot be empty"));
        }
        let role = self.personal_role(user)?;
        self.store
            .upsert_role_permission(role.id, resource_type, resource_id, permission)?;
        Ok(())
    }

    /// Removes `user`'s direct grant on a resource; `NotFound` when there was none.
    pub fn revoke(
        &self,
        user: &User,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<()> {
        let role = self.personal_role(user)?;
        if self
            .store
            .delete_role_permission_for(role.id, resource_type, resource_id)?
        {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "No permission on {} '{resource_id}' granted to user {}",
                resource_type.as_str(),
                user.username
            )))
        }
    }

    /// Creates a role; names of users' own roles are reserved.
    pub fn create_role(
        &self,
        workspace: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<Role> {
        if name.trim().is_empty() {
            return Err(Error::invalid("Role name cannot be empty."));
        }
        if is_personal_role_name(name) {
            return Err(Error::invalid(format!(
                "Role name '{name}' is reserved for a user's direct permissions"
            )));
        }
        self.store.create_role(name, workspace, description)
    }

    /// A role; `NotFound` in MLflow's words.
    pub fn role(&self, id: i64) -> Result<Role> {
        self.store
            .get_role(id)?
            .ok_or_else(|| Error::not_found(format!("Role with id={id} not found")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_and_the_highest_grant_counts() {
        use Permission::*;
        assert_eq!(Permission::combine([Read, Manage, Use]), Some(Manage));
        assert_eq!(Permission::combine([Manage, Deny, Edit]), Some(Deny));
        assert_eq!(Permission::combine([NoPermissions]), Some(NoPermissions));
        assert_eq!(Permission::combine([]), None);
        assert!(Edit.allows(Use) && Edit.allows(Read) && !Edit.allows(Manage));
        assert!(!Deny.allows(Read) && !NoPermissions.allows(Read));
        assert!(Use.can_use() && !Read.can_use() && Read.can_read());
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()).ok(), Some(p));
        }
        assert!(Permission::parse("ADMIN").is_err());
    }

    #[test]
    fn passwords_and_names_follow_mlflows_rules() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("exactly-12ch").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("a:b").is_err());
        assert!(is_personal_role_name("__user_12__"));
        assert!(!is_personal_role_name("__user___") && !is_personal_role_name("team"));
    }
}
