//! Login options shared by every command that talks to Salesforce. Each
//! can come from the environment as `SALESFORCE_<NAME>`; secrets should.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use sfstream_salesforce::auth::{CredentialsError, LoginPart, LoginParts};
use sfstream_salesforce::{Authenticator, Credentials, DEFAULT_API_VERSION, LoginUrl, Secret};

/// How to log in to Salesforce.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Login")]
pub struct LoginArgs {
    /// Instance base URL (with --access-token: no login).
    #[arg(long, env = "SALESFORCE_INSTANCE_URL", value_name = "URL")]
    pub instance_url: Option<String>,
    /// A ready access (session) token.
    #[arg(
        long,
        env = "SALESFORCE_ACCESS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub access_token: Option<Secret>,
    /// Login host [default: https://login.salesforce.com].
    #[arg(long, env = "SALESFORCE_LOGIN_URL", value_name = "URL")]
    pub login_url: Option<String>,
    /// Same as --login-url https://test.salesforce.com.
    #[arg(long, env = "SALESFORCE_SANDBOX")]
    pub sandbox: bool,
    /// Username (password, SOAP and JWT flows).
    #[arg(long, env = "SALESFORCE_USERNAME", value_name = "U")]
    pub username: Option<String>,
    /// Password; with --consumer-key/--consumer-secret: OAuth username-password, without: SOAP login.
    #[arg(
        long,
        env = "SALESFORCE_PASSWORD",
        value_name = "P",
        hide_env_values = true
    )]
    pub password: Option<Secret>,
    /// Security token appended to the password.
    #[arg(
        long,
        env = "SALESFORCE_SECURITY_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub security_token: Option<Secret>,
    /// Connected app consumer key (OAuth client_id).
    #[arg(long, env = "SALESFORCE_CONSUMER_KEY", value_name = "K")]
    pub consumer_key: Option<String>,
    /// Connected app consumer secret (OAuth client_secret).
    #[arg(
        long,
        env = "SALESFORCE_CONSUMER_SECRET",
        value_name = "S",
        hide_env_values = true
    )]
    pub consumer_secret: Option<Secret>,
    /// Refresh token (refresh-token flow, with --consumer-key).
    #[arg(
        long,
        env = "SALESFORCE_REFRESH_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub refresh_token: Option<Secret>,
    /// PEM private key of the JWT bearer flow (with --username and --consumer-key).
    #[arg(long, env = "SALESFORCE_JWT_KEY_FILE", value_name = "PEM")]
    pub jwt_key_file: Option<PathBuf>,
    /// Client-credentials flow (with --consumer-key and --consumer-secret).
    #[arg(long, env = "SALESFORCE_CLIENT_CREDENTIALS")]
    pub client_credentials: bool,
    /// API version.
    #[arg(long, env = "SALESFORCE_API_VERSION", value_name = "V", default_value = DEFAULT_API_VERSION)]
    pub api_version: String,
    /// Allow plain http:// to hosts other than loopback (tokens travel unencrypted).
    #[arg(long, env = "SALESFORCE_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
}

impl LoginArgs {
    /// The login URL the options select.
    fn login_url(&self) -> anyhow::Result<LoginUrl> {
        match (&self.login_url, self.sandbox) {
            (Some(_), true) => bail!("--login-url and --sandbox cannot be used together"),
            (Some(url), false) => {
                LoginUrl::parse(url).with_context(|| format!("--login-url {url}"))
            }
            (None, true) => Ok(LoginUrl::sandbox()),
            (None, false) => Ok(LoginUrl::production()),
        }
    }

    /// The credentials the options select (the policy and its table:
    /// [`LoginParts::credentials`], `docs/logins.md`).
    fn credentials(&self) -> anyhow::Result<Credentials> {
        let parts = LoginParts {
            username: self.username.clone(),
            password: self.password.clone(),
            security_token: self.security_token.clone(),
            consumer_key: self.consumer_key.clone(),
            consumer_secret: self.consumer_secret.clone(),
            refresh_token: self.refresh_token.clone(),
            jwt_key_file: self.jwt_key_file.clone(),
            client_credentials: self.client_credentials,
            access_token: self.access_token.clone(),
            instance_url: self.instance_url.clone(),
        };
        parts.credentials().map_err(|e| match e {
            CredentialsError::NoLogin => {
                anyhow!("{} (or SALESFORCE_* variables)", e.describe(option))
            }
            e => anyhow!(e.describe(option)),
        })
    }

    /// An authenticator for these options (checked, but not yet logged in).
    pub fn authenticator(&self) -> anyhow::Result<Authenticator> {
        let authenticator = Authenticator::new(self.credentials()?)
            .with_login_url(self.login_url()?)
            .with_api_version(&self.api_version)
            .allow_insecure_http(self.allow_insecure_http);
        authenticator.check()?;
        Ok(authenticator)
    }
}

/// The CLI option of a login part: its name in lower case, `-` for `_`.
fn option(part: LoginPart) -> String {
    format!("--{}", part.key().to_ascii_lowercase().replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        login: LoginArgs,
    }

    #[test]
    fn every_login_part_is_an_option() {
        let command = Cli::command();
        for part in LoginPart::ALL {
            let long = option(part);
            assert!(
                command
                    .get_arguments()
                    .any(|arg| arg.get_long().is_some_and(|l| format!("--{l}") == long)),
                "{long} is not an option"
            );
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let cli = Cli::try_parse_from([
            "sfstream",
            "--username=u",
            "--password=pw-secret",
            "--security-token=tk-secret",
            "--consumer-key=ck",
            "--consumer-secret=cs-secret",
            "--refresh-token=rt-secret",
            "--access-token=at-secret",
        ])
        .expect("parses");
        let shown = format!("{cli:?}");
        assert!(!shown.contains("-secret"), "{shown}");
        assert_eq!(
            cli.login.password.as_ref().map(Secret::expose),
            Some("pw-secret")
        );
    }

    #[test]
    fn errors_name_the_options() {
        let cli = Cli::try_parse_from(["sfstream", "--access-token=t"]).expect("parses");
        let err = cli.login.credentials().expect_err("no instance URL");
        assert_eq!(
            err.to_string(),
            "--instance-url is missing or empty (--access-token needs it)"
        );
    }
    /// Both the CLI and the config refuse two flows' selectors (row 10 of
    /// `docs/logins.md`); the CLI once picked client credentials.
    #[test]
    fn two_flows_are_refused() {
        let cli = Cli::try_parse_from([
            "sfstream",
            "--client-credentials",
            "--jwt-key-file=server.key",
            "--username=u",
            "--consumer-key=ck",
            "--consumer-secret=cs",
        ])
        .expect("parses");
        let err = cli.login.credentials().expect_err("two flows");
        assert_eq!(
            err.to_string(),
            "--jwt-key-file and --client-credentials select different logins: give only one"
        );
    }
}
