//! What one connection keeps when it plays a phone: per plan it syncs, an
//! Automerge copy and sync state, as the offline replica keeps them on disk;
//! and its own login session (the refresh token, single-use, rotated by
//! every refresh).

use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use std::collections::HashMap;
use wrapsync_client::Op;
use wrapsync_shared::automerge::sync::{self, SyncDoc};
use wrapsync_shared::automerge::transaction::CommitOptions;
use wrapsync_shared::automerge::Automerge;
use wrapsync_shared::ops::{apply_ops, Editor};
use wrapsync_shared::roles::Role;

/// One plan's copy on the phone.
struct Copy {
    doc: Automerge,
    state: sync::State,
    /// The last round had nothing to say either way: the copy is level
    /// with the node, so the next sync starts with a local edit.
    level: bool,
}

/// A phone's state; one per connection, never shared.
#[derive(Default)]
pub struct Phone {
    /// Its `Device-Id`: the node keeps a sync state per user, device and
    /// plan, so each phone needs its own.
    pub device: String,
    copies: HashMap<usize, Copy>,
    /// The refresh token of this phone's session, once it logged in.
    pub refresh_token: Option<String>,
}

impl Phone {
    pub fn new(device: String) -> Phone {
        Phone {
            device,
            ..Phone::default()
        }
    }

    /// The message for the next sync round of plan `plan` (`None`: nothing
    /// to say, the node may speak). A copy that was level with the node
    /// first gets a local edit, as a phone back from a home visit has one.
    pub fn next_message(&mut self, plan: usize, rng: &mut StdRng) -> Option<Vec<u8>> {
        let copy = self.copies.entry(plan).or_insert_with(|| Copy {
            doc: Automerge::new(),
            state: sync::State::new(),
            level: false,
        });
        // An empty copy is never edited: it would make its own sections.
        if copy.level && !copy.doc.get_heads().is_empty() {
            edit(&mut copy.doc, rng);
            copy.level = false;
        }
        copy.doc
            .generate_sync_message(&mut copy.state)
            .map(sync::Message::encode)
    }

    /// Takes the node's answer to the round that sent `sent` (`None`:
    /// nothing sent); `answer` is `None` when the node had nothing to say.
    pub fn receive(
        &mut self,
        plan: usize,
        sent: bool,
        answer: Option<&[u8]>,
    ) -> Result<(), &'static str> {
        let copy = self.copies.get_mut(&plan).ok_or("no copy")?;
        if let Some(bytes) = answer {
            let message = sync::Message::decode(bytes).map_err(|_| "sync-decode")?;
            copy.doc
                .receive_sync_message(&mut copy.state, message)
                .map_err(|_| "sync-apply")?;
        }
        copy.level = !sent && answer.is_none();
        Ok(())
    }
}

/// A facilitator's small edit: a new vision, made offline.
fn edit(doc: &mut Automerge, rng: &mut StdRng) {
    let op = Op {
        op: "replace".into(),
        path: "/vision".into(),
        value: Some(format!("phone {}", Alphanumeric.sample_string(rng, 16)).into()),
        from: None,
    };
    let editor = Editor {
        role: Role::Facilitator,
        member_id: None,
    };
    let mut tx = doc.transaction();
    let mut new_id = || ulid::Ulid::new().to_string();
    match apply_ops(&mut tx, &[op], &editor, &mut new_id) {
        Ok(_) => {
            tx.commit_with(CommitOptions::default().with_message("load: replace /vision"));
        }
        Err(_) => {
            tx.rollback();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Two phones and a "node" (a plain document answering rounds): the
    /// first phone's edit reaches the second through the node.
    #[test]
    fn a_phone_pulls_edits_and_sends_its_own_once_level() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut node = Automerge::new();
        {
            let mut tx = node.transaction();
            assert!(wrapsync_shared::plan::init_plan(&mut tx, "Family").is_ok());
            tx.commit();
        }
        let mut node_state = sync::State::new();
        let mut phone = Phone::default();
        let mut round = |phone: &mut Phone, node: &mut Automerge| {
            let message = phone.next_message(0, &mut rng);
            let sent = message.is_some();
            if let Some(m) = message {
                let m = sync::Message::decode(&m).unwrap_or_else(|e| panic!("{e}"));
                node.receive_sync_message(&mut node_state, m)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            let answer = node
                .generate_sync_message(&mut node_state)
                .map(sync::Message::encode);
            phone
                .receive(0, sent, answer.as_deref())
                .unwrap_or_else(|e| panic!("{e}"));
            sent || answer.is_some()
        };
        let mut rounds = 0;
        while round(&mut phone, &mut node) {
            rounds += 1;
            assert!(rounds < 10, "the pull settles");
        }
        assert_eq!(phone.copies[&0].doc.get_heads(), node.get_heads());
        // Level now: the next round carries a local edit to the node.
        let before = node.get_heads();
        while round(&mut phone, &mut node) {}
        assert_ne!(node.get_heads(), before, "the phone's edit arrived");
        assert_eq!(phone.copies[&0].doc.get_heads(), node.get_heads());
    }
}
