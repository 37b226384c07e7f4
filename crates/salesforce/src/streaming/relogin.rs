//! Logging in again when Salesforce refuses the streaming token.

use std::time::Duration;

use futures::future::BoxFuture;
use sfstream_bayeux::Reauthenticate;
use std::sync::Arc;

use super::client::{Emitter, StreamEvent, cometd_url};
use super::extension::SalesforceExtension;
use crate::auth::Authenticator;

/// Logs in again when Salesforce refuses the token: new token, and the
/// CometD URL of the (possibly new) instance.
pub(crate) struct Relogin {
    pub(crate) authenticator: Authenticator,
    pub(crate) extension: Arc<SalesforceExtension>,
    pub(crate) emit: Emitter,
}

impl Reauthenticate for Relogin {
    fn reauthenticate(&self) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            let mut last = String::new();
            for attempt in 0..3u32 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
                match self.authenticator.login().await {
                    Ok(session) => {
                        self.extension.set_token(session.access_token.expose());
                        self.emit.send(StreamEvent::LoggedIn {
                            instance_url: session.instance_url.clone(),
                        });
                        return Ok(Some(cometd_url(&session, self.authenticator.api_version())));
                    }
                    Err(error) if error.is_auth_failure() => return Err(error.to_string()),
                    Err(error) => last = error.to_string(),
                }
            }
            Err(last)
        })
    }
}
