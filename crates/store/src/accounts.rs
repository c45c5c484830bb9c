//! Accounts and sessions.

use crate::{col, conflict, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use std::fmt;
use std::str::FromStr;

/// What an account may do (issue 5): installers deploy sites, owners run theirs, admins operate the
/// service. The rules live in the server; the store only keeps the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Installer,
    Owner,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Installer, Role::Owner, Role::Admin];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Installer => "installer",
            Role::Owner => "owner",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: expected installer, owner or admin"))
    }
}

/// An account. `password_hash` is a PHC string made by the server (argon2id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created_ms: i64,
}

/// A signed-in session: a web cookie or an API bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub kind: String,
    pub expires_ms: i64,
}

fn user(row: &AnyRow) -> Result<User> {
    let role: String = col(row, "role")?;
    Ok(User {
        id: col(row, "id")?,
        email: col(row, "email")?,
        name: col(row, "name")?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        password_hash: col(row, "password_hash")?,
        created_ms: col(row, "created_ms")?,
    })
}

const USER_COLS: &str = "id, email, name, role, password_hash, created_ms";

impl Store {
    /// Creates an account; the e-mail is unique ([`StoreError::Conflict`] otherwise).
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        role: Role,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<User> {
        let row = sqlx::query(&self.q(&format!(
            "INSERT INTO users (email, name, role, password_hash, created_ms)
             VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLS}"
        )))
        .bind(email)
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("an account with e-mail {email:?}")))?;
        user(&row)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query(&self.q(&format!("SELECT {USER_COLS} FROM users WHERE email = $1")))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let row = sqlx::query(&self.q(&format!("SELECT {USER_COLS} FROM users WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        col(&row, "n")
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        kind: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<()> {
        sqlx::query(&self.q(
            "INSERT INTO sessions (token_hash, user_id, kind, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5)",
        ))
        .bind(token_hash)
        .bind(user_id)
        .bind(kind)
        .bind(now_ms)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session behind a token hash, if it exists and has not expired at `now_ms`.
    pub async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<Session>> {
        let row = sqlx::query(&self.q(
            "SELECT u.id, u.email, u.name, u.role, u.password_hash, u.created_ms, s.kind, s.expires_ms
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_ms > $2",
        ))
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(Session {
                user: user(&r)?,
                kind: col(&r, "kind")?,
                expires_ms: col(&r, "expires_ms")?,
            })),
        }
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query(&self.q("DELETE FROM sessions WHERE token_hash = $1"))
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
