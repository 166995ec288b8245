# Local real stack: Kafka 4.3.1 (KRaft, SASL/SCRAM, ACLs) + Kafka Connect with Debezium and KCBQ,
# plus the databases and BigQuery emulator (datapipe_cdk/local). Jars come from Maven Central.
# Included by the main Makefile, which defines PY := .venv/bin/python.
# Cache: $(DATAPIPE_CACHE) or ~/.cache/datapipe-cdk, under stack/ (m2 repo, kafka-<ver>/libs, plugins/).

STACK_CACHE := $(or $(DATAPIPE_CACHE),$(HOME)/.cache/datapipe-cdk)/stack
# Every input of the Maven build (poms and kcbq-api-compat's sources), in a stable order; no build output.
STACK_INPUTS_HASH = find datapipe_cdk/local/assets/maven -type f -not -path '*/target/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum
STACK_RUN := $(or $(DATAPIPE_RUN_DIR),$(HOME)/.cache/datapipe-cdk/run)

.PHONY: stack-deps stack-up stack-down stack-status

## stack-deps: resolve Kafka/Connect jars and connector plugins into the cache (idempotent; keyed by datapipe_cdk/local/assets/maven)
stack-deps:
	@set -euo pipefail; \
	stamp="$(STACK_CACHE)/.deps-$$($(STACK_INPUTS_HASH) | cut -c1-16)"; \
	if [ -f "$$stamp" ]; then echo "==> stack-deps: cached in $(STACK_CACHE)"; exit 0; fi; \
	if ! command -v mvn >/dev/null || ! command -v java >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then echo "==> stack-deps: apt-get install maven + JDK 17"; \
	    apt-get update -qq && apt-get install -y -qq maven openjdk-17-jdk-headless >/dev/null; \
	  else echo "stack-deps: mvn and java 17+ are required: sudo apt-get install maven openjdk-17-jdk-headless"; exit 1; fi; \
	fi; \
	for svc in kafka connect; do pid=$$(cut -d' ' -f1 "$(STACK_RUN)/pids/$$svc.pid" 2>/dev/null || true); \
	  if [ -n "$$pid" ] && tr '\0' ' ' < /proc/$$pid/cmdline 2>/dev/null | grep -qF "$(STACK_CACHE)/"; then \
	    echo "stack-deps: $$svc (pid $$pid) runs from the jars to be replaced: run make stack-down first"; exit 1; fi; done; \
	echo "==> stack-deps: resolving Kafka, Connect, Debezium and KCBQ jars from Maven Central into $(STACK_CACHE)"; \
	mkdir -p "$(STACK_CACHE)"; rm -rf "$(STACK_CACHE)"/kafka-* "$(STACK_CACHE)/plugins" "$(STACK_CACHE)/build" "$(STACK_CACHE)"/.deps-*; \
	mvn -B -ntp -f datapipe_cdk/local/assets/maven/pom.xml -Dmaven.repo.local="$(STACK_CACHE)/m2" -Dstack.dir="$(STACK_CACHE)" \
	  -Dmaven.test.skip=true package > "$(STACK_CACHE)/maven.log" 2>&1 \
	  || { tail -30 "$(STACK_CACHE)/maven.log"; echo "stack-deps: maven failed, full log: $(STACK_CACHE)/maven.log"; exit 1; }; \
	grep -E '^\[INFO\] (Building |BUILD|Total time)' "$(STACK_CACHE)/maven.log" | sed 's/^\[INFO\]/   /'; \
	touch "$$stamp"; \
	echo "==> stack-deps: done: $$(ls "$(STACK_CACHE)"/kafka-*/libs | wc -l) jars in kafka libs, plugins: $$(ls "$(STACK_CACHE)/plugins" | tr '\n' ' ')"

## stack-up: start the local stack (idempotent); writes $(DATAPIPE_CACHE)/run/stack.json
stack-up: venv stack-deps
	$(PY) -m datapipe_cdk.local up

## stack-down: stop every service of the local stack by PID, in reverse order
stack-down: venv
	$(PY) -m datapipe_cdk.local down

## stack-status: each service, its pid, port and whether it is healthy (exit 1 unless all are)
stack-status: venv
	$(PY) -m datapipe_cdk.local status
