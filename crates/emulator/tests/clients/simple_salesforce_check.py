"""simple-salesforce against the emulator.

Usage: simple_salesforce_check.py URL SECTION

URL is the emulator's base URL (http://127.0.0.1:PORT), its login URL and
instance URL alike. SECTION is one of login, crud, describe, query. Prints
one JSON object to stdout summarising what the library saw; the Rust test
(crates/emulator/tests/third_party_clients.rs) asserts on it. Anything
unexpected raises, so the process exits non-zero with a traceback on stderr.

simple-salesforce builds every URL as https://{host}/...: logins go to
https://{domain}.salesforce.com and REST calls to https://{instance}. The
emulator serves plain HTTP, so every client here gets a requests.Session
(simple-salesforce's documented `session=` hook) that sends those https
URLs to the emulator over http. Nothing in the library is patched; the
bodies, headers and response handling are all the library's own.
"""

import json
import sys
from urllib.parse import urlsplit

import requests
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

USERNAME = "emulator@example.com"
PASSWORD = "password"
SECURITY_TOKEN = "token"
CONSUMER_KEY = "emulator-consumer-key"
CONSUMER_SECRET = "emulator-consumer-secret"
VERSION = "62.0"
# The login host simple-salesforce uses by default (domain="login").
LOGIN_HOST = "login.salesforce.com"


class EmulatorSession(requests.Session):
    """Sends https requests for the login host or the emulator's own
    host:port to the emulator over http, and counts what it sent."""

    def __init__(self, base_url):
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.hosts = {urlsplit(base_url).netloc, LOGIN_HOST}
        self.sent = []

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.netloc in self.hosts:
            url = self.base_url + url[len(f"https://{parts.netloc}"):]
        self.sent.append(f"{method} {urlsplit(url).path}")
        return super().request(method, url, *args, **kwargs)


def error_of(exc):
    """The parts of a SalesforceError a test asserts on."""
    content = exc.content
    first = content[0] if isinstance(content, list) and content else content
    return {
        "type": type(exc).__name__,
        "status": exc.status,
        "resource_name": exc.resource_name,
        "errorCode": first.get("errorCode") if isinstance(first, dict) else None,
        "message": first.get("message") if isinstance(first, dict) else None,
        "fields": first.get("fields") if isinstance(first, dict) else None,
        "content": content,
    }


def expect_error(kind, call):
    """Runs call, which must raise kind; returns the error's summary."""
    try:
        result = call()
    except kind as exc:
        return error_of(exc)
    raise AssertionError(f"expected {kind.__name__}, got {result!r}")


def soap_client(url):
    """Username, password and security token: simple-salesforce's SOAP login,
    against https://login.salesforce.com (the default domain) redirected."""
    return Salesforce(
        username=USERNAME,
        password=PASSWORD,
        security_token=SECURITY_TOKEN,
        version=VERSION,
        session=EmulatorSession(url),
    )


def login(url):
    out = {}

    # 1. SalesforceLogin's scratch_url: a SOAP login URL the caller gives, so
    #    no redirection is needed for the login itself.
    session_id, instance = SalesforceLogin(
        username=USERNAME,
        password=PASSWORD,
        security_token=SECURITY_TOKEN,
        sf_version=VERSION,
        scratch_url=url,
    )
    direct = Salesforce(
        session_id=session_id,
        instance_url=url,
        version=VERSION,
        session=EmulatorSession(url),
    )
    out["scratch_url"] = {
        "session_id": session_id,
        "sf_instance": instance,
        "auth_type": direct.auth_type,
        "base_url": direct.base_url,
        "resources": direct.restful(""),
    }

    # 2. The usual constructor with a security token: SOAP login.
    soap = soap_client(url)
    out["soap"] = {
        "session_id": soap.session_id,
        "sf_instance": soap.sf_instance,
        "auth_type": soap.auth_type,
        "limits_keys": sorted(soap.limits().keys()),
        "sent": soap.session.sent,
    }

    # 3. OAuth 2.0 username-password flow with the connected app's key and
    #    secret (the password carries the security token, as Salesforce wants).
    oauth = Salesforce(
        username=USERNAME,
        password=PASSWORD + SECURITY_TOKEN,
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
        version=VERSION,
        session=EmulatorSession(url),
    )
    out["oauth"] = {
        "session_id": oauth.session_id,
        "sf_instance": oauth.sf_instance,
        "auth_type": oauth.auth_type,
        "limits_keys": sorted(oauth.limits().keys()),
        "sent": oauth.session.sent,
    }

    # 4. Refusals, as the library reports them.
    def failed(call):
        try:
            call()
        except SalesforceAuthenticationFailed as exc:
            return {"code": exc.code, "message": exc.message}
        raise AssertionError("login with bad credentials succeeded")

    out["soap_bad_password"] = failed(
        lambda: Salesforce(
            username=USERNAME,
            password="wrong",
            security_token=SECURITY_TOKEN,
            version=VERSION,
            session=EmulatorSession(url),
        )
    )
    out["oauth_bad_secret"] = failed(
        lambda: Salesforce(
            username=USERNAME,
            password=PASSWORD + SECURITY_TOKEN,
            consumer_key=CONSUMER_KEY,
            consumer_secret="wrong",
            version=VERSION,
            session=EmulatorSession(url),
        )
    )
    return out


def crud(url):
    sf = soap_client(url)
    out = {}

    created = sf.Contact.create(
        {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}
    )
    contact_id = created["id"]
    out["create"] = created
    fetched = sf.Contact.get(contact_id)
    out["get"] = {
        k: fetched.get(k) for k in ("Id", "FirstName", "LastName", "Email", "attributes")
    }
    out["update_status"] = sf.Contact.update(contact_id, {"LastName": "King", "Title": "Countess"})
    fetched = sf.Contact.get(contact_id)
    out["after_update"] = {k: fetched.get(k) for k in ("LastName", "Title", "FirstName")}

    # Upsert by external id: the first creates (201), the second updates.
    out["upsert_create_status"] = sf.Account.upsert("External_Id__c/ACME-1", {"Name": "Acme"})
    out["upsert_update_status"] = sf.Account.upsert(
        "External_Id__c/ACME-1", {"Name": "Acme Corp"}
    )
    account = sf.Account.get_by_custom_id("External_Id__c", "ACME-1")
    out["account"] = {k: account.get(k) for k in ("Id", "Name", "External_Id__c")}
    raw = sf.Account.upsert(
        "External_Id__c/ACME-2", {"Name": "Beta"}, raw_response=True
    )
    out["upsert_raw"] = {"status": raw.status_code, "body": raw.json()}

    # An expired session: simple-salesforce logs in again and retries.
    old_session = sf.session_id
    requests.post(f"{url}/_emulator/faults/invalidate-tokens", json={}, timeout=10).raise_for_status()
    fetched = sf.Contact.get(contact_id)
    out["relogin"] = {
        "session_changed": sf.session_id != old_session,
        "LastName": fetched.get("LastName"),
    }

    out["delete_status"] = sf.Contact.delete(contact_id)
    out["get_deleted"] = expect_error(
        SalesforceResourceNotFound, lambda: sf.Contact.get(contact_id)
    )
    out["delete_by_external_status"] = sf.Account.delete("External_Id__c/ACME-2")
    return out


def describe(url):
    sf = soap_client(url)
    out = {}
    everything = sf.describe()
    contact = next(s for s in everything["sobjects"] if s["name"] == "Contact")
    out["global"] = {
        "count": len(everything["sobjects"]),
        "names": sorted(s["name"] for s in everything["sobjects"]),
        "contact": {k: contact.get(k) for k in ("name", "keyPrefix", "queryable", "urls")},
    }
    described = sf.Contact.describe()
    fields = {f["name"]: f for f in described["fields"]}
    out["contact"] = {
        "name": described["name"],
        "keyPrefix": described["keyPrefix"],
        "field_names": sorted(fields),
        "LastName": {k: fields["LastName"].get(k) for k in ("type", "nillable", "createable")},
        "Id": {k: fields["Id"].get(k) for k in ("type", "createable")},
    }
    metadata = sf.Contact.metadata()
    out["metadata"] = {
        "objectDescribe": {k: metadata["objectDescribe"].get(k) for k in ("name", "keyPrefix")},
        "recentItems": metadata.get("recentItems"),
    }
    limits = sf.limits()
    out["limits"] = {"DailyApiRequests": limits["DailyApiRequests"], "keys": sorted(limits)}
    out["restful_limits_keys"] = sorted(sf.restful("limits/"))
    # Parsed from the Sforce-Limit-Info header of the last call.
    usage = sf.api_usage.get("api-usage")
    out["api_usage"] = {"used": usage.used, "total": usage.total} if usage else None

    # Errors, as the library classifies them.
    out["bad_field"] = expect_error(
        SalesforceMalformedRequest,
        lambda: sf.Contact.create({"LastName": "X", "NoSuchField": 1}),
    )
    out["missing_record"] = expect_error(
        SalesforceResourceNotFound, lambda: sf.Contact.get("003000000000000AAA")
    )
    out["unknown_sobject"] = expect_error(
        SalesforceError, lambda: sf.NoSuchThing__c.describe()
    )
    out["malformed_json"] = expect_error(
        SalesforceMalformedRequest,
        lambda: sf.restful("sobjects/Contact", method="POST", data="{not json"),
    )
    return out


def query(url):
    sf = soap_client(url)
    out = {}
    ids = []
    for first in ("E", "A", "D", "B", "C"):
        ids.append(sf.Contact.create({"FirstName": first, "LastName": "Paging"})["id"])
    soql = "SELECT Id, FirstName, LastName FROM Contact WHERE LastName = 'Paging' ORDER BY FirstName"

    page = sf.query(soql)
    out["first_page"] = {
        "totalSize": page["totalSize"],
        "done": page["done"],
        "count": len(page["records"]),
        "nextRecordsUrl": page.get("nextRecordsUrl"),
        "first_names": [r["FirstName"] for r in page["records"]],
        "attributes": page["records"][0]["attributes"] if page["records"] else None,
    }
    if page.get("nextRecordsUrl"):
        more = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        out["second_page"] = {
            "done": more["done"],
            "first_names": [r["FirstName"] for r in more["records"]],
        }

    everything = sf.query_all(soql)
    out["query_all"] = {
        "totalSize": everything["totalSize"],
        "done": everything["done"],
        "first_names": [r["FirstName"] for r in everything["records"]],
    }
    out["query_all_iter"] = [r["FirstName"] for r in sf.query_all_iter(soql)]

    sf.Contact.delete(ids[0])
    out["after_delete"] = sf.query_all(soql)["totalSize"]
    with_deleted = sf.query_all(
        "SELECT Id, FirstName, IsDeleted FROM Contact WHERE LastName = 'Paging'",
        include_deleted=True,
    )
    out["include_deleted"] = {
        "totalSize": with_deleted["totalSize"],
        "deleted": sorted(r["FirstName"] for r in with_deleted["records"] if r["IsDeleted"]),
    }
    count = sf.query("SELECT COUNT() FROM Contact WHERE LastName = 'Paging'")
    out["count"] = {"totalSize": count["totalSize"], "records": count["records"]}
    out["bad_field"] = expect_error(
        SalesforceMalformedRequest, lambda: sf.query("SELECT Nope FROM Contact")
    )
    out["bad_syntax"] = expect_error(
        SalesforceMalformedRequest, lambda: sf.query("SELECT FROM WHERE")
    )
    return out


SECTIONS = {"login": login, "crud": crud, "describe": describe, "query": query}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in SECTIONS:
        sys.exit(f"usage: {sys.argv[0]} URL {{{','.join(SECTIONS)}}}")
    url, section = sys.argv[1].rstrip("/"), sys.argv[2]
    print(json.dumps(SECTIONS[section](url), default=str))


if __name__ == "__main__":
    main()
