"""The L1 base: a Terraform resource or provider whose attributes are a plain dict.

L1 classes are boring on purpose: one class per Terraform type, keyword-only typed arguments,
no logic. ``None`` means "not set" and is left out of the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from cdktf import (
    ITerraformDependable,
    TerraformProvider,
    TerraformProviderGeneratorMetadata,
    TerraformResource,
    TerraformResourceLifecycle,
)
from constructs import Construct

from .._validate import adopt


def _present(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if value is not None}


class Resource(TerraformResource):
    """One Terraform resource of type ``TYPE`` served by provider ``PROVIDER``."""

    TYPE: ClassVar[str]
    PROVIDER: ClassVar[str]

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        attributes: Mapping[str, Any],
        *,
        depends_on: Sequence[ITerraformDependable] | None = None,
        ignore_changes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            terraform_resource_type=self.TYPE,
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(provider_name=self.PROVIDER),
            depends_on=list(depends_on) if depends_on else None,
            lifecycle=TerraformResourceLifecycle(ignore_changes=list(ignore_changes)) if ignore_changes else None,
        )
        adopt(scope, self, construct_id)
        self.attributes: dict[str, Any] = _present(attributes)

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return self.attributes


class Provider(TerraformProvider):
    """A provider configuration; ``SOURCE`` keeps the public registry address so the JSON works anywhere."""

    TYPE: ClassVar[str]
    SOURCE: ClassVar[str]
    VERSION: ClassVar[str]

    def __init__(self, scope: Construct, construct_id: str, attributes: Mapping[str, Any]) -> None:
        super().__init__(
            scope,
            construct_id,
            terraform_resource_type=self.TYPE,
            terraform_provider_source=self.SOURCE,
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(
                provider_name=self.TYPE, provider_version_constraint=self.VERSION
            ),
        )
        adopt(scope, self, construct_id)
        self.attributes: dict[str, Any] = _present(attributes)

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return self.attributes
