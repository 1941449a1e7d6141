//! The sandbox gateway, counting refund calls, for tests of the refund sagas (shared by the
//! REST and the service suites).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use orderly::Overrides;
use orderly::payments::sandbox::SandboxGateway;
use orderly::payments::{
    ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, PaymentRecord, RefundReceipt, RefundRequest,
};

use crate::helpers::{Options, TestApp, TestDb};

/// Counts `refunds` (whole charges) and `partial_refunds` (by amount). With
/// `fail_next_refund`, the next refund of either kind is lost on the way (the gateway never
/// sees it) and reported as unknown. Each partial refund takes `partial_refund_delay`, as a
/// real gateway takes a moment, so that racing requests overlap.
pub struct CountingGateway {
    pub sandbox: SandboxGateway,
    partial_refund_delay: Duration,
    pub refunds: AtomicUsize,
    pub partial_refunds: AtomicUsize,
    pub fail_next_refund: AtomicBool,
}

impl CountingGateway {
    fn lost(&self) -> Option<BoxFuture<'static, Result<(), GatewayError>>> {
        self.fail_next_refund
            .swap(false, Ordering::SeqCst)
            .then(|| async { Err(GatewayError::Unavailable("connection reset".into())) }.boxed())
    }
}

impl PaymentGateway for CountingGateway {
    fn charge(&self, req: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>> {
        self.sandbox.charge(req)
    }
    fn lookup(&self, key: String) -> BoxFuture<'_, Result<Option<PaymentRecord>, GatewayError>> {
        self.sandbox.lookup(key)
    }
    fn void(&self, id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        self.sandbox.void(id)
    }
    fn refund(&self, id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        self.refunds.fetch_add(1, Ordering::SeqCst);
        match self.lost() {
            Some(lost) => lost,
            None => self.sandbox.refund(id),
        }
    }
    fn refund_amount(&self, req: RefundRequest) -> BoxFuture<'_, Result<RefundReceipt, GatewayError>> {
        self.partial_refunds.fetch_add(1, Ordering::SeqCst);
        if let Some(lost) = self.lost() {
            return async move { lost.await.map(|()| unreachable!("a lost refund never succeeds")) }.boxed();
        }
        async move {
            tokio::time::sleep(self.partial_refund_delay).await;
            self.sandbox.refund_amount(req).await
        }
        .boxed()
    }
}

/// An app whose payments go through a [`CountingGateway`] over the sandbox, with `config`.
pub async fn spawn_counting(
    config: Vec<(&'static str, String)>,
    partial_refund_delay: Duration,
) -> (TestApp, Arc<CountingGateway>) {
    let db = Arc::new(TestDb::new().await);
    let sandbox = SandboxGateway::new(TestApp::spawn_db(&db).await);
    let gateway = Arc::new(CountingGateway {
        sandbox,
        partial_refund_delay,
        refunds: AtomicUsize::new(0),
        partial_refunds: AtomicUsize::new(0),
        fail_next_refund: AtomicBool::new(false),
    });
    let overrides = Overrides { payments: Some(gateway.clone()), ..Default::default() };
    (TestApp::spawn_with(Options { config, overrides, db: Some(db) }).await, gateway)
}
