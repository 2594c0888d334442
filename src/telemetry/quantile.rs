//! The q-quantile of sorted samples (nearest rank), for the in-process benchmarks.

/// `sorted[⌊len·q⌋]` clamped to the last sample; 0 for no samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank_clamped() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(super::quantile(&samples, 0.5), 51.0);
        assert_eq!(super::quantile(&samples, 0.99), 100.0);
        assert_eq!(super::quantile(&samples, 1.0), 100.0);
        assert_eq!(super::quantile(&[], 0.5), 0.0);
    }
}
