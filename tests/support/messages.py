"""What every message for a bad input must be (tests/test_uploads.py, tests/test_set_files.py,
tests/test_bad_models.py): one line naming the input once, with the problem, and no parser jargon."""

NOISE = ("JSONDecodeError", "Expecting", "Traceback", "SafetensorError", "Error while deserializing",
         "RecursionError", "maximum recursion", "int_max_str_digits")


def assert_clear(error: Exception | str, name: str, *fragments: str) -> None:
    """One message naming ``name`` once, holding every fragment, on one line and with no parser jargon."""
    message = str(error)
    assert message.count(name) == 1, message
    assert all(f in message for f in fragments), (fragments, message)
    assert not any(noise in message for noise in NOISE), message
    assert "\n" not in message, message
