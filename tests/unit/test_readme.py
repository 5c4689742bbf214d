"""The README stays a true front door: it names the two commands, stays short, maps every page of
``docs/``, and every link in it and in ``docs/`` leads somewhere; the settings page is the registry's."""

from __future__ import annotations

import re
from pathlib import Path

from tools import settings_table

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: Markdown links to files of the repository (not web addresses, not anchors alone).
LINK = re.compile(r"\]\((?!https?://|#)([^)#\s]+)(?:#[^)]*)?\)")


def test_the_settings_page_table_matches_the_registry() -> None:
    text = settings_table.PAGE.read_text()
    assert settings_table.render(text) == text, "run `python -m tools.settings_table` to refresh the table"


def test_the_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_the_readme_is_a_front_door_not_the_whole_house() -> None:
    lines = README.read_text().count("\n")
    assert lines <= 150, f"README.md has {lines} lines: move the detail into docs/ and link it"


def test_the_readme_maps_every_page_of_docs() -> None:
    text = README.read_text()
    unmapped = [p.name for p in sorted(DOCS.glob("*.md")) if f"(docs/{p.name})" not in text]
    assert unmapped == [], f"pages of docs/ the README's map does not name: {unmapped}"


def test_every_link_in_the_readme_and_docs_leads_to_a_file_that_exists() -> None:
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []
