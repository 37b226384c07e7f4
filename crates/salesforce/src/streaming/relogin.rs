//! Logging in again when Salesforce refuses the streaming token.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sfstream_bayeux::{Backoff, Reauthenticate};
use tokio::time::Instant;

use super::client::{Emitter, StreamEvent, cometd_url};
use super::extension::SalesforceExtension;
use crate::auth::Authenticator;

/// Logs in again when Salesforce refuses the token: new token, and the
/// CometD URL of the (possibly new) instance.
///
/// This hook owns the retry policy of re-logins: a transient failure (the
/// login endpoint unreachable, timing out or answering 5xx, e.g. during a
/// maintenance window at token expiry) is retried with `backoff` until
/// `connection_timeout` has passed since the token was refused (`None`:
/// until it works); refused credentials
/// ([`AuthError::is_auth_failure`](crate::auth::AuthError::is_auth_failure))
/// fail at once.
pub(crate) struct Relogin {
    pub(crate) authenticator: Authenticator,
    pub(crate) extension: Arc<SalesforceExtension>,
    pub(crate) emit: Emitter,
    pub(crate) backoff: Backoff,
    pub(crate) connection_timeout: Option<Duration>,
}

impl Relogin {
    /// Logs in, retrying transient failures until `deadline`.
    async fn login_until(&self, deadline: Option<Instant>) -> Result<crate::auth::Session, String> {
        let mut attempt = 0u32;
        loop {
            let login = self.authenticator.login();
            // One attempt never outlives the deadline either.
            let outcome = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, login).await {
                    Ok(outcome) => outcome,
                    Err(_) => return Err(self.gave_up(attempt + 1, "the last login timed out")),
                },
                None => login.await,
            };
            let error = match outcome {
                Ok(session) => return Ok(session),
                Err(error) if error.is_auth_failure() => return Err(error.to_string()),
                Err(error) => error.to_string(),
            };
            attempt += 1;
            let delay = self.backoff.delay(attempt);
            if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                return Err(self.gave_up(attempt, &error));
            }
            tracing::warn!(%error, attempt, retry_in = ?delay, "logging in again failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    fn gave_up(&self, attempts: u32, last: &str) -> String {
        let limit = self.connection_timeout.unwrap_or_default();
        format!("no login within the connection timeout ({limit:?}, {attempts} attempts): {last}")
    }
}

impl Reauthenticate for Relogin {
    fn reauthenticate(&self) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            let deadline = self.connection_timeout.map(|t| Instant::now() + t);
            let session = self.login_until(deadline).await?;
            self.extension.set_token(session.access_token.expose());
            self.emit.send(StreamEvent::LoggedIn {
                instance_url: session.instance_url.clone(),
            });
            Ok(Some(cometd_url(&session, self.authenticator.api_version())))
        })
    }
}
