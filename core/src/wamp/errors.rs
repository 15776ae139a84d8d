//! The error and close URIs the spec defines, in one place.

pub const INVALID_URI: &str = "wamp.error.invalid_uri";
pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
pub const CANCELED: &str = "wamp.error.canceled";
pub const TIMEOUT: &str = "wamp.error.timeout";
pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
pub const NO_SUCH_REALM: &str = "wamp.error.no_such_realm";
pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
pub const NO_AVAILABLE_CALLEE: &str = "wamp.error.no_available_callee";
pub const UNAVAILABLE: &str = "wamp.error.unavailable";
pub const FEATURE_NOT_SUPPORTED: &str = "wamp.error.feature_not_supported";
pub const SYSTEM_SHUTDOWN: &str = "wamp.close.system_shutdown";
pub const CLOSE_REALM: &str = "wamp.close.close_realm";
pub const GOODBYE_AND_OUT: &str = "wamp.close.goodbye_and_out";
pub const NORMAL: &str = "wamp.close.normal";
/// Junction's reason for disconnecting a session whose outbound queue overflowed.
pub const SLOW_CONSUMER: &str = "junction.error.slow_consumer";
/// Junction's reason when the cluster cannot commit a routing change (no quorum).
pub const CLUSTER_UNAVAILABLE: &str = "junction.error.cluster_unavailable";
/// ERROR for a CALL: the caller has as many calls in flight as allowed
/// (`limits.max_pending_calls`).
pub const TOO_MANY_PENDING_CALLS: &str = "junction.error.too_many_pending_calls";
