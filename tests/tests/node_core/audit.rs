//! The audit trail: every read, write and refusal leaves a row that only a
//! supervisor can see. Reads are audited asynchronously, so the tests poll
//! for them with a deadline.

use serde_json::json;
use wrapsync_shared::api::{AuditEntry, TokenResponse};
use wrapsync_tests::users::{
    CAREGIVER, FACILITATOR, FACILITATOR_2, FAMILY_ADVOCATE, NATURAL_SUPPORT, PROVIDER, SUPERVISOR,
    YOUTH,
};
use wrapsync_tests::{deadline, encode_query, wait_until, Backend, TestNode};

on_both_backends!(reads_writes_and_refusals_are_audited);

/// Every audit entry matching `query`, newest first, following `next`.
pub(crate) fn all_audit(node: &TestNode, token: &str, query: &str) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    let mut page_query = format!("limit=50&{query}");
    for _ in 0..1000 {
        let page = node.audit(token, &page_query);
        entries.extend(page.entries);
        match page.next {
            Some(next) => page_query = format!("limit=50&{query}&cursor={}", encode_query(&next)),
            None => return entries,
        }
    }
    panic!("audit `next` never ends");
}

/// What a test expects to find in the audit trail.
#[derive(Debug)]
struct Expected<'a> {
    user: &'a str,
    action: &'a str,
    outcome: &'a str,
    /// `Some(id)`: the row names this plan.
    plan: Option<&'a str>,
}

impl Expected<'_> {
    fn matches(&self, entry: &AuditEntry) -> bool {
        entry.user.as_deref() == Some(self.user)
            && entry.action == self.action
            && entry.outcome == self.outcome
            && self
                .plan
                .is_none_or(|plan| entry.plan.as_deref() == Some(plan))
    }
}

fn exp<'a>(
    user: &'a str,
    action: &'a str,
    outcome: &'a str,
    plan: Option<&'a str>,
) -> Expected<'a> {
    Expected {
        user,
        action,
        outcome,
        plan,
    }
}

fn reads_writes_and_refusals_are_audited(backend: Backend) {
    let node = TestNode::spawn(backend);
    let tokens = node.login_tokens(FACILITATOR);
    let fran: String = node
        .post_anon(
            "/v1/auth/refresh",
            &json!({ "refresh_token": tokens.refresh_token }),
        )
        .typed::<TokenResponse>(200)
        .access_token;
    node.try_login(FACILITATOR, "wrong password")
        .assert_problem(401, "invalid-credentials");
    let plan = node.create_plan(&fran, "Audited family").id;
    node.read_plan(&fran, &plan);
    node.apply_ops(
        &fran,
        &plan,
        json!([{ "op": "replace", "path": "/vision", "value": "Seen by the auditors" }]),
    );
    node.post_ops(
        &fran,
        &plan,
        None,
        json!([{ "op": "replace", "path": "/vision", "value": 42 }]),
    )
    .assert_problem(422, "schema-violation");
    node.history(&fran, &plan);
    node.list_plans(&fran, "");
    let felix = node.login(FACILITATOR_2);
    node.get(&format!("/v1/plans/{plan}"), &felix)
        .assert_problem(404, "not-found");
    let carla = node.login(CAREGIVER);
    node.post("/v1/plans", &carla, &json!({ "title": "Not allowed" }))
        .assert_problem(403, "forbidden");
    node.get("/v1/audit", &fran)
        .assert_problem(403, "forbidden");

    let p = Some(plan.as_str());
    // Rows that name the plan.
    let about_plan = [
        exp(FACILITATOR, "plan.create", "ok", p),
        exp(FACILITATOR, "plan.read", "ok", p),
        exp(FACILITATOR, "plan.ops", "ok", p),
        exp(FACILITATOR, "plan.ops", "refused", p),
        exp(FACILITATOR, "plan.history", "ok", p),
    ];
    let elsewhere = [
        exp(FACILITATOR, "auth.login", "ok", None),
        exp(FACILITATOR, "auth.refresh", "ok", None),
        exp(FACILITATOR, "plan.list", "ok", None),
        exp(FACILITATOR, "audit.read", "denied", None),
        exp(FACILITATOR_2, "plan.read", "not_found", None),
        exp(CAREGIVER, "plan.create", "denied", None),
    ];
    let expected: Vec<&Expected> = about_plan.iter().chain(&elsewhere).collect();
    let sam = node.login(SUPERVISOR);
    let mut entries = Vec::new();
    let all_there = wait_until(deadline(30), || {
        entries = all_audit(&node, &sam, "");
        expected
            .iter()
            .all(|e| entries.iter().any(|entry| e.matches(entry)))
    });
    if !all_there {
        let missing: Vec<_> = expected
            .iter()
            .filter(|e| !entries.iter().any(|entry| e.matches(entry)))
            .collect();
        panic!("audit rows missing: {missing:#?}\nall rows: {entries:#?}");
    }
    assert!(
        entries
            .iter()
            .any(|e| e.action == "auth.login" && e.outcome != "ok"),
        "the failed login is audited: {entries:#?}"
    );
    let read = entries
        .iter()
        .find(|entry| exp(FACILITATOR, "plan.read", "ok", p).matches(entry))
        .expect("the read row");
    assert!(
        read.remote
            .as_deref()
            .is_some_and(|r| r.contains("127.0.0.1")),
        "the row says where the request came from: {read:?}"
    );
    assert!(
        entries.iter().all(|e| e.at > 0),
        "every row has a time: {entries:#?}"
    );
    assert!(
        entries.windows(2).all(|w| w[0].id > w[1].id),
        "newest first, each row once: {entries:#?}"
    );

    // Filters.
    let for_plan = all_audit(&node, &sam, &format!("plan={}", encode_query(&plan)));
    assert!(for_plan
        .iter()
        .all(|e| e.plan.as_deref() == Some(plan.as_str())));
    for e in &about_plan {
        assert!(
            for_plan.iter().any(|entry| e.matches(entry)),
            "{e:?} in {for_plan:#?}"
        );
    }
    let for_carla = all_audit(&node, &sam, &format!("user={CAREGIVER}"));
    assert!(!for_carla.is_empty());
    assert!(for_carla
        .iter()
        .all(|e| e.user.as_deref() == Some(CAREGIVER)));
    assert!(for_carla
        .iter()
        .any(|entry| exp(CAREGIVER, "plan.create", "denied", None).matches(entry)));

    // Small pages walk the same rows.
    let first = node.audit(&sam, "limit=3");
    assert_eq!(first.entries.len(), 3);
    let next = first.next.expect("more than 3 rows");
    let second = node.audit(&sam, &format!("limit=3&cursor={}", encode_query(&next)));
    assert!(!second.entries.is_empty());
    let last_of_first = first.entries.last().map(|e| e.id).unwrap_or_default();
    assert!(second.entries.iter().all(|e| e.id < last_of_first));

    // The supervisor's own reading of the trail is audited too.
    assert!(wait_until(deadline(30), || {
        all_audit(&node, &sam, &format!("user={SUPERVISOR}"))
            .iter()
            .any(|entry| exp(SUPERVISOR, "audit.read", "ok", None).matches(entry))
    }));
}

#[test]
fn only_supervisors_read_the_audit_trail() {
    let node = TestNode::spawn(Backend::Sqlite);
    for user in [
        FACILITATOR,
        FAMILY_ADVOCATE,
        CAREGIVER,
        YOUTH,
        PROVIDER,
        NATURAL_SUPPORT,
    ] {
        let token = node.login(user);
        node.get("/v1/audit", &token)
            .assert_problem(403, "forbidden");
        node.get(&format!("/v1/audit?user={user}"), &token)
            .assert_problem(403, "forbidden");
    }
    node.get_anon("/v1/audit")
        .assert_problem(401, "unauthorized");
    let sam = node.login(SUPERVISOR);
    node.audit(&sam, "");
}
