//! A phone's offline replica of one plan, syncing with a node through
//! `POST /v1/plans/{id}/sync` with the real Automerge sync protocol.
//! Used by tests only: what the node sends that a phone cannot apply is a
//! test failure, so it panics with what went wrong.
#![allow(clippy::expect_used)]

use crate::{Reply, TestNode};
use base64::Engine;
use reqwest::Method;
use serde_json::json;
use wrapsync_shared::automerge::sync::{self, SyncDoc};
use wrapsync_shared::automerge::{ActorId, Automerge};
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::roles::Role;

/// A phone's copy of one plan and its sync state with the node.
pub struct Device {
    pub doc: Automerge,
    pub state: sync::State,
    /// Its `Device-Id`.
    pub id: String,
}

impl Device {
    pub fn new(id: &str) -> Self {
        Device {
            doc: Automerge::new().with_actor(ActorId::random()),
            state: sync::State::new(),
            id: id.to_string(),
        }
    }

    /// One round: sends what the device has to say, takes the node's answer.
    /// Answers the HTTP reply and whether anything was exchanged.
    pub fn round(&mut self, node: &TestNode, token: &str, plan: &str) -> (Reply, bool) {
        let message = self
            .doc
            .generate_sync_message(&mut self.state)
            .map(sync::Message::encode);
        let sent = message.is_some();
        let body = json!({ "message": message.map(|m| base64::engine::general_purpose::STANDARD.encode(m)) });
        let reply = node.send(
            node.request(Method::POST, &format!("/v1/plans/{plan}/sync"))
                .bearer_auth(token)
                .header("Device-Id", &self.id)
                .json(&body),
        );
        if reply.status != 200 {
            return (reply, sent);
        }
        let answer = reply.json["message"].as_str().map(|m| {
            base64::engine::general_purpose::STANDARD
                .decode(m)
                .expect("base64 from the node")
        });
        let got = answer.is_some();
        if let Some(bytes) = answer {
            let message = sync::Message::decode(&bytes).expect("a sync message from the node");
            self.doc
                .receive_sync_message(&mut self.state, message)
                .expect("the node's changes apply");
        }
        (reply, sent || got)
    }

    /// Rounds until the node answers with an error or both sides are quiet;
    /// answers the last reply. Which round carries a local edit is up to the
    /// protocol (its bloom filters have false positives), so a test that
    /// expects a refusal must not assume the first one does.
    pub fn push(&mut self, node: &TestNode, token: &str, plan: &str) -> Reply {
        for _ in 0..20 {
            let (reply, exchanged) = self.round(node, token, plan);
            if reply.status != 200 || !exchanged {
                return reply;
            }
        }
        panic!("sync did not settle in 20 rounds");
    }

    /// Rounds until neither side has anything to say; answers how many
    /// rounds exchanged something.
    pub fn sync(&mut self, node: &TestNode, token: &str, plan: &str) -> usize {
        for rounds in 0..20 {
            let (reply, exchanged) = self.round(node, token, plan);
            reply.assert_status(200);
            if !exchanged {
                return rounds;
            }
        }
        panic!("sync did not converge in 20 rounds");
    }

    pub fn edit(&mut self, role: Role, member: Option<&str>, ops: serde_json::Value) {
        let ops: Vec<Op> = serde_json::from_value(ops).expect("ops");
        let mut tx = self.doc.transaction();
        let editor = Editor {
            role,
            member_id: member.map(str::to_string),
        };
        let mut next = || ulid::Ulid::new().to_string();
        apply_ops(&mut tx, &ops, &editor, &mut next).expect("a valid offline edit");
        tx.commit();
    }
}
