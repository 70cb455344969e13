"""Helpers shared by several test modules (a test module never imports another): ``apptest`` drives the
Streamlit app through AppTest, ``builders`` makes the patches, results and neuron sets tests draw on,
``messages`` checks that a bad input's message is one clear line. Fixtures live in tests/conftest.py."""
