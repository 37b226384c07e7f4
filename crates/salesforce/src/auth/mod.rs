//! Logins. PLACEHOLDER
