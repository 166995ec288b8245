"""SQL rendering: jinja2 templates, identifiers quoted by one filter, never string concatenation.

The library's own templates (``templates/*.sql.j2``) are rendered with jinja2. A team's view SQL is
untrusted and never reaches jinja2: :func:`render_user_sql` parses it itself and substitutes only
``{{ ref('<view>') }}`` calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from .errors import DatapipeError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")
_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_TERRAFORM_START = re.compile(r"[$%]\{")
"""Where a Terraform string template starts (``${`` expression, ``%{`` directive)."""
TEMPLATES = Path(__file__).with_name("templates")


def quote_identifier(name: str) -> str:
    """Backtick-quote one BigQuery identifier (``a.b`` paths are quoted part by part)."""
    parts = name.split(".")
    if not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise DatapipeError("sql", "identifiers must be letters, digits and '_' (dotted for fields)", name)
    return ".".join(f"`{p}`" for p in parts)


def quote_table(project: str, dataset: str, table: str) -> str:
    """``project.dataset.table`` as one quoted BigQuery table reference."""
    if not _PROJECT.fullmatch(project) or not _IDENTIFIER.fullmatch(dataset) or not _IDENTIFIER.fullmatch(table):
        raise DatapipeError("sql", "a table reference needs a project id, a dataset id and a table id", (project, dataset, table))
    return f"`{project}.{dataset}.{table}`"


def comment_text(text: object) -> str:
    """``text`` made safe inside a ``--`` SQL comment of a view: line breaks and other unprintable
    characters (which would end the comment and turn the rest into SQL) and the ``{`` of ``${`` / ``%{``
    (which Terraform would evaluate in the view's query) are written as ``\\uXXXX``."""
    printable = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in str(text))
    return _TERRAFORM_START.sub(lambda m: m.group()[0] + "\\u007b", printable)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ident"] = quote_identifier
    env.filters["comment"] = comment_text
    return env


def render_template(name: str, **context: Any) -> str:
    """Render ``templates/<name>.sql.j2``."""
    return _environment().get_template(f"{name}.sql.j2").render(**context).strip() + "\n"


_WS = r"[ \t\r\n]*"
_REF_CALL = re.compile(
    r"\{\{" + _WS + r"ref" + _WS + r"\(" + _WS
    + r"""(?:'(?P<single>[^'\\\r\n]*)'|"(?P<double>[^"\\\r\n]*)")"""
    + _WS + r"\)" + _WS + r"\}\}"
)  # fmt: skip
_TEMPLATE_START = re.compile(r"\{[{%#]")
_REF_START = re.compile(r"\{\{[-+]?" + _WS + r"ref" + _WS + r"\(")
_NEWLINE = re.compile(r"\r\n|\r")
_SNIPPET = 80
_ALLOWED = (
    "only {{ ref('<view>') }} is evaluated, with exactly one quoted view name; "
    "to write '{{', '{%' or '{#' as SQL text, split the braces: '{' || '{'"
)


def render_user_sql(path: str, sql: str, refs: Mapping[str, str], on_ref: Callable[[str], None]) -> str:
    """Render a team's view SQL; ``{{ ref('orders') }}`` becomes the quoted name of a known view.

    The SQL is untrusted (teams write it; CI compiles it with deploy credentials), so it is parsed here
    and never evaluated: jinja2 never sees it. The grammar is exactly::

        {{ ref('<view>') }}   or   {{ ref("<view>") }}

    with optional spaces, tabs and newlines between the tokens; the quoted name has no backslash,
    quote or newline in it. Every other occurrence of ``{{``, ``{%`` or ``{#`` -- attribute or item
    access, filters, tests, other names, expressions, calls with other or more arguments, keyword
    arguments, whitespace control (``{{-``), ``{% ... %}`` statements, ``{# ... #}`` comments, and also
    a ``{{`` inside an SQL string literal such as ``'{{'`` -- is refused with a ``DatapipeError`` at
    ``path`` that names its line and quotes it; such text is written by splitting the braces, e.g.
    ``'{' || '{'``. ``}}``, ``%}`` and ``#}`` on their own are plain text, and there are no line
    statements or line comments: a line starting with ``#`` is SQL text (a BigQuery comment).

    The SQL becomes a Terraform string, where ``${...}`` and ``%{...}`` are template syntax that
    Terraform evaluates when planning (``${file("...")}``, ``${var.secret}``, a cdktf token): both are
    refused too (write ``'$' || '{'``).

    A view is one query: a ``;`` outside strings, quoted names and comments that more SQL follows is
    refused (a trailing ``;`` alone is fine).

    Each ref name must be a key of ``refs`` (else the error lists the known views); once the whole
    text is valid, ``on_ref`` is called for each ref in order, and the result is the text with each
    ref call replaced by its ``refs`` value, line endings made ``\\n``, surrounding whitespace
    stripped and one final newline -- byte for byte what the former jinja2 rendering gave.
    """
    texts: list[tuple[int, str]] = []
    calls: list[str] = []
    pos = 0
    while (opening := _TEMPLATE_START.search(sql, pos)) is not None:
        start = opening.start()
        call = _REF_CALL.match(sql, start) if opening.group() == "{{" else None
        if call is None:
            raise _refused(path, sql, start)
        texts.append((pos, sql[pos:start]))
        name = call.group("single")
        calls.append(name if name is not None else call.group("double"))
        pos = call.end()
    texts.append((pos, sql[pos:]))
    for offset, text in texts:
        if (terraform := _TERRAFORM_START.search(text)) is not None:
            raise _refused(path, sql, offset + terraform.start())
    for name in calls:
        if name not in refs:
            raise DatapipeError(path, f"ref() names an unknown view (known: {sorted(refs)})", name)
    parts = [_NEWLINE.sub("\n", texts[0][1])]
    for name, (_, text) in zip(calls, texts[1:], strict=True):
        parts += [refs[name], _NEWLINE.sub("\n", text)]
    rendered = "".join(parts).strip() + "\n"
    if (semicolon := _statement_end(rendered)) is not None:
        line = rendered.count("\n", 0, semicolon) + 1
        raise DatapipeError(
            path,
            f"view SQL line {line}: a view is one query, but a ';' ends a statement before more SQL follows; "
            "remove the ';' and what follows it (a trailing ';' alone is fine)",
            rendered.splitlines()[line - 1].strip(),
        )
    if _TERRAFORM_START.search(rendered):  # only if a refs value itself carried one
        raise DatapipeError(path, "a ref() value would put Terraform template syntax into the view SQL", rendered)
    for name in calls:
        on_ref(name)
    return rendered


def _statement_end(sql: str) -> int | None:
    """The offset of a ``;`` outside string literals, quoted names and comments that more SQL follows."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            i += 1
            while i < n and sql[i] != c:
                i += 2 if sql[i] == "\\" else 1
        elif sql.startswith("--", i) or c == "#":
            i = sql.find("\n", i)
            i = n if i < 0 else i
        elif sql.startswith("/*", i):
            i = sql.find("*/", i + 2)
            i = n if i < 0 else i + 1
        elif c == ";" and _statement_end_follows(sql[i + 1 :]):
            return i
        i += 1
    return None


def _statement_end_follows(rest: str) -> bool:
    """True when ``rest`` (what follows a ``;``) holds SQL, not only blanks, ``;`` and comments."""
    text = re.sub(r"--[^\n]*|#[^\n]*|/\*.*?\*/", "", rest, flags=re.S)
    return bool(text.replace(";", "").strip())


def _refused(path: str, sql: str, start: int) -> DatapipeError:
    """The error for the refused syntax starting at ``sql[start]``: its line, what it is, what is allowed."""
    line = sql.count("\n", 0, start) + 1
    opener = sql[start : start + 2]
    closer = {"{{": "}}", "{%": "%}", "{#": "#}"}.get(opener, "}")
    end = sql.find(closer, start + 2)
    snippet = sql[start : end + len(closer)] if end >= 0 else sql[start:]
    if len(snippet) > _SNIPPET:
        snippet = snippet[: _SNIPPET - 3] + "..."
    if opener in ("${", "%{"):
        kind = "expression" if opener[0] == "$" else "directive"
        return DatapipeError(
            path,
            f"view SQL line {line}: found '{opener}', which Terraform would evaluate when planning (a template {kind}); "
            f"to write it as SQL text, split it: '{opener[0]}' || '{{'",
            snippet,
        )
    if opener == "{%":
        found = "a template statement {% ... %}"
    elif opener == "{#":
        found = "a template comment {# ... #} (for a comment use -- ...)"
    elif end < 0:
        found = "'{{' without a closing '}}'"
    elif _REF_START.match(sql, start):
        found = "a ref() call that is not exactly ref('<view>')"
    else:
        found = "a template expression other than ref('<view>')"
    return DatapipeError(path, f"view SQL line {line}: found {found}; {_ALLOWED}", snippet)
