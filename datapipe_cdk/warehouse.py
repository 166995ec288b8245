"""L2: a team-owned microwarehouse: a dataset of views over raw changelogs, with its own access."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from constructs import Construct

from . import _validate as check
from .dataset import Dataset
from .errors import DatapipeError
from .principal import Principal
from .providers.google import BigqueryTable, ProjectIamMember
from .schema import IDENTIFIER
from .sink import ChangelogTable
from .sql import quote_table, render_template, render_user_sql
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


class MicroWarehouse(Construct):
    """A team's own dataset: latest-state views of the tables it needs, its SQL, its readers.

    ``retention`` (a ``timedelta``) becomes the dataset's default partition expiration.
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
    ) -> None:
        from .stack import DataPipelineStack

        path = check.child_path(scope, warehouse_id, "MicroWarehouse")
        stack = DataPipelineStack.of(scope)
        dataset_id = dataset if dataset is not None else check.word(warehouse_id)
        Dataset.check_arguments(path, stack, dataset_id, description, labels, holds_pii, retention, owners, readers, writers)
        if not check.sequence(path, "owners", owners):
            raise DatapipeError(path, "a warehouse needs at least one owner", owners)
        check.flag(path, "deletion_protection", deletion_protection)
        super().__init__(scope, warehouse_id)
        check.adopt(scope, self, warehouse_id, owns_children=True)
        self.pipeline = stack
        self.deletion_protection = deletion_protection
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
        stack.registry.manifest_parts.append(self._describe)

    def expose(self, table: ChangelogTable, *, columns: Sequence[str] | None = None, name: str | None = None) -> View:
        """A latest-state view of ``table`` (newest event per key, deletes removed), authorized on its dataset."""
        path = check.path_of(self)
        table = check.instance(path, "table", table, ChangelogTable)
        view_name = name if name is not None else table.captured.name
        self._check_view_name(path, view_name)
        if not table.primary_key:
            raise DatapipeError(
                path, f"cannot expose {table.captured.qualified_name} as latest state: it has no known primary key", view_name
            )
        chosen: tuple[str, ...] = ()
        if columns is not None:
            chosen = tuple(
                check.text(path, "column", c, pattern=IDENTIFIER, rule="must be a column name")
                for c in check.sequence(path, "columns", columns)
            )
            known = {c.name for c in table.columns}
            if not chosen:
                raise DatapipeError(path, "columns must not be empty (omit it to expose every column)", columns)
            if not known:
                raise DatapipeError(
                    path, f"columns can only be chosen when {table.captured.qualified_name} declares its columns", chosen
                )
            unknown = [c for c in chosen if c not in known]
            if unknown:
                raise DatapipeError(
                    path, f"columns not carried by {table.captured.qualified_name} (excluded or undeclared)", unknown
                )
        project = self.pipeline.gcp.project
        sql = render_template(
            "latest_state",
            description=f"{table.captured.qualified_name} ({check.path_of(table.sink)})",
            columns=chosen,
            hidden=[*table.metadata_columns, "__rank"],
            primary_key=table.primary_key,
            order=table.order_columns,
            changelog=quote_table(project, table.dataset.dataset_id, table.table_id),
        )
        resource = self._view_resource(view_name, sql, [table.resource])
        table.dataset.authorize_view(
            f"{self.dataset.dataset_id}-{view_name}",
            project,
            self.dataset.dataset_id_ref,
            resource.get_string_attribute("table_id"),
        )
        view = View(view_name, "latest_state", sql, resource, source=table, columns=chosen)
        self.views[view_name] = view
        return view

    def add_view(self, name: str, sql: str) -> View:
        """A view of the team's own SQL; ``{{ ref('orders') }}`` names a view of this warehouse."""
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
        """Let ``principal`` read and query this warehouse, optionally only until ``until`` (an IAM condition)."""
        path = check.path_of(self)
        principal = check.instance(path, "principal", principal, Principal)
        access = self.dataset.grant_role("READER", principal, until=until, allow_public=allow_public)
        if until is not None:
            self.temporary_grants.append({"principal": str(principal), "until": to_rfc3339(until)})
        if self.pipeline.gcp.manage_iam and not principal.is_public:
            condition = access.attributes.get("condition")
            ProjectIamMember(
                self,
                f"job-user-{len(self.dataset.node.children)}",
                project=self.pipeline.gcp.project,
                role="roles/bigquery.jobUser",
                member=principal.iam_member,
                condition=condition[0] if condition else None,
            )

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

    def _describe(self, manifest: dict[str, Any]) -> None:
        manifest["warehouses"].append(
            {
                "name": self.node.id,
                "path": check.path_of(self),
                "dataset": self.dataset.dataset_id,
                "holds_pii": self.dataset.holds_pii,
                "owners": [str(p) for p in self.dataset.owners],
                "readers": [str(p) for p in self.dataset.readers],
                "views": [
                    {
                        "name": v.name,
                        "kind": v.kind,
                        **(
                            {
                                "sink_dataset": v.source.dataset.dataset_id,
                                "sink_table": v.source.table_id,
                                "primary_key": list(v.source.primary_key),
                            }
                            if v.source is not None
                            else {"depends_on": list(v.depends_on)}
                        ),
                    }
                    for v in self.views.values()
                ],
            }
        )
