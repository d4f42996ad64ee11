"""Barkeep's request signing (seed 004), reproduced the way the server verifies it.

The server (`Api.generate_signature` in ooyala/barkeep `lib/api.rb`) takes every request
parameter except `signature` — query string and form body alike, `api_key` and `timestamp`
included — sorts the keys (Ruby string order, i.e. bytewise), escapes each *value* with Ruby's
legacy `URI.encode` (keys are used as they are), and signs

    "{METHOD} {path}?{k1=v1&k2=v2...}"   (no "?" when there are no parameters)

with lower-case hex HMAC-SHA1 keyed by the user's API secret. Values must be the decoded
values the server will see, not already %-encoded ones.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

SIGNATURE_PARAM = "signature"
API_KEY_PARAM = "api_key"
TIMESTAMP_PARAM = "timestamp"

# Ruby's URI::UNSAFE is everything but RFC 2396 "unreserved" (alphanumerics and -_.!~*'())
# and "reserved" (;/?:@&=+$,[]). `quote` always keeps alphanumerics and "_.-~"; the rest of
# the set is listed here. A space is not kept: it becomes %20, never "+".
_RUBY_URI_SAFE = "-_.!~*'();/?:@&=+$,[]"


def ruby_uri_encode(value: str) -> str:
    """Escape `value` like Ruby's legacy `URI.encode` (alias of `URI.escape`).

    Every character outside ``A-Za-z0-9-_.!~*'();/?:@&=+$,[]`` becomes %XX for each of its
    UTF-8 bytes, upper-case hex. `%` itself is escaped, so encoded input is encoded again.
    Raises ValueError for text that has no UTF-8 form (lone surrogates).
    """
    try:
        return quote(value, safe=_RUBY_URI_SAFE, encoding="utf-8", errors="strict")
    except UnicodeEncodeError as e:
        raise ValueError(f"the value is not valid Unicode text ({e.reason})") from e


def canonical_string(method: str, path: str, params: Mapping[str, str]) -> str:
    """The string Barkeep signs: method, path and the sorted, escaped parameters.

    A `signature` entry in `params` is left out, as the server drops it before verifying.
    """
    keys = sorted((k for k in params if k != SIGNATURE_PARAM), key=lambda k: k.encode("utf-8"))
    query = "&".join(f"{key}={ruby_uri_encode(params[key])}" for key in keys)
    head = f"{method.upper()} {path}"
    return f"{head}?{query}" if query else head


def sign(method: str, path: str, params: Mapping[str, str], api_secret: str) -> str:
    """Lower-case hex HMAC-SHA1 of the canonical string, keyed with the API secret."""
    message = canonical_string(method, path, params).encode("utf-8")
    return hmac.new(api_secret.encode("utf-8"), message, hashlib.sha1).hexdigest()


def signed_params(
    method: str,
    path: str,
    params: Mapping[str, str],
    api_key: str,
    api_secret: str,
    timestamp: int,
) -> dict[str, str]:
    """`params` plus `api_key`, `timestamp` (Unix seconds) and the `signature` over all of them.

    The result can be split between query string and form body in any way: the server merges
    both before verifying.
    """
    out = {k: v for k, v in params.items() if k != SIGNATURE_PARAM}
    out[API_KEY_PARAM] = api_key
    out[TIMESTAMP_PARAM] = str(int(timestamp))
    out[SIGNATURE_PARAM] = sign(method, path, out, api_secret)
    return out
