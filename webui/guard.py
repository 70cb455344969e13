"""The app's edges: a page run that never ends in an exception box, and user text made safe for markdown.

Every user-facing error derives from ``NeuronLabError``: the guard shows its message as an error and nothing else.
Anything else is a bug: a short error line, the traceback in a "Details" expander, and the traceback in the
server's log. Streamlit's own control flow (``st.stop``, ``st.rerun``, ``st.switch_page``) passes through.
"""
from __future__ import annotations

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


def run_page(page) -> None:
    """Run a ``st.navigation`` page; its errors become messages on the page, which stays usable."""
    try:
        page.run()
    except ScriptControlException:  # st.stop / st.rerun / st.switch_page: Streamlit's, not an error
        raise
    except NeuronLabError as e:  # the user's input: the message says what was wrong and what is accepted
        st.error(md(e))
    except Exception as e:  # a bug: say so briefly, keep the details one click away
        log.exception("page %s failed", getattr(page, "url_path", page))
        first = (str(e).strip().splitlines() or [""])[0][:200]
        st.error(f"Something went wrong on this page ({type(e).__name__}{': ' + md(first) if first else ''}). "
                 "The rest of the app still works; the details below help to report it.")
        with st.expander("Details"):
            st.code(traceback.format_exc(), language=None)
