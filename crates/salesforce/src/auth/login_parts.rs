//! Choosing a login flow from the parts a user gave: the one policy both
//! the CLI options and the service config keys go through.

use std::fmt;
use std::path::PathBuf;

use super::Credentials;
use crate::Secret;

/// The parts of a login as a user gives them (command-line options,
/// config keys, environment variables), before a flow is chosen.
///
/// Secrets are [`Secret`]s, so `Debug` never shows one. Turn the parts
/// into [`Credentials`] with [`LoginParts::credentials`].
///
/// ```
/// use sfstream_salesforce::Secret;
/// use sfstream_salesforce::auth::LoginParts;
///
/// let parts = LoginParts {
///     username: Some("rocky@example.com".into()),
///     password: Some(Secret::new("pw")),
///     ..LoginParts::default()
/// };
/// assert_eq!(parts.credentials()?.flow(), "soap");
/// # Ok::<(), sfstream_salesforce::auth::CredentialsError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginParts {
    /// `USERNAME`: the Salesforce username.
    pub username: Option<String>,
    /// `PASSWORD`: the user's password.
    pub password: Option<Secret>,
    /// `SECURITY_TOKEN`: appended to the password.
    pub security_token: Option<Secret>,
    /// `CONSUMER_KEY`: the connected app's `client_id`.
    pub consumer_key: Option<String>,
    /// `CONSUMER_SECRET`: the connected app's `client_secret`.
    pub consumer_secret: Option<Secret>,
    /// `REFRESH_TOKEN`: selects the refresh-token flow.
    pub refresh_token: Option<Secret>,
    /// `JWT_KEY_FILE`: a PEM private key file; selects the JWT bearer flow.
    pub jwt_key_file: Option<PathBuf>,
    /// `CLIENT_CREDENTIALS`: selects the client-credentials flow.
    pub client_credentials: bool,
    /// `ACCESS_TOKEN`: a session obtained elsewhere; selects no login.
    pub access_token: Option<Secret>,
    /// `INSTANCE_URL`: the instance the access token belongs to.
    pub instance_url: Option<String>,
}

/// One part of a login, as named in errors.
///
/// [`LoginPart::key`] is its name: the config key under `SALESFORCE:`;
/// the CLI option is the same name in lower case with `-` for `_`
/// (`JWT_KEY_FILE`, `--jwt-key-file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoginPart {
    /// [`LoginParts::username`].
    Username,
    /// [`LoginParts::password`].
    Password,
    /// [`LoginParts::security_token`].
    SecurityToken,
    /// [`LoginParts::consumer_key`].
    ConsumerKey,
    /// [`LoginParts::consumer_secret`].
    ConsumerSecret,
    /// [`LoginParts::refresh_token`].
    RefreshToken,
    /// [`LoginParts::jwt_key_file`].
    JwtKeyFile,
    /// [`LoginParts::client_credentials`].
    ClientCredentials,
    /// [`LoginParts::access_token`].
    AccessToken,
    /// [`LoginParts::instance_url`].
    InstanceUrl,
}

impl LoginPart {
    /// Every part.
    pub const ALL: [LoginPart; 10] = [
        LoginPart::Username,
        LoginPart::Password,
        LoginPart::SecurityToken,
        LoginPart::ConsumerKey,
        LoginPart::ConsumerSecret,
        LoginPart::RefreshToken,
        LoginPart::JwtKeyFile,
        LoginPart::ClientCredentials,
        LoginPart::AccessToken,
        LoginPart::InstanceUrl,
    ];

    /// The part's name, e.g. `JWT_KEY_FILE` (see the type's documentation).
    pub fn key(self) -> &'static str {
        match self {
            LoginPart::Username => "USERNAME",
            LoginPart::Password => "PASSWORD",
            LoginPart::SecurityToken => "SECURITY_TOKEN",
            LoginPart::ConsumerKey => "CONSUMER_KEY",
            LoginPart::ConsumerSecret => "CONSUMER_SECRET",
            LoginPart::RefreshToken => "REFRESH_TOKEN",
            LoginPart::JwtKeyFile => "JWT_KEY_FILE",
            LoginPart::ClientCredentials => "CLIENT_CREDENTIALS",
            LoginPart::AccessToken => "ACCESS_TOKEN",
            LoginPart::InstanceUrl => "INSTANCE_URL",
        }
    }
}

impl fmt::Display for LoginPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Why [`LoginParts::credentials`] chose no flow. It names parts, never
/// their values; [`CredentialsError::describe`] names them as the caller
/// calls them (a CLI option, a config key).
#[derive(Debug)]
#[non_exhaustive]
pub enum CredentialsError {
    /// No part selects a login.
    NoLogin,
    /// A part the chosen flow needs is missing or empty.
    Missing {
        /// The missing part.
        missing: LoginPart,
        /// The given part that needs it.
        needed_by: LoginPart,
    },
    /// Two parts that each select a different flow were both given.
    Conflict {
        /// One of them.
        first: LoginPart,
        /// The other.
        second: LoginPart,
    },
    /// The JWT key file could not be read.
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl CredentialsError {
    /// The part the error is about (the missing one, the second of a
    /// conflict, the key file), or `None` when no login was given.
    pub fn part(&self) -> Option<LoginPart> {
        match self {
            CredentialsError::NoLogin => None,
            CredentialsError::Missing { missing, .. } => Some(*missing),
            CredentialsError::Conflict { second, .. } => Some(*second),
            CredentialsError::KeyFile { .. } => Some(LoginPart::JwtKeyFile),
        }
    }

    /// The message with each part called `name(part)`, e.g. the CLI's
    /// `--instance-url is missing or empty (--access-token needs it)`.
    /// `Display` uses [`LoginPart::key`].
    pub fn describe(&self, name: impl Fn(LoginPart) -> String) -> String {
        match self {
            CredentialsError::NoLogin => {
                use LoginPart::*;
                format!(
                    "no login given: give {} and {} (SOAP login; OAuth with {} and {}), {}, {}, {}, or {} with {}",
                    name(Username),
                    name(Password),
                    name(ConsumerKey),
                    name(ConsumerSecret),
                    name(RefreshToken),
                    name(JwtKeyFile),
                    name(ClientCredentials),
                    name(AccessToken),
                    name(InstanceUrl),
                )
            }
            CredentialsError::Missing { missing, needed_by } => format!(
                "{} is missing or empty ({} needs it)",
                name(*missing),
                name(*needed_by)
            ),
            CredentialsError::Conflict { first, second } => format!(
                "{} and {} select different logins: give only one",
                name(*first),
                name(*second)
            ),
            CredentialsError::KeyFile { path, source } => format!(
                "{} {}: cannot read it: {source}",
                name(LoginPart::JwtKeyFile),
                path.display()
            ),
        }
    }
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(|part| part.key().to_string()))
    }
}

impl std::error::Error for CredentialsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CredentialsError::KeyFile { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A given text: trimmed, `None` when blank.
fn text(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A given secret: trimmed, `None` when blank.
fn secret(value: Option<Secret>) -> Option<Secret> {
    text(value.map(|s| s.expose().to_string())).map(Secret::new)
}

/// A part that selects a flow of its own, with its value.
enum Selector {
    AccessToken(Secret),
    JwtKeyFile(PathBuf),
    RefreshToken(Secret),
    ClientCredentials,
}

impl Selector {
    fn part(&self) -> LoginPart {
        match self {
            Selector::AccessToken(_) => LoginPart::AccessToken,
            Selector::JwtKeyFile(_) => LoginPart::JwtKeyFile,
            Selector::RefreshToken(_) => LoginPart::RefreshToken,
            Selector::ClientCredentials => LoginPart::ClientCredentials,
        }
    }
}

impl LoginParts {
    /// The [`Credentials`] these parts select, or what is missing or
    /// conflicting. The CLI's login options and the service config's
    /// `SALESFORCE:` keys both come here; `docs/logins.md` in the
    /// repository has the table of what selects which flow, with both
    /// sets of names. A value that is empty or only blanks counts as not
    /// given; values are trimmed.
    ///
    /// # Precedence
    ///
    /// 1. `ACCESS_TOKEN`, `JWT_KEY_FILE`, `REFRESH_TOKEN` and
    ///    `CLIENT_CREDENTIALS` each select their own flow. They are not
    ///    ranked: two of them together are refused
    ///    ([`CredentialsError::Conflict`]). Each names a flow explicitly,
    ///    so any order between them would be arbitrary (the CLI and the
    ///    config once ranked them differently) and would hide a mistake.
    /// 2. Otherwise `USERNAME`/`PASSWORD` (when either key is given, even
    ///    empty, so that an unset `${VAR}` names the missing key) select
    ///    the username-password login: OAuth with `CONSUMER_KEY` (which
    ///    then needs `CONSUMER_SECRET`), SOAP without.
    ///
    /// So a flow's own selector wins over username and password, which
    /// are then ignored: they are the Python extension's base keys and
    /// often stay in a config file or the environment, and the JWT bearer
    /// flow uses `USERNAME` itself.
    ///
    /// `CONSUMER_SECRET` without `CONSUMER_KEY` is always refused: no flow
    /// uses the secret alone, and ignoring it would turn an intended OAuth
    /// login into a SOAP one.
    ///
    /// # Errors
    ///
    /// [`CredentialsError`]: no login, a missing part, two selectors, or an
    /// unreadable `JWT_KEY_FILE` (read here, at once).
    pub fn credentials(self) -> Result<Credentials, CredentialsError> {
        use LoginPart::*;
        let username_given = self.username.is_some() || self.password.is_some();
        let username = text(self.username);
        let password = secret(self.password);
        let security_token = secret(self.security_token);
        let consumer_key = text(self.consumer_key);
        let consumer_secret = secret(self.consumer_secret);
        let refresh_token = secret(self.refresh_token);
        let jwt_key_file = self.jwt_key_file.and_then(|path| match path.to_str() {
            Some(text) => Some(text.trim())
                .filter(|t| !t.is_empty())
                .map(PathBuf::from),
            None => Some(path),
        });
        let access_token = secret(self.access_token);
        let instance_url = text(self.instance_url);

        // Each flow's own selector, with its value.
        let selectors = [
            access_token.map(Selector::AccessToken),
            jwt_key_file.map(Selector::JwtKeyFile),
            refresh_token.map(Selector::RefreshToken),
            self.client_credentials
                .then_some(Selector::ClientCredentials),
        ];
        let mut selectors = selectors.into_iter().flatten();
        let selector = selectors.next();
        if let (Some(first), Some(second)) = (&selector, selectors.next()) {
            return Err(CredentialsError::Conflict {
                first: first.part(),
                second: second.part(),
            });
        }
        let need = |value: Option<String>, missing: LoginPart, needed_by: LoginPart| {
            value.ok_or(CredentialsError::Missing { missing, needed_by })
        };
        let need_secret = |value: Option<Secret>, missing: LoginPart, needed_by: LoginPart| {
            value.ok_or(CredentialsError::Missing { missing, needed_by })
        };

        let credentials = match selector {
            Some(Selector::AccessToken(token)) => {
                Credentials::access_token(token, need(instance_url, InstanceUrl, AccessToken)?)
            }
            Some(Selector::JwtKeyFile(path)) => {
                let username = need(username, Username, JwtKeyFile)?;
                let consumer_key = need(consumer_key.clone(), ConsumerKey, JwtKeyFile)?;
                let pem = std::fs::read_to_string(&path)
                    .map_err(|source| CredentialsError::KeyFile { path, source })?;
                Credentials::jwt_bearer(username, consumer_key, pem)
            }
            Some(Selector::RefreshToken(token)) => Credentials::refresh_token(
                need(consumer_key.clone(), ConsumerKey, RefreshToken)?,
                consumer_secret.clone(),
                token,
            ),
            Some(Selector::ClientCredentials) => Credentials::client_credentials(
                need(consumer_key.clone(), ConsumerKey, ClientCredentials)?,
                need_secret(consumer_secret.clone(), ConsumerSecret, ClientCredentials)?,
            ),
            None if username_given => {
                let username = need(username, Username, Password)?;
                let password = need_secret(password, Password, Username)?;
                match consumer_key.clone() {
                    Some(key) => Credentials::password(
                        username,
                        password,
                        security_token,
                        key,
                        need_secret(consumer_secret.clone(), ConsumerSecret, ConsumerKey)?,
                    ),
                    None => Credentials::soap(username, password, security_token),
                }
            }
            None => return Err(CredentialsError::NoLogin),
        };
        // Checked after the flow's own needs, whose message says more.
        if consumer_secret.is_some() && consumer_key.is_none() {
            return Err(CredentialsError::Missing {
                missing: ConsumerKey,
                needed_by: ConsumerSecret,
            });
        }
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part given as in the rows of `docs/logins.md`.
    fn with(mut parts: LoginParts, given: &[LoginPart], key_file: &std::path::Path) -> LoginParts {
        for part in given {
            let value = format!("{}-value", part.key().to_ascii_lowercase());
            match part {
                LoginPart::Username => parts.username = Some(value),
                LoginPart::Password => parts.password = Some(Secret::new(value)),
                LoginPart::SecurityToken => parts.security_token = Some(Secret::new(value)),
                LoginPart::ConsumerKey => parts.consumer_key = Some(value),
                LoginPart::ConsumerSecret => parts.consumer_secret = Some(Secret::new(value)),
                LoginPart::RefreshToken => parts.refresh_token = Some(Secret::new(value)),
                LoginPart::JwtKeyFile => parts.jwt_key_file = Some(key_file.to_path_buf()),
                LoginPart::ClientCredentials => parts.client_credentials = true,
                LoginPart::AccessToken => parts.access_token = Some(Secret::new(value)),
                LoginPart::InstanceUrl => parts.instance_url = Some(value),
            }
        }
        parts
    }

    /// What a row expects.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        Flow(&'static str),
        Missing(LoginPart, LoginPart),
        Conflict(LoginPart, LoginPart),
        NoLogin,
        KeyFile,
    }

    fn outcome(result: Result<Credentials, CredentialsError>) -> Outcome {
        match result {
            Ok(credentials) => Outcome::Flow(credentials.flow()),
            Err(CredentialsError::Missing { missing, needed_by }) => {
                Outcome::Missing(missing, needed_by)
            }
            Err(CredentialsError::Conflict { first, second }) => Outcome::Conflict(first, second),
            Err(CredentialsError::NoLogin) => Outcome::NoLogin,
            Err(CredentialsError::KeyFile { .. }) => Outcome::KeyFile,
        }
    }

    /// Every row of the table in `docs/logins.md`, in its order.
    #[test]
    fn every_row_of_the_login_table() {
        use LoginPart::*;
        use Outcome::*;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("server.key");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").expect("write");
        #[rustfmt::skip]
        let rows: &[(&str, &[LoginPart], Outcome)] = &[
            ("1", &[AccessToken, InstanceUrl], Flow("access_token")),
            ("2", &[AccessToken], Missing(InstanceUrl, AccessToken)),
            ("3", &[JwtKeyFile, Username, ConsumerKey], Flow("jwt_bearer")),
            ("4a", &[JwtKeyFile, ConsumerKey], Missing(Username, JwtKeyFile)),
            ("4b", &[JwtKeyFile, Username], Missing(ConsumerKey, JwtKeyFile)),
            ("6a", &[RefreshToken, ConsumerKey], Flow("refresh_token")),
            ("6b", &[RefreshToken, ConsumerKey, ConsumerSecret], Flow("refresh_token")),
            ("7", &[RefreshToken], Missing(ConsumerKey, RefreshToken)),
            ("8", &[ClientCredentials, ConsumerKey, ConsumerSecret], Flow("client_credentials")),
            ("9a", &[ClientCredentials, ConsumerSecret], Missing(ConsumerKey, ClientCredentials)),
            ("9b", &[ClientCredentials, ConsumerKey], Missing(ConsumerSecret, ClientCredentials)),
            ("10a", &[AccessToken, InstanceUrl, RefreshToken, ConsumerKey], Conflict(AccessToken, RefreshToken)),
            ("10b", &[JwtKeyFile, Username, ConsumerKey, ConsumerSecret, ClientCredentials], Conflict(JwtKeyFile, ClientCredentials)),
            ("10c", &[RefreshToken, ClientCredentials, ConsumerKey, ConsumerSecret], Conflict(RefreshToken, ClientCredentials)),
            ("10d", &[AccessToken, JwtKeyFile, InstanceUrl, Username, ConsumerKey], Conflict(AccessToken, JwtKeyFile)),
            ("11", &[Username, Password, SecurityToken, ConsumerKey, ConsumerSecret], Flow("password")),
            ("12a", &[Username, Password, SecurityToken], Flow("soap")),
            ("12b", &[Username, Password], Flow("soap")),
            ("13", &[Username, Password, ConsumerKey], Missing(ConsumerSecret, ConsumerKey)),
            ("14a", &[Username], Missing(Password, Username)),
            ("14b", &[Password, SecurityToken], Missing(Username, Password)),
            ("15a", &[Username, Password, ConsumerSecret], Missing(ConsumerKey, ConsumerSecret)),
            ("15b", &[AccessToken, InstanceUrl, ConsumerSecret], Missing(ConsumerKey, ConsumerSecret)),
            ("15c", &[ConsumerSecret], NoLogin),
            ("16a", &[AccessToken, InstanceUrl, Username, Password], Flow("access_token")),
            ("16b", &[JwtKeyFile, Username, Password, ConsumerKey, ConsumerSecret], Flow("jwt_bearer")),
            ("16c", &[RefreshToken, Username, Password, ConsumerKey], Flow("refresh_token")),
            ("16d", &[ClientCredentials, Username, Password, ConsumerKey, ConsumerSecret], Flow("client_credentials")),
            ("17a", &[], NoLogin),
            ("17b", &[SecurityToken, ConsumerKey, InstanceUrl], NoLogin),
        ];
        for (row, given, expected) in rows {
            let parts = with(LoginParts::default(), given, &key);
            assert_eq!(
                &outcome(parts.credentials()),
                expected,
                "row {row}: {given:?}"
            );
        }

        // Row 5: an unreadable key file.
        let parts = with(
            LoginParts::default(),
            &[JwtKeyFile, Username, ConsumerKey],
            &dir.path().join("missing.key"),
        );
        let err = parts.credentials().expect_err("no such file");
        assert_eq!(outcome(Err(err)), KeyFile);
    }

    #[test]
    fn blank_values_count_as_not_given_and_values_are_trimmed() {
        let blank = || Some(Secret::new(" \t"));
        let parts = LoginParts {
            username: Some(" rocky@example.com\n".into()),
            password: Some(Secret::new(" pw ")),
            security_token: blank(),
            consumer_key: Some(String::new()),
            consumer_secret: blank(),
            refresh_token: blank(),
            jwt_key_file: Some(PathBuf::from(" ")),
            access_token: blank(),
            ..LoginParts::default()
        };
        assert_eq!(
            parts.credentials().expect("soap"),
            Credentials::soap("rocky@example.com", "pw", None)
        );
        // An empty USERNAME or PASSWORD still selects their login, so the
        // error names the empty key rather than saying no login was given.
        let empty = LoginParts {
            username: Some(String::new()),
            password: Some(Secret::new("")),
            ..LoginParts::default()
        };
        assert_eq!(
            outcome(empty.credentials()),
            Outcome::Missing(LoginPart::Username, LoginPart::Password)
        );
    }

    #[test]
    fn the_values_land_in_the_chosen_flow() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("server.key");
        std::fs::write(&key, "PEM TEXT").expect("write");
        let parts = LoginParts {
            username: Some("u".into()),
            consumer_key: Some("ck".into()),
            // Trimmed, as every value.
            jwt_key_file: Some(PathBuf::from(format!(" {}\n", key.display()))),
            ..LoginParts::default()
        };
        assert_eq!(
            parts.credentials().expect("jwt"),
            Credentials::jwt_bearer("u", "ck", "PEM TEXT")
        );
        let parts = LoginParts {
            username: Some("u".into()),
            password: Some(Secret::new("pw")),
            security_token: Some(Secret::new("tk")),
            consumer_key: Some("ck".into()),
            consumer_secret: Some(Secret::new("cs")),
            ..LoginParts::default()
        };
        assert_eq!(
            parts.credentials().expect("password"),
            Credentials::password("u", "pw", Some(Secret::new("tk")), "ck", "cs")
        );
    }

    #[test]
    fn errors_name_parts_as_the_caller_does_and_never_show_values() {
        let parts = LoginParts {
            access_token: Some(Secret::new("00D!secret-token")),
            consumer_secret: Some(Secret::new("the-consumer-secret")),
            ..LoginParts::default()
        };
        assert!(!format!("{parts:?}").contains("secret-"), "{parts:?}");
        let err = parts.credentials().expect_err("no instance URL");
        assert_eq!(err.part(), Some(LoginPart::InstanceUrl));
        assert_eq!(
            err.to_string(),
            "INSTANCE_URL is missing or empty (ACCESS_TOKEN needs it)"
        );
        let option = |part: LoginPart| format!("--{}", part.key().to_lowercase().replace('_', "-"));
        assert_eq!(
            err.describe(option),
            "--instance-url is missing or empty (--access-token needs it)"
        );
        let text = format!("{err} {err:?}");
        assert!(!text.contains("secret-"), "{text}");

        let none = LoginParts::default().credentials().expect_err("nothing");
        assert_eq!(none.part(), None);
        assert!(
            none.describe(option)
                .starts_with("no login given: give --username and --password")
        );
        let conflict = LoginParts {
            refresh_token: Some(Secret::new("rt")),
            client_credentials: true,
            ..LoginParts::default()
        };
        assert_eq!(
            conflict
                .credentials()
                .expect_err("two flows")
                .describe(option),
            "--refresh-token and --client-credentials select different logins: give only one"
        );
    }
}
