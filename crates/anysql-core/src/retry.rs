//! [`RetryPolicy`]: how [`Engine::transaction_with`](crate::Engine::transaction_with) retries.

use std::time::Duration;

/// How often and how patiently a transaction is retried after a retryable error.
///
/// The wait before attempt `n + 1` is `initial_backoff × 2^(n-1)`, capped at `max_backoff`, with
/// random jitter of up to half of it so that competing transactions do not retry in lockstep.
///
/// ```
/// use anysql_core::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::new().max_attempts(10).initial_backoff(Duration::from_millis(5));
/// assert_eq!(policy.max_attempts_value(), 10);
/// assert!(policy.backoff(3) <= Duration::from_millis(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// Five attempts, backing off from 10 ms to at most 1 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// No retry: one attempt.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The most attempts, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait after the first failure.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest wait between attempts.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The configured number of attempts.
    pub fn max_attempts_value(&self) -> u32 {
        self.max_attempts
    }

    pub(crate) fn max_attempts_inner(&self) -> u32 {
        self.max_attempts
    }

    /// The wait after failed attempt `attempt` (1-based), jitter included.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self
            .initial_backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        let jitter = full.mul_f64(fastrand::f64() * 0.5);
        full - jitter
    }
}
