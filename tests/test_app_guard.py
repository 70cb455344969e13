"""The app's edges: an error a page or a widget callback raises is a message on the page (no exception box, the
page and sidebar still work), Streamlit's own st.stop passes through, and user strings shown as markdown render as
the text they are."""
import ast
import json
from pathlib import Path

import pytest

import neuronlab.neurons.sets
import webui.state
from neuronlab.errors import NeuronLabError
from tests.support.apptest import APP, app, errors, page, rendered, run, shown_texts
from webui.guard import md

CALLBACKS = ("on_click", "on_change", "on_submit", "on_select")  # Streamlit's widget callback arguments

EVIL = ["![x](http://evil/img)", "[link](http://x)", "<http://auto>", "**bold** `code` $x$ :red[red]",
        "# heading", "- item\n1. one", "www.evil.example", "a_b*c*~d~|e|"]


@pytest.mark.parametrize("text", EVIL)
def test_md_renders_user_text_as_itself(text):
    html = rendered(md(text))
    assert "<img" not in html and "<a " not in html and "<code" not in html and "<strong" not in html
    assert "<h1" not in html and "<li" not in html and "<del" not in html and "<em" not in html
    assert "http://" not in md(text) and "www." not in md(text)  # GFM would make bare URLs links
    assert md("bad.jsonl, line 2 (tiny-llama): no such folder") == "bad.jsonl, line 2 (tiny-llama): no such folder"


def test_bad_typed_neurons_and_uploads_are_messages_not_exception_boxes():
    at = page(app("tiny-llama"), "intervene")
    for line, problem in [("0 mlp 3.9", "layers and indices are numbers"), ("99 mlp 1", "layer out of range"),
                          ("0 foo 1", "write LAYERS SITE INDICES")]:
        run(at.text_input(key="iv_typed").input(line))
        assert any(problem in e for e in errors(at)), errors(at)
    run(at.text_input(key="iv_typed").input(""))
    for content in [b"{", b'{"sets": []}', b'{"neurons": {"mlp": {"0": ["x"]}}}', b"\xff\xfe"]:
        run(at.file_uploader(key="iv_upload").set_value(("bad.json", content, "application/json")))
        assert [e.count("bad.json") for e in errors(at)] == [1]


def test_a_neuronlab_error_a_page_raises_is_shown_as_its_message(monkeypatch):
    at = page(app("tiny-llama"), "intervene")

    def refuse(text, arch):
        raise NeuronLabError("typed neurons: 3 [too many](http://x) ranges")
    monkeypatch.setattr(neuronlab.neurons.sets, "parse_neurons", refuse)
    run(at.text_input(key="iv_typed").input("0 mlp 1"))  # run() asserts no exception box
    assert errors(at) == [md("typed neurons: 3 [too many](http://x) ranges")]
    assert "<a " not in rendered(errors(at)[0])
    assert "No patch, no intervention" in "\n".join(c.value for c in at.sidebar.caption)  # drawn after the error
    monkeypatch.undo()
    run(at.text_input(key="iv_typed").input("0 mlp 1-3"))  # the page works again
    assert not errors(at) and at.session_state["iv_typed"] == "0 mlp 1-3"


def test_an_unexpected_error_is_a_short_message_with_details(monkeypatch):
    at = page(app("tiny-llama"), "intervene")

    def crash(text, arch):
        raise RuntimeError("something internal\nsecond line")
    monkeypatch.setattr(neuronlab.neurons.sets, "parse_neurons", crash)
    run(at.text_input(key="iv_typed").input("0 mlp 1"))
    [message] = errors(at)
    assert message.startswith("Something went wrong on this page (RuntimeError: something internal)")
    assert "second line" not in message
    [details] = [e for e in at.expander if e.label == "Details"]
    assert "Traceback" in details.code[0].value and "RuntimeError: something internal" in details.code[0].value
    assert at.sidebar.button(key="load_models")  # the sidebar is still there
    monkeypatch.undo()
    page(at, "models")  # and other pages work
    assert not errors(at)


def test_st_stop_still_stops_a_page_without_an_error():
    at = page(app(), "intervene")  # no model loaded: the page says so and stops (st.stop)
    assert not errors(at) and any("No target model loaded yet" in i.value for i in at.info)


def test_an_uploaded_set_named_with_markdown_renders_as_text():
    at = page(app("tiny-llama"), "intervene")
    sets = {name: {"neurons": {"mlp": {"0": [i + 1]}}} for i, name in enumerate(EVIL[:2])}
    upload = json.dumps({"sets": sets}).encode()
    run(at.file_uploader(key="iv_upload").set_value(("[f](http://evil).json", upload, "application/json")))
    assert set(EVIL[:2]) <= set(at.multiselect(key="iv_sets").options)
    run(at.multiselect(key="iv_sets").set_value(EVIL[:2]))  # the sidebar names them, and so do the radio labels
    texts = shown_texts(at) + [at.radio(key=f"iv_mode:{name}").label for name in EVIL[:2]]
    sidebar = "\n".join(m.value for m in at.sidebar.markdown)
    assert all(md(name) in sidebar for name in EVIL[:2]), sidebar
    for text in texts:
        html = rendered(text)
        assert "<img" not in html and "<a " not in html and "http://" not in text, text


@pytest.mark.parametrize("error, shown", [
    (NeuronLabError("cannot switch off: [why](http://x)"), md("cannot switch off: [why](http://x)")),
    (RuntimeError("internal\nsecond line"), "Something went wrong on this page (RuntimeError: internal)"),
])
def test_an_error_a_widget_callback_raises_is_shown_as_a_message(monkeypatch, error, shown):
    at = page(app("tiny-llama"), "intervene")
    run(at.text_input(key="iv_typed").input("0 mlp 1"))  # an intervention on: Reset is enabled

    def refuse():
        raise error
    monkeypatch.setattr(webui.state, "clear_interventions", refuse)
    run(at)  # the page registers the failing callback
    run(at.button(key="iv_reset").click())  # Streamlit runs it before the script; run() asserts no exception box
    [message] = errors(at)
    assert message.startswith(shown) and "second line" not in message
    assert [e.label for e in at.expander if e.label == "Details"] == ([] if isinstance(error, NeuronLabError)
                                                                       else ["Details"])
    assert at.session_state["iv_typed"] == "0 mlp 1"  # the page ran, with the state the callback left
    assert any("intervened" in m.value for m in at.sidebar.markdown)
    run(at)
    assert not errors(at)  # shown once
    monkeypatch.undo()
    run(at)
    run(at.button(key="iv_reset").click())  # the page works again: Reset switches the intervention off
    assert not errors(at) and at.session_state["iv_typed"] == ""
    assert not any("intervened" in m.value for m in at.sidebar.markdown)


def callback_arguments(path: Path) -> list[tuple[int, str, ast.expr]]:
    """(line, argument, value) for every widget callback argument passed in ``path``."""
    return [(node.lineno, kw.arg, kw.value) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) for kw in node.keywords if kw.arg in CALLBACKS]


def is_guarded(value: ast.expr) -> bool:
    """A string ("ignore", "rerun": no Python callback) or ``guarded(...)``."""
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return True
    func = value.func if isinstance(value, ast.Call) else None
    return (isinstance(func, ast.Name) and func.id == "guarded") or (
        isinstance(func, ast.Attribute) and func.attr == "guarded")


def test_every_widget_callback_goes_through_the_guard():
    files = [APP, *sorted((APP.parent / "webui").rglob("*.py"))]
    found = [(path.relative_to(APP.parent), line, arg, value) for path in files
             for line, arg, value in callback_arguments(path)]
    unguarded = [f"{path}:{line}: {arg}={ast.unparse(value)}" for path, line, arg, value in found
                 if not is_guarded(value)]
    assert not unguarded, f"wrap widget callbacks in webui.guard.guarded: {unguarded}"
    assert sum(isinstance(value, ast.Call) for *_, value in found) >= 5  # the scan sees the app's callbacks
    assert not is_guarded(ast.parse("f(on_click=state.clear)").body[0].value.keywords[0].value)
