"""Drive the sidebar's function picker (AppTest): pick a function, or fill in a user-defined one (French vs English
replies, tests/test_function_app.py, tests/test_transfer_functions_app.py, tests/test_openings_app.py)."""
import json

from tests.support.apptest import run
from webui import state

LABELS = ("french", "english")
PATTERN = r"\b(le|la|les|est|je|vous)\b"
TOPICS = ["the rain", "a good book", "cooking rice", "morning walks", "the sea", "a cat's day"]


def reply_language_file() -> bytes:
    """Prompts asking for a reply in French or in English, four to scan and two held out per label."""
    rows = [{"id": f"{label}-{i}", "lang": "en", "label": label, "split": "scan" if i < 4 else "heldout",
             "text": f"Reply in {label.title()}, please: say something about {topic}."}
            for label in LABELS for i, topic in enumerate(TOPICS)]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def pick(at, name: str):
    return run(at.selectbox(key=state.FUNCTION).select(name))


def own_function(at, content: bytes = None, pattern: str = PATTERN, openings: str = None, threshold: float = None):
    """Pick "your own" and fill its sidebar inputs as a user would: a reply pattern, or with ``openings`` the reply
    openings metric (and its threshold when given)."""
    at = pick(at, "your own")
    run(at.file_uploader(key="fn_upload").set_value(("reply-language.jsonl", content or reply_language_file(),
                                                      "application/json")))
    at.text_input(key="fn_behaviour").input(LABELS[0])
    at.text_input(key="fn_other").input(LABELS[1])
    if openings is None:
        return run(at.text_input(key="fn_pattern").input(pattern))
    at = run(at.radio(key="fn_metric").set_value("openings"))
    if threshold is not None:
        at.number_input(key="fn_threshold").set_value(threshold)
    return run(at.text_area(key="fn_openings").input(openings))
