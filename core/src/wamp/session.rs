//! The session state machine, without I/O: which client message is legal in which
//! state, and what the router must do with it.
//!
//! The connection driver in `router::session` owns a [`Phase`], asks [`classify`]
//! about every decoded message, and acts on the returned [`Step`]. Anything the spec
//! does not allow a client to send in the current phase is a protocol violation.

use super::message::{Message, code};

/// Where a session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Transport open, waiting for HELLO (also after a GOODBYE exchange: the
    /// transport may carry a new session).
    AwaitingHello,
    /// CHALLENGE sent; waiting for AUTHENTICATE.
    Authenticating,
    /// WELCOME sent; requests are routed.
    Established,
    /// The router sent GOODBYE and waits for the client's reply.
    Closing,
}

/// What the driver must do with a client message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Open a session (HELLO in [`Phase::AwaitingHello`]).
    Join,
    /// Check the client's answer to the CHALLENGE.
    Authenticate,
    /// Route the message to the broker or dealer.
    Route,
    /// The client says GOODBYE: reply GOODBYE and end the session.
    Leave,
    /// The client answered our GOODBYE: the session is over.
    Closed,
    /// The client aborted: drop the session and close the transport.
    Aborted,
    /// Ignore the message (e.g. requests arriving while the router is closing).
    Ignore,
    /// ABORT `wamp.error.protocol_violation` with this message, close the transport.
    Violation(&'static str),
}

/// Decides what a client message means in `phase`.
pub fn classify(phase: Phase, msg: &Message) -> Step {
    match (phase, msg) {
        (Phase::AwaitingHello, Message::Hello(_)) => Step::Join,
        (Phase::AwaitingHello, Message::Abort(_)) => Step::Aborted,
        (Phase::AwaitingHello, _) => Step::Violation("message received before HELLO"),
        (Phase::Authenticating, Message::Authenticate(_)) => Step::Authenticate,
        (Phase::Authenticating, Message::Abort(_)) => Step::Aborted,
        (Phase::Authenticating, _) => Step::Violation("only AUTHENTICATE may answer a CHALLENGE"),
        (_, Message::Hello(_)) => Step::Violation("HELLO received on an established session"),
        (_, Message::Abort(_)) => Step::Aborted,
        (Phase::Established, Message::Goodbye(_)) => Step::Leave,
        (Phase::Closing, Message::Goodbye(_)) => Step::Closed,
        (phase, Message::Error(e)) if e.request_type == code::INVOCATION => routed(phase),
        (_, Message::Error(_)) => Step::Violation("ERROR is only valid as a reply to INVOCATION"),
        (
            phase,
            Message::Publish(_)
            | Message::Subscribe(_)
            | Message::Unsubscribe(_)
            | Message::Call(_)
            | Message::Cancel(_)
            | Message::Register(_)
            | Message::Unregister(_)
            | Message::Yield(_),
        ) => routed(phase),
        (_, Message::Authenticate(_)) => Step::Violation("AUTHENTICATE without a CHALLENGE"),
        _ => Step::Violation("message type not valid from a client"),
    }
}

/// Requests are routed while established; while closing, YIELD and ERROR still
/// complete calls in flight and everything else is dropped.
fn routed(phase: Phase) -> Step {
    match phase {
        Phase::Established => Step::Route,
        _ => Step::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RequestId, SessionId};
    use crate::wamp::message::*;
    use crate::wamp::value::Dict;

    fn hello() -> Message {
        Message::Hello(Hello { realm: "realm1".into(), details: Dict::new() })
    }

    fn call() -> Message {
        Message::Call(Call {
            request: RequestId(1),
            options: Dict::new(),
            procedure: "a.b".into(),
            payload: Payload::default(),
        })
    }

    fn error(request_type: u64) -> Message {
        Message::Error(Error {
            request_type,
            request: RequestId(1),
            details: Dict::new(),
            error: "a.b".into(),
            payload: Payload::default(),
        })
    }

    #[test]
    fn hello_opens_and_second_hello_violates() {
        assert_eq!(classify(Phase::AwaitingHello, &hello()), Step::Join);
        assert!(matches!(classify(Phase::Established, &hello()), Step::Violation(_)));
    }

    #[test]
    fn requests_before_hello_violate() {
        assert!(matches!(classify(Phase::AwaitingHello, &call()), Step::Violation(_)));
        assert_eq!(classify(Phase::Established, &call()), Step::Route);
        assert_eq!(classify(Phase::Closing, &call()), Step::Ignore);
    }

    #[test]
    fn router_messages_from_client_violate() {
        let welcome = Message::Welcome(Welcome { session: SessionId(1), details: Dict::new() });
        assert!(matches!(classify(Phase::Established, &welcome), Step::Violation(_)));
        assert!(matches!(classify(Phase::Established, &error(code::CALL)), Step::Violation(_)));
        assert_eq!(classify(Phase::Established, &error(code::INVOCATION)), Step::Route);
    }

    #[test]
    fn authenticate_only_answers_a_challenge() {
        let auth = Message::Authenticate(Authenticate { signature: "s".into(), extra: Dict::new() });
        assert_eq!(classify(Phase::Authenticating, &auth), Step::Authenticate);
        assert!(matches!(classify(Phase::Authenticating, &call()), Step::Violation(_)));
        assert!(matches!(classify(Phase::Established, &auth), Step::Violation(_)));
        assert!(matches!(classify(Phase::AwaitingHello, &auth), Step::Violation(_)));
    }

    #[test]
    fn goodbye_both_ways() {
        let bye = Message::Goodbye(Goodbye { details: Dict::new(), reason: "wamp.close.normal".into() });
        assert_eq!(classify(Phase::Established, &bye), Step::Leave);
        assert_eq!(classify(Phase::Closing, &bye), Step::Closed);
    }
}
