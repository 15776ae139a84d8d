//! Authorization of every CALL, REGISTER, PUBLISH and SUBSCRIBE, by the session's
//! role ([`crate::auth::roles`] holds the rules and their configuration), and the
//! `junction.role.*` admin procedures that change roles at run time.
//!
//! A realm's roles are those of the configuration file overlaid with the changes
//! committed to the routing table (`Command::SetRole` / `RemoveRole`), so a change
//! made on one node is enforced on every node once applied there. Each node compiles
//! the rules once per change (the table's `roles_version`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::Router;
use super::handle::SessionHandle;
use super::meta::session_details;
use super::query::Answer;
use super::realm::Realm;
use crate::auth::roles::{self, Action, Asked, Decision, Role, RoleConfig};
use crate::dict;
use crate::table::Command;
use crate::wamp::errors;
use crate::wamp::message::Payload;
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::Value;

/// How long a dynamic authorizer may take to answer; past it the action is denied.
const AUTHORIZER_TIMEOUT: Duration = Duration::from_secs(5);

/// Allowed, nothing disclosed.
const OPEN: Decision = Decision { allow: true, disclose: false };

/// A realm's compiled roles.
#[derive(Default)]
pub struct Rules {
    /// The table's `roles_version` and the realm's configuration generation they
    /// were compiled at.
    version: (u64, u64),
    /// By authrole.
    roles: HashMap<String, Arc<Role>>,
    /// False when the realm has no roles at all: every action is allowed.
    enforced: bool,
}

/// The compiled rules of one realm on this node.
#[derive(Default)]
pub struct RealmRules(RwLock<Option<Arc<Rules>>>);

/// The realm's roles: the file's, with the table's changes applied.
fn effective(router: &Router, realm: &Realm) -> (u64, Vec<RoleConfig>) {
    router.replica.read(|t| {
        let table = t.realm(&realm.name);
        let version = table.map_or(0, |r| r.roles_version);
        let mut roles: Vec<RoleConfig> = realm.roles_config().as_ref().clone();
        if let Some(r) = table {
            for (name, change) in &r.roles {
                roles.retain(|x| &x.name != name);
                if let Some(role) = change {
                    roles.push(role.clone());
                }
            }
        }
        (version, roles)
    })
}

fn rules(router: &Router, realm: &Realm) -> Arc<Rules> {
    let generation = realm.config_generation.load(std::sync::atomic::Ordering::SeqCst);
    let version = (router.replica.read(|t| t.realm(&realm.name).map_or(0, |r| r.roles_version)), generation);
    if let Some(r) =
        realm.rules.0.read().unwrap_or_else(|e| e.into_inner()).as_ref().filter(|r| r.version == version)
    {
        return r.clone();
    }
    let (table_version, configs) = effective(router, realm);
    let compiled = Arc::new(Rules {
        version: (table_version, generation),
        enforced: !configs.is_empty(),
        roles: configs.iter().map(|c| (c.name.clone(), Arc::new(Role::new(c)))).collect(),
    });
    *realm.rules.0.write().unwrap_or_else(|e| e.into_inner()) = Some(compiled.clone());
    compiled
}

/// False when the realm has no roles at all (nothing to check): the cheap test the
/// session runs before building a check.
pub fn enforced(router: &Router, realm: &Realm) -> bool {
    !realm.roles_config().is_empty()
        || router.replica.read(|t| t.realm(&realm.name).is_some_and(|r| r.roles_version > 0))
}

/// May session `me` do what it asks? A pattern (SUBSCRIBE or REGISTER with `match`)
/// is allowed only when every URI it can match is; a dynamic authorizer gets the
/// match policy in its options (`{"match": "prefix"}`).
pub async fn check(router: &Router, realm: &Realm, me: &SessionHandle, asked: Asked<'_>) -> Decision {
    let rules = rules(router, realm);
    if !rules.enforced {
        return OPEN;
    }
    let Some(role) = rules.roles.get(&me.identity.authrole) else {
        return Decision { allow: false, disclose: false };
    };
    match role.as_ref() {
        Role::Static(permissions) => {
            roles::decide_pattern(permissions, asked.uri, asked.policy, asked.action)
        }
        Role::Dynamic { procedure, cache } => {
            let (authid, authrole) = (&me.identity.authid, &me.identity.authrole);
            let now = super::now_ms();
            if let Some(d) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(authid, authrole, asked, now)
            {
                return d;
            }
            let options = dict! { "match" => asked.policy.as_str() };
            let args = vec![
                Value::Dict(session_details(me)),
                asked.uri.into(),
                asked.action.as_str().into(),
                Value::Dict(options),
            ];
            let answer = router.call_internal(&realm.name, procedure, args, AUTHORIZER_TIMEOUT).await;
            let parsed = match answer {
                Ok(p) => roles::parse_answer(&crate::auth::dynamic::reply_value(&p.arguments())),
                Err(failure) => {
                    tracing::warn!(authorizer = %procedure, error = %failure.error, "authorizer failed: denied");
                    None
                }
            };
            let Some((decision, cacheable)) = parsed else {
                return Decision { allow: false, disclose: false };
            };
            if cacheable {
                cache.lock().unwrap_or_else(|e| e.into_inner()).put(authid, authrole, asked, decision, now);
            }
            decision
        }
    }
}

/// The authorizer procedures of the realm's roles, each with the only role that may
/// register it.
pub fn authorizers(router: &Router, realm: &Realm) -> Vec<(String, String)> {
    let (_, configs) = effective(router, realm);
    configs.into_iter().filter_map(|r| Some((r.authorizer?, r.authorizer_role.unwrap_or_default()))).collect()
}

/// True when `me` may call `procedure` by an explicit permission: a static one whose
/// URI names the `wamp.` namespace (not a catch-all), or a dynamic authorizer's yes.
/// A realm without roles gives none.
pub async fn explicitly_allowed(router: &Router, realm: &Realm, me: &SessionHandle, procedure: &str) -> bool {
    let rules = rules(router, realm);
    if !rules.enforced {
        return false;
    }
    match rules.roles.get(&me.identity.authrole).map(Arc::as_ref) {
        Some(Role::Static(permissions)) => roles::names_namespace(permissions, procedure, "wamp."),
        Some(Role::Dynamic { .. }) => {
            let asked = Asked { uri: procedure, policy: MatchPolicy::Exact, action: Action::Call };
            check(router, realm, me, asked).await.allow
        }
        None => false,
    }
}

/// The admin role in the realm the configuration names for administration
/// (`[admin] realm`); in any other realm the role name means nothing special.
pub fn is_admin(router: &Router, realm: &Realm, me: &SessionHandle) -> bool {
    router.config.admin.realm.as_deref() == Some(realm.name.as_str())
        && me.identity.authrole == router.config.admin.role
}

/// True for the role admin procedures.
pub fn is_role_api(procedure: &str) -> bool {
    procedure.starts_with("junction.role.")
}

/// Answers `junction.role.list|get|set|remove` (admin role only):
/// - `list()` → the names of the realm's roles
/// - `get(name)` → the role as configured (`permissions`, `authorizer`, cache settings)
/// - `set(name, role)` → defines or replaces the role, cluster-wide
/// - `remove(name)` → removes it, cluster-wide (also a role from the file)
pub async fn role_api(
    router: &Router,
    realm: &Realm,
    me: &SessionHandle,
    procedure: &str,
    p: &Payload,
) -> Answer {
    if !is_admin(router, realm, me) {
        return Err((errors::NOT_AUTHORIZED.into(), "only the admin role may change roles".into()));
    }
    let given = p.arguments();
    let args = given.args.clone().unwrap_or_default();
    let name = args.first().and_then(Value::as_str).map(str::to_owned);
    let (_, configs) = effective(router, realm);
    let cmd = match (&procedure["junction.role.".len()..], name) {
        ("list", _) => {
            let names: Vec<Value> = configs.iter().map(|r| Value::from(r.name.as_str())).collect();
            return Ok(Payload::args(vec![Value::List(names)]));
        }
        ("get", Some(name)) => {
            return match configs.iter().find(|r| r.name == name) {
                Some(r) => Ok(Payload::args(vec![r.to_value()])),
                None => Err(("wamp.error.no_such_role".into(), format!("no role {name:?}"))),
            };
        }
        ("set", Some(name)) => {
            let spec =
                args.get(1).cloned().unwrap_or_else(|| Value::Dict(given.kwargs.clone().unwrap_or_default()));
            match RoleConfig::from_value(&name, &spec) {
                Ok(role) => Command::SetRole { realm: realm.name.clone(), role },
                Err(why) => return Err((errors::INVALID_ARGUMENT.into(), why.to_string())),
            }
        }
        ("remove", Some(name)) => {
            if !configs.iter().any(|r| r.name == name) {
                return Err(("wamp.error.no_such_role".into(), format!("no role {name:?}")));
            }
            Command::RemoveRole { realm: realm.name.clone(), name }
        }
        ("get" | "set" | "remove", None) => {
            return Err((
                errors::INVALID_ARGUMENT.into(),
                "the role name is expected as first argument".into(),
            ));
        }
        _ => return Err((errors::NO_SUCH_PROCEDURE.into(), "no such role procedure".into())),
    };
    match router.replica.propose(cmd).await {
        Ok(_) => Ok(Payload::default()),
        Err(e) => Err((errors::CLUSTER_UNAVAILABLE.into(), e.to_string())),
    }
}
