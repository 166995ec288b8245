"""L2: a team-owned microwarehouse: a dataset of views over raw changelogs, with its own access."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from constructs import Construct

from . import _validate as check
from ._core import PipelineConstruct, pipeline_of
from .dataset import Dataset, expiry_condition
from .errors import DatapipeError
from .freshness import MIN_OBJECTIVE
from .manifest import Manifest, WarehouseSpec
from .manifest import View as ViewSpec
from .principal import Principal
from .providers.google import BigqueryTable, ProjectIamMember
from .schema import IDENTIFIER
from .sink import ChangelogTable
from .sql import quote_table, render_user_sql
from .units import to_rfc3339


@dataclass(frozen=True)
class View:
    """A view in a warehouse: a latest-state view of a changelog, or a team's own SQL."""

    name: str
    kind: str
    sql: str
    resource: BigqueryTable
    source: ChangelogTable | None = None
    columns: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()


class MicroWarehouse(PipelineConstruct):
    """A team's own dataset: latest-state views of the tables it needs, its SQL, its readers.

    Args:
        scope: the stack, or one of your constructs under it.
        warehouse_id: the construct id; the default dataset id (with '-' as '_').
        owners: at least one Google identity that owns the dataset.
        readers: who may read every view (``READER`` access entries).
        writers: who may write tables of their own into the dataset.
        dataset: the dataset id (default: the id with '-' as '_').
        description: the dataset's description.
        labels: dataset labels.
        retention: default partition expiration of tables created in it, a ``timedelta``.
        holds_pii: declare that its views may carry unmasked PII (then ``retention`` is required).
        deletion_protection: refuse ``terraform destroy`` of its views (default on).
        freshness: the objective of its latest-state views (``datapipe freshness`` checks it); each exposed table's
            source must declare one at least as strict (``CdcSource(freshness=...)``: its heartbeat measures it).

    ``expose(sink.table("orders"))`` adds a latest-state view; ``add_view(name, sql)`` the team's SQL;
    ``grant_query(principal, until=...)`` read and query access.
    """

    def __init__(
        self,
        scope: Construct,
        warehouse_id: str,
        *,
        owners: Sequence[Principal],
        readers: Sequence[Principal] = (),
        writers: Sequence[Principal] = (),
        dataset: str | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        retention: timedelta | None = None,
        holds_pii: bool = False,
        deletion_protection: bool = True,
        freshness: timedelta | None = None,
    ) -> None:
        path = check.child_path(scope, warehouse_id, "MicroWarehouse")
        stack = pipeline_of(scope, path)
        dataset_id = dataset if dataset is not None else check.word(warehouse_id)
        Dataset.check_arguments(path, stack, dataset_id, description, labels, holds_pii, retention, owners, readers, writers)
        if not check.sequence(path, "owners", owners):
            raise DatapipeError(path, "a warehouse needs at least one owner", owners)
        check.flag(path, "deletion_protection", deletion_protection)
        deletion_protection = deletion_protection and stack.target != "local"  # the local stack is disposable
        if freshness is not None:
            check.duration(path, "freshness", freshness, minimum=MIN_OBJECTIVE, at_least=True)
        super().__init__(scope, warehouse_id, pipeline=stack, path=path)
        self.deletion_protection = deletion_protection
        self.freshness = freshness
        self.dataset = Dataset(
            self,
            "dataset",
            dataset_id=dataset_id,
            description=description or f"Microwarehouse {path}",
            labels=labels,
            holds_pii=holds_pii,
            retention=retention,
            owners=owners,
            readers=readers,
            writers=writers,
            deletion_protection=deletion_protection,
        )
        self.views: dict[str, View] = {}
        self.temporary_grants: list[dict[str, str]] = []
        self._job_users: dict[str, ProjectIamMember] = {}
        stack.registry.manifest_parts.append(self._describe)

    def expose(self, table: ChangelogTable, *, columns: Sequence[str] | None = None, name: str | None = None) -> View:
        """A latest-state view of ``table``: its current rows (newest event per key, deletes removed),
        authorized on the raw dataset so readers of this warehouse need no access there.

        Args:
            table: ``sink.table("orders")``.
            columns: the columns to expose (default: every declared column that reaches the sink).
            name: the view's name (default: the source table's).
        """
        path = check.path_of(self)
        table = check.instance(path, "table", table, ChangelogTable)
        view_name = name if name is not None else table.captured.name
        self._check_view_name(path, view_name)
        if not table.primary_key:
            raise DatapipeError(
                path, f"cannot expose {table.captured.qualified_name} as latest state: it has no known primary key", view_name
            )
        self._check_freshness(path, table)
        known = [c.name for c in table.columns]
        chosen = tuple(known)
        if columns is not None:
            chosen = tuple(
                check.text(path, "column", c, pattern=IDENTIFIER, rule="must be a column name")
                for c in check.sequence(path, "columns", columns)
            )
            if not chosen:
                raise DatapipeError(path, "columns must not be empty (omit it to expose every column)", columns)
            if len(set(chosen)) != len(chosen):
                raise DatapipeError(path, "columns lists a column twice; name each column once", list(chosen))
            unknown = [c for c in chosen if c not in known]
            if unknown:
                raise DatapipeError(
                    path,
                    f"columns not carried by {table.captured.qualified_name} (excluded or undeclared; it carries "
                    f"{', '.join(known)})",
                    unknown,
                )
        projections = table.projections(chosen, exact_bignumeric=self.pipeline.target != "local")
        sql = table.compaction.latest_state(f"{table.captured.qualified_name} ({check.path_of(table.sink)})", projections)
        resource = self._view_resource(view_name, sql, [table.resource, table.state_resource, table.sink.log_resource])
        table.dataset.authorize_view(
            f"{self.dataset.dataset_id}-{view_name}",
            self.pipeline.gcp.project,
            self.dataset.dataset_id_ref,
            resource.get_string_attribute("table_id"),
        )
        view = View(view_name, "latest_state", sql, resource, source=table, columns=chosen)
        self.views[view_name] = view
        return view

    def _check_freshness(self, path: str, table: ChangelogTable) -> None:
        if self.freshness is None:
            return
        source = table.sink.source
        if source.freshness is None:
            raise DatapipeError(
                path,
                f"freshness={self.freshness} needs a source heartbeat to measure it: declare "
                f"CdcSource({source.node.id!r}, ..., freshness=<at most {self.freshness}>)",
                table.captured.qualified_name,
            )
        if source.freshness > self.freshness:
            raise DatapipeError(
                path,
                f"freshness={self.freshness} is stricter than its source's objective ({source.freshness}), which "
                f"bounds how fresh {table.captured.qualified_name} can be; relax it or tighten the source's",
                self.freshness,
            )

    def add_view(self, name: str, sql: str) -> View:
        """A view of the team's own SQL.

        ``{{ ref('orders') }}`` names a view of this warehouse (and orders the views' creation). Nothing
        else in the SQL is evaluated: any other template syntax, and Terraform's ``${`` / ``%{``, is refused
        (see ``datapipe_cdk.sql.render_user_sql``).
        """
        path = check.path_of(self)
        self._check_view_name(path, name)
        check.text(path, "sql", sql, max_length=256_000)
        project = self.pipeline.gcp.project
        refs = {n: quote_table(project, self.dataset.dataset_id, n) for n in self.views}
        used: list[str] = []
        rendered = render_user_sql(f"{path}/{name}", sql, refs, used.append)
        resource = self._view_resource(name, rendered, [self.views[n].resource for n in used])
        view = View(name, "custom", rendered, resource, depends_on=tuple(dict.fromkeys(used)))
        self.views[name] = view
        return view

    def grant_query(self, principal: Principal, *, until: datetime | None = None, allow_public: bool = False) -> None:
        """Let ``principal`` read and query this warehouse.

        Args:
            principal: a Google identity (``Principal.group("finance@acme.com")``).
            until: a timezone-aware ``datetime``: access ends then (an IAM condition on ``request.time``);
                a time already past is refused.
            allow_public: accept ``allUsers`` / ``allAuthenticatedUsers`` (policy ``no-public-principals``
                still reports it).
        """
        path = self.construct_path
        principal = check.instance(path, "principal", principal, Principal)
        self.dataset.grant_role("READER", principal, until=until, allow_public=allow_public)
        if until is not None:
            self.temporary_grants.append({"principal": str(principal), "until": to_rfc3339(until)})
        if self.pipeline.gcp.manage_iam and not principal.is_public:
            member_id = f"job-user-{principal.kind.value}-{principal.name}" + (
                f"-until-{to_rfc3339(until).replace(':', '').replace('-', '')}" if until is not None else ""
            )
            if member_id in self._job_users:
                return
            member = ProjectIamMember(
                self,
                member_id,
                project=self.pipeline.gcp.project,
                role="roles/bigquery.jobUser",
                member=principal.iam_member,
                condition=expiry_condition(until) if until is not None else None,
            )
            table = self.pipeline.resource_table
            table.add_moved(table.previous_logical_id(self, f"job-user-{self.dataset.legacy_children}"), member)
            self._job_users[member_id] = member

    def _check_view_name(self, path: str, name: object) -> None:
        check.text(path, "view name", name, pattern=IDENTIFIER, rule="must be a BigQuery table id (letters, digits, '_')")
        if name in self.views:
            raise DatapipeError(path, "a view with this name already exists in the warehouse", name)

    def _view_resource(self, name: str, sql: str, depends_on: list[Any]) -> BigqueryTable:
        return BigqueryTable(
            self,
            f"view-{name}",
            dataset_id=self.dataset.dataset_id_ref,
            table_id=name,
            view={"query": sql, "use_legacy_sql": False},
            deletion_protection=self.deletion_protection,
            depends_on=depends_on,
        )

    def _describe(self, manifest: Manifest) -> None:
        manifest.warehouses.append(
            WarehouseSpec(
                name=self.node.id,
                path=self.construct_path,
                dataset=self.dataset.dataset_id,
                holds_pii=self.dataset.holds_pii,
                owners=tuple(str(p) for p in self.dataset.owners),
                freshness_seconds=int(self.freshness.total_seconds()) if self.freshness is not None else None,
                readers=tuple(str(p) for p in self.dataset.readers),
                views=tuple(
                    ViewSpec(
                        name=v.name,
                        kind=v.kind,
                        sink_dataset=v.source.dataset.dataset_id if v.source is not None else None,
                        sink_table=v.source.table_id if v.source is not None else None,
                        primary_key=tuple(v.source.primary_key) if v.source is not None else (),
                        columns=v.columns,
                        depends_on=v.depends_on,
                    )
                    for v in self.views.values()
                ),
            )
        )
