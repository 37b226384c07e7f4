//! One wording for failed HTTP requests, shared by logins and REST calls:
//! what failed, where (without query, fragment or credentials), and the
//! cause chain.

use std::time::Duration;

/// `url` without query, fragment, username or password.
pub(crate) fn shown_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

/// Describes a request that got no usable answer from `shown` (a URL as
/// [`shown_url`] gives it, or a name such as "the login server").
pub(crate) fn describe(error: &reqwest::Error, shown: &str, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer from {shown} within {timeout:?}");
    }
    let mut text = if error.is_connect() {
        format!("cannot connect to {shown}")
    } else if error.is_body() || error.is_decode() {
        format!("reading the answer of {shown} failed")
    } else {
        format!("request to {shown} failed")
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
