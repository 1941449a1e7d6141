//! The order state machine: every legal transition, in one place.
//!
//! ```text
//! pending_payment ──► paid ──► shipped ──► delivered
//!        │              └────► refunded
//!        ├──► cancelled   (customer or staff, or reservation expiry)
//!        └──► failed      (payment declined or interrupted: compensated)
//! ```

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Error;

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
    pub const ALL: [OrderStatus; 7] = [PendingPayment, Paid, Shipped, Delivered, Cancelled, Failed, Refunded];

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

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown order status {s:?}"))
    }

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
}
