//! Wire encoding of openraft's types and of the routing requests/outcomes: MessagePack
//! with named fields (`rmp_serde::to_vec_named`).
//!
//! MessagePack rather than JSON: the routing table has maps keyed by integer ids,
//! and named fields keep the encoding tolerant of added fields. Everything decoded
//! here comes from the network or disk, so failures are errors, never panics.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct CodecError {
    /// What was being encoded/decoded.
    pub what: &'static str,
    /// The underlying error.
    pub message: String,
}

/// Encodes `v` as MessagePack with named fields.
pub fn encode<T: Serialize + ?Sized>(what: &'static str, v: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(v).map_err(|e| CodecError { what, message: format!("cannot encode: {e}") })
}

/// Decodes MessagePack produced by [`encode`].
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|e| CodecError { what, message: format!("cannot decode: {e}") })
}

/// A log index from an optional log id (`-1` for none), for status output.
pub fn index_or_minus_one(id: Option<&openraft::LogId<u64>>) -> i64 {
    id.map(|l| l.index as i64).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::types::{Entry, Request};
    use crate::ids::NodeId;
    use crate::table::Command;

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 7),
            payload: openraft::EntryPayload::Normal(Request::Route(Command::NodeDown { node: NodeId(2) })),
        };
        let bytes = encode("entry", &e).expect("encodes");
        let back: Entry = decode("entry", &bytes).expect("decodes");
        assert_eq!(back.log_id, e.log_id);
        assert!(matches!(
            back.payload,
            openraft::EntryPayload::Normal(Request::Route(Command::NodeDown { .. }))
        ));
        assert!(decode::<Entry>("entry", b"\xc1garbage").is_err());
    }
}
