//! Users, roles, grants and tokens through `cairn_core::auth::Auth`, on SQLite (always) and on
//! PostgreSQL (when CAIRN_TEST_POSTGRES_URL is set): one behaviour on both.
#![allow(clippy::unwrap_used)]

use cairn_core::auth::{Auth, PasswordHasher, Permission, ResourceType};
use cairn_core::{Error, Result};
use cairn_store::SqlStore;
use std::sync::Arc;

/// A fast stand-in for Argon2 (the store never sees the password, only the hash).
struct PlainHasher;

impl PasswordHasher for PlainHasher {
    fn hash(&self, password: &str) -> Result<String> {
        Ok(format!("plain:{password}"))
    }
    fn verify(&self, password: &str, hash: &str) -> bool {
        hash == format!("plain:{password}")
    }
}

fn auth(store: SqlStore, default: Permission) -> Auth {
    Auth::new(Arc::new(store), Arc::new(PlainHasher), default)
}

fn sqlite() -> (SqlStore, tempfile::TempDir) {
    cairn_test::tally("sqlite");
    let dir = tempfile::tempdir().unwrap();
    (
        SqlStore::open_sqlite(dir.path().join("cairn.db")).unwrap(),
        dir,
    )
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $name() { let (s, _dir) = super::sqlite(); super::$name(s); } )*
        }
        mod on_postgres {
            $( #[test] fn $name() {
                if let Some(db) = cairn_test::PgDatabase::create(stringify!($name)) {
                    super::$name(cairn_store::SqlStore::open(&db.url).unwrap());
                    drop(db);
                }
            } )*
        }
    };
}

both!(
    users_life_cycle,
    grants_resolve_as_mlflow_resolves,
    roles_and_assignments,
    tokens_are_stored_as_hashes
);

const PASSWORD: &str = "twelve-chars-at-least";

fn users_life_cycle(store: SqlStore) {
    let a = auth(store, Permission::Read);
    let alice = a.create_user("alice", PASSWORD, false).unwrap();
    assert!(matches!(
        a.create_user("alice", PASSWORD, false),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        a.create_user("bob", "short", false),
        Err(Error::InvalidParameter(_))
    ));
    assert_eq!(
        a.check_password("alice", PASSWORD).unwrap().map(|u| u.id),
        Some(alice.id)
    );
    assert_eq!(a.check_password("alice", "wrong-password-x").unwrap(), None);
    assert_eq!(a.check_password("nobody", PASSWORD).unwrap(), None);
    a.set_password("alice", "another-long-password").unwrap();
    assert!(a.check_password("alice", PASSWORD).unwrap().is_none());
    a.store().set_admin(alice.id, true).unwrap();
    assert!(a.user("alice").unwrap().is_admin);
    a.grant(&alice, ResourceType::Experiment, "1", Permission::Edit)
        .unwrap();
    a.store().delete_user(alice.id).unwrap();
    assert!(matches!(a.user("alice"), Err(Error::NotFound(_))));
    assert!(a.store().list_users().unwrap().is_empty());
    // A new user of the same name inherits nothing.
    let again = a.create_user("alice", PASSWORD, false).unwrap();
    assert_eq!(
        a.permission(&again, ResourceType::Experiment, "1").unwrap(),
        Permission::Read
    );
}

fn grants_resolve_as_mlflow_resolves(store: SqlStore) {
    let a = auth(store, Permission::NoPermissions);
    let bob = a.create_user("bob", PASSWORD, false).unwrap();
    let exp = ResourceType::Experiment;
    assert_eq!(
        a.permission(&bob, exp, "7").unwrap(),
        Permission::NoPermissions
    );
    a.grant(&bob, exp, "7", Permission::Read).unwrap();
    a.grant(&bob, exp, "7", Permission::Edit).unwrap();
    assert_eq!(a.permission(&bob, exp, "7").unwrap(), Permission::Edit);
    // Another resource, another type: untouched.
    assert_eq!(
        a.permission(&bob, exp, "8").unwrap(),
        Permission::NoPermissions
    );
    assert_eq!(
        a.permission(&bob, ResourceType::RegisteredModel, "7")
            .unwrap(),
        Permission::NoPermissions
    );
    // A role's `*` grant applies to every experiment; a DENY anywhere wins.
    let role = a.create_role("default", "readers", None).unwrap();
    a.store()
        .upsert_role_permission(role.id, exp, "*", Permission::Manage)
        .unwrap();
    a.store().assign_role(bob.id, role.id).unwrap();
    assert_eq!(a.permission(&bob, exp, "8").unwrap(), Permission::Manage);
    let deny = a.create_role("default", "deny-7", None).unwrap();
    a.store()
        .upsert_role_permission(deny.id, exp, "7", Permission::Deny)
        .unwrap();
    a.store().assign_role(bob.id, deny.id).unwrap();
    assert_eq!(a.permission(&bob, exp, "7").unwrap(), Permission::Deny);
    assert_eq!(a.permission(&bob, exp, "8").unwrap(), Permission::Manage);
    a.revoke(&bob, exp, "7").unwrap();
    assert!(matches!(a.revoke(&bob, exp, "7"), Err(Error::NotFound(_))));
    // Models: rename carries grants, delete drops them.
    let model = ResourceType::RegisteredModel;
    a.grant(&bob, model, "old", Permission::Use).unwrap();
    a.store().rename_grants(model, "old", "new").unwrap();
    assert_eq!(a.permission(&bob, model, "new").unwrap(), Permission::Use);
    a.store().delete_grants_on(model, "new").unwrap();
    assert_eq!(
        a.permission(&bob, model, "new").unwrap(),
        Permission::NoPermissions
    );
    // Admins may do everything.
    let root = a.create_user("root", PASSWORD, true).unwrap();
    assert_eq!(a.permission(&root, exp, "7").unwrap(), Permission::Manage);
}

fn roles_and_assignments(store: SqlStore) {
    let a = auth(store, Permission::Read);
    let carol = a.create_user("carol", PASSWORD, false).unwrap();
    let role = a.create_role("default", "team", Some("the team")).unwrap();
    assert!(matches!(
        a.create_role("default", "team", None),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        a.create_role("default", "__user_1__", None),
        Err(Error::InvalidParameter(_))
    ));
    let grant = a
        .store()
        .upsert_role_permission(role.id, ResourceType::RegisteredModel, "m", Permission::Use)
        .unwrap();
    a.store()
        .set_role_permission(grant.id, Permission::Edit)
        .unwrap();
    assert_eq!(
        a.store()
            .get_role_permission(grant.id)
            .unwrap()
            .unwrap()
            .permission,
        Permission::Edit
    );
    let assigned = a.store().assign_role(carol.id, role.id).unwrap();
    assert_eq!(a.store().assign_role(carol.id, role.id).unwrap(), assigned);
    assert_eq!(a.store().role_assignments(role.id).unwrap(), vec![assigned]);
    let roles = a.store().user_roles(carol.id).unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].permissions.len(), 1);
    a.store()
        .update_role(role.id, Some("team-b"), Some("renamed"))
        .unwrap();
    assert_eq!(a.role(role.id).unwrap().name, "team-b");
    a.store().unassign_role(carol.id, role.id).unwrap();
    assert!(matches!(
        a.store().unassign_role(carol.id, role.id),
        Err(Error::NotFound(_))
    ));
    a.store().delete_role(role.id).unwrap();
    assert!(matches!(a.role(role.id), Err(Error::NotFound(_))));
    assert!(a.store().list_roles(Some("default")).unwrap().is_empty());
}

fn tokens_are_stored_as_hashes(store: SqlStore) {
    let a = auth(store, Permission::Read);
    let dave = a.create_user("dave", PASSWORD, false).unwrap();
    let t = a
        .store()
        .create_token(dave.id, "ci", "hash-1", 1_000, Some(2_000))
        .unwrap();
    assert_eq!(a.store().token_by_hash("hash-1").unwrap(), Some(t.clone()));
    assert_eq!(a.store().token_by_hash("hash-2").unwrap(), None);
    let other = a.create_user("erin", PASSWORD, false).unwrap();
    assert!(matches!(
        a.store().revoke_token(other.id, t.id),
        Err(Error::NotFound(_))
    ));
    a.store().revoke_token(dave.id, t.id).unwrap();
    assert!(a.store().token_by_hash("hash-1").unwrap().unwrap().revoked);
    assert_eq!(a.store().list_tokens(dave.id).unwrap().len(), 1);
    a.store().delete_user(dave.id).unwrap();
    assert_eq!(a.store().token_by_hash("hash-1").unwrap(), None);
}
