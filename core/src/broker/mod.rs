//! Publish & Subscribe: the subscription index, the fan-out rules, the fan-out plan
//! and the retained events, as plain data and pure decisions.

pub mod audience;
pub mod index;
pub mod plan;
pub mod retained;

pub use audience::Audience;
pub use index::{Subscription, SubscriptionIndex};
