//! The open-loop schedule: request `i` is due at `start + i / rate`, whatever
//! happened to the requests before it. Each connection serves one lane of it
//! (`i ≡ k mod C`), so a slow answer delays that lane's next sends, and their
//! latency — measured from the due time — shows the delay instead of hiding
//! it (coordinated omission).

use std::time::Duration;

/// The highest rate accepted: far above what one loopback node serves, low
/// enough that the schedule's arithmetic stays exact.
pub const MAX_RATE: f64 = 100_000.0;
/// The longest run accepted: a load run is bounded by design.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// When each request of a run is due, and which connection sends it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    duration: Duration,
    total: u64,
    lanes: u64,
}

impl Schedule {
    /// `rate` requests per second for `duration`, over `lanes` connections.
    pub fn new(rate: f64, duration: Duration, lanes: usize) -> Result<Schedule, String> {
        if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
            return Err(format!("--rate must be in (0, {MAX_RATE}] req/s"));
        }
        if duration.is_zero() || duration > MAX_DURATION {
            return Err(format!(
                "--duration must be in (0, {}] seconds",
                MAX_DURATION.as_secs()
            ));
        }
        if lanes == 0 || lanes > 1024 {
            return Err("--connections must be in 1..=1024".into());
        }
        // Requests with i / rate < duration, i.e. i < duration * rate.
        let total = (duration.as_secs_f64() * rate).ceil() as u64;
        Ok(Schedule {
            rate,
            duration,
            total,
            lanes: lanes as u64,
        })
    }

    /// How many requests the run sends if the node keeps up.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many connections share the schedule.
    pub fn lanes(&self) -> usize {
        self.lanes as usize
    }

    /// How long requests keep falling due; no request is sent after that.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// When request `i` is due, from the start of the run.
    pub fn due(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// The requests lane `k` sends, in order.
    pub fn lane(&self, k: usize) -> impl Iterator<Item = u64> {
        (k as u64..self.total).step_by(self.lanes as usize)
    }

    /// How many requests of `i`'s lane are due from `i` on (`i` included):
    /// what a lane leaves unsent when the run ends while it is behind.
    pub fn left_in_lane(&self, i: u64) -> u64 {
        if i >= self.total {
            0
        } else {
            (self.total - 1 - i) / self.lanes + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rate: f64, secs: f64, lanes: usize) -> Schedule {
        match Schedule::new(rate, Duration::from_secs_f64(secs), lanes) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn requests_are_due_at_fixed_intervals_from_the_start() {
        let s = schedule(200.0, 2.0, 3);
        assert_eq!(s.total(), 400);
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_millis(5));
        assert_eq!(s.due(399), Duration::from_millis(1995));
        // A fractional count rounds up: i = 0, 1, 2 are due before 2.5 s.
        assert_eq!(schedule(1.0, 2.5, 1).total(), 3);
    }

    #[test]
    fn lanes_partition_the_schedule() {
        let s = schedule(100.0, 1.0, 3);
        let mut all: Vec<u64> = (0..3).flat_map(|k| s.lane(k)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(s.lane(1).take(3).collect::<Vec<_>>(), vec![1, 4, 7]);
        for k in 0..3 {
            assert_eq!(s.left_in_lane(k as u64), s.lane(k).count() as u64);
        }
        assert_eq!(s.left_in_lane(94), 2); // 94 and 97
        assert_eq!(s.left_in_lane(97), 1);
        assert_eq!(s.left_in_lane(99), 1);
        assert_eq!(s.left_in_lane(100), 0);
    }

    #[test]
    fn unbounded_or_nonsensical_runs_are_refused() {
        let d = Duration::from_secs(1);
        assert!(Schedule::new(0.0, d, 1).is_err());
        assert!(Schedule::new(f64::NAN, d, 1).is_err());
        assert!(Schedule::new(1e9, d, 1).is_err());
        assert!(Schedule::new(10.0, Duration::ZERO, 1).is_err());
        assert!(Schedule::new(10.0, Duration::from_secs(100_000), 1).is_err());
        assert!(Schedule::new(10.0, d, 0).is_err());
    }
}
