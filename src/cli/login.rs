//! Login options shared by every command that talks to Salesforce. Each
//! can come from the environment as `SALESFORCE_<NAME>`; secrets should.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
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
    pub access_token: Option<String>,
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
    pub password: Option<String>,
    /// Security token appended to the password.
    #[arg(
        long,
        env = "SALESFORCE_SECURITY_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub security_token: Option<String>,
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
    pub consumer_secret: Option<String>,
    /// Refresh token (refresh-token flow, with --consumer-key).
    #[arg(
        long,
        env = "SALESFORCE_REFRESH_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub refresh_token: Option<String>,
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

    /// The credentials the options select, or which option is missing.
    fn credentials(&self) -> anyhow::Result<Credentials> {
        let secret = |v: &Option<String>| v.as_deref().map(Secret::new);
        let need = |v: &Option<String>, flag: &str, flow: &str| -> anyhow::Result<String> {
            v.clone().with_context(|| format!("{flow} needs {flag}"))
        };
        if let Some(token) = &self.access_token {
            let instance = need(&self.instance_url, "--instance-url", "--access-token")?;
            return Ok(Credentials::access_token(Secret::new(token), instance));
        }
        if self.client_credentials {
            let flow = "--client-credentials";
            return Ok(Credentials::client_credentials(
                need(&self.consumer_key, "--consumer-key", flow)?,
                Secret::new(need(&self.consumer_secret, "--consumer-secret", flow)?),
            ));
        }
        if let Some(path) = &self.jwt_key_file {
            let flow = "--jwt-key-file";
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("--jwt-key-file {}", path.display()))?;
            return Ok(Credentials::jwt_bearer(
                need(&self.username, "--username", flow)?,
                need(&self.consumer_key, "--consumer-key", flow)?,
                Secret::new(pem),
            ));
        }
        if let Some(refresh) = &self.refresh_token {
            return Ok(Credentials::refresh_token(
                need(&self.consumer_key, "--consumer-key", "--refresh-token")?,
                secret(&self.consumer_secret),
                Secret::new(refresh),
            ));
        }
        let Some(username) = &self.username else {
            bail!(
                "no login given: use --username/--password (SOAP, or OAuth with --consumer-key/--consumer-secret), \
                 --refresh-token, --jwt-key-file, --client-credentials or --access-token (or SALESFORCE_* variables)"
            );
        };
        let password = need(&self.password, "--password", "--username")?;
        match (&self.consumer_key, &self.consumer_secret) {
            (Some(key), Some(consumer_secret)) => Ok(Credentials::password(
                username,
                Secret::new(password),
                secret(&self.security_token),
                key,
                Secret::new(consumer_secret),
            )),
            (None, None) => Ok(Credentials::soap(
                username,
                Secret::new(password),
                secret(&self.security_token),
            )),
            _ => bail!(
                "the OAuth username-password flow needs both --consumer-key and --consumer-secret"
            ),
        }
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
