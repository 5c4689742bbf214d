"""The README stays true: its settings table is the registry's, and it names the two commands."""

from __future__ import annotations

from tools import readme_settings


def test_the_readme_settings_table_matches_the_registry() -> None:
    text = readme_settings.README.read_text()
    assert readme_settings.render(text) == text, "run `python -m tools.readme_settings` to refresh the table"


def test_the_readme_shows_the_two_commands() -> None:
    text = readme_settings.README.read_text()
    assert "make demo" in text and "make test" in text
