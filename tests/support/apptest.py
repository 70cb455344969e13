"""Drive the Streamlit app through streamlit.testing.v1.AppTest (tests/test_app.py, tests/test_progress_app.py)."""
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent.parent / "app.py"
TIMEOUT = 180


def run(target) -> AppTest:
    """Rerun the app (``target``: the AppTest or a widget just changed) and check no exception was shown."""
    at = target.run(timeout=TIMEOUT)
    assert not at.exception, [e.message for e in at.exception]
    return at


def app(model: str | None = None) -> AppTest:
    """A fresh session; with ``model``, target and donor are that built-in, loaded."""
    at = run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    if model:
        at.selectbox(key="target_pick").select(model)
        at.selectbox(key="donor_pick").select(model)
        run(at.button(key="load_models").click())
        assert not at.error, [e.value for e in at.error]
    return at


def pair(folder) -> AppTest:
    """A session with tiny-llama as the target and the model in ``folder`` (e.g. ``builders.saved_sibling``) as the
    donor."""
    at = run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.selectbox(key="target_pick").select("tiny-llama")
    run(at.selectbox(key="donor_pick").select("other…"))
    at.text_input(key="donor_spec").input(str(folder))
    run(at.button(key="load_models").click())
    assert not at.error, [e.value for e in at.error]
    return at


def page(at: AppTest, name: str) -> AppTest:
    return run(at.switch_page(f"webui/pages/{name}.py"))


def figure(at: AppTest, index: int = 0) -> dict:
    """The plotly figure (as JSON) of the index-th chart on the page."""
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def heatmap_figure(at: AppTest) -> dict:
    """The first chart on the page that draws a heatmap (the Safety neurons page shows the layer view above it)."""
    charts = [figure(at, i) for i in range(len(at.get("plotly_chart")))]
    return next(f for f in charts if any(t.get("type") == "heatmap" for t in f["data"]))


def quick_eval(at: AppTest, key: str) -> None:
    """One held-out prompt per label in English, short replies."""
    run(at.multiselect(key=f"{key}_langs").set_value(["en"]))
    run(at.number_input(key=f"{key}_per_label").set_value(1))
    run(at.number_input(key=f"{key}_tokens").set_value(8))


TEXT_ELEMENTS = ("markdown", "caption", "success", "info", "warning", "error", "subheader")


def shown_texts(at: AppTest) -> list[str]:
    """The markdown source of every text element, on the page and in the sidebar (text, captions, alerts)."""
    return [e.value for kind in TEXT_ELEMENTS for e in getattr(at, kind)]


def errors(at: AppTest) -> list[str]:
    """The st.error messages shown; asserts no exception box."""
    assert not at.exception, [e.message for e in at.exception]
    return [e.value for e in at.error]


def rendered(source: str) -> str:
    """``source`` as CommonMark renders it to HTML (links, images, autolinks included)."""
    from markdown_it import MarkdownIt  # comes with rich; the tests that use it skip without it

    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(source)
