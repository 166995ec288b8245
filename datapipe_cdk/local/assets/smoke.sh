#!/usr/bin/env bash
# Offline proof of the toolchain: tofu init + validate of a cdktf-style cdk.tf.json with one
# resource of each provider, `tofu providers lock -fs-mirror`, `cdktf --version`, and
# `cdktf deploy` of a trivial Python stack (with --skip-provider-lock, and with a lock file
# made from the mirror). Needs `make toolchain` first. Usage: PY=.venv/bin/python datapipe_cdk/local/assets/smoke.sh
set -euo pipefail

ASSETS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$ASSETS/../../.." && pwd)"
PY="${PY:-$REPO_DIR/.venv/bin/python}"
[ "${PY#/}" = "$PY" ] && PY="$REPO_DIR/$PY"
ENV_SH="${DATAPIPE_CACHE:-$HOME/.cache/datapipe-cdk}/toolchain/env.sh"
[ -f "$ENV_SH" ] || { echo "error: $ENV_SH missing: run \`make toolchain\`" >&2; exit 1; }
# shellcheck disable=SC1090
. "$ENV_SH"
"$PY" -m datapipe_cdk._toolchain >/dev/null
. "$ASSETS/versions.env"
PLATFORM="$(go env GOOS 2>/dev/null || echo linux)_$(go env GOARCH 2>/dev/null || echo amd64)"

T0=$SECONDS
step() { printf '[smoke %3ss] %s\n' "$((SECONDS - T0))" "$*"; }
WORK="$(mktemp -d -t datapipe-smoke-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------ 1. cdk.tf.json: one resource per provider
mkdir -p "$WORK/validate"
cat >"$WORK/validate/cdk.tf.json" <<EOF
{
  "//": {"metadata": {"backend": "local", "stackName": "smoke", "version": "0.21.0"}},
  "terraform": {
    "backend": {"local": {"path": "terraform.smoke.tfstate"}},
    "required_providers": {
      "kafka": {"source": "Mongey/kafka", "version": "$KAFKA_VERSION"},
      "kafka-connect": {"source": "Mongey/kafka-connect", "version": "$KAFKA_CONNECT_VERSION"},
      "google": {"source": "hashicorp/google", "version": "$GOOGLE_VERSION"}
    }
  },
  "provider": {
    "kafka": [{"bootstrap_servers": ["127.0.0.1:9092"], "tls_enabled": false}],
    "kafka-connect": [{"url": "http://127.0.0.1:8083"}],
    "google": [{"project": "smoke-project", "region": "EU"}]
  },
  "resource": {
    "kafka_topic": {
      "orders": {"name": "app.shop.orders", "partitions": 3, "replication_factor": 1,
                 "config": {"cleanup.policy": "delete", "retention.ms": "604800000"}}
    },
    "kafka-connect_connector": {
      "sink": {"name": "bq-sink",
               "config": {"name": "bq-sink", "connector.class": "com.wepay.kafka.connect.bigquery.BigQuerySinkConnector",
                          "topics": "\${kafka_topic.orders.name}", "tasks.max": "1"}}
    },
    "google_bigquery_dataset": {
      "raw": {"dataset_id": "raw_shop", "location": "EU", "delete_contents_on_destroy": false}
    }
  }
}
EOF
cd "$WORK/validate"
step "tofu init (offline, mirror $DATAPIPE_TOOLCHAIN_DIR/mirror)"
tofu init -input=false -no-color | grep -E 'Installing|Installed|initialized' || true
step "tofu validate"
tofu validate -no-color
step "tofu providers lock -fs-mirror (all three providers, $PLATFORM)"
rm -f .terraform.lock.hcl
tofu providers lock -no-color -fs-mirror="$DATAPIPE_TOOLCHAIN_DIR/mirror" -platform="$PLATFORM" | grep -E 'Obtained|Success' || true
grep -c '^provider ' .terraform.lock.hcl | sed 's/^/lock file providers: /'

# ------------------------------------------------ 2. cdktf CLI
step "cdktf --version: $(cdktf --version)"

# ------------------------------------------------ 3. cdktf deploy of a trivial stack
mkdir -p "$WORK/app"
cd "$WORK/app"
cat >main.py <<'EOF'
import os

from cdktf import App, DataResource, TerraformOutput, TerraformStack
from constructs import Construct


class Smoke(TerraformStack):
    def __init__(self, scope: Construct, name: str) -> None:
        super().__init__(scope, name)
        # a provider from the mirror, so init/lock really resolve one (unused => never configured)
        self.add_override(
            "terraform.required_providers.kafka",
            {"source": os.environ["SMOKE_KAFKA_SOURCE"], "version": "KAFKA_VERSION"},
        )
        marker = DataResource(self, "marker", input={"marker": "datapipe-smoke"})
        TerraformOutput(self, "marker_output", value=marker.output)


app = App()
Smoke(app, "smoke")
app.synth()
EOF
sed -i "s/KAFKA_VERSION\"/$KAFKA_VERSION\"/" main.py
printf '{"language": "python", "app": "%s main.py", "terraformProviders": [], "terraformModules": [], "context": {}}\n' "$PY" >cdktf.json
step "cdktf deploy --skip-provider-lock (source Mongey/kafka)"
export SMOKE_KAFKA_SOURCE=Mongey/kafka
cdktf deploy --auto-approve --skip-provider-lock smoke >deploy1.log 2>&1 || { tail -n 30 deploy1.log; exit 1; }
grep -E 'Apply complete' deploy1.log | sed 's/^ */  /' | head -n 1
step "cdktf destroy --skip-provider-lock"
cdktf destroy --auto-approve --skip-provider-lock smoke >destroy1.log 2>&1 || { tail -n 30 destroy1.log; exit 1; }
grep -E 'Destroy complete' destroy1.log | sed 's/^ */  /' | head -n 1

# cdktf compares the lock file with registry.terraform.io/<ns>/<type> (its normalized form of
# an unqualified source) while tofu locks registry.opentofu.org/...: only fully qualified
# registry.terraform.io sources let a mirror-made lock file satisfy cdktf without the flag.
step "cdktf deploy, no flag: source registry.terraform.io/mongey/kafka + lock from \`tofu providers lock -fs-mirror\`"
export SMOKE_KAFKA_SOURCE=registry.terraform.io/mongey/kafka
rm -rf cdktf.out
cdktf synth smoke >synth2.log 2>&1 || { tail -n 30 synth2.log; exit 1; }
(cd cdktf.out/stacks/smoke && tofu providers lock -no-color -fs-mirror="$DATAPIPE_TOOLCHAIN_DIR/mirror" -platform="$PLATFORM" >/dev/null)
cdktf deploy --auto-approve smoke >deploy2.log 2>&1 || { tail -n 30 deploy2.log; exit 1; }
grep -E 'Apply complete' deploy2.log | sed 's/^ */  /' | head -n 1
cdktf destroy --auto-approve smoke >destroy2.log 2>&1 || { tail -n 30 destroy2.log; exit 1; }
grep -E 'Destroy complete' destroy2.log | sed 's/^ */  /' | head -n 1
step "done"
