//! Users, roles, grants and access tokens on the same SQL store: [`AuthStore`] for
//! [`SqlStore`].
use crate::db::{Row, Tx, Val};
use crate::tracking::SqlStore;
use cairn_core::auth::{
    AccessToken, AuthStore, Permission, ResourceType, Role, RoleAssignment, RolePermission, User,
};
use cairn_core::{Error, Result};

const USER_COLUMNS: &str = "id, username, password_hash, is_admin";
const GRANT_COLUMNS: &str = "id, role_id, resource_type, resource_pattern, permission";
const TOKEN_COLUMNS: &str = "id, user_id, name, token_hash, created_ms, expires_ms, revoked";

fn user_from(row: &Row) -> User {
    User {
        id: row[0].int(),
        username: row[1].text(),
        password_hash: row[2].text(),
        is_admin: row[3].int() != 0,
    }
}

fn grant_from(row: &Row) -> Result<RolePermission> {
    Ok(RolePermission {
        id: row[0].int(),
        role_id: row[1].int(),
        resource_type: ResourceType::parse(&row[2].text())?,
        resource_pattern: row[3].text(),
        permission: Permission::parse(&row[4].text())?,
    })
}

fn token_from(row: &Row) -> AccessToken {
    AccessToken {
        id: row[0].int(),
        user_id: row[1].int(),
        name: row[2].text(),
        token_hash: row[3].text(),
        created_ms: row[4].int(),
        expires_ms: row[5].opt_int(),
        revoked: row[6].int() != 0,
    }
}

fn one_user(tx: &mut dyn Tx, clause: &str, arg: Val) -> Result<Option<User>> {
    let rows = tx.query(
        &format!("SELECT {USER_COLUMNS} FROM auth_users WHERE {clause}"),
        &[arg],
    )?;
    Ok(rows.first().map(user_from))
}

/// Roles with their grants, in the order of `rows` (`id, name, workspace, description`).
fn roles_with_grants(tx: &mut dyn Tx, rows: Vec<Row>) -> Result<Vec<Role>> {
    let mut roles = Vec::with_capacity(rows.len());
    for row in rows {
        let id = row[0].int();
        let grants = tx.query(
            &format!(
                "SELECT {GRANT_COLUMNS} FROM auth_role_permissions WHERE role_id = ? ORDER BY id"
            ),
            &[id.into()],
        )?;
        roles.push(Role {
            id,
            name: row[1].text(),
            workspace: row[2].text(),
            description: row[3].opt_text(),
            permissions: grants.iter().map(grant_from).collect::<Result<_>>()?,
        });
    }
    Ok(roles)
}

fn role_rows(tx: &mut dyn Tx, clause: &str, args: &[Val]) -> Result<Vec<Role>> {
    let rows = tx.query(
        &format!("SELECT id, name, workspace, description FROM auth_roles {clause}"),
        args,
    )?;
    roles_with_grants(tx, rows)
}

fn grant_by_id(tx: &mut dyn Tx, id: i64) -> Result<Option<RolePermission>> {
    let rows = tx.query(
        &format!("SELECT {GRANT_COLUMNS} FROM auth_role_permissions WHERE id = ?"),
        &[id.into()],
    )?;
    rows.first().map(grant_from).transpose()
}

fn assignment(tx: &mut dyn Tx, user_id: i64, role_id: i64) -> Result<Option<RoleAssignment>> {
    let rows = tx.query(
        "SELECT id, user_id, role_id FROM auth_user_roles WHERE user_id = ? AND role_id = ?",
        &[user_id.into(), role_id.into()],
    )?;
    Ok(rows.first().map(|r| RoleAssignment {
        id: r[0].int(),
        user_id: r[1].int(),
        role_id: r[2].int(),
    }))
}

fn delete_role_in(tx: &mut dyn Tx, id: i64) -> Result<()> {
    tx.exec(
        "DELETE FROM auth_role_permissions WHERE role_id = ?",
        &[id.into()],
    )?;
    tx.exec(
        "DELETE FROM auth_user_roles WHERE role_id = ?",
        &[id.into()],
    )?;
    tx.exec("DELETE FROM auth_roles WHERE id = ?", &[id.into()])?;
    Ok(())
}

impl AuthStore for SqlStore {
    fn create_user(&self, username: &str, password_hash: &str, is_admin: bool) -> Result<User> {
        self.write(|tx| {
            let rows = tx.query(
                "INSERT INTO auth_users (username, password_hash, is_admin) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING RETURNING id",
                &[
                    username.into(),
                    password_hash.into(),
                    i64::from(is_admin).into(),
                ],
            )?;
            let id = rows.first().map(|r| r[0].int()).ok_or_else(|| {
                Error::AlreadyExists(format!("User (username={username}) already exists."))
            })?;
            Ok(User {
                id,
                username: username.to_string(),
                password_hash: password_hash.to_string(),
                is_admin,
            })
        })
    }

    fn get_user(&self, username: &str) -> Result<Option<User>> {
        self.read(|tx| one_user(tx, "username = ?", username.into()))
    }

    fn get_user_by_id(&self, id: i64) -> Result<Option<User>> {
        self.read(|tx| one_user(tx, "id = ?", id.into()))
    }

    fn list_users(&self) -> Result<Vec<User>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!("SELECT {USER_COLUMNS} FROM auth_users ORDER BY username"),
                &[],
            )?;
            Ok(rows.iter().map(user_from).collect())
        })
    }

    fn set_password_hash(&self, user_id: i64, password_hash: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE auth_users SET password_hash = ? WHERE id = ?",
                &[password_hash.into(), user_id.into()],
            )?;
            Ok(())
        })
    }

    fn set_admin(&self, user_id: i64, is_admin: bool) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE auth_users SET is_admin = ? WHERE id = ?",
                &[i64::from(is_admin).into(), user_id.into()],
            )?;
            Ok(())
        })
    }

    fn delete_user(&self, user_id: i64) -> Result<()> {
        self.write(|tx| {
            let personal = tx.query(
                "SELECT id FROM auth_roles WHERE workspace = ? AND name = ?",
                &[
                    cairn_core::auth::DEFAULT_WORKSPACE.into(),
                    cairn_core::auth::personal_role_name(user_id).into(),
                ],
            )?;
            if let Some(row) = personal.first() {
                delete_role_in(tx, row[0].int())?;
            }
            tx.exec(
                "DELETE FROM auth_user_roles WHERE user_id = ?",
                &[user_id.into()],
            )?;
            tx.exec(
                "DELETE FROM auth_tokens WHERE user_id = ?",
                &[user_id.into()],
            )?;
            tx.exec("DELETE FROM auth_users WHERE id = ?", &[user_id.into()])?;
            Ok(())
        })
    }

    fn create_role(&self, name: &str, workspace: &str, description: Option<&str>) -> Result<Role> {
        self.write(|tx| {
            let rows = tx.query(
                "INSERT INTO auth_roles (name, workspace, description) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING RETURNING id",
                &[name.into(), workspace.into(), description.into()],
            )?;
            let id = rows.first().map(|r| r[0].int()).ok_or_else(|| {
                Error::AlreadyExists(format!(
                    "Role (name={name}, workspace={workspace}) already exists."
                ))
            })?;
            Ok(Role {
                id,
                name: name.to_string(),
                workspace: workspace.to_string(),
                description: description.map(str::to_string),
                permissions: vec![],
            })
        })
    }

    fn get_role(&self, id: i64) -> Result<Option<Role>> {
        self.read(|tx| Ok(role_rows(tx, "WHERE id = ?", &[id.into()])?.pop()))
    }

    fn get_role_by_name(&self, workspace: &str, name: &str) -> Result<Option<Role>> {
        self.read(|tx| {
            Ok(role_rows(
                tx,
                "WHERE workspace = ? AND name = ?",
                &[workspace.into(), name.into()],
            )?
            .pop())
        })
    }

    fn list_roles(&self, workspace: Option<&str>) -> Result<Vec<Role>> {
        self.read(|tx| match workspace {
            Some(w) => role_rows(tx, "WHERE workspace = ? ORDER BY name", &[w.into()]),
            None => role_rows(tx, "ORDER BY workspace, name", &[]),
        })
    }

    fn update_role(&self, id: i64, name: Option<&str>, description: Option<&str>) -> Result<()> {
        self.write(|tx| {
            if let Some(name) = name {
                let taken = tx.query(
                    "SELECT id FROM auth_roles WHERE name = ? AND id <> ? AND workspace = \
                     (SELECT workspace FROM auth_roles WHERE id = ?)",
                    &[name.into(), id.into(), id.into()],
                )?;
                if !taken.is_empty() {
                    return Err(Error::AlreadyExists(format!(
                        "Role (name={name}) already exists."
                    )));
                }
                tx.exec(
                    "UPDATE auth_roles SET name = ? WHERE id = ?",
                    &[name.into(), id.into()],
                )?;
            }
            if let Some(description) = description {
                tx.exec(
                    "UPDATE auth_roles SET description = ? WHERE id = ?",
                    &[description.into(), id.into()],
                )?;
            }
            Ok(())
        })
    }

    fn delete_role(&self, id: i64) -> Result<()> {
        self.write(|tx| delete_role_in(tx, id))
    }

    fn upsert_role_permission(
        &self,
        role_id: i64,
        resource_type: ResourceType,
        pattern: &str,
        permission: Permission,
    ) -> Result<RolePermission> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO auth_role_permissions (role_id, resource_type, resource_pattern, permission) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (role_id, resource_type, resource_pattern) \
                 DO UPDATE SET permission = excluded.permission",
                &[
                    role_id.into(),
                    resource_type.as_str().into(),
                    pattern.into(),
                    permission.as_str().into(),
                ],
            )?;
            let rows = tx.query(
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM auth_role_permissions \
                     WHERE role_id = ? AND resource_type = ? AND resource_pattern = ?"
                ),
                &[role_id.into(), resource_type.as_str().into(), pattern.into()],
            )?;
            rows.first()
                .map(grant_from)
                .transpose()?
                .ok_or_else(|| Error::Storage("grant vanished after upsert".into()))
        })
    }

    fn get_role_permission(&self, id: i64) -> Result<Option<RolePermission>> {
        self.read(|tx| grant_by_id(tx, id))
    }

    fn set_role_permission(&self, id: i64, permission: Permission) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE auth_role_permissions SET permission = ? WHERE id = ?",
                &[permission.as_str().into(), id.into()],
            )?;
            Ok(())
        })
    }

    fn delete_role_permission(&self, id: i64) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "DELETE FROM auth_role_permissions WHERE id = ?",
                &[id.into()],
            )?;
            Ok(())
        })
    }

    fn delete_role_permission_for(
        &self,
        role_id: i64,
        resource_type: ResourceType,
        pattern: &str,
    ) -> Result<bool> {
        self.write(|tx| {
            let n = tx.exec(
                "DELETE FROM auth_role_permissions WHERE role_id = ? AND resource_type = ? \
                 AND resource_pattern = ?",
                &[
                    role_id.into(),
                    resource_type.as_str().into(),
                    pattern.into(),
                ],
            )?;
            Ok(n > 0)
        })
    }

    fn assign_role(&self, user_id: i64, role_id: i64) -> Result<RoleAssignment> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO auth_user_roles (user_id, role_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                &[user_id.into(), role_id.into()],
            )?;
            assignment(tx, user_id, role_id)?
                .ok_or_else(|| Error::Storage("assignment vanished after insert".into()))
        })
    }

    fn unassign_role(&self, user_id: i64, role_id: i64) -> Result<()> {
        self.write(|tx| {
            let n = tx.exec(
                "DELETE FROM auth_user_roles WHERE user_id = ? AND role_id = ?",
                &[user_id.into(), role_id.into()],
            )?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "User id={user_id} does not hold role id={role_id}"
                )));
            }
            Ok(())
        })
    }

    fn user_roles(&self, user_id: i64) -> Result<Vec<Role>> {
        self.read(|tx| {
            role_rows(
                tx,
                "WHERE id IN (SELECT role_id FROM auth_user_roles WHERE user_id = ?) ORDER BY name",
                &[user_id.into()],
            )
        })
    }

    fn role_assignments(&self, role_id: i64) -> Result<Vec<RoleAssignment>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT id, user_id, role_id FROM auth_user_roles WHERE role_id = ? ORDER BY id",
                &[role_id.into()],
            )?;
            Ok(rows
                .iter()
                .map(|r| RoleAssignment {
                    id: r[0].int(),
                    user_id: r[1].int(),
                    role_id: r[2].int(),
                })
                .collect())
        })
    }

    fn matching_grants(
        &self,
        user_id: i64,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<Vec<Permission>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT p.permission FROM auth_role_permissions p \
                 JOIN auth_user_roles u ON u.role_id = p.role_id \
                 WHERE u.user_id = ? AND p.resource_type = ? \
                 AND (p.resource_pattern = ? OR p.resource_pattern = '*')",
                &[
                    user_id.into(),
                    resource_type.as_str().into(),
                    resource_id.into(),
                ],
            )?;
            rows.iter()
                .map(|r| Permission::parse(&r[0].text()))
                .collect()
        })
    }

    fn delete_grants_on(&self, resource_type: ResourceType, resource_id: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "DELETE FROM auth_role_permissions WHERE resource_type = ? AND resource_pattern = ?",
                &[resource_type.as_str().into(), resource_id.into()],
            )?;
            Ok(())
        })
    }

    fn rename_grants(&self, resource_type: ResourceType, old_id: &str, new_id: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE auth_role_permissions SET resource_pattern = ? \
                 WHERE resource_type = ? AND resource_pattern = ?",
                &[new_id.into(), resource_type.as_str().into(), old_id.into()],
            )?;
            Ok(())
        })
    }

    fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        created_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<AccessToken> {
        self.write(|tx| {
            let rows = tx.query(
                "INSERT INTO auth_tokens (user_id, name, token_hash, created_ms, expires_ms, revoked) \
                 VALUES (?, ?, ?, ?, ?, 0) RETURNING id",
                &[
                    user_id.into(),
                    name.into(),
                    token_hash.into(),
                    created_ms.into(),
                    expires_ms.into(),
                ],
            )?;
            let id = rows
                .first()
                .map(|r| r[0].int())
                .ok_or_else(|| Error::Storage("token insert returned no id".into()))?;
            Ok(AccessToken {
                id,
                user_id,
                name: name.to_string(),
                token_hash: token_hash.to_string(),
                created_ms,
                expires_ms,
                revoked: false,
            })
        })
    }

    fn token_by_hash(&self, token_hash: &str) -> Result<Option<AccessToken>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!("SELECT {TOKEN_COLUMNS} FROM auth_tokens WHERE token_hash = ?"),
                &[token_hash.into()],
            )?;
            Ok(rows.first().map(token_from))
        })
    }

    fn list_tokens(&self, user_id: i64) -> Result<Vec<AccessToken>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM auth_tokens WHERE user_id = ? ORDER BY id DESC"
                ),
                &[user_id.into()],
            )?;
            Ok(rows.iter().map(token_from).collect())
        })
    }

    fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<()> {
        self.write(|tx| {
            let n = tx.exec(
                "UPDATE auth_tokens SET revoked = 1 WHERE id = ? AND user_id = ?",
                &[token_id.into(), user_id.into()],
            )?;
            if n == 0 {
                return Err(Error::not_found(format!("Token id={token_id} not found")));
            }
            Ok(())
        })
    }
}
