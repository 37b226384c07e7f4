//! `AmqpUri` against the real kombu that Python Nameko 2.14 connects with:
//! for each URI, the user, password, host, port and virtual host kombu's
//! py-amqp transport would use (after its defaults), or that kombu refuses
//! it too.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use sfstream_nameko::AmqpUri;
use tokio::process::Command;

/// Prints, per URI, what kombu's py-amqp transport connects with.
const KOMBU: &str = r#"
import json, sys
from kombu import Connection
out = []
for uri in json.loads(sys.argv[1]):
    try:
        c = Connection(uri)
        d = c.transport.default_connection_params
        pick = lambda name: getattr(c, name) or d[name]
        out.append({"user": pick("userid"), "password": pick("password"),
                    "host": pick("hostname"), "port": pick("port"),
                    "vhost": c.virtual_host})
    except Exception as exc:
        out.append({"error": type(exc).__name__})
print(json.dumps(out))
"#;

#[tokio::test]
async fn parses_as_kombu() {
    let uris = [
        "pyamqp://guest:guest@127.0.0.1:5672/",
        "pyamqp://guest:guest@127.0.0.1:5672",
        "pyamqp://guest:guest@127.0.0.1:5672//",
        "pyamqp://guest:guest@127.0.0.1:5672/%2F",
        "pyamqp://guest:guest@127.0.0.1:5672/%2f",
        "pyamqp://h/x",
        "pyamqp://h//x",
        "pyamqp://h/a/b",
        "pyamqp://h/a%2Fb",
        "amqp://h/v%20h",
        "amqp://h/+",
        "amqp://h/%zz%2",
        "amqp://h/%E2%82",
        "amqp://h/%C3%BC",
        "PYAMQP://U:P@HoSt%41:0/x?heartbeat=5#frag",
        "amqp://u%40x:p%3Aw@h/v",
        "amqp://a@b@h/",
        "amqp://u:p:q@h",
        "amqp://@h:/",
        "amqp://u:@h",
        "amqp://:p@h",
        "amqp://h",
        "amqp://",
        "amqps://h",
        "amqps://h:1234/",
        "amqp://h:00005673",
        "amqp://[::1]:5673/v",
        "amqp://[fe80::1%25EtH0]/",
        "amqp://HOST%2Dx/",
        "amqp://h#x/y",
        "amqp://h/x#y",
        "amqp://h:abc/",
        "amqp://h:99999",
        "amqp://h:65536",
        "amqp://h:+5/",
        "amqp://[::1/",
        "amqp://h]/",
        "amqp://[127.0.0.1]/",
        "redis://h/0",
    ];
    let out = Command::new(sfstream_testkit::peers::python())
        .arg("-c")
        .arg(KOMBU)
        .arg(json!(uris.as_slice()).to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("python finishes")
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kombu: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(kombu.len(), uris.len());
    for (uri, want) in uris.iter().zip(kombu) {
        let got = match AmqpUri::parse(uri) {
            Ok(u) => json!({
                "user": u.username(), "password": u.password(), "host": u.host(),
                "port": u.port(), "vhost": u.vhost(),
            }),
            Err(_) => json!({"error": true}),
        };
        if want.get("error").is_some() {
            assert_eq!(
                got,
                json!({"error": true}),
                "{uri}: kombu refuses it ({want})"
            );
        } else {
            assert_eq!(got, want, "{uri}");
        }
    }
}
