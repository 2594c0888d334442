//! Canary and A/B experiments: each caller gets an arm from a stable hash of the
//! experiment's name and who the caller is, so a caller keeps its arm across requests,
//! restarts and replicas, and arms get their configured shares.

use crate::config::{ExperimentConfig, Sticky};
use std::sync::Arc;

/// One model's experiment.
#[derive(Debug)]
pub struct Experiment {
    pub name: Arc<str>,
    pub sticky: Sticky,
    /// Arms with their shares (arms with share 0 get no one).
    arms: Vec<(Arc<str>, u64)>,
    total: u64,
}

impl Experiment {
    pub fn new(config: &ExperimentConfig) -> Self {
        let arms: Vec<(Arc<str>, u64)> = config
            .arms
            .iter()
            .map(|(name, share)| (Arc::from(name.as_str()), u64::from(*share)))
            .collect();
        Self {
            name: config.name.as_str().into(),
            sticky: config.sticky,
            total: arms.iter().map(|(_, share)| share).sum(),
            arms,
        }
    }

    /// The arm of `caller` (any stable identity: a user id, a key id, a tenant id).
    pub fn assign(&self, caller: &str) -> &Arc<str> {
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        hasher.update(self.name.as_bytes());
        hasher.update(&[0]);
        hasher.update(caller.as_bytes());
        let digest = hasher.finish();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        let mut point = u64::from_be_bytes(first) % self.total.max(1);
        for (arm, share) in &self.arms {
            if point < *share {
                return arm;
            }
            point -= share;
        }
        // Unreachable with a positive total (validated); the first arm otherwise.
        &self.arms[0].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(arms: &[(&str, u32)]) -> Experiment {
        Experiment::new(&ExperimentConfig {
            name: "canary-1".into(),
            arms: arms.iter().map(|(a, w)| (a.to_string(), *w)).collect(),
            sticky: Sticky::User,
        })
    }

    #[test]
    fn shares_hold_over_ten_thousand_callers_and_each_caller_keeps_its_arm() {
        let canary = experiment(&[("stable", 95), ("canary", 5)]);
        let in_canary = (0..10_000)
            .filter(|i| &**canary.assign(&format!("user-{i}")) == "canary")
            .count();
        // 500 expected; the standard deviation is about 21.8: five of them either way.
        assert!((391..=609).contains(&in_canary), "{in_canary} of 10000");
        for i in 0..100 {
            let caller = format!("user-{i}");
            assert_eq!(canary.assign(&caller), canary.assign(&caller));
        }
    }

    #[test]
    fn arms_without_share_get_no_one_and_names_reshuffle_assignments() {
        let paused = experiment(&[("a", 1), ("b", 0)]);
        assert!((0..1_000).all(|i| &**paused.assign(&i.to_string()) == "a"));
        let first = experiment(&[("a", 1), ("b", 1)]);
        let mut second = experiment(&[("a", 1), ("b", 1)]);
        second.name = "canary-2".into();
        let differ = (0..1_000)
            .filter(|i| first.assign(&i.to_string()) != second.assign(&i.to_string()))
            .count();
        assert!((400..=600).contains(&differ), "{differ}");
    }
}
