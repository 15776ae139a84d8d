//! Publish & Subscribe: the subscription index and the fan-out rules, as plain data.

pub mod audience;
pub mod index;

pub use audience::Audience;
pub use index::{Subscription, SubscriptionIndex};
