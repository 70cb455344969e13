"""Which language a reply is written in: script detection, then a stopword vote for Latin script.

Returns one of the bundled codes (en zh ko th bn ne sw es fr de), ``"other"`` for text in some other
language, or ``"unknown"`` when there is nothing to go on (no letters at all). It is a small, dependency-free
detector for recording the language of model replies, not a general-purpose language identifier:

- Han characters -> zh (with Japanese kana -> other), Hangul -> ko, Thai -> th, Bengali -> bn.
- Devanagari -> ne. Hindi and Marathi share the script and are reported as ne too: NeuronLab bundles no
  Devanagari language but Nepali, and telling them apart would need vocabulary we do not keep.
- Latin script -> en, es, fr, de or sw by counting frequent function words (plus a few letters such as
  ñ, ç, ß); Latin text with none of them -> other.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

LANGUAGES: tuple[str, ...] = ("en", "zh", "ko", "th", "bn", "ne", "sw", "es", "fr", "de")

# (first code point, last code point, script); anything alphabetic outside these ranges is "other"
_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x024F, "latin"), (0x1E00, 0x1EFF, "latin"),
    (0x0900, 0x097F, "deva"), (0x0980, 0x09FF, "beng"), (0x0E00, 0x0E7F, "thai"),
    (0x1100, 0x11FF, "hang"), (0x3130, 0x318F, "hang"), (0xAC00, 0xD7AF, "hang"),
    (0x3040, 0x30FF, "kana"), (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"),
)
_SCRIPT_LANG = {"han": "zh", "hang": "ko", "thai": "th", "beng": "bn", "deva": "ne"}
# one Han character or Hangul syllable carries about as much text as a few Latin letters
_WEIGHT = {"han": 3.0, "kana": 3.0, "hang": 2.0}

_STOPWORDS: dict[str, frozenset[str]] = {lang: frozenset(words.split()) for lang, words in {
    "en": "the and is are was were you your to of in it its that this for with be can how what which why i my "
          "me not do does on have has here an will from or at as by so if about some there they we would "
          "should when who",
    "es": "el la los las de del que y en un una es por para con no se su sus lo como más pero muy está son "
          "puedo cómo qué al yo tu te mi me hay este esta eso también ser sin sobre cuál puede hacer",
    "fr": "le la les de des du et est un une que qui en pour dans pas ne je tu vous il elle avec sur ce cette "
          "au aux mais comment sont ou mon ton son ma ta sa mes plus peux fait être votre chez moi sans faire "
          "quel quelle",
    "de": "der die das und ist nicht ein eine einen einem ich du sie es zu mit von den dem für auf wie sich "
          "auch kann wird wir ihr mein dein bei oder aber was im zum zur sind welche welcher warum wodurch "
          "gibt viel sehr noch wenn dass man hat haben ohne gegen durch über nach mir mich dir dich uns",
    "sw": "na ya wa kwa ni za la katika hii hiyo kama cha vya kuhusu lakini au sana mimi wewe yako wangu gani "
          "nini jinsi ili kwenye kuwa hata pia huu hizi ambayo mtu watu je bila zaidi vipi yangu yake wake "
          "naye kiasi vizuri hadi baada kabla kila hapa sasa samahani tafadhali asante ndiyo hapana sawa siwezi "
          "naweza unaweza",
}.items()}
_LETTER_HINTS = {"es": "ñ¿¡áíóú", "fr": "çœèêàùâîôûëï", "de": "ßäöü"}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def _script(ch: str) -> str | None:
    """The script of a letter or combining mark (Indic and Thai vowel signs are marks); None otherwise."""
    if not (ch.isalpha() or unicodedata.category(ch).startswith("M")):
        return None
    cp = ord(ch)
    return next((name for lo, hi, name in _RANGES if lo <= cp <= hi), "other")


def _script_counts(text: str) -> Counter:
    counts: Counter = Counter()
    for ch in text:
        name = _script(ch)
        if name is not None:
            counts[name] += _WEIGHT.get(name, 1.0)
    return counts


def _latin_language(text: str) -> str:
    words = [w.lower() for w in _WORD.findall(text)]
    votes = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    votes["sw"] += sum(len(w) > 4 and w.endswith("je") for w in words)  # Swahili "how?" suffix: ninawezaje
    lowered = text.lower()
    for lang, letters in _LETTER_HINTS.items():
        votes[lang] += 0.5 * sum(lowered.count(c) for c in letters)
    best = max(votes, key=votes.get)
    return best if votes[best] > 0 else "other"


def detect_language(text: str) -> str:
    """The language ``text`` is written in: a bundled code, "other", or "unknown" (no letters)."""
    counts = _script_counts(text or "")
    if not counts:
        return "unknown"
    script = max(counts, key=counts.get)
    if script == "han" and counts["kana"] > 0:
        return "other"  # Japanese mixes kana into Han text
    if script == "latin":
        return _latin_language(text)
    return _SCRIPT_LANG.get(script, "other")
