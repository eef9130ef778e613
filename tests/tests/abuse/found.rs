//! Weaknesses the outside probe did not list, found by looking for the next
//! ones in the same classes.

use reqwest::Method;
use wrapsync_tests::users::{FACILITATOR, SUPERVISOR};
use wrapsync_tests::{Backend, TestNode};

/// Every answer that can describe a family (a plan list's titles, a
/// history, the change feed, the audit trail, a refusal naming a plan)
/// tells shared caches (a county's proxy, a school's) not to keep it. On
/// main, lists, histories, the audit trail and refusals carried no
/// `Cache-Control` at all.
#[test]
fn no_answer_about_a_family_may_be_kept_by_a_shared_cache() {
    let node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    let sam = node.login(SUPERVISOR);
    let plan = node.create_plan(&fran, "Cache family").id;
    let paths = [
        ("/v1/plans".to_string(), &fran),
        (format!("/v1/plans/{plan}"), &fran),
        (format!("/v1/plans/{plan}/history"), &fran),
        (format!("/v1/plans/{plan}/shares"), &fran),
        ("/v1/changes".to_string(), &fran),
        (format!("/v1/audit?plan={plan}"), &sam),
        ("/v1/plans/01HZZZZZZZZZZZZZZZZZZZZZZZ".to_string(), &fran),
    ];
    for (path, token) in paths {
        let reply = node.send(node.request(Method::GET, &path).bearer_auth(token));
        let cache = reply.header("cache-control").unwrap_or_default();
        assert!(
            cache.contains("no-store") || cache.contains("private"),
            "{path} answered {} with Cache-Control {cache:?}",
            reply.status
        );
    }
}

/// A query string the route cannot read is answered in our words: on main
/// the detail began with actix's "Query deserialize error:".
#[test]
fn an_unreadable_query_is_refused_in_our_words() {
    let node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    for query in [
        "updated_since=-99999999999999999999",
        "limit=lots",
        "unknown=1",
    ] {
        let reply = node.get(&format!("/v1/plans?{query}"), &fran);
        reply.assert_problem(400, "invalid-request");
        let detail = reply.json["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with("the query string is not what this route takes")
                && !detail.contains("deserialize error"),
            "{query}: {detail}"
        );
    }
}
