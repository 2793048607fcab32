"""How often a customer's "where is my order?" is answered by itself, and how often wrongly.

    python -m bench.wismo_answers [--corpus FILE.jsonl ...] [--show-errors]

A corpus line is ``{"text": ..., "lang": "en|it|es|fr|nl|ru", "intent":
"where_when|change|not_received|other"}``. Each message is read by the rules
(``notify/intents.py``) and matched to the sender's orders (``notify/contact_match.py``) twice:

- as written by a customer with one open order, the one the text names if it names any: an
  automatic answer goes out when the reading is sure and the match finds that order;
- as written by a customer whose only order is *not* the one the text names (another
  customer's reference or link in the message): any answer that goes out then must be about
  the sender's own order, never the named one (``other_customer_answers``, which must be 0).

``auto_answer_rate``: share of ``where_when`` messages answered automatically (and so
correctly: the intent is right and the order the sender's). ``wrong_auto_rate``: share of all
messages answered automatically although their intent is not ``where_when``.
The default corpora are the held-out ones (``tests/data/wismo_corpus_test.jsonl`` and
``wismo_corpus_test2.jsonl``, each written independently of the rules and of each other; the
rules were written on the ``wismo_corpus_dev*.jsonl`` files), scored together. ``--corpus``
may be given more than once. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from notify.contact_match import SenderOrder, named_in, order_asked_about
from notify.intents import INTENTS, read_message

DATA = Path(__file__).resolve().parent.parent / "tests/data"
DEFAULT_CORPORA = (DATA / "wismo_corpus_test.jsonl", DATA / "wismo_corpus_test2.jsonl")
LANGUAGES = ("en", "it", "es", "fr", "nl", "ru")


def load(path: Path) -> list[dict[str, str]]:
    """The corpus, each line checked (a bad line names its number and field)."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{number}: not JSON ({exc.msg})") from None
        for field, allowed in (("lang", LANGUAGES), ("intent", INTENTS)):
            if row.get(field) not in allowed:
                raise SystemExit(f"{path}:{number}: {field} must be one of {', '.join(allowed)}")
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            raise SystemExit(f"{path}:{number}: text must be a non-empty string")
        rows.append(row)
    return rows


def answered(text: str, lang: str, own: SenderOrder) -> tuple[bool, SenderOrder | None]:
    """Whether the service would answer by itself, and about which order."""
    reading = read_message(text, lang)
    match = order_asked_about(text, [own])
    auto = reading.sure and match.order is not None
    return auto, match.order if auto else None


def evaluate(rows: list[dict[str, str]], show_errors: bool = False) -> dict[str, Any]:
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    confusion: Counter[tuple[str, str]] = Counter()
    other_customer = 0
    for row in rows:
        text, lang, truth = row["text"], row["lang"], row["intent"]
        reading = read_message(text, lang)
        confusion[(truth, reading.intent)] += 1
        named = named_in(text)
        own = SenderOrder("own", named[0] if named else "own-1")
        auto, _ = answered(text, lang, own)
        # The same text from a customer whose only order is not the one it names.
        stranger = SenderOrder("theirs", "zz-000000")
        auto2, about2 = answered(text, lang, stranger)
        if auto2 and about2 is not None and about2.order_id != "theirs":
            other_customer += 1
        for key in (lang, "all"):
            s = stats[key]
            s["messages"] += 1
            s[f"truth_{truth}"] += 1
            if auto:
                s["auto"] += 1
                s["auto_right" if truth == "where_when" else "auto_wrong"] += 1
        if show_errors and (auto != (truth == "where_when") or reading.intent != truth):
            print(
                f"[{lang}] truth={truth} read={reading.intent} sure={reading.sure} "
                f"auto={auto}: {text!r} {list(reading.cues)}",
                file=sys.stderr,
            )

    def figures(s: Counter[str]) -> dict[str, Any]:
        asked = s["truth_where_when"]
        return {
            "messages": s["messages"],
            "auto_answer_rate": round(s["auto_right"] / asked, 3) if asked else None,
            "wrong_auto_rate": round(s["auto_wrong"] / s["messages"], 4) if s["messages"] else None,
            "auto_answered": s["auto"],
        }

    overall = figures(stats["all"])
    correct = sum(n for (truth, read), n in confusion.items() if truth == read)
    return {
        **overall,
        "intent_accuracy": round(correct / len(rows), 3) if rows else None,
        "other_customer_answers": other_customer,
        "by_lang": {lang: figures(stats[lang]) for lang in LANGUAGES if stats[lang]["messages"]},
        "confusion": {f"{t}->{r}": n for (t, r), n in sorted(confusion.items())},
        "goals": {
            "auto_answer_rate >= 0.85": overall["auto_answer_rate"] is not None
            and overall["auto_answer_rate"] >= 0.85,
            "wrong_auto_rate <= 0.01": overall["wrong_auto_rate"] is not None
            and overall["wrong_auto_rate"] <= 0.01,
            "other_customer_answers == 0": other_customer == 0,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append", help="a corpus file (repeatable)")
    parser.add_argument("--show-errors", action="store_true", help="each miss on stderr")
    args = parser.parse_args(argv)
    corpora: list[Path] = args.corpus or list(DEFAULT_CORPORA)
    rows = [row for path in corpora for row in load(path)]
    result = {
        "corpus": "+".join(path.name for path in corpora),
        **evaluate(rows, args.show_errors),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
