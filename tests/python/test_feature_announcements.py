# Advanced Profile feature announcements: WELCOME.Details.roles.dealer.features
# and roles.broker.features must announce every advanced feature the router
# implements (each feature's spec section: "Support for this feature MUST be
# announced by ... Dealers / Brokers via HELLO.Details.roles.<role>.features.
# <feature>|bool := true"; for the router that is WELCOME).
#
# One test per feature, so a report shows exactly which announcements are
# missing; checked on the wire (raw client) and through Autobahn|Python's
# parsed WELCOME, on all six transport x serializer pairs for the Autobahn
# check.
import pytest
from autobahn.wamp.role import ROLE_NAME_TO_CLASS

import wampraw
from raw_clients import raw_peer

# a lost reply fails the test in 20 s instead of the suite-wide 60 s
pytestmark = pytest.mark.timeout(20)

DEALER_FEATURES = [
    "shared_registration",
    "pattern_based_registration",
    "caller_identification",
    "progressive_call_results",
    "progressive_call_invocations",
    "call_canceling",
    "call_timeout",
    "call_reroute",
    "registration_revocation",
    "session_meta_api",
    "registration_meta_api",
    "testament_meta_api",
    "payload_passthru_mode",
]
BROKER_FEATURES = [
    "pattern_based_subscription",
    "publisher_identification",
    "subscriber_blackwhite_listing",
    "publisher_exclusion",
    "subscription_revocation",
    "event_retention",
    "event_history",
    "session_meta_api",
    "subscription_meta_api",
    "payload_passthru_mode",
]
ANNOUNCED = [("dealer", f) for f in DEALER_FEATURES] + [("broker", f) for f in BROKER_FEATURES]


def features_of(welcome_details, role):
    roles = welcome_details.get("roles")
    assert isinstance(roles, dict), welcome_details
    r = roles.get(role)
    assert isinstance(r, dict), roles
    f = r.get("features", {})
    assert isinstance(f, dict), r
    return f


@pytest.mark.parametrize("role,feature", ANNOUNCED, ids=[f"{r}.{f}" for r, f in ANNOUNCED])
async def test_welcome_announces(wamp, role, feature):
    raw = await raw_peer(wamp)
    features = features_of(raw.welcome[2], role)
    assert features.get(feature) is True, (
        f"WELCOME.Details.roles.{role}.features.{feature} is {features.get(feature)!r}; "
        f"announced: {sorted(k for k, v in features.items() if v is True)}")


async def test_autobahn_sees_the_announcements(wamp, combo):
    """Autobahn|Python parses WELCOME roles into RoleDealerFeatures /
    RoleBrokerFeatures; features it does not model (progressive_call_invocations
    in 26.10.2) are accepted and dropped, so only the ones it models are checked
    here (the raw test above checks all)."""
    session = await wamp.session()
    roles = session.welcome.roles
    missing = []
    for role, feature in ANNOUNCED:
        if not hasattr(ROLE_NAME_TO_CLASS[role](), feature):
            continue
        if getattr(roles[role], feature, None) is not True:
            missing.append(f"{role}.{feature}")
    assert not missing, f"Autobahn's parsed WELCOME lacks: {missing}"


async def test_announcements_do_not_depend_on_client_features(wamp, combo):
    raw = await wamp.raw()
    welcome = await raw.join()
    assert welcome[0] == wampraw.WELCOME
    reference = await raw_peer(wamp, combo=wamp.combo)
    for role in ("dealer", "broker"):
        assert features_of(welcome[2], role) == features_of(reference.welcome[2], role)
