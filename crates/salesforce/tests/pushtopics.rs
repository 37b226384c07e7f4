//! PushTopic declarations against the emulator: create, update only when
//! different, validation before any call, sobject topics as the Nameko
//! extension declares them (safely), listing, deleting, and two replicas
//! racing on the same topic.

use serde_json::json;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::rest::{
    DeclareOutcome, NotifyForFields, NotifyForOperations, PushTopicSpec, RestError,
    SalesforceClient, SobjectTopic,
};

async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator")
}

fn client(emulator: &Emulator) -> SalesforceClient {
    SalesforceClient::new(sfstream_testkit::emulator::authenticator(&emulator.url()))
}

fn soap_client(emulator: &Emulator) -> SalesforceClient {
    SalesforceClient::new(sfstream_testkit::emulator::soap_authenticator(
        &emulator.url(),
    ))
}

#[tokio::test]
async fn declare_creates_then_leaves_unchanged_then_updates() {
    let org = emulator().await;
    let client = client(&org);
    let spec = PushTopicSpec::new("ContactUpdates", "SELECT Id, Name, Email FROM Contact");
    let created = client.declare_topic(&spec).await.expect("declare");
    let DeclareOutcome::Created(id) = &created else {
        panic!("{created:?}")
    };

    let used = org.org().api_requests();
    let again = client.declare_topic(&spec).await.expect("declare again");
    assert_eq!(again, DeclareOutcome::Unchanged(id.clone()));
    // One lookup, no PATCH.
    assert_eq!(org.org().api_requests(), used + 1);

    let changed = PushTopicSpec::new(
        "ContactUpdates",
        "SELECT Id, Name, Email, Phone FROM Contact",
    )
    .notify_for_fields(NotifyForFields::Select)
    .notify_for_operations(NotifyForOperations {
        create: false,
        update: true,
        delete: false,
        undelete: false,
    })
    .description("contacts")
    .api_version("61.0");
    assert_eq!(
        client.declare_topic(&changed).await.expect("update"),
        DeclareOutcome::Updated(id.clone())
    );
    let topic = client
        .get_topic("ContactUpdates")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(topic.query, "SELECT Id, Name, Email, Phone FROM Contact");
    assert_eq!(topic.notify_for_fields, Some(NotifyForFields::Select));
    assert!(!topic.notify_for_operations.create && topic.notify_for_operations.update);
    assert_eq!(topic.description.as_deref(), Some("contacts"));
    assert_eq!(topic.api_version, Some(61.0));
    assert!(topic.is_active);
    assert_eq!(
        client.declare_topic(&changed).await.expect("same"),
        DeclareOutcome::Unchanged(id.clone())
    );

    // An inactive topic is reactivated.
    client
        .update("PushTopic", id, &json!({"IsActive": false}))
        .await
        .expect("deactivate");
    assert_eq!(
        client.declare_topic(&changed).await.expect("reactivate"),
        DeclareOutcome::Updated(id.clone())
    );
}

#[tokio::test]
async fn names_and_queries_are_checked_before_any_call() {
    let org = emulator().await;
    let client = client(&org);
    client.session().await.expect("login");
    let used = org.org().api_requests();
    for (name, query) in [
        ("ThisNameIsWayTooLongForATopic", "SELECT Id FROM Contact"),
        ("Bad Name", "SELECT Id FROM Contact"),
        ("Quote'Name", "SELECT Id FROM Contact"),
        ("", "SELECT Id FROM Contact"),
        ("NoId", "SELECT Name FROM Contact"),
        ("Limited", "SELECT Id FROM Contact LIMIT 5"),
        ("Ordered", "SELECT Id FROM Contact ORDER BY Name"),
        ("NotSelect", "DELETE FROM Contact"),
    ] {
        let error = client
            .declare_topic(&PushTopicSpec::new(name, query))
            .await
            .unwrap_err();
        assert!(
            matches!(error, RestError::InvalidArgument(_)),
            "{name}: {error:?}"
        );
    }
    assert_eq!(org.org().api_requests(), used, "nothing was sent");

    // What only the server can tell: a field that does not exist.
    let error = client
        .declare_topic(&PushTopicSpec::new(
            "Bogus",
            "SELECT Id, Bogus FROM Contact",
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("INVALID_FIELD"), "{error:?}");
}

#[tokio::test]
async fn sobject_topics_as_the_nameko_extension_declares_them() {
    let org = emulator().await;
    let client = client(&org);
    let user = org.org().user_id();
    let student = client
        .query_collect("SELECT Id FROM RecordType WHERE DeveloperName = 'Student'")
        .await
        .expect("record type")[0]["Id"]
        .as_str()
        .expect("id")
        .to_string();

    let topic = client
        .declare_sobject_topic(&SobjectTopic::new("Contact").record_type("Student"))
        .await
        .expect("declare");
    assert_eq!(topic.name, "ContactStudent");
    assert_eq!(topic.channel, "/topic/ContactStudent");
    assert_eq!(
        topic.query,
        format!(
            "SELECT Id, Name, LastModifiedById, LastModifiedDate FROM Contact WHERE RecordTypeId = '{student}' AND LastModifiedById != '{user}'"
        )
    );
    assert!(matches!(topic.outcome, DeclareOutcome::Created(_)));
    let stored = client
        .get_topic("ContactStudent")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.query, topic.query);
    assert_eq!(stored.notify_for_fields, Some(NotifyForFields::All));

    // Task has no Name; extra fields are selected; no conditions asked.
    let task = client
        .declare_sobject_topic(
            &SobjectTopic::new("Task")
                .exclude_current_user(false)
                .extra_fields(["Subject", "Status", "Id"]),
        )
        .await
        .expect("task topic");
    assert_eq!(
        task.query,
        "SELECT Id, LastModifiedById, LastModifiedDate, Subject, Status FROM Task"
    );
    assert_eq!(task.name, "Task");
    let case = client
        .declare_sobject_topic(&SobjectTopic::new("Case").exclude_current_user(false))
        .await
        .expect("case topic");
    assert!(!case.query.contains("Name"), "{}", case.query);

    // Declaring again changes nothing.
    let again = client
        .declare_sobject_topic(&SobjectTopic::new("Contact").record_type("Student"))
        .await
        .expect("again");
    assert!(matches!(again.outcome, DeclareOutcome::Unchanged(_)));

    // The SOAP login (as the Nameko extension) knows the user id too.
    let soap = soap_client(&org)
        .declare_sobject_topic(&SobjectTopic::new("Lead").name("LeadsByOthers"))
        .await
        .expect("soap");
    assert!(
        soap.query
            .ends_with(&format!("WHERE LastModifiedById != '{user}'"))
    );

    // Clear errors.
    for (topic, needle) in [
        (
            SobjectTopic::new("Contact").record_type("Nope"),
            "no record type",
        ),
        (
            SobjectTopic::new("Contact").extra_fields(["Bogus__x"]),
            "no field",
        ),
        (
            SobjectTopic::new("Task").record_type("Student"),
            "no record types",
        ),
        (
            SobjectTopic::new("Opportunity").record_type("VeryLongRecordTypeName"),
            "25",
        ),
        (SobjectTopic::new("Contact' OR Name != '"), "API name"),
        (
            SobjectTopic::new("Contact").record_type("Stu'dent"),
            "API name",
        ),
    ] {
        match client.declare_sobject_topic(&topic).await {
            Err(RestError::InvalidArgument(message)) => {
                assert!(message.contains(needle), "{message} lacks {needle}")
            }
            other => panic!("{topic:?}: {other:?}"),
        }
    }

    // Changes by someone else notify the topic, changes by the client's
    // user do not.
    let before = org
        .org()
        .streaming
        .channel_state("/topic/Task")
        .map_or(0, |(latest, _)| latest);
    client
        .create("Task", &json!({"Subject": "Call Ada"}))
        .await
        .expect("task");
    let after = org
        .org()
        .streaming
        .channel_state("/topic/Task")
        .map_or(0, |(latest, _)| latest);
    assert!(after > before, "the Task topic (not excluding) notified");
    let contact_before = org
        .org()
        .streaming
        .channel_state("/topic/ContactStudent")
        .map_or(0, |(latest, _)| latest);
    client
        .create(
            "Contact",
            &json!({"LastName": "Mine", "RecordTypeId": student}),
        )
        .await
        .expect("contact");
    let contact_after = org
        .org()
        .streaming
        .channel_state("/topic/ContactStudent")
        .map_or(0, |(latest, _)| latest);
    assert_eq!(contact_before, contact_after, "own change excluded");
}

#[tokio::test]
async fn list_and_delete_topics() {
    let org = emulator().await;
    let client = client(&org);
    for name in ["Beta", "Alpha"] {
        client
            .declare_topic(&PushTopicSpec::new(name, "SELECT Id FROM Account"))
            .await
            .expect("declare");
    }
    let names: Vec<String> = client
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["Alpha", "Beta"]);
    assert!(client.delete_topic("Alpha").await.expect("delete"));
    assert!(!client.delete_topic("Alpha").await.expect("already gone"));
    // Names are case-sensitive.
    assert!(!client.delete_topic("beta").await.expect("other case"));
    let topics = client.list_topics().await.expect("list");
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].channel(), "/topic/Beta");
}

#[tokio::test]
async fn two_declarers_racing_end_with_one_topic() {
    let org = emulator().await;
    for round in 0..5 {
        let (a, b) = (client(&org), client(&org));
        let name = format!("Raced{round}");
        let spec = PushTopicSpec::new(name.clone(), "SELECT Id, Name FROM Contact")
            .notify_for_fields(NotifyForFields::All);
        let (first, second) = tokio::join!(a.declare_topic(&spec), b.declare_topic(&spec));
        let (first, second) = (first.expect("first"), second.expect("second"));
        assert_eq!(first.id(), second.id(), "{first:?} {second:?}");
        let created = [&first, &second]
            .iter()
            .filter(|o| matches!(o, DeclareOutcome::Created(_)))
            .count();
        assert_eq!(created, 1, "{first:?} {second:?}");
        let count = a
            .count(&format!(
                "SELECT COUNT() FROM PushTopic WHERE Name = '{name}'"
            ))
            .await
            .expect("count");
        assert_eq!(count, 1);
    }

    // Racing with different settings: still one topic, with one of them.
    let (a, b) = (client(&org), client(&org));
    let one = PushTopicSpec::new("RacedApart", "SELECT Id FROM Contact");
    let two = PushTopicSpec::new("RacedApart", "SELECT Id, Email FROM Contact");
    let (x, y) = tokio::join!(a.declare_topic(&one), b.declare_topic(&two));
    assert_eq!(x.expect("one").id(), y.expect("two").id());
    let topics: Vec<_> = a
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .filter(|t| t.name == "RacedApart")
        .collect();
    assert_eq!(topics.len(), 1);
}
