"""The CDK core: CDK Terrain (``cdktn``, the maintained fork) or CDK for Terraform 0.21 (``cdktf``, archived).

Both have the same Python API; the library uses whichever is installed (cdktn first), or the one named by
``DATAPIPE_CDK_CORE=cdktn|cdktf``. This is the only module that imports either.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type-checked against one core: both have the same API
    import cdktf as core
elif os.environ.get("DATAPIPE_CDK_CORE") == "cdktf":
    import cdktf as core
elif os.environ.get("DATAPIPE_CDK_CORE") == "cdktn":
    import cdktn as core
else:
    try:
        import cdktn as core
    except ImportError:
        import cdktf as core

CORE: str = core.__name__
"""``cdktn`` or ``cdktf``: the core in use."""

Annotations = core.Annotations
App = core.App
IAnyProducer = core.IAnyProducer
IResolveContext = core.IResolveContext
ITerraformDependable = core.ITerraformDependable
Lazy = core.Lazy
LocalBackend = core.LocalBackend
TerraformElement = core.TerraformElement
TerraformOutput = core.TerraformOutput
TerraformProvider = core.TerraformProvider
TerraformProviderGeneratorMetadata = core.TerraformProviderGeneratorMetadata
TerraformResource = core.TerraformResource
TerraformStack = core.TerraformStack
TerraformVariable = core.TerraformVariable
TerraformVariableValidationConfig = core.TerraformVariableValidationConfig
Testing = core.Testing
Token = core.Token
