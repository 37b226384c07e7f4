//! [`Login`]: the core's [`Authenticator`] for the Python authenticators.

use std::time::Duration;

use pyo3::prelude::*;
use sfstream_salesforce::{Authenticator, Credentials, LoginUrl, Secret};

use crate::errors;

/// A login flow and its credentials (`sfstream._sfstream.Login`), built by
/// the authenticator classes of `sfstream.auth`. Its `repr` names the flow
/// and the login URL only: passwords, secrets, tokens and keys are
/// [`Secret`]s and never leave Rust again.
#[pyclass(frozen, module = "sfstream._sfstream")]
pub struct Login {
    pub(crate) authenticator: Authenticator,
}

fn required(value: Option<String>, flow: &str, name: &str) -> PyResult<String> {
    value.ok_or_else(|| {
        pyo3::exceptions::PyTypeError::new_err(format!("the {flow} login needs {name}"))
    })
}

#[pymethods]
impl Login {
    /// `Login(flow, login_url, **credentials)`: `flow` is `password`
    /// (OAuth username-password), `soap`, `refresh_token`, `jwt_bearer`,
    /// `client_credentials` or `access_token`.
    #[new]
    #[pyo3(signature = (
        flow, login_url, *, username=None, password=None, security_token=None,
        consumer_key=None, consumer_secret=None, refresh_token=None,
        private_key=None, access_token=None, instance_url=None, api_version=None,
        timeout=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        flow: &str,
        login_url: &str,
        username: Option<String>,
        password: Option<String>,
        security_token: Option<String>,
        consumer_key: Option<String>,
        consumer_secret: Option<String>,
        refresh_token: Option<String>,
        private_key: Option<String>,
        access_token: Option<String>,
        instance_url: Option<String>,
        api_version: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let token = security_token.filter(|t| !t.is_empty()).map(Secret::new);
        let credentials = match flow {
            "password" => Credentials::password(
                required(username, flow, "a username")?,
                required(password, flow, "a password")?,
                token,
                required(consumer_key, flow, "a consumer key")?,
                required(consumer_secret, flow, "a consumer secret")?,
            ),
            "soap" => Credentials::soap(
                required(username, flow, "a username")?,
                required(password, flow, "a password")?,
                token,
            ),
            "refresh_token" => Credentials::refresh_token(
                required(consumer_key, flow, "a consumer key")?,
                consumer_secret.map(Secret::new),
                required(refresh_token, flow, "a refresh token")?,
            ),
            "jwt_bearer" => Credentials::jwt_bearer(
                required(username, flow, "a username")?,
                required(consumer_key, flow, "a consumer key")?,
                required(private_key, flow, "a private key")?,
            ),
            "client_credentials" => Credentials::client_credentials(
                required(consumer_key, flow, "a consumer key")?,
                required(consumer_secret, flow, "a consumer secret")?,
            ),
            "access_token" => Credentials::access_token(
                required(access_token, flow, "an access token")?,
                required(instance_url, flow, "an instance URL")?,
            ),
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown login flow {other:?}"
                )));
            }
        };
        let url = LoginUrl::parse(login_url).map_err(|e| errors::login(&e))?;
        let mut authenticator = Authenticator::new(credentials).with_login_url(url);
        if let Some(version) = api_version {
            authenticator = authenticator.with_api_version(version);
        }
        if let Some(seconds) = timeout {
            let timeout = Duration::try_from_secs_f64(seconds)
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
            authenticator = authenticator.with_timeout(timeout);
        }
        authenticator.check().map_err(|e| errors::login(&e))?;
        Ok(Self { authenticator })
    }

    /// The flow's short name (`password`, `soap`, …).
    #[getter]
    fn flow(&self) -> &'static str {
        self.authenticator.credentials().flow()
    }

    /// The login URL.
    #[getter]
    fn login_url(&self) -> String {
        self.authenticator.login_url().as_str().to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "Login(flow={:?}, login_url={:?})",
            self.flow(),
            self.login_url()
        )
    }
}
