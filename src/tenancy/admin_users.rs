//! Local admin users (until SSO): a name, a role (and a tenant for a tenant-admin) and an
//! argon2id password hash. Logging in gives a short-lived admin token (a session) linked
//! to the user; repeated wrong passwords lock the user out for a while; disabling a user
//! or changing its password ends its sessions. Every change and every login is an admin
//! event; no password or hash ever leaves this module.

use super::admin_tokens::{AdminTokenStore, tenant_for};
use super::keys::{admin_event, atomically, random_hex};
use super::rbac::Role;
use crate::store::{StoreError, now_unix};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, params};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// How long a login session lasts.
pub const SESSION_SECS: i64 = 8 * 3600;
/// Wrong passwords in a row that lock a user out…
pub const MAX_FAILED_LOGINS: i64 = 5;
/// …for this long (a correct password is refused too until it ends).
pub const LOCKOUT_SECS: i64 = 15 * 60;

/// A stand-in argon2id hash with the parameters `Argon2::default()` uses (m=19456 KiB,
/// t=2, p=1), matching no known password: verifying against it when the user is unknown
/// costs what a real check costs, so response times do not tell which names exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$3YTB7rmNtVFGBVAnSs8ntg$RjugQ9IcnTX3c6hqhFtY/lSatnKZbHqW1fQXgs4NYcQ";

/// An admin user as listed (never the password hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminUserInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The tenant a tenant-admin acts for.
    pub tenant: Option<String>,
    pub created_at: i64,
    pub password_changed_at: i64,
    pub last_login_at: Option<i64>,
    /// Until when wrong passwords lock the user out.
    pub locked_until: Option<i64>,
    pub disabled_at: Option<i64>,
}

/// A login session: an admin token, shown once.
#[derive(Debug)]
pub struct Session {
    pub token: String,
    pub token_id: String,
    pub role: Role,
    /// The tenant's name, for a tenant-admin.
    pub tenant: Option<String>,
    pub expires_at: i64,
}

/// Why a login was refused. The caller is told none of this (one answer for all, so
/// names cannot be probed); the audit trail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    UnknownUser,
    WrongPassword,
    /// The wrong password that locked the user out.
    LockedOutNow,
    LockedOut,
    Disabled,
}

/// A refused login: why, and (for a known user) whose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedLogin {
    pub reason: LoginRefused,
    /// The user (`admin-user:NAME`), when the name is a user's.
    pub actor: Option<String>,
    pub tenant_id: Option<String>,
}

impl LoginRefused {
    /// The reason's stable code, as aggregate records name it.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::LockedOutNow => "wrong_password_locked_out",
            Self::LockedOut => "locked_out",
            Self::Disabled => "disabled_user",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown user",
            Self::WrongPassword => "wrong password",
            Self::LockedOutNow => "wrong password; locked out",
            Self::LockedOut => "locked out after repeated wrong passwords",
            Self::Disabled => "disabled user",
        }
    }
}

/// How audit records name an admin user; a name that is not a valid user name (it
/// could be a password typed in the wrong field) is not repeated.
pub(super) fn user_actor(name: &str) -> String {
    if check_name(name).is_ok() {
        format!("admin-user:{name}")
    } else {
        "admin-user:?".into()
    }
}

/// User names: 1 to 64 letters, digits and `.`, `_`, `-`, `@`.
fn check_name(name: &str) -> Result<(), StoreError> {
    let fits = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if fits {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "a user name is 1 to 64 letters, digits, `.`, `_`, `-` or `@`".into(),
        ))
    }
}

/// The password policy: long enough, not absurdly long, not the user's name.
fn check_password(name: &str, password: &str) -> Result<(), StoreError> {
    let refuse = |why: String| Err(StoreError::Invalid(why));
    if password.is_empty() {
        return refuse("the password must not be empty".into());
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return refuse(format!(
            "the password needs at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return refuse(format!(
            "the password must not be longer than {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    if password.eq_ignore_ascii_case(name) {
        return refuse("the password must not be the user name".into());
    }
    Ok(())
}

/// A PHC string of `password`'s argon2id hash, under a fresh random salt. Slow on
/// purpose (tens of milliseconds): call it off the async workers.
fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| StoreError::Invalid("the system random generator failed".into()))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::Invalid(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::Invalid(format!("password hashing failed: {e}")))
}

/// Whether `password` matches the PHC string `stored` (argon2's own constant-time
/// comparison). A stored hash that does not parse still costs one verification.
fn verify_password(password: &str, stored: &str) -> bool {
    let verify = |hash: &PasswordHash<'_>| {
        #[cfg(test)]
        tests::VERIFICATIONS.with(|n| n.set(n.get() + 1));
        Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    };
    match PasswordHash::new(stored) {
        Ok(hash) => verify(&hash),
        Err(e) => {
            tracing::error!("an admin user's password hash does not parse: {e}");
            if let Ok(dummy) = PasswordHash::new(DUMMY_HASH) {
                verify(&dummy);
            }
            false
        }
    }
}

/// A user as login needs it.
struct Candidate {
    id: String,
    role: String,
    tenant_id: Option<String>,
    tenant: Option<String>,
    hash: String,
    disabled: bool,
    locked_until: Option<i64>,
}

/// Admin user operations on the state database.
pub struct AdminUserStore<'a> {
    conn: &'a Connection,
    tokens: AdminTokenStore<'a>,
}

impl<'a> AdminUserStore<'a> {
    pub fn new(conn: &'a Connection, key_hash_secret: &[u8; 32]) -> Self {
        Self {
            conn,
            tokens: AdminTokenStore::new(conn, key_hash_secret),
        }
    }

    /// Creates a user. A tenant-admin needs a tenant (an existing one); other roles act
    /// across tenants.
    pub fn create(
        &self,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        password: &str,
        actor: &str,
    ) -> Result<AdminUserInfo, StoreError> {
        check_name(name)?;
        check_password(name, password)?;
        // Hashed before the write lock is taken: it is the slow part.
        let hash = hash_password(password)?;
        atomically(self.conn, || {
            let tenant_id = tenant_for(self.conn, role, tenant)?;
            let taken: Option<String> = self
                .conn
                .query_row("SELECT id FROM admin_users WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            if taken.is_some() {
                return Err(StoreError::Invalid(format!(
                    "an admin user `{name}` exists already"
                )));
            }
            let id = format!("adu_{}", random_hex(8)?);
            let now = now_unix();
            self.conn.execute(
                "INSERT INTO admin_users
                    (id, name, role, tenant_id, password_hash, created_at, password_changed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![id, name, role.name(), tenant_id, hash, now],
            )?;
            admin_event(
                self.conn,
                actor,
                "admin_user.create",
                &id,
                tenant_id.as_deref(),
                Some(role.name()),
            )?;
            Ok(AdminUserInfo {
                id,
                name: name.into(),
                role: role.name().into(),
                tenant: tenant.map(str::to_string),
                created_at: now,
                password_changed_at: now,
                last_login_at: None,
                locked_until: None,
                disabled_at: None,
            })
        })
    }

    /// Sets a user's password; this also lifts a lockout and ends the user's sessions.
    pub fn set_password(&self, name: &str, password: &str, actor: &str) -> Result<(), StoreError> {
        check_password(name, password)?;
        let hash = hash_password(password)?;
        self.change(
            name,
            "password_hash = ?3, password_changed_at = ?2, failed_logins = 0, locked_until = NULL",
            &[&hash],
            "admin_user.password",
            actor,
        )
    }

    /// Disables a user for good and ends its sessions.
    pub fn disable(&self, name: &str, actor: &str) -> Result<(), StoreError> {
        self.change(name, "disabled_at = ?2", &[], "admin_user.disable", actor)
    }

    /// Applies `set` (SQL, with `?1` the name, `?2` now and `more` from `?3` on) to an
    /// enabled user, revokes its live sessions and records `action`, in one transaction.
    fn change(
        &self,
        name: &str,
        set: &str,
        more: &[&dyn ToSql],
        action: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let now = now_unix();
        let mut values: Vec<&dyn ToSql> = vec![&name, &now];
        values.extend_from_slice(more);
        atomically(self.conn, || {
            let (id, tenant_id): (String, Option<String>) = self
                .conn
                .query_row(
                    &format!(
                        "UPDATE admin_users SET {set} WHERE name = ?1 AND disabled_at IS NULL
                         RETURNING id, tenant_id"
                    ),
                    values.as_slice(),
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| StoreError::Invalid(format!("no enabled admin user `{name}`")))?;
            let ended = self.conn.execute(
                "UPDATE admin_tokens SET revoked_at = ?1
                 WHERE admin_user_id = ?2 AND revoked_at IS NULL",
                params![now, id],
            )?;
            let detail = format!("{ended} session(s) ended");
            admin_event(
                self.conn,
                actor,
                action,
                &id,
                tenant_id.as_deref(),
                Some(&detail),
            )
        })
    }

    /// Every user, oldest first (never a password hash).
    pub fn list(&self) -> Result<Vec<AdminUserInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT u.id, u.name, u.role, t.name, u.created_at, u.password_changed_at,
                    u.last_login_at, u.locked_until, u.disabled_at
             FROM admin_users u LEFT JOIN tenants t ON t.id = u.tenant_id
             ORDER BY u.created_at, u.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AdminUserInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                role: r.get(2)?,
                tenant: r.get(3)?,
                created_at: r.get(4)?,
                password_changed_at: r.get(5)?,
                last_login_at: r.get(6)?,
                locked_until: r.get(7)?,
                disabled_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Checks a name and password and, when they match an enabled user that is not locked
    /// out, opens a session of `SESSION_SECS`, an admin event (never with the password).
    /// A refusal writes no event (the caller counts it: refusals are recorded in
    /// aggregate, so a flood cannot fill the disk), only the user's failure count.
    /// Exactly one argon2 verification runs whatever the outcome, so an unknown name
    /// takes as long as a wrong password. Slow: call it off the async workers.
    pub fn login(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Result<Session, RefusedLogin>, StoreError> {
        let candidate = self.candidate(name)?;
        let matches = verify_password(
            password,
            candidate.as_ref().map_or(DUMMY_HASH, |c| c.hash.as_str()),
        );
        let actor = user_actor(name);
        let now = now_unix();
        let refused = |tenant_id: Option<&str>, reason: LoginRefused| {
            Ok(Err(RefusedLogin {
                reason,
                actor: Some(actor.clone()),
                tenant_id: tenant_id.map(str::to_string),
            }))
        };
        let Some(user) = candidate else {
            return Ok(Err(RefusedLogin {
                reason: LoginRefused::UnknownUser,
                actor: None,
                tenant_id: None,
            }));
        };
        let tenant_id = user.tenant_id.as_deref();
        if user.disabled {
            return refused(tenant_id, LoginRefused::Disabled);
        }
        if user.locked_until.is_some_and(|until| until > now) {
            return refused(tenant_id, LoginRefused::LockedOut);
        }
        if !matches {
            return atomically(self.conn, || {
                let locked: Option<i64> = self.conn.query_row(
                    "UPDATE admin_users SET
                        failed_logins = CASE WHEN failed_logins + 1 >= ?2 THEN 0
                                             ELSE failed_logins + 1 END,
                        locked_until = CASE WHEN failed_logins + 1 >= ?2 THEN ?3
                                            ELSE locked_until END
                     WHERE id = ?1 RETURNING locked_until",
                    params![user.id, MAX_FAILED_LOGINS, now + LOCKOUT_SECS],
                    |r| r.get(0),
                )?;
                let reason = if locked.is_some_and(|until| until > now) {
                    LoginRefused::LockedOutNow
                } else {
                    LoginRefused::WrongPassword
                };
                refused(tenant_id, reason)
            });
        }
        let role: Role = user
            .role
            .parse()
            .map_err(|e: String| StoreError::Invalid(format!("admin user {}: {e}", user.id)))?;
        atomically(self.conn, || {
            self.conn.execute(
                "UPDATE admin_users SET failed_logins = 0, locked_until = NULL, last_login_at = ?2
                 WHERE id = ?1",
                params![user.id, now],
            )?;
            let expires_at = now + SESSION_SECS;
            let (info, token) =
                self.tokens
                    .insert(name, role, tenant_id, Some(expires_at), Some(&user.id))?;
            admin_event(
                self.conn,
                &actor,
                "admin.login",
                &info.id,
                tenant_id,
                Some(role.name()),
            )?;
            Ok(Ok(Session {
                token,
                token_id: info.id,
                role,
                tenant: user.tenant.clone(),
                expires_at,
            }))
        })
    }

    fn candidate(&self, name: &str) -> Result<Option<Candidate>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT u.id, u.role, u.tenant_id, t.name, u.password_hash, u.disabled_at,
                        u.locked_until
                 FROM admin_users u LEFT JOIN tenants t ON t.id = u.tenant_id
                 WHERE u.name = ?1",
                [name],
                |r| {
                    Ok(Candidate {
                        id: r.get(0)?,
                        role: r.get(1)?,
                        tenant_id: r.get(2)?,
                        tenant: r.get(3)?,
                        hash: r.get(4)?,
                        disabled: r.get::<_, Option<i64>>(5)?.is_some(),
                        locked_until: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{AdminAuthError, KeyStore, NewKey, STATE_MIGRATIONS};

    const PASSWORD: &str = "correct horse battery";

    thread_local! {
        /// Argon2 verifications run on this thread.
        pub(super) static VERIFICATIONS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    fn store_at(tag: &str) -> (Connection, [u8; 32]) {
        let dir = crate::store::scratch_dir(tag);
        let conn = crate::store::open(&dir.join("airlock.db"), STATE_MIGRATIONS).unwrap();
        (conn, [7u8; 32])
    }

    fn events(conn: &Connection, action: &str) -> Vec<(String, String)> {
        conn.prepare(
            "SELECT actor, COALESCE(detail, '') FROM admin_events WHERE action = ?1 ORDER BY seq",
        )
        .unwrap()
        .query_map([action], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let hash = hash_password(PASSWORD).unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(PASSWORD, &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert_ne!(
            hash,
            hash_password(PASSWORD).unwrap(),
            "fresh salt each time"
        );
        assert!(!verify_password(PASSWORD, "not a hash"));
        // The dummy hash costs what a real one does: same algorithm and parameters.
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let real = PasswordHash::new(&hash).unwrap();
        assert_eq!(
            (dummy.algorithm, dummy.version, &dummy.params),
            (real.algorithm, real.version, &real.params)
        );
    }

    #[test]
    fn the_password_policy_and_user_names() {
        for (name, password, complaint) in [
            ("alice", "", "must not be empty"),
            ("alice", "short pass", "at least 12"),
            ("alice", &"x".repeat(MAX_PASSWORD_BYTES + 1), "longer than"),
            ("alice-admin1", "ALICE-ADMIN1", "user name"),
            ("al ice", PASSWORD, "user name is"),
            ("", PASSWORD, "user name is"),
        ] {
            let error = check_name(name)
                .and_then(|()| check_password(name, password))
                .unwrap_err()
                .to_string();
            assert!(error.contains(complaint), "{name}/{password}: {error}");
        }
        // Twelve characters, not bytes.
        assert!(check_password("alice", "ééééééééééé").is_err());
        assert!(check_password("alice", "éééééééééééé").is_ok());
        assert_eq!(
            user_actor("ops.lead@example"),
            "admin-user:ops.lead@example"
        );
        assert_eq!(user_actor("my secret pass"), "admin-user:?");
    }

    #[test]
    fn users_log_in_to_sessions_that_carry_their_role_and_tenant() {
        let (conn, secret) = store_at("admin-users-login");
        KeyStore::new(&conn, &secret)
            .create(
                &NewKey {
                    tenant: "acme".into(),
                    ..NewKey::default()
                },
                "test",
            )
            .unwrap();
        let users = AdminUserStore::new(&conn, &secret);
        let alice = users
            .create("alice", Role::TenantAdmin, Some("acme"), PASSWORD, "test")
            .unwrap();
        assert!(alice.id.starts_with("adu_"));
        assert!(
            users
                .create("alice", Role::Viewer, None, PASSWORD, "test")
                .unwrap_err()
                .to_string()
                .contains("exists already")
        );
        assert!(
            users
                .create("bob", Role::TenantAdmin, None, PASSWORD, "test")
                .is_err()
        );
        assert!(
            users
                .create("bob", Role::Viewer, Some("acme"), PASSWORD, "test")
                .is_err()
        );

        let session = users.login("alice", PASSWORD).unwrap().unwrap();
        assert!(
            session
                .token
                .starts_with(crate::tenancy::ADMIN_TOKEN_PREFIX)
        );
        assert_eq!(
            (session.role, session.tenant.as_deref()),
            (Role::TenantAdmin, Some("acme"))
        );
        let left = session.expires_at - now_unix();
        assert!((SESSION_SECS - 5..=SESSION_SECS).contains(&left), "{left}");
        let tokens = AdminTokenStore::new(&conn, &secret);
        let admin = tokens.authenticate(&session.token).unwrap().unwrap();
        assert_eq!(admin.role, Role::TenantAdmin);
        assert_eq!(admin.user_id.as_deref(), Some(alice.id.as_str()));
        assert!(admin.tenant_id.is_some());
        assert_eq!(
            admin.actor(),
            format!("admin-user:alice (session {})", session.token_id)
        );
        let listed = tokens.list().unwrap();
        assert_eq!(listed[0].user.as_deref(), Some("alice"));
        assert!(users.list().unwrap()[0].last_login_at.is_some());

        // Logging out revokes the session.
        tokens.logout(&admin).unwrap();
        assert_eq!(
            tokens
                .authenticate(&session.token)
                .unwrap()
                .unwrap_err()
                .reason,
            AdminAuthError::Revoked
        );
        let logins = events(&conn, "admin.login");
        assert_eq!(logins, [("admin-user:alice".into(), "tenant-admin".into())]);
        assert_eq!(events(&conn, "admin.logout").len(), 1);
    }

    #[test]
    fn unknown_names_and_wrong_passwords_cost_one_verification_and_write_nothing() {
        let (conn, secret) = store_at("admin-users-refused");
        let users = AdminUserStore::new(&conn, &secret);
        users
            .create("carol", Role::Auditor, None, PASSWORD, "test")
            .unwrap();
        // Each attempt runs one argon2 verification, known name or not: count and time.
        let time = |name: &str| {
            let (before, start) = (VERIFICATIONS.get(), std::time::Instant::now());
            let refused = users.login(name, "wrong password!").unwrap().unwrap_err();
            assert_eq!(VERIFICATIONS.get() - before, 1, "{name}");
            (refused, start.elapsed())
        };
        let (unknown, unknown_took) = time("mallory");
        let (wrong, wrong_took) = time("carol");
        assert_eq!(
            (unknown.reason, wrong.reason),
            (LoginRefused::UnknownUser, LoginRefused::WrongPassword)
        );
        // A known user is named (the caller's aggregate keeps it); a name that is not a
        // user's is not (it is the caller's choice, and could be a password).
        assert_eq!(
            (unknown.actor, wrong.actor.as_deref()),
            (None, Some("admin-user:carol"))
        );
        let (fast, slow) = if unknown_took < wrong_took {
            (unknown_took, wrong_took)
        } else {
            (wrong_took, unknown_took)
        };
        // Loose on purpose (a shared machine): a skipped verification would be ~100x apart.
        assert!(
            slow < fast * 10,
            "unknown {unknown_took:?}, wrong {wrong_took:?}"
        );
        assert!(
            events(&conn, "admin.login_refused").is_empty(),
            "refusals are the caller's to count"
        );
        let all: String = conn
            .query_row("SELECT group_concat(actor || action || target || COALESCE(detail, '')) FROM admin_events", [], |r| r.get(0))
            .unwrap();
        assert!(!all.contains("wrong password!") && !all.contains(PASSWORD));
    }

    #[test]
    fn repeated_wrong_passwords_lock_a_user_out_and_a_new_password_lifts_it() {
        let (conn, secret) = store_at("admin-users-lockout");
        let users = AdminUserStore::new(&conn, &secret);
        users
            .create("dave", Role::Operator, None, PASSWORD, "test")
            .unwrap();
        for _ in 1..MAX_FAILED_LOGINS {
            assert_eq!(
                users
                    .login("dave", "not the password")
                    .unwrap()
                    .unwrap_err()
                    .reason,
                LoginRefused::WrongPassword
            );
        }
        assert_eq!(
            users
                .login("dave", "not the password")
                .unwrap()
                .unwrap_err()
                .reason,
            LoginRefused::LockedOutNow
        );
        // Now even the right password is refused, until the lockout ends.
        assert_eq!(
            users.login("dave", PASSWORD).unwrap().unwrap_err().reason,
            LoginRefused::LockedOut
        );
        let until = users.list().unwrap()[0].locked_until.unwrap();
        assert!(until > now_unix() + LOCKOUT_SECS - 5);
        conn.execute("UPDATE admin_users SET locked_until = ?1", [now_unix() - 1])
            .unwrap();
        users.login("dave", PASSWORD).unwrap().unwrap();

        // A success resets the count: MAX-1 failures do not lock.
        for _ in 1..MAX_FAILED_LOGINS {
            users
                .login("dave", "not the password")
                .unwrap()
                .unwrap_err();
        }
        users.login("dave", PASSWORD).unwrap().unwrap();

        // A new password lifts a lockout and ends the sessions open so far.
        let session = users.login("dave", PASSWORD).unwrap().unwrap();
        for _ in 0..MAX_FAILED_LOGINS {
            users
                .login("dave", "not the password")
                .unwrap()
                .unwrap_err();
        }
        const NEW: &str = "a brand new passphrase";
        users.set_password("dave", NEW, "test").unwrap();
        let tokens = AdminTokenStore::new(&conn, &secret);
        assert_eq!(
            tokens
                .authenticate(&session.token)
                .unwrap()
                .unwrap_err()
                .reason,
            AdminAuthError::Revoked
        );
        assert_eq!(
            users.login("dave", PASSWORD).unwrap().unwrap_err().reason,
            LoginRefused::WrongPassword
        );
        users.login("dave", NEW).unwrap().unwrap();
        assert!(users.set_password("dave", "short", "test").is_err());
        assert!(users.set_password("nobody", NEW, "test").is_err());
        assert_eq!(
            events(&conn, "admin_user.password"),
            [("test".into(), "3 session(s) ended".into())]
        );
    }

    #[test]
    fn disabled_users_cannot_log_in_and_their_sessions_end() {
        let (conn, secret) = store_at("admin-users-disabled");
        let users = AdminUserStore::new(&conn, &secret);
        users
            .create("erin", Role::SuperAdmin, None, PASSWORD, "test")
            .unwrap();
        let session = users.login("erin", PASSWORD).unwrap().unwrap();
        // One logged in while the user was being disabled: its token is refused too.
        let late = users.login("erin", PASSWORD).unwrap().unwrap();
        users.disable("erin", "test").unwrap();
        conn.execute(
            "UPDATE admin_tokens SET revoked_at = NULL WHERE id = ?1",
            [&late.token_id],
        )
        .unwrap();
        let tokens = AdminTokenStore::new(&conn, &secret);
        assert_eq!(
            tokens
                .authenticate(&session.token)
                .unwrap()
                .unwrap_err()
                .reason,
            AdminAuthError::Revoked
        );
        assert_eq!(
            tokens
                .authenticate(&late.token)
                .unwrap()
                .unwrap_err()
                .reason,
            AdminAuthError::Disabled
        );
        assert_eq!(
            users.login("erin", PASSWORD).unwrap().unwrap_err().reason,
            LoginRefused::Disabled
        );
        assert!(users.disable("erin", "test").is_err(), "twice");
        assert!(
            users
                .set_password("erin", "another long one", "test")
                .is_err()
        );
        let listed = users.list().unwrap();
        assert!(listed[0].disabled_at.is_some());
        let json = serde_json::to_string(&listed).unwrap();
        assert!(!json.contains("argon2") && !json.contains("hash"), "{json}");
        assert_eq!(
            events(&conn, "admin_user.disable"),
            [("test".into(), "2 session(s) ended".into())]
        );
    }
}
