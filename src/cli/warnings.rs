//! Warnings before a membership change that reduces fault tolerance, from what
//! `cluster status` reports (the node asked; for transfers, the leader, which alone
//! knows how far each follower's log is).

use junction::cluster::proto::{Member, StatusReply};

/// How many voters may fail with `voters` voters of which `down` are down already
/// (negative: no quorum).
fn tolerance(voters: usize, down: usize) -> i64 {
    (voters as i64 - 1) / 2 - down as i64
}

fn tolerates(voters: usize, down: usize) -> String {
    match tolerance(voters, down) {
        t if t < 0 => "no quorum: the cluster cannot commit anything".to_owned(),
        0 => "the cluster tolerates the loss of no voter".to_owned(),
        1 => "the cluster tolerates the loss of 1 voter".to_owned(),
        t => format!("the cluster tolerates the loss of {t} voters"),
    }
}

fn members(s: &StatusReply) -> impl Iterator<Item = &Member> {
    s.members.iter().filter(|m| m.role != "gone")
}

/// `cluster remove ID`: removing a voter whose seat no learner that is up can take
/// leaves fewer voters than configured (`configured`, else as many as now), or an
/// even number of them (no more fault tolerance than one fewer).
pub fn remove(s: &StatusReply, id: u64, configured: Option<usize>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(target) = members(s).find(|m| m.node_id == id) else { return out };
    if target.role != "voter" {
        return out;
    }
    let voters: Vec<&Member> = members(s).filter(|m| m.role == "voter").collect();
    let heir = members(s).any(|m| m.role == "learner" && m.up && m.node_id != id);
    let after = voters.len() - 1 + usize::from(heir);
    let down_after = voters.iter().filter(|m| !m.up && m.node_id != id).count();
    let expected = configured.unwrap_or(voters.len());
    if after < expected {
        out.push(format!(
            "removing voter {id} leaves {after} voter{} (no learner that is up can take its seat), fewer than \
             the {expected} {}: {}",
            if after == 1 { "" } else { "s" },
            if configured.is_some() { "configured ([cluster] voters)" } else { "it has now" },
            tolerates(after, down_after)
        ));
    }
    if after > 0 && after.is_multiple_of(2) {
        out.push(format!(
            "{after} voters is an even number: it tolerates no more failures than {} ({})",
            after - 1,
            tolerates(after, down_after)
        ));
    }
    if down_after > 0 {
        out.push(format!("{down_after} of the remaining voters are down: {}", tolerates(after, down_after)));
    }
    out
}

/// `cluster transfer-leader [--to ID]`, from the leader's status: the target is
/// down, or behind the leader's log (it must catch up before it can lead, and
/// writes wait meanwhile), or other voters are down (the new leader needs them for
/// its quorum).
pub fn transfer(s: &StatusReply, to: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    let voters: Vec<&Member> = members(s).filter(|m| m.role == "voter").collect();
    let target = match to {
        Some(id) => voters.iter().find(|m| m.node_id == id).copied(),
        None => {
            let mut up: Vec<&Member> =
                voters.iter().filter(|m| m.up && m.node_id != s.leader_id).copied().collect();
            up.sort_by_key(|m| m.node_id);
            up.first().copied()
        }
    };
    if let Some(t) = target
        && t.node_id != s.leader_id
    {
        if !t.up {
            out.push(format!("node {} is down (as node {} sees it)", t.node_id, s.node_id));
        }
        if s.state == "leader" && t.matched_index >= 0 && t.matched_index < s.last_log_index {
            out.push(format!(
                "node {} is not up to date: its log reaches index {}, the leader's {}",
                t.node_id, t.matched_index, s.last_log_index
            ));
        } else if s.state == "leader" && t.matched_index < 0 {
            out.push(format!("node {} has not acknowledged any log entry of the leader", t.node_id));
        }
    }
    let down: Vec<u64> = voters.iter().filter(|m| !m.up).map(|m| m.node_id).collect();
    if !down.is_empty() {
        out.push(format!(
            "voter{} {} down: {}",
            if down.len() == 1 { "" } else { "s" },
            down.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
            tolerates(voters.len(), down.len())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, role: &str, up: bool, matched: i64) -> Member {
        Member {
            node_id: id,
            addr: format!("127.0.0.1:{}", 7000 + id),
            role: role.into(),
            incarnation: 1,
            up,
            matched_index: matched,
            last_ack_ms: 0,
        }
    }

    fn status(members: Vec<Member>) -> StatusReply {
        StatusReply {
            node_id: 1,
            state: "leader".into(),
            leader_id: 1,
            last_log_index: 10,
            members,
            ..StatusReply::default()
        }
    }

    #[test]
    fn removing_a_voter_without_heir_warns() {
        let s = status(vec![
            member(1, "voter", true, -1),
            member(2, "voter", true, 10),
            member(3, "voter", true, 10),
        ]);
        let w = remove(&s, 3, Some(3));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("leaves 2 voters") && w[0].contains("configured"), "{w:?}");
        assert!(w[1].contains("even"), "{w:?}");
        assert!(remove(&s, 9, Some(3)).is_empty(), "not a member: the cluster refuses");
    }

    #[test]
    fn removing_a_voter_whose_seat_a_learner_takes_or_a_learner_does_not_warn() {
        let s = status(vec![
            member(1, "voter", true, -1),
            member(2, "voter", true, 10),
            member(3, "voter", true, 10),
            member(4, "learner", true, 10),
        ]);
        assert!(remove(&s, 3, Some(3)).is_empty());
        assert!(remove(&s, 4, Some(3)).is_empty());
    }

    #[test]
    fn transfer_to_a_lagging_or_down_voter_warns() {
        let s = status(vec![
            member(1, "voter", true, -1),
            member(2, "voter", true, 7),
            member(3, "voter", false, 10),
        ]);
        let w = transfer(&s, Some(2));
        assert!(w.iter().any(|w| w.contains("node 2 is not up to date")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("voter 3 down")), "{w:?}");
        let w = transfer(&s, Some(3));
        assert!(w.iter().any(|w| w.contains("node 3 is down")), "{w:?}");
        let fine = status(vec![
            member(1, "voter", true, -1),
            member(2, "voter", true, 10),
            member(3, "voter", true, 10),
        ]);
        assert!(transfer(&fine, None).is_empty());
    }
}
