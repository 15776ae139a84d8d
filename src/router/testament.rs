//! Testaments that survive their node: every `wamp.session.add_testament` is also
//! committed to the routing table ([`Command::AddTestament`]), removed again by a
//! flush or when the session leaves (its node publishes the testaments itself, from
//! the session's own copy). When a whole node dies, the purge hands its sessions'
//! testaments to the lowest-numbered surviving node, which publishes them
//! ([`publish_orphans`]). Delivery is at least once: a node that retires while its
//! sessions' cleanup is still uncommitted may see its testaments published twice.

use std::sync::Arc;

use super::Router;
use super::handle::{SessionHandle, Testament};
use super::pubsub::{Publication, route};
use crate::broker::Audience;
use crate::ids::{PublicationId, random_id};
use crate::table::{Command, StoredTestament};
use crate::wamp::codec::neutral::{decode_dict, decode_payload, encode_dict, encode_payload};

/// The command that replicates `t`, added by session `me`.
pub fn add_command(router: &Router, realm: &str, me: &SessionHandle, t: &Testament) -> Command {
    let testament = StoredTestament {
        node: router.node,
        session: me.id,
        topic: t.topic.clone(),
        payload: encode_payload(&t.payload),
        options: encode_dict(&t.options),
        detached: t.detached,
    };
    Command::AddTestament { realm: realm.to_owned(), testament }
}

/// Refuses another testament when session `me` holds `limits.max_testaments_per_session`:
/// the ERROR's URI and message.
pub fn check_count(router: &Router, me: &SessionHandle) -> Result<(), (String, String)> {
    let max = router.config.limits.max_testaments_per_session;
    if me.testament_count() >= max {
        let why = format!("at most {max} testaments per session (limits.max_testaments_per_session)");
        return Err((super::limits::TOO_MANY_TESTAMENTS.to_owned(), why));
    }
    Ok(())
}

/// Commits a testament change of session `me`. When the session started leaving
/// meanwhile, its leave may have been committed first: remove what was just added.
pub async fn replicate(router: &Router, realm: &str, me: &SessionHandle, cmd: Command) {
    if let Err(e) = router.replica.propose(cmd).await {
        tracing::warn!(error = %e, session = %me.id, "testament change not replicated");
    }
    if me.has_left() {
        for detached in [true, false] {
            let flush = Command::FlushTestaments { realm: realm.to_owned(), session: me.id, detached };
            router.replica.propose(flush).await.ok();
        }
    }
}

/// Publishes the testaments of the sessions of a dead node (this node was chosen).
pub fn publish_orphans(router: &Arc<Router>, orphans: Vec<(String, StoredTestament)>) {
    let mut sorted = orphans;
    // detached scope first, as when a session leaves
    sorted.sort_by_key(|(_, t)| !t.detached);
    for (realm, t) in sorted {
        let Some(realm) = router.realm(&realm) else { continue };
        let (Ok(payload), Ok(options)) = (decode_payload(&t.payload), decode_dict(&t.options)) else {
            tracing::warn!(topic = %t.topic, "undecodable replicated testament dropped");
            continue;
        };
        let audience = Audience::from_options(&options).unwrap_or_default();
        let id = PublicationId(random_id());
        let p = Publication { topic: &t.topic, id, details: Default::default(), audience: &audience };
        route(router, &realm, p, payload, None);
        tracing::info!(topic = %t.topic, session = %t.session, node = %t.node, "testament of a lost node published");
    }
}
