#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Nothing that identifies a family leaves a node for the state hub. Two
//! real nodes hold families with distinctive names, birth dates, addresses,
//! phone numbers, e-mail addresses and notes, and report to a real hub
//! through a proxy that keeps every byte both ways. Neither those bytes nor
//! every byte the hub stores (its files, and on PostgreSQL a dump of its
//! database) hold any of those strings, any plan id, or any full date of
//! the plans; they do hold the reports.

use serde_json::json;
use std::time::{Duration, Instant};
use wrapsync_tests::users::FACILITATOR;
use wrapsync_tests::{proxy_seed, Backend, Proxy, TestHub, TestNode, HUB_ID};

/// A node reporting to the hub at `hub_url` every second.
fn reporting_node(backend: Backend, id: &str, hub_url: &str) -> TestNode {
    let mut config = toml::Table::new();
    config.insert("node_id".into(), id.into());
    config.insert("hub_url".into(), hub_url.into());
    config.insert("hub_id".into(), HUB_ID.into());
    config.insert("report_interval_secs".into(), 1.into());
    TestNode::spawn_with(backend, config)
}

/// A family whose every identifying field is distinctive; answers the
/// plan's id and the strings that must never reach the hub.
fn seed_family(node: &TestNode, token: &str, n: usize, today: &str) -> (String, Vec<String>) {
    let surname = format!("Quackenbush{n}x");
    let youth = format!("Zebediah {surname}");
    let street = format!("{} Marigold Lane", 4400 + n);
    // Typed as people do; stored (and so searched for) as E.164.
    let typed_phone = format!("303-867-53{n:02}");
    let phone = format!("+130386753{n:02}");
    let email = format!("zeb{n}.quack@example.org");
    let note = format!("Ms Oyelaran{n} drove {youth} to the clinic");
    let birth = format!("2011-03-{:02}", 10 + n);
    let plan = node
        .create_plan(token, &format!("{surname} family plan"))
        .id;
    node.apply_ops(
        token,
        &plan,
        json!([
            {"op":"replace","path":"/youth/name","value": youth},
            {"op":"replace","path":"/youth/birth_date","value": birth},
            {"op":"replace","path":"/enrollment/enrolled_on","value": today},
            {"op":"replace","path":"/vision","value": format!("{youth} lives safely at {street}")},
            {"op":"add","path":"/team","value":{"name": format!("Grandma {surname}"), "role":"natural_support", "support":"informal", "phone": typed_phone, "email": email}},
            {"op":"add","path":"/status","value":{"as_of": today, "living":"home", "school_days_missed_30d": 1, "arrests_30d": 0, "psych_admissions_180d": 1}},
            {"op":"add","path":"/cans","value":{"assessed_on": today, "ratings": {"bh.anxiety": 3, "ls.school_attendance": 2}}},
            {"op":"add","path":"/meetings","value":{"held_on": today, "place": street, "decisions": note, "status":"held"}},
            {"op":"replace","path":"/crisis_plan/reviewed_on","value": today},
            {"op":"add","path":"/crisis_plan/contacts","value":{"name": format!("Uncle {surname}"), "phone": typed_phone}},
        ]),
    );
    let secrets = vec![
        plan.clone(),
        surname,
        youth,
        street,
        phone,
        email,
        note,
        birth,
        "Marigold".into(),
        "Oyelaran".into(),
    ];
    (plan, secrets)
}

/// The first day of this month (UTC), as the plans write dates.
fn this_month() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock")
        .as_secs() as i64;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = now.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // The first of the month: still this month's report, and not today
    // (which may be the date a migration is named by, as the hub keeps).
    format!("{year:04}-{month:02}-01")
}

fn nothing_identifying_reaches_the_hub(backend: Backend) {
    // The proxy first: the nodes need the hub's URL, the hub their keys.
    let proxy = Proxy::start("nodes → hub", "http://127.0.0.1:9", proxy_seed()).expect("a proxy");
    let nodes = [
        reporting_node(backend, "county-a", proxy.url()),
        reporting_node(backend, "county-b", proxy.url()),
    ];
    let identities: Vec<(String, String)> = nodes
        .iter()
        .map(|node| {
            let identity = node.get("/federation/v1/identity", "").json;
            (
                node.node_id().to_string(),
                identity["public_key"].as_str().expect("a key").to_string(),
            )
        })
        .collect();
    let enrolled: Vec<(&str, &str)> = identities
        .iter()
        .map(|(id, key)| (id.as_str(), key.as_str()))
        .collect();
    let hub = TestHub::spawn_enrolling(backend, &enrolled);
    proxy.set_upstream(hub.url());
    proxy.record();

    let today = this_month();
    let mut secrets = vec![today.clone()];
    for node in &nodes {
        let fran = node.login(FACILITATOR);
        for n in 0..4 {
            let (_, strings) = seed_family(node, &fran, n, &today);
            secrets.extend(strings);
        }
    }
    // Two more reports from each node after the last family was added.
    let seeded = proxy.stats().replies_2xx;
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.stats().replies_2xx < seeded + 2 * 2 * nodes.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the nodes did not report: {}\n{}",
            proxy.stats(),
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let sent = proxy.recorded();
    let stored = hub.stored_bytes().expect("the hub's storage");
    // The searches find what is there: the reports and the node ids.
    let contains = |haystack: &[u8], needle: &str| {
        haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    };
    assert!(contains(&sent, "\"youth_served\""), "the reports went");
    assert!(contains(&sent, "\"crisis_plan_reviewed\""));
    assert!(contains(&stored, "county-a") && contains(&stored, "youth_served"));
    for secret in &secrets {
        assert!(!contains(&sent, secret), "{secret:?} was sent to the hub");
        assert!(
            !contains(&stored, secret),
            "{secret:?} is in the hub's storage"
        );
    }
}

#[test]
fn nothing_identifying_reaches_the_hub_sqlite() {
    nothing_identifying_reaches_the_hub(Backend::Sqlite);
}

#[test]
fn nothing_identifying_reaches_the_hub_postgres() {
    nothing_identifying_reaches_the_hub(Backend::Postgres);
}
