//! Test support shared by the workspace's tests, so that each of these is
//! written once: logging in to an emulated org ([`emulator`]), a private
//! Redis server a test may stop ([`redis`]), a RabbitMQ virtual host per
//! test ([`rabbitmq`]), killing a child process with SIGKILL and reading
//! what it reported ([`kill9`]), finding the third-party peers
//! ([`peers`]), and driving headless Chromium through WebDriver
//! ([`browser`]).
//!
//! Used as a dev-dependency only; it is not published.

pub mod browser;
pub mod emulator;
pub mod kill9;
pub mod peers;
pub mod rabbitmq;
pub mod redis;
pub mod tls;

/// A name no other test (nor test run) uses: `prefix`, `_` and 12 random
/// hex digits. Letters, digits, `_` and `-` only, so it fits PushTopic
/// names, Nameko service names, Redis keys and RabbitMQ virtual hosts.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

#[cfg(test)]
mod tests {
    use super::unique;

    #[test]
    fn unique_names_differ_and_keep_the_prefix() {
        let (a, b) = (unique("Py"), unique("Py"));
        assert_ne!(a, b);
        assert!(a.starts_with("Py_") && a.len() == 15, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }
}
