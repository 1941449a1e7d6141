//! The order state machine: every legal transition, in one place.
//!
//! ```text
//! pending_payment ──► paid ──► shipped ──► delivered
//!        │              └────► refunded
//!        ├──► cancelled   (customer or staff, or reservation expiry)
//!        └──► failed      (payment declined or interrupted: compensated)
//! ```
//!
//! Beside the public status, each order carries its saga's progress ([`SagaState`]): which
//! gateway step is in flight, and until when its process holds it ([`saga_lease`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Error;

/// Where an order is in its life, as customers and staff see it; stored and serialized as
/// its snake_case text (`pending_payment`, `paid`, …). The legal moves are [`TRANSITIONS`];
/// every change goes through `orders::transition::apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Failed,
    Refunded,
}

use OrderStatus::*;

/// Every legal `(from, to)` pair. Anything else is a 409 naming the current state.
pub const TRANSITIONS: &[(OrderStatus, OrderStatus)] = &[
    (PendingPayment, Paid),
    (PendingPayment, Cancelled),
    (PendingPayment, Failed),
    (Paid, Shipped),
    (Paid, Refunded),
    (Shipped, Delivered),
];

impl OrderStatus {
    /// Every status, in the order of the diagram.
    pub const ALL: [OrderStatus; 7] = [PendingPayment, Paid, Shipped, Delivered, Cancelled, Failed, Refunded];

    /// The stored and serialized text, e.g. `pending_payment`.
    pub fn as_str(self) -> &'static str {
        match self {
            PendingPayment => "pending_payment",
            Paid => "paid",
            Shipped => "shipped",
            Delivered => "delivered",
            Cancelled => "cancelled",
            Failed => "failed",
            Refunded => "refunded",
        }
    }

    /// The status named `s` (as [`as_str`](Self::as_str) writes it); `Err` names the text.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown order status {s:?}"))
    }

    /// Whether `(self, to)` is in [`TRANSITIONS`].
    pub fn can_become(self, to: OrderStatus) -> bool {
        TRANSITIONS.contains(&(self, to))
    }

    /// `Ok` if `self → to` is legal, else the 409 error naming both states.
    pub fn check(self, to: OrderStatus) -> Result<(), Error> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(Error::InvalidTransition { from: self.as_str(), to: to.as_str() })
        }
    }

    /// Whether the order's stock is still reserved (held but not yet shipped).
    pub fn holds_reservation(self) -> bool {
        matches!(self, PendingPayment | Paid)
    }

    /// Terminal states have no way out.
    pub fn is_terminal(self) -> bool {
        !TRANSITIONS.iter().any(|(from, _)| *from == self)
    }
}

/// The progress of an order's saga: which step that talks to the payment gateway is in
/// flight. Stored in `orders.saga_state` as its snake_case text; never public.
///
/// ```text
/// awaiting_payment ──► charging ──► completed ──► refunding ──► completed
///        │                 └──────► compensated (declined, voided, interrupted)
///        └──► compensated (cancelled or expired unpaid)
/// ```
///
/// `charging` and `refunding` hold a lease (`orders.saga_deadline`, see [`saga_lease`]): past
/// it, the recovery worker takes the step over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaState {
    /// No card yet: the order waits for `pay` or for its reservation to expire.
    AwaitingPayment,
    /// A charge is in flight (its outcome may be unknown).
    Charging,
    /// A refund was claimed and is in flight; no other transition may win meanwhile.
    Refunding,
    /// The last step succeeded (paid, or refunded).
    Completed,
    /// The saga was undone: stock released, any charge voided or declined.
    Compensated,
}

impl SagaState {
    /// Every saga state.
    pub const ALL: [SagaState; 5] = [
        SagaState::AwaitingPayment,
        SagaState::Charging,
        SagaState::Refunding,
        SagaState::Completed,
        SagaState::Compensated,
    ];

    /// The stored text, e.g. `awaiting_payment`.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::AwaitingPayment => "awaiting_payment",
            SagaState::Charging => "charging",
            SagaState::Refunding => "refunding",
            SagaState::Completed => "completed",
            SagaState::Compensated => "compensated",
        }
    }

    /// The saga state stored as `s`; `Err` names the text.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown saga state {s:?}"))
    }

    /// Whether a gateway step is in flight, holding a lease.
    pub fn is_leased(self) -> bool {
        matches!(self, SagaState::Charging | SagaState::Refunding)
    }
}

/// The longest lease, whatever the configured gateway timeout (one hour).
const MAX_LEASE_MS: u64 = 3_600_000;

/// The one lease rule: how long a saga step (`charging`, `refunding`) belongs to the process
/// that started it before recovery may take it over. Twice the gateway timeout
/// (`payments.timeout_ms`), so the first attempt has certainly given up; at most one hour.
pub fn saga_lease(payment_timeout_ms: u64) -> chrono::Duration {
    let ms = payment_timeout_ms.saturating_mul(2).min(MAX_LEASE_MS);
    chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_listed_transitions_are_legal() {
        let legal = [
            (PendingPayment, Paid),
            (PendingPayment, Cancelled),
            (PendingPayment, Failed),
            (Paid, Shipped),
            (Paid, Refunded),
            (Shipped, Delivered),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(from.can_become(to), legal.contains(&(from, to)), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn an_illegal_transition_names_the_current_state() {
        let err = Delivered.check(Cancelled).unwrap_err();
        assert!(matches!(err, Error::InvalidTransition { from: "delivered", to: "cancelled" }));
    }

    #[test]
    fn terminal_states_are_the_ends_of_the_graph() {
        let terminal: Vec<_> = OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, vec![Delivered, Cancelled, Failed, Refunded]);
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Ok(s));
        }
    }

    #[test]
    fn saga_states_round_trip_through_text() {
        for s in SagaState::ALL {
            assert_eq!(SagaState::parse(s.as_str()), Ok(s));
        }
        assert!(SagaState::parse("Charging").is_err());
    }

    #[test]
    fn the_lease_is_twice_the_gateway_timeout_and_bounded() {
        assert_eq!(saga_lease(5_000), chrono::Duration::seconds(10));
        assert_eq!(saga_lease(u64::MAX), chrono::Duration::hours(1));
        assert_eq!(saga_lease(0), chrono::Duration::zero());
    }
}
