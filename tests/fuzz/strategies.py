"""Hypothesis strategies for the fuzz suites: text shaped like each header grammar (so most
examples get deep into the parser, not refused at the first character), and any text.

The budgets: `EXAMPLES` per property, small in CI, 10,000 in the deep run (ROLLOUT_DEEP=1);
a property split over parametrized cases gives each case `SHARE` (4 x 2,500 or 8 x 2,500).
CI runs are derandomized (the same examples every time, so a merge is never blocked by a
lucky draw); the deep run draws afresh, and prints the seed of any failure.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.reliability.budget import DEEP, budget

EXAMPLES = budget(60, 10_000)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not DEEP,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# For a property split over several parametrized cases (one per header name, one per
# seed file): each case gets a share, so the property as a whole still sees 10,000+.
SHARE = budget(20, 2_500)
FUZZ_SHARE = settings(FUZZ, max_examples=SHARE)

# Characters a hostile or careless value might hold: the grammar's own punctuation, OWS,
# controls (CR, LF, NUL, DEL), non-ASCII, quotes and backslashes.
ODD = st.sampled_from(list(" \t;,=\"'\\()*:/?#[]@!$&+%-._~\r\n\x00\x7f\x0b\u00e9\u2028\ufeff"))
ws = st.text(alphabet=" \t", max_size=2)
digits = st.text(alphabet="0123456789", min_size=1, max_size=40)
token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
    min_size=1,
    max_size=12,
)
anything = st.text(max_size=200)


def _sprinkle(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """base, sometimes with an odd character put in at a random place."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        text = draw(base)
        if draw(st.booleans()) and draw(st.booleans()):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(ODD) + text[at:]
        return text

    return build()


def _joined(parts: st.SearchStrategy[str], seps: list[str]) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        items = draw(st.lists(parts, max_size=6))
        out = ""
        for i, item in enumerate(items):
            if i:
                out += draw(ws) + draw(st.sampled_from(seps)) + draw(ws)
            out += item
        return draw(ws) + out + draw(ws)

    return build()


def _cased(words: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(words).flatmap(
        lambda w: st.lists(st.booleans(), min_size=len(w), max_size=len(w)).map(
            lambda flips: "".join(c.upper() if f else c for c, f in zip(w, flips, strict=True))
        )
    )


_hsts_value = st.one_of(digits, digits.map(lambda d: f'"{d}"'), token, st.just('"'))
hsts_directive = st.one_of(
    st.tuples(_cased(["max-age"]), ws, ws, _hsts_value).map(lambda t: f"{t[0]}{t[1]}={t[2]}{t[3]}"),
    _cased(["includeSubDomains", "preload"]),
    st.tuples(token, st.one_of(st.just(""), _hsts_value.map(lambda v: "=" + v))).map("".join),
)
HSTS = st.one_of(_sprinkle(_joined(hsts_directive, [";", ";;", ","])), anything)

_b64 = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_", max_size=44
).flatmap(lambda s: st.sampled_from(["", "=", "=="]).map(lambda pad: s + pad))
_host = st.one_of(
    st.just("*"),
    st.lists(token.map(str.lower), min_size=1, max_size=3).map(".".join),
    st.lists(token.map(str.lower), min_size=1, max_size=3).map(lambda p: "*." + ".".join(p)),
)
csp_source = st.one_of(
    _cased(["'self'", "'none'", "'unsafe-inline'", "'unsafe-eval'", "'strict-dynamic'"]),
    _cased(["'unsafe-hashes'", "'report-sample'", "'wasm-unsafe-eval'", "*", "data:", "https:"]),
    st.tuples(st.sampled_from(["'nonce-", "'sha256-", "'sha384-", "'sha512-"]), _b64).map(
        lambda t: f"{t[0]}{t[1]}'"
    ),
    st.tuples(
        st.sampled_from(["", "https://", "http://", "wss://", "HTTPS://"]),
        _host,
        st.sampled_from(["", ":443", ":*", ":8080", ":99999"]),
        st.sampled_from(["", "/", "/a/b", "/a%20b", "/x;y"]),
    ).map("".join),
    token,
)
_CSP_NAMES = [
    "default-src",
    "script-src",
    "style-src",
    "img-src",
    "object-src",
    "base-uri",
    "frame-ancestors",
    "form-action",
    "report-uri",
    "report-to",
    "upgrade-insecure-requests",
    "sandbox",
    "require-trusted-types-for",
    "trusted-types",
    "script-src-elem",
    "worker-src",
    "connect-src",
]
csp_directive = st.tuples(
    st.one_of(_cased(_CSP_NAMES), token), st.lists(csp_source, max_size=5)
).map(lambda t: " ".join([t[0], *t[1]]))
CSP = st.one_of(
    _sprinkle(_joined(_joined(csp_directive, [";", "; ", ";;"]), [",", ", "])), anything
)

_pp_item = st.one_of(
    st.sampled_from(["self", "*", "src", "none", "'self'", "?1", "?0", "1", "1.5", "1.", "-0"]),
    st.sampled_from(['"https://a.example.test"', '"https://*.example.test"', '"x"', '""']),
    st.sampled_from(['"\\"', ":aGVsbG8=:", ":aGVsbG8:", "@1700000000", '%"caf%c3%a9"']),
    token.map(str.lower),
)
_pp_allow = st.one_of(
    st.lists(_pp_item, max_size=4).map(lambda items: "(" + " ".join(items) + ")"), _pp_item
)
_pp_params = st.lists(
    st.tuples(token.map(str.lower), _pp_item).map(lambda t: f";{t[0]}={t[1]}"), max_size=2
).map("".join)
permissions_member = st.tuples(
    st.one_of(
        st.sampled_from(["geolocation", "camera", "microphone", "fullscreen", "payment", "usb"]),
        token.map(str.lower),
        token,
    ),
    st.one_of(st.just(""), _pp_allow.map(lambda a: "=" + a)),
    _pp_params,
).map("".join)
PERMISSIONS = st.one_of(_sprinkle(_joined(permissions_member, [",", ", ", ";"])), anything)

FRAME_OPTIONS = st.one_of(
    _sprinkle(
        _joined(
            st.one_of(
                _cased(["DENY", "SAMEORIGIN", "ALLOW-FROM", "ALLOWALL"]),
                _cased(["ALLOW-FROM"]).map(lambda w: w + " https://a.example.test/"),
                token,
            ),
            [",", ", "],
        )
    ),
    anything,
)
CONTENT_TYPE_OPTIONS = st.one_of(
    _sprinkle(_joined(st.one_of(_cased(["nosniff"]), token), [",", ", "])), anything
)
_referrers = [
    "no-referrer", "no-referrer-when-downgrade", "origin", "origin-when-cross-origin",
    "same-origin", "strict-origin", "strict-origin-when-cross-origin", "unsafe-url", "",
]  # fmt: skip
REFERRER = st.one_of(
    _sprinkle(_joined(st.one_of(_cased(_referrers), token), [",", ", "])), anything
)
VALUE = st.one_of(
    _sprinkle(st.text(alphabet=st.characters(max_codepoint=0x7E), max_size=80)), anything
)
