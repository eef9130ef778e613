//! The plan service's bells: one rung on every stored change (the change
//! feed, the outbox, other processes' streams), one raised when the node
//! stops.

use super::Plans;

impl Plans {
    /// Ends every open change-feed stream (the node is stopping).
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    /// Turns true when the node is stopping.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Wakes whenever any plan of this node changes.
    /// Tells whoever follows changes (the change feed, the federation
    /// outbox) that something was stored.
    pub fn notify_changed(&self) {
        let _ = self.changed.send(());
    }

    /// What rings the change bell: for whoever hears changes made
    /// elsewhere (`cluster`).
    pub fn bell(&self) -> tokio::sync::broadcast::Sender<()> {
        self.changed.clone()
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.changed.subscribe()
    }
}
