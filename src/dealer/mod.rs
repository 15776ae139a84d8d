//! Routed RPC: the registration index and the invocation policies, as plain data.

pub mod index;
pub mod policy;

pub use index::{Callee, RegisterError, Registration, RegistrationIndex};
pub use policy::InvokePolicy;
