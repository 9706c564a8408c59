//! User accounts from the command line (`napiatke users ...`): list, add, change a
//! password, deactivate. A password change or a deactivation ends the user's
//! sessions everywhere at once: their rows are deleted and their cache entries
//! removed (in every process, through the cache's invalidation channel).

use napiatke_db::queries::{sessions, users};
use napiatke_db::DbError;
use napiatke_domain::{Email, Role, User, UserId};

use crate::{ServiceError, ServiceResult, Services};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// An argon2id hash of `password` with a fresh random salt; a password shorter than
/// [`MIN_PASSWORD_CHARS`] is [`ServiceError::BadInput`].
fn hash(password: &str) -> ServiceResult<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ServiceError::BadInput(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(ServiceError::Random)?;
    Ok(napiatke_db::seed::hash_password(password, &salt)?)
}

fn email(text: &str) -> ServiceResult<Email> {
    Email::parse(text).map_err(|e| ServiceError::BadInput(e.to_string()))
}

fn bad_duplicate(e: DbError) -> ServiceError {
    match e {
        DbError::Duplicate(m) => ServiceError::BadInput(m),
        other => other.into(),
    }
}

impl Services {
    /// Every user, by id.
    pub async fn list_users(&self) -> ServiceResult<Vec<User>> {
        self.blocking(|s| Ok(users::list(&mut *s.conn()?)?)).await
    }

    /// Creates an active user (with an empty profile for a tutor or student).
    pub async fn add_user(
        &self,
        email_text: &str,
        first_name: &str,
        last_name: &str,
        role: Role,
        password: &str,
    ) -> ServiceResult<UserId> {
        let email = email(email_text)?;
        let hash = hash(password)?;
        let (first, last) = (first_name.to_owned(), last_name.to_owned());
        self.blocking(move |s| {
            users::insert(
                &mut *s.conn()?,
                &users::NewUser {
                    email: &email,
                    first_name: &first,
                    last_name: &last,
                    role,
                    password_hash: &hash,
                    now: s.now(),
                },
            )
            .map_err(bad_duplicate)
        })
        .await
    }

    /// Sets a user's password and ends their sessions; returns how many ended.
    pub async fn change_password(&self, email_text: &str, password: &str) -> ServiceResult<usize> {
        let email = email(email_text)?;
        let hash = hash(password)?;
        self.change(email, move |conn, id| {
            users::set_password(conn, id, &hash).map(|_| ())
        })
        .await
    }

    /// Deactivates a user (they cannot log in) and ends their sessions; returns
    /// how many ended.
    pub async fn deactivate_user(&self, email_text: &str) -> ServiceResult<usize> {
        let email = email(email_text)?;
        self.change(email, |conn, id| {
            users::set_active(conn, id, false).map(|_| ())
        })
        .await
    }

    /// Applies `change` to the user with `email`, deletes their sessions, then
    /// removes those sessions from the cache.
    async fn change<F>(&self, email: Email, change: F) -> ServiceResult<usize>
    where
        F: FnOnce(&mut napiatke_db::DbConn, UserId) -> napiatke_db::DbResult<()> + Send + 'static,
    {
        let ended = self
            .blocking(move |s| {
                let mut conn = s.conn()?;
                let user = users::by_email(&mut conn, &email).map_err(|e| match e {
                    DbError::NotFound => {
                        ServiceError::NotFound(format!("no user has the e-mail {}", email.as_str()))
                    }
                    other => other.into(),
                })?;
                change(&mut conn, user.id)?;
                Ok(sessions::delete_for_user(&mut conn, user.id)?)
            })
            .await?;
        self.cache.delete_many(&self.ns.session, &ended).await;
        Ok(ended.len())
    }
}
