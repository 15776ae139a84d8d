//! Invocation policies for shared registrations: which callee gets the next call.

use serde::{Deserialize, Serialize};

/// The `invoke` option of REGISTER.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum InvokePolicy {
    /// Only one callee may register the procedure.
    #[default]
    Single,
    /// Callees take turns.
    RoundRobin,
    /// A callee picked at random.
    Random,
    /// The first callee registered (hot standby: the next one takes over when it leaves).
    First,
    /// The callee registered last.
    Last,
}

impl InvokePolicy {
    /// Parses the option; absent means `single`.
    pub fn parse(s: Option<&str>) -> Option<InvokePolicy> {
        match s {
            None | Some("single") => Some(InvokePolicy::Single),
            Some("roundrobin") => Some(InvokePolicy::RoundRobin),
            Some("random") => Some(InvokePolicy::Random),
            Some("first") => Some(InvokePolicy::First),
            Some("last") => Some(InvokePolicy::Last),
            Some(_) => None,
        }
    }

    /// The option value as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            InvokePolicy::Single => "single",
            InvokePolicy::RoundRobin => "roundrobin",
            InvokePolicy::Random => "random",
            InvokePolicy::First => "first",
            InvokePolicy::Last => "last",
        }
    }

    /// Index of the callee to invoke among `n` (> 0) callees in registration order.
    /// `turn` is a per-registration counter for round robin, `random` a random number.
    pub fn pick(self, n: usize, turn: usize, random: usize) -> usize {
        match self {
            InvokePolicy::Single | InvokePolicy::First => 0,
            InvokePolicy::Last => n - 1,
            InvokePolicy::RoundRobin => turn % n,
            InvokePolicy::Random => random % n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks() {
        assert_eq!(InvokePolicy::First.pick(3, 7, 5), 0);
        assert_eq!(InvokePolicy::Last.pick(3, 7, 5), 2);
        assert_eq!(InvokePolicy::RoundRobin.pick(3, 7, 5), 1);
        assert_eq!(InvokePolicy::Random.pick(3, 7, 5), 2);
        assert_eq!(InvokePolicy::parse(Some("roundrobin")), Some(InvokePolicy::RoundRobin));
        assert_eq!(InvokePolicy::parse(Some("bogus")), None);
    }
}
