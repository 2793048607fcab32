"""What a customer's message asks, read by rules: where or when their delivery comes, a change
to it, a delivery marked done that never arrived, or something else; and whether the reading
is sure enough to answer without a person (issue 19).

Each language's cues are regular expressions in ``intent_cues/<lang>.toml``, matched on the
message made plain (:func:`plain`: lower case, accents and punctuation dropped, yo as ye). The
order of precedence is the order of what must not be missed: a delivery marked done that
never arrived (``not_received``) before a request to change something (``change``), before a
question about place or time (``where_when``). A message is answered by itself only when it
asks where or when and nothing else the rules know: any cue of another kind, or of a topic
that is not the delivery's place or time (``other``: refunds, returns, invoices...), hands it
to a person.

Pure: text in, a :class:`Reading` out.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

Intent = Literal["where_when", "change", "not_received", "other"]
INTENTS: tuple[Intent, ...] = ("where_when", "change", "not_received", "other")
#: Cue kinds, in precedence order (``other`` cues only veto an automatic answer).
_DECISIVE: tuple[Intent, ...] = ("not_received", "change", "where_when")
#: Longer messages are stories, complaints or several questions: a person reads them.
SURE_MAX_CHARS = 400


@dataclass(frozen=True, slots=True)
class Reading:
    intent: Intent
    #: Answer without a person: it asks where or when, and nothing else the rules know.
    sure: bool
    #: The language whose cues matched (the one asked for, else the first that did).
    lang: str
    #: Which cues matched, as ``kind:pattern`` (why it was read so, for support).
    cues: tuple[str, ...]


def plain(text: str) -> str:
    """Lower case, accents dropped (``dov'è`` → ``dov e``), Cyrillic yo as ye, punctuation
    as spaces, whitespace collapsed; digits, ``#`` and ``?`` kept."""
    # Cyrillic yo is written as ye as often as not.
    lowered = text.lower().replace("\u0451", "\u0435")
    decomposed = unicodedata.normalize("NFKD", lowered)
    # Cyrillic й decomposes to и + breve: keep it whole, it is a letter of its own.
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch) or ch == "\u0306")
    letters = unicodedata.normalize("NFC", stripped)
    spaced = re.sub(r"[^\w#?]+", " ", letters)
    return " " + re.sub(r"\s+", " ", spaced).strip() + " "


@cache
def cues(lang: str) -> dict[Intent, tuple[re.Pattern[str], ...]]:
    """The compiled cues of a language (``intent_cues/<lang>.toml``)."""
    path = resources.files("notify").joinpath("intent_cues", f"{lang}.toml")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - set(INTENTS)
    if unknown:
        raise ValueError(f"intent_cues/{lang}.toml: unknown kinds {sorted(unknown)}")
    return {kind: tuple(re.compile(p) for p in data.get(kind, ())) for kind in INTENTS}


def cue_languages() -> tuple[str, ...]:
    """The languages with cues."""
    folder = resources.files("notify").joinpath("intent_cues")
    return tuple(
        sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))
    )


def _matches(text: str, lang: str) -> dict[Intent, list[str]]:
    found: dict[Intent, list[str]] = {}
    for kind, patterns in cues(lang).items():
        hits = [p.pattern for p in patterns if p.search(text)]
        if hits:
            found[kind] = hits
    return found


def read_message(text: str, lang: str) -> Reading:
    """Read a customer's message written (probably) in ``lang``: with that language's cues,
    or, if none match, the first other language whose do (customers write in the language
    they like, not always the one on the order)."""
    made_plain = plain(text)
    languages = cue_languages()
    order = (
        [lang] + [other for other in languages if other != lang]
        if lang in languages
        else list(languages)
    )
    found: dict[Intent, list[str]] = {}
    used = order[0]
    for candidate in order:
        found = _matches(made_plain, candidate)
        if found:
            used = candidate
            break
    intent: Intent = next((kind for kind in _DECISIVE if kind in found), "other")
    if intent == "where_when" and "other" in found:
        # "When will my refund come?": a where/when question about something else.
        intent = "other"
    sure = (
        intent == "where_when"
        and set(found) == {"where_when"}
        and len(text.strip()) <= SURE_MAX_CHARS
    )
    matched = tuple(f"{kind}:{pattern}" for kind, patterns in found.items() for pattern in patterns)
    return Reading(intent, sure, used, matched)
