//! The limits watch against the emulator's `limits/`: the watched
//! allocations are read over the wire, and a threshold crossing is
//! reported once (not on every read), and again after it went back under.

use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::SalesforceClient;
use sfstream_salesforce::limits_watch::{LimitsPolicy, LimitsWatch, WATCHED_LIMITS};
use sfstream_testkit::emulator::authenticator;

#[tokio::test]
async fn a_crossing_is_reported_once_per_crossing() {
    let mut config = EmulatorConfig::for_tests();
    config.daily_api_requests = 12;
    let org = Emulator::start(config).await.expect("emulator");
    let client = SalesforceClient::new(authenticator(&org.url()));
    let mut watch = LimitsWatch::new(LimitsPolicy {
        warn_at: 0.5,
        ..LimitsPolicy::default()
    });
    // Every read is an API request: the use of DailyApiRequests grows by
    // one per check, past half of 12 after a few; each read reports only
    // the crossings it saw.
    let mut crossings = Vec::new();
    let mut remaining = Vec::new();
    for _ in 0..9 {
        let checked = watch.check(&client).await.expect("limits read");
        let names: Vec<&str> = checked.limits.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, WATCHED_LIMITS, "every watched limit, in order");
        let api = checked
            .limits
            .iter()
            .find(|(n, _)| n == "DailyApiRequests")
            .map(|(_, l)| *l)
            .expect("api requests");
        remaining.push(api.remaining);
        crossings.push(
            checked
                .crossings
                .iter()
                .any(|c| c.name == "DailyApiRequests"),
        );
    }
    assert!(
        remaining.windows(2).all(|w| w[1] < w[0]),
        "each read counts: {remaining:?}"
    );
    // Over from the read that left at most 6 of 12, reported that once.
    let first_over = remaining.iter().position(|r| *r <= 6).expect("crossed");
    let expected: Vec<bool> = (0..remaining.len()).map(|i| i == first_over).collect();
    assert_eq!(crossings, expected, "remaining {remaining:?}");

    // The allocation grows (a new day): back under, and a new crossing is
    // reported again.
    let limits = client.limits().await.expect("limits");
    let mut more = limits.clone();
    if let Some(api) = more.get_mut("DailyApiRequests") {
        api.max = 1_000;
        api.remaining = 990;
    }
    assert!(watch.observe(&more).is_empty(), "back under");
    let again = watch.observe(&limits);
    assert_eq!(
        again.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["DailyApiRequests"]
    );
}
