//! SOAP `login` to the partner API (`/services/Soap/u/{version}`).

use chrono::Utc;
use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use super::error::{AuthError, Redactor};
use super::login_url::instance_url;
use super::session::Session;
use super::{Call, transport_error};
use crate::Secret;

/// The `login` request envelope. `username` and `password` (with the
/// security token appended) are XML-escaped.
pub(super) fn envelope(username: &str, password: &Secret) -> Secret {
    Secret::new(format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" "#,
            r#"xmlns:urn="urn:partner.soap.sforce.com">"#,
            "<soapenv:Header/>",
            "<soapenv:Body><urn:login>",
            "<urn:username>{}</urn:username>",
            "<urn:password>{}</urn:password>",
            "</urn:login></soapenv:Body></soapenv:Envelope>"
        ),
        escape(username),
        escape(password.expose()),
    ))
}

/// POSTs a SOAP `login` to `url` and reads the session or the fault.
pub(super) async fn login(
    call: &Call<'_>,
    url: &str,
    username: &str,
    password: &Secret,
) -> Result<Session, AuthError> {
    let body = envelope(username, password);
    let response = call
        .client
        .post(url)
        .timeout(call.timeout)
        .header(
            CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=UTF-8"),
        )
        .header("SOAPAction", HeaderValue::from_static("login"))
        .body(body.expose().to_string())
        .send()
        .await
        .map_err(|e| transport_error(&e, call))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| transport_error(&e, call))?;
    parse_response(status, &text, call.redactor, call.allow_insecure_http)
}

/// What a `loginResponse` or fault holds.
#[derive(Default)]
struct Parsed {
    session_id: Option<String>,
    server_url: Option<String>,
    user_id: Option<String>,
    organization_id: Option<String>,
    password_expired: Option<String>,
    fault_code: Option<String>,
    fault_string: Option<String>,
    exception_code: Option<String>,
    exception_message: Option<String>,
    in_fault: bool,
}

impl Parsed {
    /// The field the text at `stack` (local element names) belongs to.
    fn field(&mut self, stack: &[Vec<u8>]) -> Option<&mut Option<String>> {
        let name = stack.last()?.as_slice();
        let parent = stack.len().checked_sub(2).map(|i| stack[i].as_slice());
        if self.in_fault {
            return match name {
                b"faultcode" => Some(&mut self.fault_code),
                b"faultstring" => Some(&mut self.fault_string),
                b"exceptionCode" => Some(&mut self.exception_code),
                b"exceptionMessage" => Some(&mut self.exception_message),
                _ => None,
            };
        }
        match (parent, name) {
            (Some(b"result"), b"sessionId") => Some(&mut self.session_id),
            (Some(b"result"), b"serverUrl") => Some(&mut self.server_url),
            (Some(b"result"), b"passwordExpired") => Some(&mut self.password_expired),
            (Some(b"result"), b"userId") => Some(&mut self.user_id),
            (Some(b"userInfo"), b"userId") if self.user_id.is_none() => Some(&mut self.user_id),
            (Some(b"userInfo"), b"organizationId") => Some(&mut self.organization_id),
            _ => None,
        }
    }
}

/// Reads the answer to a SOAP `login`.
pub(super) fn parse_response(
    status: u16,
    body: &str,
    redactor: &Redactor,
    allow_insecure_http: bool,
) -> Result<Session, AuthError> {
    let parsed = match parse_xml(body) {
        Ok(parsed) => parsed,
        Err(()) if !(200..300).contains(&status) => {
            return Err(AuthError::Http {
                status,
                body: redactor.excerpt(body),
            });
        }
        Err(()) => {
            return Err(AuthError::MalformedResponse(format!(
                "the SOAP login answer is not well-formed XML: {}",
                redactor.excerpt(body)
            )));
        }
    };

    if parsed.in_fault || parsed.fault_code.is_some() {
        let code = parsed
            .exception_code
            .or(parsed.fault_code)
            .map(|c| match c.rsplit_once(':') {
                Some((_, local)) => local.trim().to_string(),
                None => c.trim().to_string(),
            })
            .unwrap_or_else(|| "Unknown".to_string());
        let message = parsed
            .exception_message
            .or(parsed.fault_string)
            .unwrap_or_default();
        return Err(AuthError::SoapFault {
            code: redactor.excerpt(&code),
            message: redactor.excerpt(&message),
        });
    }
    if !(200..300).contains(&status) {
        return Err(AuthError::Http {
            status,
            body: redactor.excerpt(body),
        });
    }
    if parsed.password_expired.as_deref().map(str::trim) == Some("true") {
        return Err(AuthError::SoapFault {
            code: "PASSWORD_EXPIRED".into(),
            message: "the password has expired: the session can only change it; \
                      set a new password in Salesforce"
                .into(),
        });
    }
    let access_token = parsed
        .session_id
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AuthError::MalformedResponse("the SOAP login answer has no sessionId".into())
        })?;
    let server_url = parsed.server_url.ok_or_else(|| {
        AuthError::MalformedResponse("the SOAP login answer has no serverUrl".into())
    })?;
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    Ok(Session {
        access_token: Secret::new(access_token),
        instance_url: instance_url(&server_url, allow_insecure_http)?,
        user_id: nonempty(parsed.user_id),
        org_id: nonempty(parsed.organization_id),
        issued_at: Some(Utc::now()),
    })
}

/// Parses the envelope, matching elements by local name (any prefix).
fn parse_xml(body: &str) -> Result<Parsed, ()> {
    let mut reader = Reader::from_str(body);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut parsed = Parsed::default();
    let mut seen_root = false;
    loop {
        match reader.read_event().map_err(|_| ())? {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                if name == b"Fault" {
                    parsed.in_fault = true;
                }
                seen_root = true;
                stack.push(name);
            }
            Event::Empty(e) => {
                if e.local_name().as_ref() == b"Fault" {
                    parsed.in_fault = true;
                }
                seen_root = true;
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|_| ())?;
                if let Some(target) = parsed.field(&stack) {
                    target.get_or_insert_with(String::new).push_str(&text);
                }
            }
            Event::CData(c) => {
                let text = c.decode().map_err(|_| ())?;
                if let Some(target) = parsed.field(&stack) {
                    target.get_or_insert_with(String::new).push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root || !stack.is_empty() {
        return Err(());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> Result<Session, AuthError> {
        parse_response(
            status,
            body,
            &Redactor::new([&Secret::new("hunter2")]),
            false,
        )
    }

    const OK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result><metadataServerUrl>https://acme.my.salesforce.com/services/Soap/m/62.0/00DORG</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox><serverUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00DORG</serverUrl><sessionId>00DORG!AQ&amp;xyz</sessionId><userId>005USER</userId><userInfo><organizationId>00DORG</organizationId><userId>005USER</userId><roleId xsi:nil="true"/></userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn envelope_escapes() {
        let body = envelope("a&b<c>@example.com", &Secret::new("p\"'<&>"));
        let text = body.expose();
        assert!(text.contains("<urn:username>a&amp;b&lt;c&gt;@example.com</urn:username>"));
        assert!(text.contains("<urn:password>p&quot;&apos;&lt;&amp;&gt;</urn:password>"));
        assert!(text.contains(r#"xmlns:urn="urn:partner.soap.sforce.com""#));
    }

    #[test]
    fn reads_a_login_response() {
        let session = parse(200, OK).expect("session");
        assert_eq!(session.access_token.expose(), "00DORG!AQ&xyz");
        assert_eq!(session.instance_url, "https://acme.my.salesforce.com");
        assert_eq!(session.user_id.as_deref(), Some("005USER"));
        assert_eq!(session.org_id.as_deref(), Some("00DORG"));
        assert!(session.issued_at.is_some());
    }

    #[test]
    fn reads_faults() {
        let fault = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let err = parse(500, fault).expect_err("fault");
        assert_eq!(
            err,
            AuthError::SoapFault {
                code: "INVALID_LOGIN".into(),
                message: "Invalid username, password, security token; or user locked out.".into()
            }
        );
        assert!(err.is_auth_failure());
        let client = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>bad hunter2</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        match parse(500, client) {
            Err(AuthError::SoapFault { code, message }) => {
                assert_eq!(code, "Client");
                assert_eq!(message, "bad <redacted>");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_answers() {
        match parse(503, "<html><body>down") {
            Err(AuthError::Http { status: 503, .. }) => {}
            other => panic!("{other:?}"),
        }
        match parse(404, "not found") {
            Err(AuthError::Http { status: 404, body }) => assert_eq!(body, "not found"),
            other => panic!("{other:?}"),
        }
        for bad in ["", "garbage", "<a><b></a>", "<Envelope><Body/></Envelope>"] {
            let err = parse(200, bad).expect_err(bad);
            assert!(
                matches!(err, AuthError::MalformedResponse(_)),
                "{bad}: {err:?}"
            );
        }
        let expired = OK.replace(
            "<passwordExpired>false</passwordExpired>",
            "<passwordExpired>true</passwordExpired>",
        );
        match parse(200, &expired) {
            Err(AuthError::SoapFault { code, .. }) => assert_eq!(code, "PASSWORD_EXPIRED"),
            other => panic!("{other:?}"),
        }
        let plain = OK.replace("https://acme", "http://acme");
        assert!(matches!(
            parse(200, &plain),
            Err(AuthError::InvalidLoginUrl(_))
        ));
    }
}
