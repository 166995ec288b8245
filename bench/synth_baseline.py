"""The synth benchmark's baseline: the same resources, written the usual way.

"The usual way" is cdktf with the prebuilt ``cdktf-cdktf-provider-google`` bindings (typed classes,
struct classes for nested blocks, references through the bindings' attribute properties) and, for the
Kafka and Kafka Connect providers, which have no prebuilt package, a generic ``TerraformResource``
subclass. It runs in ``bench/.venv-baseline`` (``bench/setup_baseline.sh``), never in the project venv.

What it writes comes from a *spec*: the resources that datapipe-cdk synthesized for the same app (one
JSON object per line, dependencies first, references left as ``${type.name.attribute}``), prepared by
``bench/synth_bench.py`` before any timing. Reading the spec is timed separately (``spec_s``) and left
out of the totals, so the baseline does none of the work a real program would do to decide what to
write (validation, SQL rendering, policies, the manifest): it is the cheapest the usual way can be.
``bench/synth_bench.py`` checks that both outputs hold the same resources with the same attributes.

    bench/.venv-baseline/bin/python bench/synth_baseline.py --spec spec.jsonl --outdir /tmp/out
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any import this benchmark times

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

REFERENCE = re.compile(r"\$\{(?:var\.([A-Za-z0-9_]+)|([a-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([a-z0-9_]+))\}")
"""``${var.name}`` or ``${type.name.attribute}`` as cdktf writes references."""

SINGLE_BLOCKS = {
    "google_bigquery_table": ("time_partitioning", "view"),
    "google_bigquery_dataset_access": ("view", "condition"),
    "google_project_iam_member": ("condition",),
}
"""Nested blocks that the google provider allows once: the bindings take one struct, not a list."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="resources to write, one JSON object per line")
    parser.add_argument("--outdir", required=True)
    args = parser.parse_args()
    counter = _harness.counter_if_asked()

    import cdktf
    from cdktf_cdktf_provider_google.bigquery_data_transfer_config import BigqueryDataTransferConfig
    from cdktf_cdktf_provider_google.bigquery_dataset import BigqueryDataset, BigqueryDatasetAccess
    from cdktf_cdktf_provider_google.bigquery_dataset_access import BigqueryDatasetAccessA
    from cdktf_cdktf_provider_google.bigquery_table import BigqueryTable
    from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember
    from cdktf_cdktf_provider_google.provider import GoogleProvider
    from cdktf_cdktf_provider_google.service_account import ServiceAccount

    imported = time.perf_counter()

    class GenericProvider(cdktf.TerraformProvider):
        """A provider without prebuilt bindings: its attributes handed over as they are."""

        def __init__(self, scope: Any, name: str, source: str, version: str, attributes: dict[str, Any]) -> None:
            super().__init__(
                scope,
                name,
                terraform_resource_type=name,
                terraform_provider_source=source,
                terraform_generator_metadata=cdktf.TerraformProviderGeneratorMetadata(
                    provider_name=name, provider_version_constraint=version
                ),
            )
            self._attributes = attributes

        def _synthesize_attributes(self) -> dict[str, Any]:
            return self._attributes

    class GenericResource(cdktf.TerraformResource):
        """A resource without prebuilt bindings (kafka_topic, kafka_acl, kafka-connect_connector)."""

        def __init__(self, scope: Any, name: str, kind: str, attributes: dict[str, Any], depends_on: list[Any]) -> None:
            super().__init__(
                scope,
                name,
                terraform_resource_type=kind,
                terraform_generator_metadata=cdktf.TerraformProviderGeneratorMetadata(provider_name=kind.split("_")[0]),
                depends_on=depends_on or None,
            )
            self._attributes = attributes

        def _synthesize_attributes(self) -> dict[str, Any]:
            return self._attributes

    bindings: dict[str, Any] = {
        "google_bigquery_dataset": BigqueryDataset,
        "google_bigquery_dataset_access": BigqueryDatasetAccessA,
        "google_bigquery_table": BigqueryTable,
        "google_bigquery_data_transfer_config": BigqueryDataTransferConfig,
        "google_project_iam_member": ProjectIamMember,
        "google_service_account": ServiceAccount,
    }
    app = cdktf.App(outdir=args.outdir)
    stack = cdktf.TerraformStack(app, "scale")
    variables: dict[str, Any] = {}
    objects: dict[str, Any] = {}

    def reference(match: re.Match[str]) -> str:
        if match.group(1):
            return str(variables[match.group(1)].string_value)
        target = objects[f"{match.group(2)}.{match.group(3)}"]
        attribute = match.group(4)
        if isinstance(target, GenericResource):
            return str(target.get_string_attribute(attribute))
        return str(getattr(target, attribute))  # the bindings' typed attribute, e.g. dataset.dataset_id

    def resolved(value: Any) -> Any:
        if isinstance(value, str):
            return REFERENCE.sub(reference, value) if "${" in value else value
        if isinstance(value, dict):
            return {k: resolved(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolved(v) for v in value]
        return value

    spec_seconds = 0.0
    with open(args.spec) as lines:
        for line in lines:
            started = time.perf_counter()
            item = json.loads(line)
            spec_seconds += time.perf_counter() - started
            if "header" in item:
                header = item["header"]
                for name, spec in header["variables"].items():
                    variables[name] = cdktf.TerraformVariable(
                        stack, name, type=spec.get("type"), description=spec.get("description"), sensitive=spec.get("sensitive")
                    )
                for name, attributes in header["providers"].items():
                    if name == "google":
                        GoogleProvider(stack, "google", **resolved(attributes))
                    else:
                        source = header["required_providers"][name]
                        GenericProvider(stack, name, source["source"], source["version"], resolved(attributes))
                continue
            kind, name = item["type"], item["name"]
            attributes = resolved(item["attributes"])
            depends_on = [objects[d] for d in item.get("depends_on", ())]
            binding = bindings.get(kind)
            if binding is None:
                objects[f"{kind}.{name}"] = GenericResource(stack, name, kind, attributes, depends_on)
                continue
            for block in SINGLE_BLOCKS.get(kind, ()):
                if block in attributes:
                    attributes[block] = attributes[block][0]
            if kind == "google_bigquery_dataset" and "access" in attributes:
                attributes["access"] = [BigqueryDatasetAccess(**entry) for entry in attributes["access"]]
            if "lifecycle" in attributes:
                attributes["lifecycle"] = cdktf.TerraformResourceLifecycle(**attributes["lifecycle"])
            objects[f"{kind}.{name}"] = binding(stack, name, depends_on=depends_on or None, **attributes)
    built = time.perf_counter()
    app.synth()
    done = time.perf_counter()
    report = {
        "import_s": round(imported - STARTED, 3),
        "build_s": round(built - imported - spec_seconds, 3),
        "synth_s": round(done - built, 3),
        "total_s": round(done - STARTED - spec_seconds, 3),
        "spec_s": round(spec_seconds, 3),
        **_harness.tree_usage(),
    }
    if counter is not None:
        report["jsii"] = counter.report()
    _harness.emit(report)


if __name__ == "__main__":
    main()
