//! SOAP `login` of the partner (`/services/Soap/u/{version}`) and
//! enterprise (`/services/Soap/c/{version}`) APIs.
//!
//! Salesforce is retiring SOAP login; it is served for clients that still
//! use it (the Python Nameko extension among them). OAuth is the way on.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::Event;

use super::{LoginUser, password_login_ok};
use crate::config::{LATEST_API_VERSION, OLDEST_API_VERSION};
use crate::org::Org;

/// The SOAP 1.1 envelope namespace.
const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// The message of an `INVALID_LOGIN` fault.
const INVALID_LOGIN_MESSAGE: &str =
    "Invalid username, password, security token; or user locked out.";

/// Which WSDL a request was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `/services/Soap/u/…`, namespace `urn:partner.soap.sforce.com`.
    Partner,
    /// `/services/Soap/c/…`, namespace `urn:enterprise.soap.sforce.com`.
    Enterprise,
}

impl Api {
    fn namespace(self) -> &'static str {
        match self {
            Api::Partner => "urn:partner.soap.sforce.com",
            Api::Enterprise => "urn:enterprise.soap.sforce.com",
        }
    }

    fn fault_namespace(self) -> &'static str {
        match self {
            Api::Partner => "urn:fault.partner.soap.sforce.com",
            Api::Enterprise => "urn:fault.enterprise.soap.sforce.com",
        }
    }

    /// The letter of the API in URLs (`u` or `c`).
    fn letter(self) -> char {
        match self {
            Api::Partner => 'u',
            Api::Enterprise => 'c',
        }
    }
}

/// `POST /services/Soap/u/{version}`: partner API login.
pub(super) async fn login_partner(
    State(org): State<Arc<Org>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    login(&org, &version, &body, Api::Partner)
}

/// `POST /services/Soap/c/{version}`: enterprise API login.
pub(super) async fn login_enterprise(
    State(org): State<Arc<Org>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    login(&org, &version, &body, Api::Enterprise)
}

fn login(org: &Org, version: &str, body: &[u8], api: Api) -> Response {
    if let Some(unavailable) = super::login_unavailable(org) {
        return unavailable;
    }
    if !version_supported(version) {
        return api_fault(
            api,
            "UNSUPPORTED_API_VERSION",
            "Invalid Api version specified on URL",
            "UnexpectedErrorFault",
        );
    }
    if !has_login_operation(version) {
        // Salesforce removed login() from API 65.0 on (its exact fault).
        return api_fault(
            api,
            "INVALID_OPERATION",
            &format!(
                "The SOAP Login operation is not available in the API version specified ({version}). Refer to the documentation for supported versions."
            ),
            "UnexpectedErrorFault",
        );
    }
    let (username, password) = match parse_request(body) {
        Ok(SoapRequest::Login { username, password }) => (username, password),
        Ok(SoapRequest::Other { operation }) => {
            return client_fault(&format!(
                "No operation available for request {{{}}}{operation}",
                api.namespace()
            ));
        }
        Err(reason) => {
            tracing::info!(reason, "SOAP request refused: malformed");
            return client_fault(reason);
        }
    };
    let user = LoginUser::of(org);
    if !password_login_ok(org, &username, &password) || !user.active {
        tracing::info!("SOAP login refused: INVALID_LOGIN");
        return api_fault(api, "INVALID_LOGIN", INVALID_LOGIN_MESSAGE, "LoginFault");
    }
    tracing::debug!("SOAP login succeeded");
    let session_id = org.tokens.issue(&user.org_id, &user.user_id);
    xml_response(
        StatusCode::OK,
        &login_response(org, &user, version, api, &session_id),
    )
}

/// Whether API `version` still has the SOAP `login()` call (before 65.0).
fn has_login_operation(version: &str) -> bool {
    version.parse::<f64>().is_ok_and(|v| v < 65.0)
}

/// Whether the emulator serves API `version` (e.g. `62.0`).
fn version_supported(version: &str) -> bool {
    let latest: f64 = LATEST_API_VERSION.parse().unwrap_or(f64::MAX);
    !version.is_empty()
        && version.chars().all(|c| c.is_ascii_digit() || c == '.')
        && version
            .parse::<f64>()
            .is_ok_and(|v| (OLDEST_API_VERSION..=latest).contains(&v))
}

/// The `loginResponse` envelope.
fn login_response(
    org: &Org,
    user: &LoginUser,
    version: &str,
    api: Api,
    session_id: &str,
) -> String {
    let base = org.base_url();
    let org_id = escape(&user.org_id);
    let user_id = escape(&user.user_id);
    let version = escape(version);
    let letter = api.letter();
    let profile_id = crate::ids::make_id("00e", 1);
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="{env}" xmlns="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body><loginResponse><result>",
            "<metadataServerUrl>{base}/services/Soap/m/{version}/{org_id}</metadataServerUrl>",
            "<passwordExpired>false</passwordExpired>",
            "<sandbox>false</sandbox>",
            "<serverUrl>{base}/services/Soap/{letter}/{version}/{org_id}</serverUrl>",
            "<sessionId>{session_id}</sessionId>",
            "<userId>{user_id}</userId>",
            "<userInfo>",
            "<accessibilityMode>false</accessibilityMode>",
            "<chatterExternal>false</chatterExternal>",
            "<currencySymbol>$</currencySymbol>",
            "<orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit>",
            "<orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode>",
            "<orgDefaultCurrencyLocale>en_US</orgDefaultCurrencyLocale>",
            "<orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments>",
            "<orgHasPersonAccounts>false</orgHasPersonAccounts>",
            "<organizationId>{org_id}</organizationId>",
            "<organizationMultiCurrency>false</organizationMultiCurrency>",
            "<organizationName>sfstream Emulated Org</organizationName>",
            "<profileId>{profile_id}</profileId>",
            r#"<roleId xsi:nil="true"/>"#,
            "<sessionSecondsValid>7200</sessionSecondsValid>",
            r#"<userDefaultCurrencyIsoCode xsi:nil="true"/>"#,
            "<userEmail>{email}</userEmail>",
            "<userFullName>{full_name}</userFullName>",
            "<userId>{user_id}</userId>",
            "<userLanguage>en_US</userLanguage>",
            "<userLocale>en_US</userLocale>",
            "<userName>{username}</userName>",
            "<userTimeZone>America/Los_Angeles</userTimeZone>",
            "<userType>Standard</userType>",
            "<userUiSkin>Theme3</userUiSkin>",
            "</userInfo>",
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>",
        ),
        env = SOAP_ENV_NS,
        ns = api.namespace(),
        base = escape(&base),
        version = version,
        org_id = org_id,
        letter = letter,
        session_id = escape(session_id),
        user_id = user_id,
        profile_id = escape(&profile_id),
        email = escape(&user.email),
        full_name = escape(user.full_name()),
        username = escape(&user.username),
    )
}

/// A SOAP response with Salesforce's content type.
fn xml_response(status: StatusCode, body: &str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    response
}

/// An API fault (`sf:<code>`) with its `detail` element, HTTP 500.
fn api_fault(api: Api, code: &str, message: &str, fault_type: &str) -> Response {
    let code = escape(code);
    let message = escape(message);
    let fault_type = escape(fault_type);
    let body = format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="{env}" xmlns:sf="{fault_ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body><soapenv:Fault>",
            "<faultcode>sf:{code}</faultcode>",
            "<faultstring>{code}: {message}</faultstring>",
            "<detail>",
            r#"<sf:{fault_type} xsi:type="sf:{fault_type}">"#,
            "<sf:exceptionCode>{code}</sf:exceptionCode>",
            "<sf:exceptionMessage>{message}</sf:exceptionMessage>",
            "</sf:{fault_type}>",
            "</detail>",
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>",
        ),
        env = SOAP_ENV_NS,
        fault_ns = api.fault_namespace(),
        code = code,
        message = message,
        fault_type = fault_type,
    );
    xml_response(StatusCode::INTERNAL_SERVER_ERROR, &body)
}

/// A `soapenv:Client` fault (the request itself is wrong), HTTP 500.
fn client_fault(message: &str) -> Response {
    let body = format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="{env}">"#,
            "<soapenv:Body><soapenv:Fault>",
            "<faultcode>soapenv:Client</faultcode>",
            "<faultstring>{message}</faultstring>",
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>",
        ),
        env = SOAP_ENV_NS,
        message = escape(message),
    );
    xml_response(StatusCode::INTERNAL_SERVER_ERROR, &body)
}

/// What a SOAP request asks for.
#[derive(Debug, PartialEq, Eq)]
enum SoapRequest {
    /// `login(username, password)`.
    Login { username: String, password: String },
    /// Any other operation (not served at the login URL).
    Other { operation: String },
}

/// Which `login` argument text is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Username,
    Password,
}

/// Parses a SOAP envelope, matching elements by local name so any
/// namespace prefix (or none) is accepted. The error never quotes input.
fn parse_request(body: &[u8]) -> Result<SoapRequest, &'static str> {
    let mut reader = Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut root_done = false;
    let mut operation: Option<String> = None;
    let mut username: Option<String> = None;
    let mut password: Option<String> = None;

    loop {
        let event = reader
            .read_event()
            .map_err(|_| "Unable to parse the request: the XML is not well-formed")?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(event, Event::Empty(_));
                let name = e.local_name().as_ref().to_vec();
                match stack.len() {
                    0 if root_done => {
                        return Err("Unable to parse the request: more than one root element");
                    }
                    0 if name != b"Envelope" => {
                        return Err(
                            "Unable to parse the request: the root element is not a SOAP Envelope",
                        );
                    }
                    2 if stack[1] == b"Body" && operation.is_none() => {
                        operation = Some(String::from_utf8_lossy(&name).into_owned());
                    }
                    3 if stack[1] == b"Body" && operation.as_deref() == Some("login") => {
                        let field = match name.as_slice() {
                            b"username" => Some(Field::Username),
                            b"password" => Some(Field::Password),
                            _ => None,
                        };
                        match field {
                            Some(Field::Username) => {
                                username.get_or_insert_with(String::new);
                            }
                            Some(Field::Password) => {
                                password.get_or_insert_with(String::new);
                            }
                            None => {}
                        }
                    }
                    _ => {}
                }
                if is_empty {
                    if stack.is_empty() {
                        root_done = true;
                    }
                } else {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                stack.pop();
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(ref t) => {
                let text = t.unescape().map_err(
                    |_| "Unable to parse the request: bad character or entity reference",
                )?;
                if stack.is_empty() {
                    if !text.trim().is_empty() {
                        return Err(
                            "Unable to parse the request: content is not allowed outside the root element",
                        );
                    }
                } else if let Some(target) =
                    login_field(&stack, &operation, &mut username, &mut password)
                {
                    target.push_str(&text);
                }
            }
            Event::CData(ref c) => {
                let text = c
                    .decode()
                    .map_err(|_| "Unable to parse the request: the XML is not valid UTF-8")?;
                if let Some(target) = login_field(&stack, &operation, &mut username, &mut password)
                {
                    target.push_str(&text);
                }
            }
            Event::Eof => {
                if !stack.is_empty() {
                    return Err("Unable to parse the request: unexpected end of the document");
                }
                break;
            }
            _ => {}
        }
    }

    match operation.as_deref() {
        None if !root_done => Err("Unable to parse the request: no SOAP Envelope"),
        None => Err("Unable to parse the request: the SOAP Body has no operation"),
        Some("login") => Ok(SoapRequest::Login {
            username: username.unwrap_or_default().trim().to_string(),
            password: password.unwrap_or_default(),
        }),
        Some(other) => Ok(SoapRequest::Other {
            operation: other.to_string(),
        }),
    }
}

/// The `login` argument whose text is being read at `stack`, if any.
fn login_field<'a>(
    stack: &[Vec<u8>],
    operation: &Option<String>,
    username: &'a mut Option<String>,
    password: &'a mut Option<String>,
) -> Option<&'a mut String> {
    if stack.len() != 4 || stack[1] != b"Body" || operation.as_deref() != Some("login") {
        return None;
    }
    match stack[3].as_slice() {
        b"username" => username.as_mut(),
        b"password" => password.as_mut(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(username: &str, password: &str) -> SoapRequest {
        SoapRequest::Login {
            username: username.into(),
            password: password.into(),
        }
    }

    #[test]
    fn parses_prefixed_and_unprefixed_envelopes() {
        let prefixed = r#"<?xml version="1.0" encoding="utf-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
  <soapenv:Header/>
  <soapenv:Body>
    <urn:login>
      <urn:username>user@example.com</urn:username>
      <urn:password>p&amp;ss&lt;word&gt;token</urn:password>
    </urn:login>
  </soapenv:Body>
</soapenv:Envelope>"#;
        assert_eq!(
            parse_request(prefixed.as_bytes()),
            Ok(login("user@example.com", "p&ss<word>token"))
        );
        let bare = r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><login xmlns="urn:partner.soap.sforce.com"><username>u</username><password><![CDATA[a<b]]></password></login></Body></Envelope>"#;
        assert_eq!(parse_request(bare.as_bytes()), Ok(login("u", "a<b")));
    }

    #[test]
    fn missing_arguments_are_empty() {
        let body =
            r#"<e:Envelope xmlns:e="x"><e:Body><login><username/></login></e:Body></e:Envelope>"#;
        assert_eq!(parse_request(body.as_bytes()), Ok(login("", "")));
        let body = r#"<e:Envelope xmlns:e="x"><e:Body><login/></e:Body></e:Envelope>"#;
        assert_eq!(parse_request(body.as_bytes()), Ok(login("", "")));
    }

    #[test]
    fn other_operations_are_named() {
        let body = r#"<e:Envelope xmlns:e="x"><e:Body><p:query xmlns:p="y"><p:queryString>x</p:queryString></p:query></e:Body></e:Envelope>"#;
        assert_eq!(
            parse_request(body.as_bytes()),
            Ok(SoapRequest::Other {
                operation: "query".into()
            })
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            "",
            "not xml",
            "<Envelope><Body><login>",
            "<Envelope><Body></Wrong></Envelope>",
            "<NotEnvelope/>",
            "<Envelope/><Envelope/>",
            "<Envelope><Body/></Envelope>",
            "<Envelope><Body><login><password>&bogus;</password></login></Body></Envelope>",
        ] {
            assert!(
                parse_request(bad.as_bytes()).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn versions() {
        assert!(version_supported("62.0"));
        assert!(version_supported("20.0"));
        assert!(!version_supported("19.0"));
        assert!(!version_supported("99.0"));
        assert!(!version_supported("v62.0"));
        assert!(!version_supported(""));
    }
}
