//! Tenants, their teams, users and virtual keys: the state database schema, key
//! lifecycle, and the in-memory snapshots the data path reads; admin tokens, the roles
//! they carry, and the local admin users who log in to them.
//! lifecycle, and the in-memory snapshots the data path reads; admin tokens and the
//! roles they carry; provider credentials (BYOK).

mod admin_tokens;
mod admin_users;
mod auth;
mod change_watch;
pub mod credentials;
mod directory;
mod keys;
mod mirror;
pub mod rbac;

pub use admin_tokens::{
    ADMIN_TOKEN_PREFIX, Admin, AdminAuthError, AdminTokenInfo, AdminTokenStore, RefusedToken,
};
pub use admin_users::{
    AdminUserInfo, AdminUserStore, LOCKOUT_SECS, LoginRefused, MAX_FAILED_LOGINS,
    MIN_PASSWORD_CHARS, RefusedLogin, SESSION_SECS, Session,
};
pub use auth::{AuthError, KeyCache, KeyRefused, Principal};
pub use change_watch::ChangeWatch;
pub use directory::{Directory, TeamInfo, TenantInfo, UserInfo};
pub use keys::{CreatedKey, KeyInfo, KeyStore, NewKey, admin_event, atomically, random_hex};
pub use mirror::{Mirrored, StateMirror};

use crate::store::Migration;

/// Schema of the state database (`airlock.db`).
pub const STATE_MIGRATIONS: &[Migration] = &[
    "CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE virtual_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        hash BLOB NOT NULL UNIQUE,
        models TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER
    );
    CREATE INDEX virtual_keys_tenant ON virtual_keys(tenant_id);
    CREATE TABLE admin_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT
    );",
    "CREATE TABLE admin_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        tenant_id TEXT REFERENCES tenants(id),
        prefix TEXT NOT NULL,
        hash BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER
    );",
    // The audit log's head (last sequence number and MAC), kept apart from the log so a
    // log cut after its last checkpoint is noticed.
    "CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        mac BLOB NOT NULL,
        tag BLOB NOT NULL
    );",
    // The tenant an admin action concerns, so tenant admins see their own.
    "ALTER TABLE admin_events ADD COLUMN tenant_id TEXT;",
    // Milliseconds, so admin actions order among requests in the audit trail.
    "ALTER TABLE admin_events ADD COLUMN ts_ms INTEGER;",
    // Policy versions (immutable), which one is active and which shadows it, and every
    // activation in order (for history, rollback and evidence).
    "CREATE TABLE policy_versions (
        version INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        source BLOB NOT NULL,
        author TEXT NOT NULL,
        message TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE policy_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        active INTEGER REFERENCES policy_versions(version),
        shadow INTEGER REFERENCES policy_versions(version)
    );
    CREATE TABLE policy_activations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        version INTEGER REFERENCES policy_versions(version),
        role TEXT NOT NULL,
        actor TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        message TEXT
    );",
    // The tokenisation vault: one row per placeholder of a session, its value sealed
    // (AES-256-GCM, bound to tenant, session and placeholder), deleted when it expires.
    "CREATE TABLE pii_vault (
        tenant_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        placeholder TEXT NOT NULL,
        sealed BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, session_id, placeholder)
    ) WITHOUT ROWID;
    CREATE INDEX pii_vault_expiry ON pii_vault(expires_ms);",
    // A counter per table that caches mirror, bumped by triggers on every change, so a
    // cache woken by some other write (the vault's) re-reads one row, not the table.
    "CREATE TABLE state_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO state_versions (name, version) VALUES ('virtual_keys', 0);
    CREATE TRIGGER virtual_keys_inserted AFTER INSERT ON virtual_keys BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'virtual_keys';
    END;
    CREATE TRIGGER virtual_keys_updated AFTER UPDATE ON virtual_keys BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'virtual_keys';
    END;
    CREATE TRIGGER virtual_keys_deleted AFTER DELETE ON virtual_keys BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'virtual_keys';
    END;",
    // Teams and users of a tenant, and the owner a key acts for: its tenant, a team, or
    // one user (a person, named by their directory id). A user's move to another team
    // changes what their keys act in, so it counts as a change of keys.
    "CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        team_id TEXT REFERENCES teams(id),
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    ALTER TABLE virtual_keys ADD COLUMN team_id TEXT REFERENCES teams(id);
    ALTER TABLE virtual_keys ADD COLUMN user_id TEXT REFERENCES users(id);
    CREATE TRIGGER users_updated AFTER UPDATE ON users BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'virtual_keys';
    END;",
    // Model prices set through the admin API (micro-dollars per million tokens), over
    // the built-in and configured ones; mirrored in memory like keys.
    "CREATE TABLE pricing (
        model TEXT PRIMARY KEY,
        input INTEGER NOT NULL,
        output INTEGER NOT NULL,
        cached_input INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        actor TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO state_versions (name, version) VALUES ('pricing', 0);
    CREATE TRIGGER pricing_inserted AFTER INSERT ON pricing BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'pricing';
    END;
    CREATE TRIGGER pricing_updated AFTER UPDATE ON pricing BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'pricing';
    END;
    CREATE TRIGGER pricing_deleted AFTER DELETE ON pricing BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'pricing';
    END;",
    // Spending budgets (nano-dollars) of a tenant, team, user or key per window, and the
    // soft-limit alerts raised, once per budget and window.
    "CREATE TABLE budgets (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        scope TEXT NOT NULL CHECK (scope IN ('tenant', 'team', 'user', 'key')),
        scope_id TEXT NOT NULL,
        window TEXT NOT NULL CHECK (window IN ('daily', 'weekly', 'monthly')),
        limit_nano_usd INTEGER NOT NULL CHECK (limit_nano_usd > 0),
        soft_limit_pct INTEGER,
        downgrade_at_pct INTEGER,
        downgrade TEXT,
        webhook_url TEXT,
        updated_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        UNIQUE (tenant_id, scope, scope_id, window)
    );
    CREATE TABLE budget_alerts (
        budget_id TEXT NOT NULL,
        window_start_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        PRIMARY KEY (budget_id, window_start_ms, kind)
    ) WITHOUT ROWID;
    INSERT INTO state_versions (name, version) VALUES ('budgets', 0);
    CREATE TRIGGER budgets_inserted AFTER INSERT ON budgets BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'budgets';
    END;
    CREATE TRIGGER budgets_updated AFTER UPDATE ON budgets BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'budgets';
    END;
    CREATE TRIGGER budgets_deleted AFTER DELETE ON budgets BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'budgets';
    END;",
    // Requests and tokens per minute of a tenant, team, user or key.
    "CREATE TABLE rate_limits (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        scope TEXT NOT NULL CHECK (scope IN ('tenant', 'team', 'user', 'key')),
        scope_id TEXT NOT NULL,
        requests_per_minute INTEGER CHECK (requests_per_minute > 0),
        tokens_per_minute INTEGER CHECK (tokens_per_minute > 0),
        updated_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        UNIQUE (tenant_id, scope, scope_id)
    );
    INSERT INTO state_versions (name, version) VALUES ('rate_limits', 0);
    CREATE TRIGGER rate_limits_inserted AFTER INSERT ON rate_limits BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'rate_limits';
    END;
    CREATE TRIGGER rate_limits_updated AFTER UPDATE ON rate_limits BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'rate_limits';
    END;
    CREATE TRIGGER rate_limits_deleted AFTER DELETE ON rate_limits BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'rate_limits';
    END;",
    // Local admin users (until SSO): argon2id password hashes (PHC strings), a lockout
    // after repeated wrong passwords; their login sessions are admin tokens linked to them.
    "CREATE TABLE admin_users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        tenant_id TEXT REFERENCES tenants(id),
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        password_changed_at INTEGER NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER,
        last_login_at INTEGER,
        disabled_at INTEGER
    );
    ALTER TABLE admin_tokens ADD COLUMN admin_user_id TEXT REFERENCES admin_users(id);
    CREATE INDEX admin_tokens_user ON admin_tokens(admin_user_id);",
    // Provider credentials (BYOK): a provider's own key, sealed (AES-256-GCM, bound to
    // id, tenant and provider), per tenant (NULL: instance-wide); one active per name,
    // rotated-out ones in a grace period until `grace_until_ms`. Their own counter, so
    // the gateway reloads them only when they change.
    "CREATE TABLE provider_credentials (
        id TEXT PRIMARY KEY,
        tenant_id TEXT REFERENCES tenants(id),
        provider TEXT NOT NULL,
        name TEXT NOT NULL,
        sealed BLOB NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'grace', 'retired', 'revoked')),
        grace_until_ms INTEGER,
        created_ms INTEGER NOT NULL,
        rotated_ms INTEGER,
        revoked_ms INTEGER,
        replaces TEXT REFERENCES provider_credentials(id)
    );
    CREATE UNIQUE INDEX provider_credentials_active
        ON provider_credentials(ifnull(tenant_id, ''), provider, name) WHERE state = 'active';
    CREATE INDEX provider_credentials_tenant ON provider_credentials(tenant_id);
    INSERT INTO state_versions (name, version) VALUES ('provider_credentials', 0);
    CREATE TRIGGER provider_credentials_inserted AFTER INSERT ON provider_credentials BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'provider_credentials';
    END;
    CREATE TRIGGER provider_credentials_updated AFTER UPDATE ON provider_credentials BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'provider_credentials';
    END;
    CREATE TRIGGER provider_credentials_deleted AFTER DELETE ON provider_credentials BEGIN
        UPDATE state_versions SET version = version + 1 WHERE name = 'provider_credentials';
    END;",
    // Vault sessions belong to the key that named them and the person it acted for, not
    // to whoever in the tenant sends the same session id. Rows written before cannot be
    // attributed to an owner (their ciphertext is bound to tenant and session only), so
    // they are dropped: their sessions start afresh, which they do daily anyway (TTL).
    "DROP TABLE pii_vault;
    CREATE TABLE pii_vault (
        tenant_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        placeholder TEXT NOT NULL,
        sealed BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, key_id, user_id, session_id, placeholder)
    ) WITHOUT ROWID;
    CREATE INDEX pii_vault_expiry ON pii_vault(expires_ms);
    CREATE INDEX pii_vault_session ON pii_vault(tenant_id, session_id);",
    // The audit head also names the last checkpoint (so deleting checkpoints is noticed),
    // and the log's first record is anchored once (so removing the log is noticed).
    "ALTER TABLE audit_head ADD COLUMN checkpoint_seq INTEGER;
    ALTER TABLE audit_head ADD COLUMN checkpoint_hash BLOB;
    CREATE TABLE audit_genesis (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        ts_ms INTEGER NOT NULL,
        mac BLOB NOT NULL,
        tag BLOB NOT NULL
    );",
];
