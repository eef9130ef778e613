//! `GET /v1/plans`: pages with `limit` and `next`, ordered by `updated_at`,
//! and the `updated_since` filter phones use to fetch only what changed.

use serde_json::json;
use std::collections::BTreeSet;
use wrapsync_shared::api::PlanSummary;
use wrapsync_tests::users::{FACILITATOR, FACILITATOR_2, SUPERVISOR};
use wrapsync_tests::{deadline, encode_query, wait_for, Backend, TestNode};

on_both_backends!(
    plan_list_pages_with_limit_and_next,
    plan_list_filters_by_updated_since,
);

/// Follows `next` from `query`, checking every page holds at most `limit`.
fn pages(node: &TestNode, token: &str, limit: usize) -> Vec<Vec<PlanSummary>> {
    let mut pages = Vec::new();
    let mut query = format!("limit={limit}");
    loop {
        let page = node.list_plans(token, &query);
        assert!(
            page.plans.len() <= limit,
            "{} plans on a page of {limit}",
            page.plans.len()
        );
        pages.push(page.plans);
        assert!(pages.len() <= 20, "`next` never ends");
        match page.next {
            Some(next) => query = format!("limit={limit}&cursor={}", encode_query(&next)),
            None => return pages,
        }
    }
}

#[track_caller]
fn assert_ascending(plans: &[PlanSummary]) {
    assert!(
        plans.windows(2).all(|w| w[0].updated_at <= w[1].updated_at),
        "ordered by updated_at ascending: {plans:#?}"
    );
}

fn plan_list_pages_with_limit_and_next(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let felix = node.login(FACILITATOR_2);
    // Created back to back, so several may share a millisecond: the cursor
    // must still neither skip nor repeat any.
    let mine: BTreeSet<String> = (0..5)
        .map(|i| node.create_plan(&fran, &format!("Family {i}")).id)
        .collect();
    let theirs = node.create_plan(&felix, "Felix's family").id;

    let fran_pages = pages(&node, &fran, 2);
    let sizes: Vec<usize> = fran_pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1], "5 plans by 2");
    let listed: Vec<PlanSummary> = fran_pages.into_iter().flatten().collect();
    assert_ascending(&listed);
    let ids: BTreeSet<String> = listed.iter().map(|p| p.id.clone()).collect();
    assert_eq!(ids.len(), listed.len(), "no plan twice");
    assert_eq!(ids, mine);

    let sam = node.login(SUPERVISOR);
    let sam_pages = pages(&node, &sam, 4);
    assert_eq!(sam_pages[0].len(), 4);
    let listed: Vec<PlanSummary> = sam_pages.into_iter().flatten().collect();
    assert_ascending(&listed);
    let ids: BTreeSet<String> = listed.iter().map(|p| p.id.clone()).collect();
    assert_eq!(ids.len(), 6);
    assert!(ids.contains(&theirs) && ids.is_superset(&mine));

    // Without a limit, everything fits the default page.
    let one_page = node.list_plans(&fran, "");
    assert_eq!(one_page.plans.len(), 5);
    assert_eq!(one_page.next, None);
}

fn plan_list_filters_by_updated_since(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let a = node.create_plan(&fran, "Family A").id;
    let b = node.create_plan(&fran, "Family B").id;
    let c = node.create_plan(&fran, "Family C").id;
    let all = node.list_all_plans(&fran);
    assert_eq!(all.len(), 3);
    let latest = all.iter().map(|p| p.updated_at).max().expect("three plans");
    let since = latest + 1;

    assert_eq!(
        node.list_plans(&fran, "updated_since=0").plans.len(),
        3,
        "everything changed since the epoch"
    );
    assert!(
        node.list_plans(&fran, &format!("updated_since={since}"))
            .plans
            .is_empty(),
        "nothing changed after the newest plan"
    );

    // Edit A until the node's clock has moved past `since` (a write in the
    // same millisecond would prove nothing); then only A has changed since.
    let mut round = 0;
    let edited_at = wait_for(deadline(30), || {
        round += 1;
        node.apply_ops(
            &fran,
            &a,
            json!([{ "op": "replace", "path": "/vision", "value": format!("Vision {round}") }]),
        );
        let summary = node
            .list_all_plans(&fran)
            .into_iter()
            .find(|p| p.id == a)
            .expect("A is still listed");
        (summary.updated_at > since).then_some(summary.updated_at)
    })
    .expect("an edit moves updated_at forward");

    let changed = node.list_plans(&fran, &format!("updated_since={since}"));
    let ids: Vec<&str> = changed.plans.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, [a.as_str()]);
    assert_eq!(changed.plans[0].updated_at, edited_at);

    // The full list is still ordered by updated_at: A is now last.
    let all = node.list_all_plans(&fran);
    assert_ascending(&all);
    assert_eq!(all.last().map(|p| p.id.as_str()), Some(a.as_str()));
    assert!(all.iter().any(|p| p.id == b) && all.iter().any(|p| p.id == c));

    // Filter and pagination combine.
    let filtered = node.list_plans(&fran, &format!("updated_since={since}&limit=1"));
    assert_eq!(filtered.plans.len(), 1);
    if let Some(next) = filtered.next {
        let rest = node.list_plans(
            &fran,
            &format!(
                "updated_since={since}&limit=1&cursor={}",
                encode_query(&next)
            ),
        );
        assert!(rest.plans.is_empty());
        assert_eq!(rest.next, None);
    }
}
