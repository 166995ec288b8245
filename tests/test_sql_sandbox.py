"""Team view SQL is untrusted: nothing but ``{{ ref('<view>') }}`` is ever evaluated.

``render_user_sql`` parses the text itself (jinja2 never sees it); every other template syntax, and
Terraform's ``${`` / ``%{`` (the SQL becomes a Terraform string), is refused with a DatapipeError at the
construct path, or at ``<file>:<line>`` for a team file.
"""

from __future__ import annotations

import re
import textwrap
from datetime import timedelta
from pathlib import Path

import jinja2
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import SandboxedEnvironment

from datapipe_cdk import DatapipeError, MicroWarehouse, Principal
from datapipe_cdk.compaction import Compaction, CompactionPolicy
from datapipe_cdk.sql import render_user_sql
from datapipe_cdk.teamspec import compile_team, load
from tests.governance.helpers import make_sink, make_source, make_stack

REFS = {"orders": "`acme-data.finance.orders`", "refunds": "`acme-data.finance.refunds`"}
ALLOWED = (
    "only {{ ref('<view>') }} is evaluated, with exactly one quoted view name; "
    "to write '{{', '{%' or '{#' as SQL text, split the braces: '{' || '{'"
)
EXPRESSION = "found a template expression other than ref('<view>'); " + ALLOWED
BAD_REF = "found a ref() call that is not exactly ref('<view>'); " + ALLOWED
STATEMENT = "found a template statement {% ... %}; " + ALLOWED
COMMENT = "found a template comment {# ... #} (for a comment use -- ...); " + ALLOWED
UNCLOSED = "found '{{' without a closing '}}'; " + ALLOWED
TF_EXPRESSION = (
    "found '${', which Terraform would evaluate when planning (a template expression); "
    "to write it as SQL text, split it: '$' || '{'"
)
TF_DIRECTIVE = (
    "found '%{', which Terraform would evaluate when planning (a template directive); "
    "to write it as SQL text, split it: '%' || '{'"
)


class Spy:
    """The ``on_ref`` callback: records every ref the renderer resolved."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, name: str) -> None:
        self.calls.append(name)


def _render(sql: str, spy: Spy | None = None) -> str:
    return render_user_sql("test/finance/v", sql, REFS, spy if spy is not None else Spy())


def _refusal(sql: str) -> str:
    spy = Spy()
    with pytest.raises(DatapipeError) as caught:
        _render(sql, spy)
    assert caught.value.path == "test/finance/v"
    assert spy.calls == [], "nothing may be resolved before the whole text is accepted"
    return str(caught.value)


# -- (a) attacks, each with its exact message ------------------------------------------------------

ATTACKS = [
    (
        "SELECT * FROM {{ ref.__globals__['__builtins__']['open']('/etc/hostname').read() }}",
        EXPRESSION,
        "{{ ref.__globals__['__builtins__']['open']('/etc/hostname').read() }}",
    ),
    ("SELECT * FROM {{ ref.__class__ }}", EXPRESSION, "{{ ref.__class__ }}"),
    ("SELECT * FROM {{ ref('orders').upper() }}", BAD_REF, "{{ ref('orders').upper() }}"),
    ("SELECT * FROM {{ ref('x').upper() }}", BAD_REF, "{{ ref('x').upper() }}"),
    (
        "SELECT '{{ cycler.__init__.__globals__.os.popen('id').read() }}'",
        EXPRESSION,
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ),
    ("SELECT '{{ self }}'", EXPRESSION, "{{ self }}"),
    ("{% for x in range(3) %}SELECT 1{% endfor %}", STATEMENT, "{% for x in range(3) %}"),
    ("SELECT {{ 7*7 }}", EXPRESSION, "{{ 7*7 }}"),
    ("SELECT * FROM {{ ref(name) }}", BAD_REF, "{{ ref(name) }}"),
    ("SELECT * FROM {{ ref('a', 'b') }}", BAD_REF, "{{ ref('a', 'b') }}"),
    ("SELECT * FROM {{ ref('orders') | upper }}", BAD_REF, "{{ ref('orders') | upper }}"),
    ("SELECT * FROM {{ ref(name='orders') }}", BAD_REF, "{{ ref(name='orders') }}"),
    ("SELECT * FROM {{ ref('orders' ~ 'x') }}", BAD_REF, "{{ ref('orders' ~ 'x') }}"),
    ("SELECT * FROM {{ ref('ord\\x65rs') }}", BAD_REF, "{{ ref('ord\\x65rs') }}"),
    ("SELECT * FROM {{ ref['orders'] }}", EXPRESSION, "{{ ref['orders'] }}"),
    ("SELECT * FROM {{ ref is defined }}", EXPRESSION, "{{ ref is defined }}"),
    ("SELECT * FROM {{ lipsum }}", EXPRESSION, "{{ lipsum }}"),
    ("SELECT * FROM {{- ref('orders') -}}", BAD_REF, "{{- ref('orders') -}}"),
    ("SELECT * FROM {{ ref('orders') -}}", BAD_REF, "{{ ref('orders') -}}"),
    ("SELECT 1 {# comment #}", COMMENT, "{# comment #}"),
    ("{%- raw %}{{ ref.__class__ }}{% endraw %}", STATEMENT, "{%- raw %}"),
    ("{% set x = ref %}{{ x.__class__ }}", STATEMENT, "{% set x = ref %}"),
    ("{% include '/etc/hostname' %}", STATEMENT, "{% include '/etc/hostname' %}"),
    ("SELECT '{{' AS brace", UNCLOSED, "{{' AS brace"),
    ("SELECT '{{}}' AS braces", EXPRESSION, "{{}}"),
    ("SELECT 1 FROM {{{ ref('orders') }}}", EXPRESSION, "{{{ ref('orders') }}"),
    ("SELECT '${file(\"/etc/hostname\")}' AS leaked", TF_EXPRESSION, '${file("/etc/hostname")}'),
    ("SELECT '${var.db_password}' AS leaked", TF_EXPRESSION, "${var.db_password}"),
    ("SELECT '${TfToken[TOKEN.2]}' AS leaked", TF_EXPRESSION, "${TfToken[TOKEN.2]}"),
    ("SELECT '$${literal}' AS escaped", TF_EXPRESSION, "${literal}"),
    ("SELECT '%{ if true }x%{ endif }' AS d", TF_DIRECTIVE, "%{ if true }"),
]


@pytest.mark.parametrize("sql, rule, snippet", ATTACKS, ids=[a[2][:40] for a in ATTACKS])
def test_every_other_template_syntax_is_refused_with_its_snippet(sql, rule, snippet):
    assert _refusal(sql) == f"test/finance/v: view SQL line 1: {rule}, got {snippet!r}"


def test_the_message_names_the_line_and_shortens_long_snippets():
    sql = "SELECT id\nFROM {{ ref('orders') }}\nWHERE note = '{{ " + "x" * 200 + " }}'"
    assert _refusal(sql) == f"test/finance/v: view SQL line 3: {EXPRESSION}, got {'{{ ' + 'x' * 74 + '...'!r}"
    assert _refusal("SELECT 1\r\n{# c #}").startswith("test/finance/v: view SQL line 2: found a template comment")


def test_the_first_problem_is_reported():
    sql = "SELECT '${x}' FROM {{ ref('nope') }} {% if 1 %}"
    assert _refusal(sql).startswith("test/finance/v: view SQL line 1: found a template statement")
    assert _refusal("SELECT '${x}' FROM {{ ref('nope') }}").startswith("test/finance/v: view SQL line 1: found '${'")


def test_unknown_refs_keep_their_message_and_resolve_nothing():
    assert _refusal("SELECT * FROM {{ ref('orders') }} JOIN {{ ref('nope') }}") == (
        "test/finance/v: ref() names an unknown view (known: ['orders', 'refunds']), got 'nope'"
    )


PAYLOADS = [
    "{{ ref.__globals__['__builtins__']['open']('TARGET', 'w').write('pwned') }}",
    "{{ cycler.__init__.__globals__.os.popen('touch TARGET').read() }}",
    "{{ self.__init__.__globals__.__builtins__.open('TARGET', 'w').write('pwned') }}",
    "{% set f = lipsum.__globals__['os'].popen('touch TARGET') %}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_code_runs(tmp_path: Path, payload):
    target = tmp_path / "pwned"
    with pytest.raises(DatapipeError):
        _render("SELECT 1 FROM " + payload.replace("TARGET", str(target)))
    assert not target.exists()


def test_the_payload_is_live_under_plain_jinja2_so_the_test_above_means_something(tmp_path: Path):
    target = tmp_path / "pwned"
    jinja2.Environment().from_string(PAYLOADS[0].replace("TARGET", str(target))).render(ref=lambda name: name)
    assert target.read_text() == "pwned"


def test_jinja2_is_never_used_for_team_sql(monkeypatch):
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("team SQL reached jinja2")

    for method in ("from_string", "parse", "compile", "lex", "_parse", "_tokenize"):
        monkeypatch.setattr(jinja2.Environment, method, boom)
    monkeypatch.setattr(jinja2.Template, "render", boom)
    assert _render("SELECT * FROM {{ ref('orders') }}") == "SELECT * FROM `acme-data.finance.orders`\n"


@pytest.mark.parametrize(
    "sql, expected, calls",
    [
        ("SELECT * FROM {{ ref('orders') }}", "SELECT * FROM `acme-data.finance.orders`\n", ["orders"]),
        ('SELECT * FROM {{ref("orders")}}', "SELECT * FROM `acme-data.finance.orders`\n", ["orders"]),
        (
            "SELECT *\nFROM {{\n  ref (\t'refunds' )\n}} JOIN {{ ref('orders') }} USING (id)\n",
            "SELECT *\nFROM `acme-data.finance.refunds` JOIN `acme-data.finance.orders` USING (id)\n",
            ["refunds", "orders"],
        ),
        ("  SELECT 1 \r\nFROM t\r", "SELECT 1 \nFROM t\n", []),
        ("SELECT '}}' AS a, '%}' AS b, '#}' AS c, '{' AS d, '$' AS e", None, []),
        ("# for x in range(3)\n## line comment\nSELECT 1", None, []),
        ("SELECT '{' || '{' AS braces, '$' || '{' AS dollar, REGEXP_CONTAINS(s, r'a{2}')", None, []),
    ],
)
def test_valid_sql_renders_as_before(sql, expected, calls):
    spy = Spy()
    rendered = _render(sql, spy)
    assert rendered == (expected if expected is not None else sql.strip() + "\n")
    assert spy.calls == calls
    assert rendered == _jinja2_rendering(sql), "must stay byte-identical to the former jinja2 rendering"


def test_add_view_refuses_at_the_construct_path(tmp_path: Path):
    stack = make_stack()
    sink = make_sink(stack, make_source(stack))
    wh = MicroWarehouse(stack, "finance", owners=[Principal.group("o@acme.com")])
    wh.expose(sink.table("orders"))
    target = tmp_path / "pwned"
    with pytest.raises(DatapipeError) as caught:
        wh.add_view("v", f"SELECT * FROM {{{{ ref.__globals__['__builtins__']['open']('{target}', 'w').write('x') }}}}")
    assert caught.value.path == "test/finance/v"
    assert str(caught.value).startswith(f"test/finance/v: view SQL line 1: {EXPRESSION}, got ")
    assert not target.exists()
    assert "v" not in wh.views
    assert wh.add_view("v", "SELECT * FROM {{ ref('orders') }}").depends_on == ("orders",)


def test_text_in_the_latest_state_comment_cannot_end_the_comment_or_reach_terraform():
    compaction = Compaction(
        table_id="t",
        changelog="`acme-data.raw.t`",
        state="`acme-data.raw.t__state`",
        log="`acme-data.raw._datapipe_compaction`",
        stored=("id", "__deleted", "_kafka"),
        primary_key=("id",),
        policy=CompactionPolicy(timedelta(hours=1), timedelta(hours=6)),
        partitioned_by_ingestion=True,
    )
    sql = compaction.latest_state("db.t (scope\r) UNION ALL SELECT secret FROM x --\u2028${var.password}%{ if x })", ["`id`"])
    first = sql.splitlines()[0]
    assert first == (
        "-- Latest state of db.t (scope\\u000d) UNION ALL SELECT secret FROM x --\\u2028$\\u007bvar.password}"
        "%\\u007b if x }): the newest event per primary key, deleted rows removed."
    )
    assert "${" not in sql and "%{" not in sql
    assert sqlglot.parse_one(sql, read="bigquery").find(sqlglot.exp.Union) is not None


# -- (b) random template-like text ------------------------------------------------------------------

VALID_REF = re.compile(
    r"""\{\{[ \t\r\n]*ref[ \t\r\n]*\([ \t\r\n]*(?:'([^'\\\r\n]*)'|"([^"\\\r\n]*)")[ \t\r\n]*\)[ \t\r\n]*\}\}"""
)
REFUSED = ("{{", "{%", "{#", "${", "%{")
REF_CALLS = ["{{ ref('orders') }}", '{{ref("refunds")}}', "{{\n ref ( 'orders' )\n}}", "{{ ref('nope') }}"]
TEXT = [
    "SELECT ", " FROM ", " WHERE ", "'", '"', ".", "[", "]", "(", ")", "|", ",", "=", "~", "*", "$", "%", "#", "\\",
    " ", "\t", "\n", "\r\n", "}}", "%}", "#}", "}", "-}}", "ref", "orders", "'orders'", "x", "__class__", ";", "--",
]  # fmt: skip
SYNTAX = [
    "{{", "{%", "{#", "{", "{{-", "{{ ref(orders) }}", "{{ ref('orders', 'x') }}", "{{ ref('orders') | upper }}",
    "{{ ref.__class__ }}", "{{ self }}", "{% raw %}", "{# c #}", "${var.x}", "%{ if x }", "'{{'", "upper()",
]  # fmt: skip
fragment = st.one_of(
    st.sampled_from(REF_CALLS), st.sampled_from(TEXT), st.sampled_from(TEXT), st.sampled_from(SYNTAX), st.text(max_size=3)
)
template_like = st.lists(fragment, max_size=24).map("".join)


@settings(max_examples=400, deadline=None)
@given(template_like)
def test_random_text_is_either_refs_replaced_verbatim_or_refused(text):
    spy = Spy()
    try:
        rendered = render_user_sql("p", text, REFS, spy)
    except DatapipeError as error:
        assert error.path == "p"
        assert spy.calls == [], "a refused text must not have resolved anything"
        if "a view is one query" in str(error):
            assert ";" in text, "only a ';' makes a second statement"
        else:
            assert any(s in text for s in REFUSED), "plain SQL without template syntax is never refused"
        return
    matches = list(VALID_REF.finditer(text))
    names = [m[1] if m[1] is not None else m[2] for m in matches]
    assert spy.calls == names, "on_ref is called once per valid ref call, in order, and for nothing else"
    assert not any(s in VALID_REF.sub("\0", text) for s in REFUSED), "only ref calls may be accepted"
    expected = VALID_REF.sub(lambda m: REFS[m[1] if m[1] is not None else m[2]], text)
    assert rendered == re.sub(r"\r\n|\r", "\n", expected).strip() + "\n"
    assert rendered == _jinja2_rendering(text)


def _jinja2_rendering(sql: str) -> str:
    """What the former renderer gave (sandboxed here: only for text the new one accepted)."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(sql).render(ref=REFS.__getitem__).strip() + "\n"


# -- (c) team files -----------------------------------------------------------------------------------

TEAM = """\
team: fraud-analytics
stack: test
owners:
  - group:fraud-eng@acme.com
retention_days: 365
tables:
  - sink: raw
    table: orders
views:
  - name: fine
    sql: SELECT * FROM {{ ref('orders') }}
  - name: big_orders
    sql: |
      SELECT *
      FROM {{ ref('orders') }}
      WHERE note = '{{ ref.__globals__['__builtins__']['open']('/etc/hostname').read() }}'
"""


def _team_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "team.yaml"
    path.write_text(textwrap.dedent(text))
    stack = make_stack()
    make_sink(stack, make_source(stack, masked={"accounts": ["email", "phone"]}), retention=timedelta(days=365))
    with pytest.raises(DatapipeError) as caught:
        compile_team(stack, load(path, display="teams/team.yaml"))
    return str(caught.value)


def test_a_team_file_carrying_the_payload_fails_at_the_views_line(tmp_path: Path):
    snippet = "{{ ref.__globals__['__builtins__']['open']('/etc/hostname').read() }}"
    assert _team_error(tmp_path, TEAM) == (
        f"teams/team.yaml:12: test/fraud-analytics/big_orders: view SQL line 3: {EXPRESSION}, got {snippet!r}"
    )


def test_a_jinja_statement_in_a_team_file_fails_at_the_views_line(tmp_path: Path):
    text = TEAM.replace("sql: SELECT * FROM {{ ref('orders') }}", 'sql: "{% for x in range(3) %}1{% endfor %}"')
    assert _team_error(tmp_path, text) == (
        f"teams/team.yaml:10: test/fraud-analytics/fine: view SQL line 1: {STATEMENT}, got '{{% for x in range(3) %}}'"
    )


def test_terraform_template_syntax_anywhere_in_a_team_file_is_refused_at_its_line(tmp_path: Path):
    text = TEAM.replace("sql: SELECT * FROM {{ ref('orders') }}", "sql: SELECT '${file(\"/etc/hostname\")}'")
    with pytest.raises(DatapipeError) as caught:
        (tmp_path / "team.yaml").write_text(textwrap.dedent(text))
        load(tmp_path / "team.yaml", display="teams/team.yaml")
    assert str(caught.value).startswith("teams/team.yaml:11: views[0].sql: '${' and '%{' are Terraform template syntax")
    described = TEAM.replace("team: fraud-analytics", "team: fraud-analytics\ndescription: costs %{ if true }x%{ endif }")
    with pytest.raises(DatapipeError, match=r"teams/team.yaml:2: description: '\$\{' and '%\{' are Terraform template"):
        (tmp_path / "team.yaml").write_text(textwrap.dedent(described))
        load(tmp_path / "team.yaml", display="teams/team.yaml")


@pytest.mark.parametrize(
    "sql",
    ["SELECT 1;", "SELECT ';' AS a FROM t", "SELECT `a;b` FROM t", "SELECT 1 -- ; DROP TABLE t\n", "SELECT 1; -- done\n"],
)
def test_a_semicolon_in_text_comments_or_at_the_end_is_fine(sql):
    assert _render(sql).startswith("SELECT")


def test_a_second_statement_after_a_semicolon_is_refused_with_its_line():
    with pytest.raises(DatapipeError) as caught:
        _render("SELECT 1\nFROM t;\nDROP TABLE x")
    assert "view SQL line 2: a view is one query, but a ';' ends a statement before more SQL follows" in str(caught.value)
