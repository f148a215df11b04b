"""The code cites docs/algorithms.md by anchor: every cited anchor exists, and nothing cites a
document outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
SOURCES = ["bfm_gym", "tests", "plugins", "benchmarks", "examples"]


def _files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    for folder in SOURCES:
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.suffix in (".py", ".md")]
    return files


def test_cited_anchors_of_algorithms_md_exist() -> None:
    doc = (ROOT / "docs" / "algorithms.md").read_text()
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', doc))
    missing = []
    for path in _files():
        for cite in re.findall(r"docs/algorithms\.md((?:#[a-z0-9-]+)(?:, #[a-z0-9-]+)*)", path.read_text()):
            missing += [f"{path.relative_to(ROOT)}: #{a}" for a in re.findall(r"#([a-z0-9-]+)", cite)
                        if a not in anchors]
    missing += [f"docs/algorithms.md: #{a}" for a in re.findall(r"\]\(#([a-z0-9-]+)\)", doc)
                if a not in anchors]
    assert not missing, "anchors cited but not defined in docs/algorithms.md: " + ", ".join(missing)


def test_no_citation_of_documents_outside_the_repository() -> None:
    pattern = re.compile(r"REFERENCE\s(?:§|pitfall)|\.\./shared/")
    hits = [str(p.relative_to(ROOT)) for p in _files() if p != Path(__file__)
            and pattern.search(p.read_text())]
    assert not hits, f"cite docs/algorithms.md instead: {hits}"
