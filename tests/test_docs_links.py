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


def _slugs(markdown: str) -> set[str]:
    """The anchors a Markdown file defines: GitHub's heading slugs (lower case, punctuation
    other than hyphens dropped, spaces to hyphens, repeats numbered) and explicit ``<a id>``."""
    slugs: set[str] = set(re.findall(r'<a id="([^"]+)"></a>', markdown))
    seen: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"^#{1,6} (.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            slugs.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return slugs


def test_markdown_links_point_at_files_and_headings_that_exist() -> None:
    """Every relative link of the repository's Markdown (README, docs, CONTRIBUTING, model cards,
    plugin and benchmark READMEs) reaches a file that exists, and a ``#anchor`` into Markdown a
    heading or ``<a id>`` there."""
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "bfm_gym" / "pretrained").rglob("*.md")),
             *sorted((ROOT / "plugins").rglob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _slugs(dest.read_text()):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
