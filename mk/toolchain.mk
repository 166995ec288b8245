# Offline Terraform toolchain (OpenTofu + provider mirror + cdktf-cli).
# Included by the main Makefile, which defines PY := .venv/bin/python.
# Cache: $(DATAPIPE_CACHE) or ~/.cache/datapipe-cdk, under toolchain/.
# Other targets run tofu/cdktf offline with:  . $(TOOLCHAIN_ENV) && tofu ...

TOOLCHAIN_DIR := $(or $(DATAPIPE_CACHE),$(HOME)/.cache/datapipe-cdk)/toolchain
TOOLCHAIN_ENV := $(TOOLCHAIN_DIR)/env.sh

.PHONY: toolchain toolchain-check toolchain-smoke toolchain-prune provider-schemas

## toolchain: build OpenTofu + providers from Go modules, mirror them, npm ci cdktf-cli (idempotent)
toolchain:
	bash datapipe_cdk/local/assets/toolchain.sh

## toolchain-check: fail with a one-line message unless the pinned toolchain is ready
toolchain-check: venv
	$(PY) -m datapipe_cdk._toolchain

## toolchain-smoke: offline tofu init/validate/providers lock, cdktf --version, cdktf deploy
toolchain-smoke: venv
	PY=$(PY) bash datapipe_cdk/local/assets/smoke.sh

## toolchain-prune: drop the Go module and build caches (~6 GB); built binaries stay usable
toolchain-prune:
	chmod -R u+w $(TOOLCHAIN_DIR)/go 2>/dev/null || true
	rm -rf $(TOOLCHAIN_DIR)/go

## provider-schemas: regenerate tests/data/provider_schemas.json from the mirrored providers
provider-schemas: venv
	$(PY) tools/dump_provider_schemas.py
