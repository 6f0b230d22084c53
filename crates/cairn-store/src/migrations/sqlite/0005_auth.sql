-- Users, roles, grants and access tokens (MLflow 3.17 basic-auth's model, see cairn-core auth.rs).
CREATE TABLE auth_users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BIGINT NOT NULL
);
CREATE TABLE auth_roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    workspace TEXT NOT NULL,
    description TEXT,
    UNIQUE (workspace, name)
);
CREATE TABLE auth_role_permissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    role_id BIGINT NOT NULL REFERENCES auth_roles (id),
    resource_type TEXT NOT NULL,
    resource_pattern TEXT NOT NULL,
    permission TEXT NOT NULL,
    UNIQUE (role_id, resource_type, resource_pattern)
);
CREATE INDEX auth_role_permissions_by_resource ON auth_role_permissions (resource_type, resource_pattern);
CREATE TABLE auth_user_roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES auth_users (id),
    role_id BIGINT NOT NULL REFERENCES auth_roles (id),
    UNIQUE (user_id, role_id)
);
CREATE INDEX auth_user_roles_by_role ON auth_user_roles (role_id);
CREATE TABLE auth_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES auth_users (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    revoked BIGINT NOT NULL
);
CREATE INDEX auth_tokens_by_user ON auth_tokens (user_id);
