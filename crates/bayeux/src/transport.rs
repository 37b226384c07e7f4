//! The long-polling transport: JSON arrays of messages POSTed to the
//! server, with a cookie jar (Salesforce requires `BAYEUX_BROWSER` back),
//! extension hooks, request timeouts and a response size limit.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::error::TransportError;
use crate::extension::Extension;
use crate::message::{Message, parse_messages};

/// Default upper bound of one response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Sends batches of messages and returns the server's messages.
pub struct Transport {
    http: reqwest::Client,
    url: RwLock<String>,
    extensions: Arc<[Arc<dyn Extension>]>,
    max_response_bytes: usize,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("url", &*self.url.read())
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

impl Transport {
    /// A transport posting to `url` with its own cookie jar.
    pub fn new(
        url: String,
        extensions: Arc<[Arc<dyn Extension>]>,
        max_response_bytes: usize,
    ) -> Result<Self, TransportError> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| TransportError::Network(e.to_string()))?;
        Ok(Self {
            http,
            url: RwLock::new(url),
            extensions,
            max_response_bytes,
        })
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        self.url.read().clone()
    }

    /// Points the transport at a new endpoint (e.g. after a re-login moved
    /// the session to another instance).
    pub fn set_url(&self, url: String) {
        *self.url.write() = url;
    }

    /// The extensions.
    pub fn extensions(&self) -> &[Arc<dyn Extension>] {
        &self.extensions
    }

    /// Sends `messages` in one request, waiting at most `timeout`.
    pub async fn send(
        &self,
        mut messages: Vec<Message>,
        timeout: Duration,
    ) -> Result<Vec<Message>, TransportError> {
        for message in &mut messages {
            for extension in self.extensions.iter() {
                extension.outgoing(message);
            }
        }
        let body =
            serde_json::to_vec(&messages).map_err(|e| TransportError::Malformed(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        for extension in self.extensions.iter() {
            extension.request_headers(&mut headers);
        }
        let url = self.url();
        let mut response = self
            .http
            .post(&url)
            .headers(headers)
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| TransportError::Network(describe(&e)))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransportError::Network(describe(&e)))?
        {
            if bytes.len() + chunk.len() > self.max_response_bytes {
                return Err(TransportError::TooLarge(self.max_response_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            return Err(TransportError::Status {
                status: status.as_u16(),
                body: text,
            });
        }
        let mut replies =
            parse_messages(&bytes).map_err(|e| TransportError::Malformed(e.to_string()))?;
        for message in &mut replies {
            for extension in self.extensions.iter() {
                extension.incoming(message);
            }
        }
        Ok(replies)
    }
}

/// A reqwest error as text: what failed and where (origin and path only,
/// never the query), then its cause chain.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "response body interrupted"
    } else {
        "request failed"
    };
    let mut text = match error.url() {
        Some(url) => format!(
            "{kind} ({}{})",
            url.origin().ascii_serialization(),
            url.path()
        ),
        None => kind.to_string(),
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
