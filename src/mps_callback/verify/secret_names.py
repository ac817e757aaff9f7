"""Which field, header or query-parameter names hold a secret: a rule on word stems.

A name is split into words (camelCase, ACRONYMS, snake_case, kebab-case, digits). Harmless
compounds (``KeyFrame``, ``TokenCount``, ``ObjectKey``, ``SignLanguage``...) are looked
for in the lower-cased words run together, so ``KeyFrameInterval``, ``keyframe_interval``
and ``KEYFRAMEINTERVAL`` read alike; the letters they cover are set aside. What is left
is secret when one piece is a secret stem (``Key``, ``Keys``, ``Sign``, ``AK``), contains
a long one (``clientsecret``, ``accesstoken``), or glues ``key`` to a known word
(``drmkeys``, ``apikey``). Every stem contains one of ``STEM_FRAGMENTS`` (or is the word
``AK``/``SK``), so a name holding none is judged at once.
"""

from __future__ import annotations

import re

#: A piece equal to one of these (lower case) is a secret.
SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "passphrases",
        "passcode",
        "token",
        "tokens",
        "credential",
        "credentials",
        "cookie",
        "cookies",
        "auth",
        "authorization",
        "authentication",
        "key",
        "keys",
        "sign",
        "signs",
        "signed",
        "signing",
        "signature",
        "signatures",
        "sig",
        "sigs",
        "presigned",
    }
)
#: A piece containing one of these is a secret: run-together names (``clientsecret``, ``accesstoken``).
SECRET_INFIXES = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "pwd",
    "token",
    "credential",
    "cookie",
    "signature",
    "presign",
    "authorization",
    "authentication",
    "apikey",
    "accesskey",
    "privatekey",
)
#: ``<glue>key`` / ``<glue>keys`` run together is a secret (``drmkeys``, ``notifykey``); ``monkey`` is not.
KEY_PREFIXES = frozenset(
    {
        "api",
        "access",
        "secret",
        "private",
        "drm",
        "notify",
        "sign",
        "signing",
        "session",
        "encryption",
        "encrypt",
        "client",
        "app",
        "master",
        "content",
        "aes",
        "hmac",
        "auth",
        "license",
        "user",
        "ssh",
        "sse",
        "stream",
        "push",
        "play",
        "hotlink",
        "url",
        "cdn",
        "s3",
        "cos",
    }
)
#: ``key<glue>``, ``sign<glue>`` run together is a secret (``signurl``, ``keyid``); ``signal`` is not.
STEM_PREFIXES = ("signed", "sign", "key", "auth")
STEM_SUFFIXES = frozenset({"id", "url", "str", "string", "value", "data", "info", "hex", "b64", "base64"})
#: Whole words only: AWS-style access key / secret key (``AK``, ``SK``), never the ``sk`` of ``Task``.
SHORT_WORDS = frozenset({"ak", "sk"})

#: Compounds that name no secret, matched in the lower-cased words run together.
HARMLESS_COMPOUNDS = (
    "keyword",
    "keyframe",
    "keypts",
    "keyserver",
    "keylen",
    "keylength",
    "keysize",
    "keycount",
    "keytime",
    "keyinterval",
    "objectkey",
    "tagkey",
    "tokencount",
    "signlanguage",
    "signalgorithm",
    "signtime",
    "signtype",
    "signmethod",
    "signversion",
    "signedheaders",
    "signaturemethod",
    "signatureversion",
)
#: Lower-case fragments one of which every secret name other than ``AK``/``SK`` words contains.
STEM_FRAGMENTS = (
    "secret",
    "passw",
    "passphrase",
    "passcode",
    "pwd",
    "token",
    "credential",
    "cookie",
    "auth",
    "key",
    "sig",
)

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SHORT = re.compile(r"AK|SK|Ak|Sk|(?<![A-Za-z])[as]k")
_CACHE_LIMIT = 10_000  # MPS has about 500 names; a hostile body cannot grow this forever
_VERDICTS: dict[str, bool] = {}


def is_secret_name(name: str) -> bool:
    """Whether a field, header or query parameter called ``name`` holds a secret."""
    verdict = _VERDICTS.get(name)
    if verdict is None:
        verdict = _judge(name)
        if len(_VERDICTS) < _CACHE_LIMIT:
            _VERDICTS[name] = verdict
    return verdict


def verdicts() -> dict[str, bool]:
    """The verdicts computed so far, for a walk to read before calling ``is_secret_name``."""
    return _VERDICTS


def _judge(name: str) -> bool:
    lowered = name.lower()
    if not any(fragment in lowered for fragment in STEM_FRAGMENTS) and _SHORT.search(name) is None:
        return False  # the common case, and what keeps a body of random names cheap
    words = _WORDS.findall(name)
    covered = _covered(words)
    start = 0
    for word in words:
        end = start + len(word)
        pieces = _uncovered_pieces(word.lower(), covered[start:end])
        if word.lower() in SHORT_WORDS and len(pieces) == 1 and len(pieces[0]) == len(word):
            return True
        if any(_secret_piece(piece) for piece in pieces):
            return True
        start = end
    return False


def _covered(words: list[str]) -> list[bool]:
    """Which letters of the words run together belong to a harmless compound."""
    joined = "".join(words).lower()
    covered = [False] * len(joined)
    for compound in HARMLESS_COMPOUNDS:
        at = joined.find(compound)
        while at != -1:
            covered[at : at + len(compound)] = [True] * len(compound)
            at = joined.find(compound, at + 1)
    return covered


def _uncovered_pieces(word: str, covered: list[bool]) -> list[str]:
    """``word`` without the letters a harmless compound covers, as the runs left between them."""
    if not any(covered):
        return [word]
    pieces: list[str] = []
    current: list[str] = []
    for letter, hidden in zip(word, covered, strict=True):
        if hidden:
            if current:
                pieces.append("".join(current))
                current = []
        else:
            current.append(letter)
    if current:
        pieces.append("".join(current))
    return pieces


def _secret_piece(piece: str) -> bool:
    if piece in SECRET_WORDS or any(infix in piece for infix in SECRET_INFIXES):
        return True
    for ending in ("keys", "key"):
        if piece.endswith(ending) and piece[: -len(ending)] in KEY_PREFIXES:
            return True
    return any(piece.startswith(stem) and piece[len(stem) :] in STEM_SUFFIXES for stem in STEM_PREFIXES)
