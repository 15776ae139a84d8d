# Shared application payloads for the interop tests: values of every type the
# JSON, MessagePack and CBOR serializers have in common, which the router must
# pass through untouched (including across serializers).

PAYLOAD_ARGS = [
    0,
    1,
    -1,
    2**31,
    -(2**31),
    2**53,
    -(2**53),
    1.5,
    -0.25,
    3.141592653589793,
    1e300,
    True,
    False,
    None,
    "",
    "plain ascii",
    "héllo wörld ☃ 𝄞 中文 🎉",
    [],
    {},
    [1, [2, [3, [4, [5, []]]]]],
    {"a": {"b": {"c": {"d": [1, "x", None, True, 2.5]}}}},
    ["mixed", 1, 2.5, None, False, {"k": "v"}],
]

PAYLOAD_KWARGS = {
    "int": 42,
    "zero": 0,
    "big": 2**53,
    "neg_big": -(2**53),
    "float": 0.1,
    "bool_t": True,
    "bool_f": False,
    "none": None,
    "str": "ünïcödé ✓",
    "ключ": "значение",
    "list": [1, 2, 3],
    "nested": {"deep": {"deeper": {"deepest": ["a", {"b": None, "c": [True, 1.25]}]}}},
    "empty_list": [],
    "empty_dict": {},
}

# every byte value, with a NUL first (JSON transports carry bytes as
# "\u0000" + base64, so a leading NUL byte is the nastiest case)
BINARY = b"\x00\x01\xff" + bytes(range(256)) + b"\x00"
