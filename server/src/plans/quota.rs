//! What a plan may grow to and what each person may write: the plan's
//! quota (`plan_quota_bytes`) and the write budget (`write_bytes_per_user`).

use super::{Actor, Plans};
use crate::error::ApiError;
use wrapsync_shared::ops::Op;

impl Plans {
    /// `429` while `actor` is in debt to their write budget.
    pub(super) fn may_write(&self, actor: &Actor) -> Result<(), ApiError> {
        match &self.write_budget {
            Some(budget) => budget
                .ready(&actor.user_id, std::time::Instant::now())
                .map_err(|wait| ApiError::RateLimited(crate::limits::retry_after_secs(wait))),
            None => Ok(()),
        }
    }

    /// Charges `bytes` of stored changes to `actor`'s write budget.
    pub(super) fn wrote(&self, actor: &Actor, bytes: usize) {
        if let Some(budget) = &self.write_budget {
            budget.spend(&actor.user_id, bytes as f64, std::time::Instant::now());
        }
    }

    /// Refuses `after` if it is over the quota and larger than `before`
    /// (JSON bytes): a plan over it (a lowered quota, merged concurrent
    /// edits) still takes edits that do not grow it.
    pub(super) fn check_quota(&self, before: usize, after: usize) -> Result<(), ApiError> {
        if after > self.quota && after > before {
            return Err(ApiError::PlanQuota(format!(
                "the plan would grow to {after} bytes, over this node's quota of {} bytes \
                 (plan_quota_bytes); edits that do not grow it still go",
                self.quota
            )));
        }
        Ok(())
    }
}

/// How much `ops` surely grow a plan's JSON: an `add` of a new item (one
/// naming no `id`, so not a retry) renders at least its fields that are
/// not `null`, as compact JSON. Halved where it is used, so a rendering
/// detail can only make an early refusal rarer, never wrong.
pub(super) fn growth_floor(ops: &[Op]) -> usize {
    fn compact_len(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::Object(fields) => {
                let present: Vec<_> = fields.iter().filter(|(_, v)| !v.is_null()).collect();
                present
                    .iter()
                    .map(|(k, v)| k.len() + 3 + compact_len(v))
                    .sum::<usize>()
                    + present.len().max(1)
                    + 1
            }
            serde_json::Value::Array(items) => {
                items.iter().map(compact_len).sum::<usize>() + items.len().max(1) + 1
            }
            other => serde_json::to_vec(other).map_or(0, |v| v.len()),
        }
    }
    ops.iter()
        .filter(|op| op.op == "add")
        .filter_map(|op| op.value.as_ref())
        .filter(|value| value.is_object() && value.get("id").is_none())
        .map(compact_len)
        .sum()
}
