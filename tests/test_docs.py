"""Every reference in the repository resolves inside it.

- A citation of the facts the code relies on names a file of ``docs/`` and, where it gives one,
  a section heading in quotes: ``docs/azure-services.md, "Custom Vision limits"``. The file and
  the heading must exist, and each file of ``docs/`` is cited somewhere.
- No file refers to the notes outside the repository these facts were first written in.
- Every relative link of the repository's Markdown files (README.md first) leads to a file of
  the repository or to a heading of the file it names (GitHub's anchors).

Scanned: ``common/``, the plugin files, ``tests/``, ``bench/``, ``docs/``, README.md and the
example settings file.
"""

import re
from pathlib import Path

THIS_FILE = Path(__file__).resolve()
ROOT = THIS_FILE.parent.parent
DOCS = ROOT / "docs"
PLUGINS = ("azurevision.py", "azureclassification.py", "azureobjectdetection.py")
TEXT_SUFFIXES = {".py", ".md", ".json", ".ini", ".cfg", ".toml", ".txt", ".html", ".js", ".css"}

# "docs/<file>.md", maybe in backticks, then maybe quoted section headings, one or more
# (comma or "and" between them), in double or single quotes, escaped ones in JSON strings.
_QUOTED = r"""\\?["'][^"'\\]+?\\?["']"""
_CITATION = re.compile(
    r"(?<![\w/.-])docs/(?P<file>[\w.-]+\.md)`{0,2}"
    r"(?P<sections>,\s*(?:sections?\s+)?" + _QUOTED + r"(?:\s*(?:,|and)\s*" + _QUOTED + r")*)?"
)
_SECTION = re.compile(r"""\\?["']([^"'\\]+?)\\?["']""")
# Where the facts were first written down, outside the repository.
_OUTSIDE = re.compile(
    r"\.\./shared\b|\bshared/(?:azure|pixstor)\b|/work/|API-FACTS|API_FACTS|SUCCESSORS\b"
    r"|PLUGIN-API"
)
# A line break inside a comment or a wrapped string: the citation reads on as one line.
_LINE_BREAK = re.compile(r"[ \t]*\n[ \t]*(?:#+[ \t]*|\*[ \t]+|//[ \t]*)?")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_CODE_SPAN = re.compile(r"(`+).+?\1")


def scanned_files(root=ROOT):
    files = [root / "README.md", root / "pixstor-azure.example.ini"]
    files += [root / name for name in PLUGINS]
    for folder in ("common", "tests", "bench", "docs"):
        files += sorted(
            path
            for path in (root / folder).rglob("*")
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts
        )
    # Not this file: it names what it looks for, and writes faulty references to test itself.
    return [path for path in files if path.is_file() and path.resolve() != THIS_FILE]


def prose_lines(text):
    """The lines of a Markdown text outside fenced code blocks, with their numbers."""
    fenced = False
    for number, line in enumerate(text.split("\n"), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def headings(text):
    found = (_HEADING.match(line) for _, line in prose_lines(text))
    return [" ".join(match.group(2).split()) for match in found if match]


def anchors(text):
    """``{anchor: (heading, n)}``, GitHub's anchor for each heading: lower case, punctuation
    dropped, spaces to hyphens; the ``n``-th repeat of an anchor is suffixed ``-n``."""
    seen = {}
    result = {}
    for heading in headings(text):
        plain = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
        slug = re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result[slug if count == 0 else f"{slug}-{count}"] = (heading, count)
    return result


def citations(text):
    """``(docs file name, [section, ...])`` for every citation in ``text``."""
    flat = _LINE_BREAK.sub(" ", text)
    for match in _CITATION.finditer(flat):
        sections = [" ".join(s.split()) for s in _SECTION.findall(match.group("sections") or "")]
        yield match.group("file"), sections


def citation_problems(files, docs=DOCS, root=ROOT):
    problems = []
    cited = set()
    sections_of = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        for name, sections in citations(text):
            if docs not in path.parents:  # a file of docs/ citing itself does not count
                cited.add(name)
            doc = docs / name
            where = f"{path.relative_to(root)}: docs/{name}"
            if not doc.is_file():
                problems.append(f"{where}: no such file")
                continue
            if name not in sections_of:
                sections_of[name] = set(headings(doc.read_text(encoding="utf-8")))
            problems += [
                f'{where}, "{section}": no such section'
                for section in sections
                if section not in sections_of[name]
            ]
    problems += [
        f"docs/{doc.name}: cited nowhere"
        for doc in sorted(docs.glob("*.md"))
        if doc.name not in cited
    ]
    return problems


def outside_problems(files, root=ROOT):
    problems = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            match = _OUTSIDE.search(line)
            if match:
                where = f"{path.relative_to(root)}:{number}"
                problems.append(f"{where}: refers outside the repository ({match.group(0)})")
    return problems


def link_targets(text):
    for number, line in prose_lines(text):
        line = _CODE_SPAN.sub("", line)
        definition = _REFERENCE_DEFINITION.match(line)
        if definition:
            yield number, definition.group(1)
            continue
        for match in _INLINE_LINK.finditer(line):
            yield number, match.group(1)


def link_problems(markdown_file, root=ROOT):
    problems = []
    text = markdown_file.read_text(encoding="utf-8")
    for number, target in link_targets(text):
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        where = f"{markdown_file.relative_to(root)}:{number}: ({target})"
        path_part, _, fragment = target.partition("#")
        linked = (markdown_file.parent / path_part).resolve() if path_part else markdown_file
        if root.resolve() not in (linked, *linked.parents):
            problems.append(f"{where} leads outside the repository")
        elif not linked.exists():
            problems.append(f"{where} leads to no file")
        elif fragment and linked.suffix == ".md":
            heading, repeat = anchors(linked.read_text(encoding="utf-8")).get(fragment, (None, 0))
            if heading is None:
                problems.append(f"{where} leads to no heading")
            elif repeat:
                # -1, -2... shift to another section when a heading of that name is added or
                # renamed above: name the section uniquely.
                problems.append(f"{where} leads to a repeat of the heading '{heading}'")
    return problems


def test_every_citation_names_a_file_and_a_section_of_docs():
    problems = citation_problems(scanned_files())
    assert not problems, "\n".join(problems)


def test_nothing_refers_to_files_outside_the_repository():
    problems = outside_problems(scanned_files())
    assert not problems, "\n".join(problems)


def test_every_relative_link_of_the_markdown_files_resolves():
    markdown = [ROOT / "README.md", *sorted(ROOT.glob("*/**/*.md"))]
    markdown = [
        path
        for path in markdown
        if not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    ]
    problems = []
    for path in markdown:
        problems += link_problems(path)
    assert not problems, "\n".join(problems)


def test_each_docs_file_names_each_section_once():
    for doc in sorted(DOCS.glob("*.md")):
        names = headings(doc.read_text(encoding="utf-8"))
        assert len(names) == len(set(names)), doc.name
        assert len(names) > 1, doc.name


def test_the_checks_catch_what_they_are_for(tmp_path):
    """Each check, run on a small repository made here, reports each kind of fault."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "facts.md").write_text("# Facts\n\n## Limits\n\n## Limits of the other\n", "utf-8")
    (docs / "unused.md").write_text("# Unused\n\n## Nothing\n", "utf-8")
    code = tmp_path / "code.py"
    code.write_text(
        "# Limits (docs/facts.md, 'Limits'; docs/facts.md, \"Limits of the\n"
        "# other\"); docs/facts.md, 'Quotas'; docs/missing.md\n"
        "# see ../shared/azure/notes.md\n",
        "utf-8",
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n## Troubleshooting\n\n## Troubleshooting\n\n"
        "[a](#troubleshooting-1) [b](#troubleshooting-2) [c](docs/facts.md#limits)\n"
        "[d](docs/facts.md#quotas) [e](nowhere.md) [f](https://example.org/x)\n"
        "```\n[g](inside-a-code-block.md)\n```\n[h](../outside.md)\n",
        "utf-8",
    )
    assert citation_problems([code], docs, tmp_path) == [
        'code.py: docs/facts.md, "Quotas": no such section',
        "code.py: docs/missing.md: no such file",
        "docs/unused.md: cited nowhere",
    ]
    assert outside_problems([code], tmp_path) == [
        "code.py:3: refers outside the repository (../shared)",
    ]
    assert link_problems(readme, tmp_path) == [
        "README.md:7: (#troubleshooting-1) leads to a repeat of the heading 'Troubleshooting'",
        "README.md:7: (#troubleshooting-2) leads to no heading",
        "README.md:8: (docs/facts.md#quotas) leads to no heading",
        "README.md:8: (nowhere.md) leads to no file",
        "README.md:12: (../outside.md) leads outside the repository",
    ]
