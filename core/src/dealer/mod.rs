//! Routed RPC as a state machine without I/O: the registration index and invoke
//! policies (plain data in the routing table), callee choice, and [`Dealer`], which
//! owns every call and invocation in flight on a node and answers each step with
//! the [`Action`]s the router carries out.

pub mod action;
pub mod answer;
pub mod cancel;
pub mod choose;
pub mod index;
pub mod policy;
pub mod record;
pub mod route;
pub mod state;

pub use action::{Action, Actions, Failure, Refusal, Reply, Violation};
pub use cancel::CancelMode;
pub use choose::{Choice, Registry, choose};
pub use index::{Callee, RegisterError, Registration, RegistrationIndex};
pub use policy::InvokePolicy;
pub use record::{Caller, Features, Origin, Peer, Target};
pub use route::{HOLD_LIMIT, LinkInvoke, PROGRESSIVE_INVOCATIONS};
pub use state::{Dealer, fence_start};

#[cfg(test)]
mod tests;
