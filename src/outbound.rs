//! Resilient calls to a dependency across the network: the payment provider now (see
//! `payments::http`), webhook endpoints later. One [`Outbound`] per dependency gives every
//! call, outermost first:
//!
//! 1. a **bulkhead** (tower-resilience): at most `max_concurrent` calls in flight; one more
//!    fails fast ([`Shed::Saturated`]) instead of queueing behind a slow dependency;
//! 2. **retries** (backon): exponential backoff with jitter, only for a [`Fault::Transient`]
//!    failure and only when the caller says the call is safe to repeat (the provider's
//!    idempotency key, or a read); never for a refusal or an unreadable answer;
//! 3. a **circuit breaker** (tower-resilience), one per dependency, that counts every
//!    attempt: closed → open when at least `failure_ratio` of the attempts of the last
//!    `window` failed, once there were at least `min_calls` of them; open refuses calls
//!    for `open_for` ([`Shed::BreakerOpen`]); then half-open lets `half_open_probes` calls
//!    through: that many successes close it, one failure reopens it (the states of
//!    Nygard's *Release It!*, as in resilience4j);
//! 4. a **per-attempt timeout**.
//!
//! A shed call was never sent: its outcome is known (nothing happened). Once an attempt
//! was sent, a later shed attempt reports the earlier failure instead, since that outcome
//! is unknown. The breaker's state is a gauge (`orderly_outbound_breaker_state`) and is
//! reported by `/readyz`.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures_util::future::BoxFuture;
use tower::{Layer, ServiceExt, service_fn};
use tower_resilience::bulkhead::{BulkheadLayer, BulkheadServiceError};
use tower_resilience::circuitbreaker::{
    CircuitBreakerError, CircuitBreakerHandle, CircuitBreakerLayer, CircuitState, FailureClassifier, SlidingWindowType,
};

/// The limits of one dependency's calls (from `payments.*` for the payment provider).
#[derive(Debug, Clone)]
pub struct Policy {
    /// One attempt's limit.
    pub timeout: Duration,
    /// Extra attempts after a transient failure of a call safe to repeat.
    pub retries: u32,
    /// The first backoff; it doubles per retry, up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// 0 < ratio ≤ 1: the share of failed attempts in the window that opens the breaker.
    pub failure_ratio: f64,
    pub min_calls: usize,
    /// The breaker's sliding window (time-based).
    pub window: Duration,
    pub open_for: Duration,
    pub half_open_probes: usize,
    pub max_concurrent: usize,
}

/// How one attempt failed, as the caller classifies its dependency's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The dependency did not answer usefully (connection failed or lost, timeout, 5xx,
    /// 429): retried when safe; counts against the breaker.
    Transient(String),
    /// It answered, but not in its protocol (an unreadable body): not retried; counts
    /// against the breaker.
    Broken(String),
    /// It refused the request (a 4xx): not retried, and the dependency is healthy.
    Refused(String),
}

/// Why a call was not sent at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The circuit breaker is open (or half-open with every probe taken).
    BreakerOpen,
    /// The bulkhead is full: `max_concurrent` calls are in flight.
    Saturated,
}

impl Shed {
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::BreakerOpen => "breaker_open",
            Shed::Saturated => "saturated",
        }
    }
}

/// How a whole call (all its attempts) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The last attempt's failure; for `Transient` and `Broken` the outcome is unknown.
    Fault(Fault),
    /// Nothing was sent; retrying after `retry_after` may work.
    Shed { why: Shed, retry_after: Duration },
}

/// The circuit breaker's state, as `/readyz` and the gauge report it (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn of(s: CircuitState) -> Self {
        match s {
            CircuitState::Closed => BreakerState::Closed,
            CircuitState::Open => BreakerState::Open,
            CircuitState::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

/// Failed attempts for the breaker: transient and broken answers, not refusals.
#[derive(Debug, Clone, Copy)]
struct Classify;

impl<T> FailureClassifier<T, Fault> for Classify {
    fn classify(&self, result: &Result<T, Fault>) -> bool {
        matches!(result, Err(Fault::Transient(_) | Fault::Broken(_)))
    }
}

/// One attempt's failure, inside the retry loop.
#[derive(Debug)]
enum Attempt {
    Fault(Fault),
    Open,
}

/// The resilience of one dependency (see the module docs). Cheap to share behind an `Arc`.
pub struct Outbound {
    name: &'static str,
    policy: Policy,
    breaker: CircuitBreakerLayer<Classify>,
    handle: CircuitBreakerHandle<Classify>,
    bulkhead: BulkheadLayer,
}

impl Outbound {
    /// The layers for the dependency `name` (a metric label, e.g. `payments`). Errors if a
    /// threshold is out of range (zero calls, a ratio outside (0, 1]).
    pub fn new(name: &'static str, policy: Policy) -> anyhow::Result<Self> {
        let (breaker, handle) = CircuitBreakerLayer::builder()
            .name(name)
            .failure_rate_threshold(policy.failure_ratio)
            .minimum_number_of_calls(policy.min_calls)
            .sliding_window_type(SlidingWindowType::TimeBased)
            .sliding_window_duration(policy.window)
            .wait_duration_in_open(policy.open_for)
            .permitted_calls_in_half_open(policy.half_open_probes)
            .on_state_transition(move |from, to| {
                tracing::warn!(
                    dependency = name,
                    from = BreakerState::of(from).as_str(),
                    to = BreakerState::of(to).as_str(),
                    "circuit breaker changed state"
                );
                crate::metrics::breaker_state(name, BreakerState::of(to) as u8);
            })
            .failure_classifier_type(Classify)
            .build_with_handle()
            .map_err(|e| anyhow::anyhow!("{name} circuit breaker: {e}"))?;
        let (bulkhead, _) = BulkheadLayer::builder()
            .name(name)
            .max_concurrent_calls(policy.max_concurrent)
            .reject_when_full()
            .build_with_handle()
            .map_err(|e| anyhow::anyhow!("{name} bulkhead: {e}"))?;
        crate::metrics::breaker_state(name, BreakerState::Closed as u8);
        Ok(Self { name, policy, breaker, handle, bulkhead })
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        BreakerState::of(self.handle.state())
    }

    /// Runs `attempt` under the bulkhead, the breaker and the timeout, again after a
    /// transient failure if `safe_to_retry`. Errors: the last attempt's [`Fault`], or
    /// [`CallError::Shed`] if nothing was sent.
    pub async fn call<T, F, Fut>(&self, safe_to_retry: bool, attempt: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Fault>> + Send + 'static,
    {
        let run = retrying(self.name, self.policy.clone(), self.breaker.clone(), safe_to_retry, attempt);
        let bulkhead = self.bulkhead.layer(service_fn(pass::<T, CallError>));
        match bulkhead.oneshot(Job(Box::pin(run))).await {
            Ok(v) => Ok(v),
            Err(BulkheadServiceError::Inner(e)) => Err(e),
            Err(BulkheadServiceError::Bulkhead(_)) => {
                crate::metrics::outbound_shed(self.name, Shed::Saturated.as_str());
                Err(CallError::Shed { why: Shed::Saturated, retry_after: Duration::from_secs(1) })
            }
        }
    }
}

/// A call handed to a layer. A struct without lifetime parameters, so that the compiler
/// need not prove `Send` for every lifetime of a bare boxed future (rust-lang/rust#102211).
struct Job<T, E>(BoxFuture<'static, Result<T, E>>);

/// The innermost service of a layer: runs the call it is given.
fn pass<T, E>(job: Job<T, E>) -> BoxFuture<'static, Result<T, E>> {
    job.0
}

/// The retry loop, each attempt through the breaker and the timeout.
async fn retrying<T, F, Fut>(
    name: &'static str,
    policy: Policy,
    breaker: CircuitBreakerLayer<Classify>,
    safe_to_retry: bool,
    mut attempt: F,
) -> Result<T, CallError>
where
    T: Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Fault>> + Send + 'static,
{
    let timeout = policy.timeout;
    let mut sent: Option<Fault> = None;
    let one = || {
        let fut = attempt();
        let timed = async move {
            tokio::time::timeout(timeout, fut).await.unwrap_or_else(|_| Err(Fault::Transient("timed out".into())))
        };
        let svc = breaker.layer(service_fn(pass::<T, Fault>));
        async move {
            svc.oneshot(Job(Box::pin(timed))).await.map_err(|e| match e {
                CircuitBreakerError::OpenCircuit => Attempt::Open,
                CircuitBreakerError::Inner(f) => Attempt::Fault(f),
            })
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.backoff_base)
        .with_max_delay(policy.backoff_max)
        .with_max_times(if safe_to_retry { policy.retries as usize } else { 0 })
        .with_jitter();
    let out = one
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e| matches!(e, Attempt::Fault(Fault::Transient(_))))
        .notify(|e, _| {
            if let Attempt::Fault(f) = e {
                sent = Some(f.clone());
            }
            crate::metrics::outbound_retry(name);
        })
        .await;
    match out {
        Ok(v) => Ok(v),
        Err(Attempt::Fault(f)) => Err(CallError::Fault(f)),
        // An earlier attempt was sent and its outcome is unknown: report that, not "not sent".
        Err(Attempt::Open) => match sent {
            Some(f) => Err(CallError::Fault(f)),
            None => {
                crate::metrics::outbound_shed(name, Shed::BreakerOpen.as_str());
                Err(CallError::Shed { why: Shed::BreakerOpen, retry_after: policy.open_for })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn policy() -> Policy {
        Policy {
            timeout: Duration::from_millis(200),
            retries: 2,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            failure_ratio: 0.5,
            min_calls: 4,
            window: Duration::from_secs(10),
            open_for: Duration::from_millis(300),
            half_open_probes: 1,
            max_concurrent: 2,
        }
    }

    /// A call whose attempts answer from `script` in turn (the last one repeats), counting them.
    fn scripted(
        script: Vec<Result<u32, Fault>>,
        count: Arc<AtomicU32>,
    ) -> impl FnMut() -> BoxFuture<'static, Result<u32, Fault>> + Send + 'static {
        move || {
            let (count, script) = (count.clone(), script.clone());
            Box::pin(async move {
                let n = count.fetch_add(1, Ordering::SeqCst) as usize;
                script[n.min(script.len() - 1)].clone()
            })
        }
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_only_when_safe() {
        let out = Outbound::new("t1", policy()).unwrap();
        let n = Arc::new(AtomicU32::new(0));
        let script = vec![Err(Fault::Transient("503".into())), Ok(7)];
        assert_eq!(out.call(true, scripted(script.clone(), n.clone())).await, Ok(7));
        assert_eq!(n.load(Ordering::SeqCst), 2);
        let n = Arc::new(AtomicU32::new(0));
        assert_eq!(
            out.call(false, scripted(script, n.clone())).await,
            Err(CallError::Fault(Fault::Transient("503".into())))
        );
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refusals_and_broken_answers_are_not_retried() {
        let out = Outbound::new("t2", policy()).unwrap();
        for fault in [Fault::Refused("400".into()), Fault::Broken("not json".into())] {
            let n = Arc::new(AtomicU32::new(0));
            assert_eq!(
                out.call(true, scripted(vec![Err(fault.clone())], n.clone())).await,
                Err(CallError::Fault(fault))
            );
            assert_eq!(n.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn an_attempt_past_the_timeout_is_a_transient_failure() {
        let out = Outbound::new("t3", policy()).unwrap();
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<u32, Fault>(1)
        };
        assert_eq!(out.call(false, slow).await, Err(CallError::Fault(Fault::Transient("timed out".into()))));
    }

    #[tokio::test]
    async fn failures_open_the_breaker_and_a_good_probe_closes_it() {
        let out = Outbound::new("t4", policy()).unwrap();
        for _ in 0..4 {
            let n = Arc::new(AtomicU32::new(0));
            let _ = out.call(false, scripted(vec![Err(Fault::Transient("500".into()))], n)).await;
        }
        assert_eq!(out.breaker_state(), BreakerState::Open);
        let n = Arc::new(AtomicU32::new(0));
        let shed = out.call(true, scripted(vec![Ok(1)], n.clone())).await;
        assert!(matches!(shed, Err(CallError::Shed { why: Shed::BreakerOpen, .. })), "{shed:?}");
        assert_eq!(n.load(Ordering::SeqCst), 0, "an open breaker sends nothing");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(out.call(true, scripted(vec![Ok(1)], n)).await, Ok(1));
        assert_eq!(out.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_full_bulkhead_fails_fast() {
        let out = Arc::new(Outbound::new("t5", policy()).unwrap());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut held = Vec::new();
        for _ in 0..2 {
            let (out, rx) = (out.clone(), rx.clone());
            held.push(tokio::spawn(async move {
                out.call(false, move || {
                    let mut rx = rx.clone();
                    async move {
                        let _ = rx.wait_for(|v| *v).await;
                        Ok::<u32, Fault>(1)
                    }
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let third = out.call(false, || async { Ok::<u32, Fault>(3) }).await;
        assert!(matches!(third, Err(CallError::Shed { why: Shed::Saturated, .. })), "{third:?}");
        tx.send(true).unwrap();
        for h in held {
            assert_eq!(h.await.unwrap(), Ok(1));
        }
    }
}
