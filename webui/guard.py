"""The app's edges: a page run that never ends in an exception box, and user text made safe for markdown.

Every user-facing error derives from ``NeuronLabError``: the guard shows its message as an error and nothing else.
Anything else is a bug: a short error line, the traceback in a "Details" expander, and the traceback in the
server's log. Streamlit's own control flow (``st.stop``, ``st.rerun``, ``st.switch_page``) passes through.

Widget callbacks (``on_click``, ``on_change``, ...) run before the script, outside any page, so each is wrapped in
``guarded``: an error there is kept in the session and shown by ``run_page`` at the top of the page it leads to.
"""
from __future__ import annotations

import functools
import logging
import re
import traceback

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from neuronlab.errors import NeuronLabError

log = logging.getLogger(__name__)
# what markdown (and Streamlit's :color[…] and $…$) makes something of anywhere in a line: links and images need
# [ ], autolinks < >, emphasis * _ ~, code `, tables |, math $, and \\ escapes; headings, quotes and lists need a
# line to start with # > - + = or "1." (a line start is escaped when one is there); bare URLs are links in GFM
_INLINE = re.compile(r"([\\`*_\[\]<>#$~|])")
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+[.)])", re.MULTILINE)
_BARE_URL = re.compile(r"(?i)\b(https?|ftp|file|mailto|data|javascript):|\b(www)\.")


def md(text: object) -> str:
    """``text`` (a set name, a file name, a model spec, an error message) as markdown that shows it literally:
    ``![x](http://host/img)`` stays those characters, no image, no link. Plain words, spaces, ``- . , ( ) :``
    inside a line stay as they are, so messages read the same in the source."""
    out = _INLINE.sub(r"\\\1", str(text))
    out = _LINE_START.sub(lambda m: m[1] + "".join("\\" + c if not c.isdigit() else c for c in m[2]), out)
    return _BARE_URL.sub(lambda m: f"{m[1]}\\:" if m[1] else f"{m[2]}\\.", out)


CALLBACK_ERRORS = "guard_callback_errors"  # session state: the messages of the callbacks that failed this run


def message(error: Exception, details: str) -> tuple[str, str | None]:
    """(the st.error text, the traceback for a "Details" expander or None) for an error a page or callback raised."""
    if isinstance(error, NeuronLabError):  # the user's input: the message says what was wrong and what is accepted
        return md(error), None
    first = (str(error).strip().splitlines() or [""])[0][:200]  # a bug: say so briefly, details one click away
    return (f"Something went wrong on this page ({type(error).__name__}{': ' + md(first) if first else ''}). "
            "The rest of the app still works; the details below help to report it.", details)


def show(text: str, details: str | None) -> None:
    st.error(text)
    if details is not None:
        with st.expander("Details"):
            st.code(details, language=None)


def guarded(callback):
    """``callback`` made safe to pass as a widget's ``on_click`` / ``on_change``: an error it raises is kept in the
    session (a bug also goes to the server's log) and shown by ``run_page``, not as an exception box. Every
    callback in the app goes through here (tests/test_app_guard.py checks)."""
    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except ScriptControlException:
            raise
        except Exception as e:
            if not isinstance(e, NeuronLabError):
                log.exception("callback %s failed", getattr(callback, "__qualname__", callback))
            st.session_state.setdefault(CALLBACK_ERRORS, []).append(message(e, traceback.format_exc()))
    return run


def run_page(page) -> None:
    """Run a ``st.navigation`` page; its errors, and those of the callbacks run before it, become messages on
    the page, which stays usable."""
    for text, details in st.session_state.pop(CALLBACK_ERRORS, []):
        show(text, details)
    try:
        page.run()
    except ScriptControlException:  # st.stop / st.rerun / st.switch_page: Streamlit's, not an error
        raise
    except Exception as e:
        if not isinstance(e, NeuronLabError):
            log.exception("page %s failed", getattr(page, "url_path", page))
        show(*message(e, traceback.format_exc()))
