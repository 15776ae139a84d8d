//! Publish & Subscribe: the subscription index and the fan-out rules, as plain data.

pub mod index;

pub use index::{Subscription, SubscriptionIndex};
