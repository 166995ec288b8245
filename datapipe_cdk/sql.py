"""SQL rendering: jinja2 templates, identifiers quoted by one filter, never string concatenation."""

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
    return env


def render_template(name: str, **context: Any) -> str:
    """Render ``templates/<name>.sql.j2``."""
    return _environment().get_template(f"{name}.sql.j2").render(**context).strip() + "\n"


def render_user_sql(path: str, sql: str, refs: Mapping[str, str], on_ref: Callable[[str], None]) -> str:
    """Render a team's view SQL; ``{{ ref('orders') }}`` becomes the quoted name of a known view."""

    def ref(name: str) -> str:
        if name not in refs:
            raise DatapipeError(path, f"ref() names an unknown view (known: {sorted(refs)})", name)
        on_ref(name)
        return refs[name]

    try:
        template = _environment().from_string(sql)
        return template.render(ref=ref).strip() + "\n"
    except jinja2.TemplateError as error:
        raise DatapipeError(path, f"view SQL is not a valid template: {error}", sql) from None
