"""SQL rendering: templates in ``sql/`` with identifiers quoted by one ``ident`` filter per dialect.

Values never enter the text: they are bound as query parameters (``@name`` for BigQuery, ``%s`` for
PyMySQL and psycopg). ``ident`` takes a name or a sequence of names (``project.dataset.table``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import jinja2

SQL_DIR = Path(__file__).resolve().parent / "sql"


def quote_bigquery(name: str | Sequence[str]) -> str:
    """`` `a`.`b`.`c` `` with backslash and backtick escaped inside each part."""
    parts = [name] if isinstance(name, str) else list(name)
    return ".".join("`" + p.replace("\\", "\\\\").replace("`", "\\`") + "`" for p in parts)


def quote_mysql(name: str | Sequence[str]) -> str:
    parts = [name] if isinstance(name, str) else list(name)
    return ".".join("`" + p.replace("`", "``") + "`" for p in parts)


def quote_postgres(name: str | Sequence[str]) -> str:
    parts = [name] if isinstance(name, str) else list(name)
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


_QUOTERS = {"bigquery": quote_bigquery, "mysql": quote_mysql, "postgres": quote_postgres}


@cache
def _environment(dialect: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SQL_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["ident"] = _QUOTERS[dialect]
    env.globals["dialect"] = dialect
    return env


def render(dialect: str, template: str, **context: object) -> str:
    """Render ``sql/<template>.sql.j2`` for ``dialect`` (``bigquery``, ``mysql`` or ``postgres``)."""
    return _environment(dialect).get_template(f"{template}.sql.j2").render(**context).strip()
