"""Text corpora for the language-model study: a user's file or a built-in source available offline.

Built-in sources (no download; they ship with every Python):

* ``pydoc-topics``: the standard library's help topics, ``pydoc_data.topics`` (about 0.5 MB of English).
* ``stdlib-docs``: ``pydoc-topics`` plus the docstrings of the standard library's pure-Python modules
  (read with `ast` from the source files, never imported), capped at ``max_chars``.
* ``stdlib-code``: the standard library's Python source with docstrings and comment lines removed (a second
  text domain, for fine-tuning and merging).
* ``stdlib-comments``: the ``#`` comment lines of the standard library's source (a third domain: English
  prose in another register).

Every loader returns one `str` and fails with a one-line `InvalidParameterError` on an empty, binary or
non-UTF-8 file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from spinlens.errors import InvalidParameterError

BUILTIN = ("stdlib-docs", "pydoc-topics", "stdlib-code", "stdlib-comments")
DEFAULT_MAX_CHARS = 1_000_000


def pydoc_topics() -> str:
    """The help topics of ``pydoc_data.topics`` joined in sorted key order (deterministic)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip() for k in sorted(topics))


def stdlib_docstrings(max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Module, class and function docstrings of the standard library's ``.py`` files, sorted by path.

    Tests (``test/``), ``idlelib``, ``lib2to3`` and ``site-packages`` are skipped; files that do not parse are
    skipped. Stops after ``max_chars`` characters.
    """
    import ast

    parts: list[str] = []
    n = 0
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 80:
                    parts.append(doc.strip())
                    n += len(doc) + 2
                    if n >= max_chars:
                        return "\n\n".join(parts)
    return "\n\n".join(parts)


def _stdlib_files():
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "turtledemo", "__pycache__"}
    return [p for p in sorted(root.rglob("*.py")) if not skip.intersection(p.relative_to(root).parts)]


def stdlib_code(max_chars: int = DEFAULT_MAX_CHARS, *, comments: bool = False) -> str:
    """Source lines of the standard library without docstrings and comments (``comments=False``), or only the
    text of its ``#`` comment lines (``comments=True``); sorted by path, at most ``max_chars`` characters."""
    import ast

    parts: list[str] = []
    n = 0
    for path in _stdlib_files():
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        lines = src.splitlines()
        if comments:
            keep = [ln.strip()[1:].strip() for ln in lines if ln.strip().startswith("#") and len(ln.strip()) > 12
                    and not ln.strip().startswith("#!")]
        else:
            drop: set[int] = set()
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                    first = node.body[0]
                    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                            and isinstance(first.value.value, str):
                        drop.update(range(first.lineno - 1, first.end_lineno or first.lineno))
            keep = [ln for i, ln in enumerate(lines) if i not in drop and ln.strip() and not ln.strip().startswith("#")]
        if keep:
            chunk = "\n".join(keep)
            parts.append(chunk)
            n += len(chunk) + 2
            if n >= max_chars:
                break
    return "\n\n".join(parts)[:max_chars]


def builtin_corpus(name: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The text of a built-in source (`BUILTIN`)."""
    if name == "pydoc-topics":
        return pydoc_topics()
    if name == "stdlib-docs":
        text = pydoc_topics()
        rest = max(0, max_chars - len(text))
        return text + ("\n\n" + stdlib_docstrings(rest) if rest else "")
    if name == "stdlib-code":
        return stdlib_code(max_chars)
    if name == "stdlib-comments":
        return stdlib_code(max_chars, comments=True)
    raise InvalidParameterError(f"The 'corpus' parameter must be a text file or one of {list(BUILTIN)}. Got {name!r} instead.")


def read_text_file(path) -> str:
    """Read a UTF-8 text file; one-line errors for a missing, empty, binary or non-UTF-8 file."""
    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError(f"The 'corpus' parameter must be a text file or one of {list(BUILTIN)}. "
                                    f"Got {str(path)!r}, which is not a file.")
    raw = p.read_bytes()
    if not raw.strip():
        raise InvalidParameterError(f"The 'corpus' file {str(path)!r} is empty.")
    if b"\x00" in raw[:65536]:
        raise InvalidParameterError(f"The 'corpus' file {str(path)!r} is binary (it contains NUL bytes); give a UTF-8 text file.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameterError(f"The 'corpus' file {str(path)!r} is not UTF-8 text (byte {exc.start}: "
                                    f"{exc.reason}).") from None
    return text


def load_corpus(source, *, max_chars: int | None = DEFAULT_MAX_CHARS) -> str:
    """The text of ``source``: a built-in name (`BUILTIN`) or a path to a UTF-8 text file, cut to its first
    ``max_chars`` characters (every source; None: a file whole, a built-in source its default size)."""
    if isinstance(source, str) and source in BUILTIN and not Path(source).exists():
        text = builtin_corpus(source, max_chars=DEFAULT_MAX_CHARS if max_chars is None else max_chars)
    else:
        text = read_text_file(source)
    return text if max_chars is None else text[:max_chars]


def text_digest(text: str) -> str:
    """Short SHA-256 of the text (recorded with the model so a run names its exact corpus)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
