//! Publish & Subscribe: the subscription index, the fan-out rules and the fan-out plan,
//! as plain data and pure decisions.

pub mod audience;
pub mod index;
pub mod plan;

pub use audience::Audience;
pub use index::{Subscription, SubscriptionIndex};
