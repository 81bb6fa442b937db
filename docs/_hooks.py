"""MkDocs hook of the spinlens site: the Examples page lists every script of examples/ with its code."""

from __future__ import annotations

import ast
from pathlib import Path

MARKER = "<!-- examples -->"


def on_page_markdown(markdown, page, config, files):
    if MARKER not in markdown:
        return markdown
    root = Path(config["config_file_path"]).parent / "examples"
    parts = []
    for path in sorted(root.glob("*.py")):
        code = path.read_text()
        doc = ast.get_docstring(ast.parse(code)) or ""
        title = doc.splitlines()[0] if doc else path.stem
        parts.append(f"## `examples/{path.name}`\n\n{title}\n\n```python\n{code.rstrip()}\n```\n")
    return markdown.replace(MARKER, "\n".join(parts))
