# Advanced Profile feature announcements of the meta APIs, testaments, event
# retention and payload passthru mode, on one router and on every node of a
# 3-node cluster:
# WELCOME.Details.roles.<role>.features must announce each feature once it is
# implemented and tested (each spec section: "Support for this feature MUST be
# announced by ..."). The full list on one router, with a client announcing the
# advanced features, is test_feature_announcements.py.
#
#   session_meta_api         broker and dealer (ap_session_meta_api.md: both roles)
#   registration_meta_api    dealer
#   subscription_meta_api    broker
#   testament_meta_api       dealer
#   event_retention          broker
#   payload_passthru_mode    broker and dealer
#
# One test per (role, feature) on the wire, from a client that also announces
# payload_passthru_mode, so a report names exactly what is missing; plus
# Autobahn|Python's parsed WELCOME for the features it models, on all six
# transport x serializer pairs; plus every node of a 3-node cluster.
import pytest
from autobahn.wamp.role import ROLE_NAME_TO_CLASS

from cluster_helpers import module_cluster
from conftest import ALL_COMBOS, Wamp
from raw_clients import raw_on

pytestmark = pytest.mark.timeout(30)

ANNOUNCED = [
    ("broker", "session_meta_api"),
    ("dealer", "session_meta_api"),
    ("dealer", "registration_meta_api"),
    ("broker", "subscription_meta_api"),
    ("dealer", "testament_meta_api"),
    ("broker", "event_retention"),
    ("broker", "payload_passthru_mode"),
    ("dealer", "payload_passthru_mode"),
]
IDS = [f"{r}.{f}" for r, f in ANNOUNCED]


def features_of(welcome_details, role):
    roles = welcome_details.get("roles")
    assert isinstance(roles, dict), welcome_details
    r = roles.get(role)
    assert isinstance(r, dict), roles
    f = r.get("features", {})
    assert isinstance(f, dict), r
    return f


@pytest.mark.parametrize("role,feature", ANNOUNCED, ids=IDS)
async def test_welcome_announces(wamp, role, feature):
    raw = await raw_on(wamp)
    features = features_of(raw.welcome[2], role)
    assert features.get(feature) is True, (
        f"WELCOME.Details.roles.{role}.features.{feature} is {features.get(feature)!r}; "
        f"announced: {sorted(k for k, v in features.items() if v is True)}")


async def test_autobahn_sees_the_announcements(wamp, combo):
    session = await wamp.session()
    roles = session.welcome.roles
    missing = []
    for role, feature in ANNOUNCED:
        if not hasattr(ROLE_NAME_TO_CLASS[role](), feature):
            continue  # Autobahn does not model payload_passthru_mode
        if getattr(roles[role], feature, None) is not True:
            missing.append(f"{role}.{feature}")
    assert not missing, f"Autobahn's parsed WELCOME lacks: {missing}"


@pytest.fixture(scope="module")
def cluster():
    yield from module_cluster("test_feature_announcements_cluster")


async def test_every_cluster_node_announces(cluster):
    w = Wamp(cluster[1], ALL_COMBOS[0])
    try:
        for i in (1, 2, 3):
            raw = await raw_on(w, router=cluster[i])
            missing = [f"{r}.{f}" for r, f in ANNOUNCED if features_of(raw.welcome[2], r).get(f) is not True]
            assert not missing, f"node {i} does not announce {missing}"
    finally:
        await w.close()
