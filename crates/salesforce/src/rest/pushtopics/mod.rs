//! PushTopic declarations, as the Python Nameko extension makes them at
//! start-up, done safely: names and queries checked before any call, every
//! value escaped, a topic updated only when something differs, and two
//! replicas declaring the same topic at once ending with one topic.
//!
//! `types`: the specs, rules and results; `analysis`: the checks made
//! before any call; `operations`: the calls.

mod analysis;
mod operations;
mod types;

pub use types::{
    DeclareOutcome, DeclaredTopic, MAX_TOPIC_NAME_LEN, MAX_TOPIC_QUERY_LEN, NotifyForFields,
    NotifyForOperations, PushTopic, PushTopicSpec, SobjectTopic,
};

#[cfg(test)]
use analysis::{check_topic_name, check_topic_query, parse_version};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_topic_name("ContactStudent").is_ok());
        assert!(check_topic_name(&"x".repeat(25)).is_ok());
        for bad in ["", "has space", "dash-ed", "quote'", &"x".repeat(26)] {
            assert!(check_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries() {
        for ok in [
            "SELECT Id FROM Contact",
            "select id, Name from Contact where Name = 'limit order by'",
            "SELECT Id, Email FROM Contact WHERE Email LIKE '%\\'x'",
        ] {
            assert!(check_topic_query(ok).is_ok(), "{ok}");
        }
        for bad in [
            "DELETE FROM Contact",
            "SELECT Name FROM Contact",
            "SELECT Id Contact",
            "SELECT Id FROM Contact LIMIT 5",
            "SELECT Id FROM Contact ORDER BY Name",
            "SELECT Id FROM Contact OFFSET 1",
            "SELECT Id FROM Contact WHERE Name = 'open",
            "SELECT Id FROM ",
        ] {
            assert!(check_topic_query(bad).is_err(), "{bad}");
        }
        assert!(
            check_topic_query(&format!(
                "SELECT Id FROM Contact WHERE Name = '{}'",
                "x".repeat(1300)
            ))
            .is_err()
        );
    }

    #[test]
    fn versions_and_defaults() {
        assert_eq!(parse_version("62.0").ok(), Some(62.0));
        assert_eq!(parse_version("v61.0").ok(), Some(61.0));
        assert!(parse_version("62").is_err());
        assert!(parse_version("abc").is_err());
        let spec = PushTopicSpec::new("A", "SELECT Id FROM Contact");
        assert_eq!(spec.notify_for_fields, NotifyForFields::Referenced);
        assert_eq!(spec.channel(), "/topic/A");
        let topic = SobjectTopic::new("Contact").record_type("Student");
        assert_eq!(topic.topic_name(), "ContactStudent");
        assert!(topic.exclude_current_user);
        assert_eq!(
            NotifyForFields::parse("where"),
            Some(NotifyForFields::Where)
        );
    }
}
