"""The pinned offline Terraform toolchain: OpenTofu, a provider mirror and cdktf-cli.

Built by ``datapipe_cdk/local/assets/toolchain.sh`` (``make toolchain``) under
``${DATAPIPE_CACHE:-~/.cache/datapipe-cdk}/toolchain``. Standard library only, so
the CLI can import it lazily at no cost. Versions must match
``datapipe_cdk/local/assets/versions.env``; :func:`check` reports any drift.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TOFU_VERSION = "1.12.6"
CDKTF_CLI_VERSION = "0.21.0"
MIRROR_HOSTS = ("registry.opentofu.org", "registry.terraform.io")
_FIX = "run `make toolchain`"
_EOL_NODE_MAJORS = "18,20"


class ToolchainError(ValueError):
    """The offline toolchain is missing or does not match the pinned versions."""


@dataclass(frozen=True)
class ProviderPin:
    """One provider as written in ``terraform.required_providers``."""

    local_name: str
    source: str
    version: str

    @property
    def namespace(self) -> str:
        return self.source.split("/")[0].lower()

    @property
    def type(self) -> str:
        return self.source.split("/")[1].lower()

    def address(self, host: str = MIRROR_HOSTS[0]) -> str:
        """Fully qualified provider address, e.g. ``registry.opentofu.org/mongey/kafka``."""
        return f"{host}/{self.namespace}/{self.type}"


KAFKA = ProviderPin("kafka", "Mongey/kafka", "0.13.1")
KAFKA_CONNECT = ProviderPin("kafka-connect", "Mongey/kafka-connect", "0.5.0")
# Built from the Go proxy's pseudo-version v1.20.1-0.20260828184646-f3721fb45fa3
# (main two days after the 8.0.0 release; no v7/v8 tag is served), mirrored as 8.0.0.
GOOGLE = ProviderPin("google", "hashicorp/google", "8.0.0")
PROVIDERS: tuple[ProviderPin, ...] = (KAFKA, KAFKA_CONNECT, GOOGLE)


def cache_root() -> Path:
    """``$DATAPIPE_CACHE`` or ``~/.cache/datapipe-cdk``."""
    return Path(os.environ.get("DATAPIPE_CACHE") or Path.home() / ".cache" / "datapipe-cdk")


def toolchain_dir() -> Path:
    return cache_root() / "toolchain"


def bin_dir() -> Path:
    return toolchain_dir() / "bin"


def tofu_path() -> Path:
    """The versioned OpenTofu binary (``bin/tofu`` is a symlink to it)."""
    return bin_dir() / f"tofu-{TOFU_VERSION}"


def mirror_dir() -> Path:
    return toolchain_dir() / "mirror"


def cli_config_path() -> Path:
    return toolchain_dir() / "tofurc.tfrc"


def plugin_cache_dir() -> Path:
    return toolchain_dir() / "plugin-cache"


def cdktf_bin_dir() -> Path:
    return toolchain_dir() / "npm" / "node_modules" / ".bin"


def target_platform() -> str:
    """Terraform platform name of this machine, e.g. ``linux_amd64``."""
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    machine = platform.machine().lower()
    system = {"win32": "windows"}.get(sys.platform, sys.platform)
    return f"{system}_{arch.get(machine, machine)}"


def required_providers(
    pins: tuple[ProviderPin, ...] = PROVIDERS,
) -> dict[str, dict[str, str]]:
    """The ``terraform.required_providers`` block, with exact versions."""
    return {p.local_name: {"source": p.source, "version": p.version} for p in pins}


def toolchain_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running ``tofu`` / ``cdktf`` offline against the mirror.

    Never uses the user's own CLI config: ``TF_CLI_CONFIG_FILE`` always points at
    the generated one.
    """
    env = dict(os.environ if base is None else base)
    path = os.pathsep.join([str(bin_dir()), str(cdktf_bin_dir())])
    env["PATH"] = path + (os.pathsep + env["PATH"] if env.get("PATH") else "")
    env.update(
        {
            "DATAPIPE_TOOLCHAIN_DIR": str(toolchain_dir()),
            "TF_CLI_CONFIG_FILE": str(cli_config_path()),
            # shared by every stack's `tofu init` (links, not 130 MB copies); cdktf would
            # otherwise default to ~/.terraform.d/plugin-cache
            "TF_PLUGIN_CACHE_DIR": str(plugin_cache_dir()),
            "TERRAFORM_BINARY_NAME": "tofu",
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        }
    )
    # jsii warns on every run under an end-of-life Node (20 on these machines); the value
    # lists the silenced major versions.
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", _EOL_NODE_MAJORS)
    return env


def _provider_binary(pin: ProviderPin, host: str) -> Path:
    return mirror_dir() / pin.address(host) / pin.version / target_platform() / f"terraform-provider-{pin.type}_v{pin.version}"


def _check_provider(pin: ProviderPin, host: str) -> None:
    if _provider_binary(pin, host).is_file():
        return
    type_dir = mirror_dir() / pin.address(host)
    found = sorted(p.name for p in type_dir.iterdir()) if type_dir.is_dir() else []
    if found:
        raise ToolchainError(f"mirror has {pin.address(host)} {', '.join(found)} but datapipe-cdk pins {pin.version}: {_FIX}")
    raise ToolchainError(f"mirror lacks {pin.address(host)}/{pin.version}: {_FIX}")


def check(*, cdktf: bool = False, pins: tuple[ProviderPin, ...] = PROVIDERS) -> None:
    """Raise :class:`ToolchainError` unless the pinned toolchain is ready to use."""
    if not tofu_path().is_file():
        raise ToolchainError(f"OpenTofu {TOFU_VERSION} not built: {_FIX}")
    if not cli_config_path().is_file():
        raise ToolchainError(f"CLI config {cli_config_path()} missing: {_FIX}")
    for pin in pins:
        for host in MIRROR_HOSTS:
            _check_provider(pin, host)
    if cdktf and not (cdktf_bin_dir() / "cdktf").exists():
        raise ToolchainError(f"cdktf-cli {CDKTF_CLI_VERSION} not installed: {_FIX}")


def main() -> int:
    """``python -m datapipe_cdk._toolchain``: check the toolchain, print its location."""
    try:
        check(cdktf=True)
    except ToolchainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"toolchain OK: OpenTofu {TOFU_VERSION}, cdktf-cli {CDKTF_CLI_VERSION}, "
        + ", ".join(f"{p.source} {p.version}" for p in PROVIDERS)
        + f" in {toolchain_dir()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
