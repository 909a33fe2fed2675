#!/usr/bin/env bash
# Creates .venv with the project and what the tests need, and puts the test servers and tools into
# .tools/: Prometheus, Alertmanager, docker-compose and kustomize (WITH_PROMETHEUS=0 skips them) and
# Apache Kafka (WITH_KAFKA=0 skips it). Nothing is installed on the machine. Safe to run again; fast once
# everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-test,broker,rocksdb,dashboards}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"

# Prometheus for the tests: the binaries of Debian's `prometheus` package (prometheus, promtool),
# fetched with `apt-get download` and unpacked with `dpkg-deb -x` into .tools/ (gitignored). The
# package is never installed, so no service is added to the machine, and nothing here starts,
# stops or signals any process: a Prometheus already running on the machine is left alone. The
# tests start their own Prometheus from .tools/bin on free loopback ports (see
# tests/integration/prometheus.py for the order in which they look for it). The .debs are kept
# in .tools/debs, so the versions stay the same until `rm -rf .tools`.
# The binaries are Go programs linked against libc only (Debian 12's libc is new enough).
TOOLS=.tools
PACKAGES="prometheus"
# tool name in .tools/bin -> path inside the unpacked packages
TOOL_PATHS="prometheus:usr/bin/prometheus promtool:usr/bin/promtool"

tools_ready() {
  local entry
  for entry in $TOOL_PATHS; do
    "$TOOLS/bin/${entry%%:*}" --version >/dev/null 2>&1 || return 1
  done
}

download_debs() {  # the named packages' .debs into $TOOLS/debs, one version of each
  local package work output
  work=$(mktemp -d)
  # apt-get downloads as the unprivileged _apt user when run as root: let it write here.
  if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
  for package in "$@"; do
    if compgen -G "$TOOLS/debs/${package}_*.deb" >/dev/null; then continue; fi
    if ! output=$(cd "$work" && apt-get download -q "$package" 2>&1); then
      # Most often the package lists are missing (a fresh container): fetch them once.
      if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        output=$(cd "$work" && apt-get download -q "$package" 2>&1) || { echo "$output" >&2; rm -rf "$work"; return 1; }
      else
        echo "$output" >&2
        echo "apt-get download $package failed; if the package lists are missing, run 'apt-get update' as root" >&2
        rm -rf "$work"
        return 1
      fi
    fi
    mkdir -p "$TOOLS/debs"
    mv "$work/${package}_"*.deb "$TOOLS/debs/"
    chown "$(id -u):$(id -g)" "$TOOLS/debs/${package}_"*.deb
  done
  rm -rf "$work"
}

unpack_into() {  # ROOT PACKAGE...: the packages' .debs unpacked into a new ROOT, which replaces the old one
  local root=$1 package
  shift
  download_debs "$@" || return 1
  rm -rf "$root.new"
  mkdir -p "$root.new" "$TOOLS/bin"
  for package in "$@"; do
    dpkg-deb -x "$(compgen -G "$TOOLS/debs/${package}_*.deb" | head -n 1)" "$root.new"
  done
  rm -rf "$root"
  mv "$root.new" "$root"
}

unpack_tools() {
  local entry
  # shellcheck disable=SC2086 # one package name per word
  unpack_into "$TOOLS/root" $PACKAGES || return 1
  for entry in $TOOL_PATHS; do
    ln -sfn "../root/${entry#*:}" "$TOOLS/bin/${entry%%:*}"
  done
  tools_ready
}

if [ "${WITH_PROMETHEUS:-1}" = 1 ] && ! tools_ready; then
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "apt-get/dpkg-deb not found: Prometheus not unpacked into $TOOLS/; the Prometheus tests" \
      "need CORRIDOR_PROMETHEUS_BIN (and CORRIDOR_PROMTOOL_BIN) or prometheus on PATH" >&2
  elif unpack_tools; then
    echo "Prometheus unpacked into $TOOLS/bin: $("$TOOLS/bin/prometheus" --version 2>&1 | head -n 1)"
  else
    echo "could not unpack Prometheus into $TOOLS/ (see above; 'rm -rf $TOOLS' starts over);" \
      "the Prometheus tests will not find it there" >&2
  fi
fi

# Alertmanager and amtool for the tests, built from their Go module (github.com/prometheus/alertmanager
# at ALERTMANAGER_VERSION) with the machine's Go into .tools/bin; the module and build caches stay in
# .tools/go. Debian's prometheus-alertmanager cannot serve here: its binary reads its default
# notification template from /usr/share/prometheus/alertmanager/, where only an installed package
# puts it. The upstream build carries its templates inside.
ALERTMANAGER_VERSION=v0.28.1

alertmanager_ready() {
  "$TOOLS/bin/alertmanager" --version 2>&1 | grep -q "version ${ALERTMANAGER_VERSION#v} " &&
    "$TOOLS/bin/amtool" --version >/dev/null 2>&1
}

go_install() {  # `go install ARGS...` with the machine's Go into $TOOLS/bin, its caches in $TOOLS/go
  local go_root
  mkdir -p "$TOOLS/go" "$TOOLS/bin"
  go_root=$(cd "$TOOLS/go" && pwd)
  GOPATH="$go_root" GOMODCACHE="$go_root/mod" GOCACHE="$go_root/cache" GOBIN="$(cd "$TOOLS/bin" && pwd)" \
    GOFLAGS="-buildvcs=false -modcacherw" GOTOOLCHAIN=local \
    go install "$@"
}

build_alertmanager() {
  go_install -ldflags "-X github.com/prometheus/common/version.Version=${ALERTMANAGER_VERSION#v}" \
    "github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION" \
    "github.com/prometheus/alertmanager/cmd/amtool@$ALERTMANAGER_VERSION" || return 1
  alertmanager_ready
}

if [ "${WITH_PROMETHEUS:-1}" = 1 ] && ! alertmanager_ready; then
  if ! command -v go >/dev/null 2>&1; then
    echo "go not found: Alertmanager not built into $TOOLS/bin; the Alertmanager tests need" \
      "CORRIDOR_ALERTMANAGER_BIN (and CORRIDOR_AMTOOL_BIN) or alertmanager on PATH" >&2
  elif build_alertmanager; then
    echo "Alertmanager built into $TOOLS/bin: $("$TOOLS/bin/alertmanager" --version 2>&1 | head -n 1)"
  else
    echo "could not build Alertmanager into $TOOLS/bin (see above; 'rm -rf $TOOLS/go' starts over);" \
      "the Alertmanager tests will not find it there" >&2
  fi
fi

# kustomize for the tests of deploy/k8s/ (tests/integration/test_deploy.py runs `kustomize build`), built
# the same way from its Go module, sigs.k8s.io/kustomize/kustomize/v5 at KUSTOMIZE_VERSION: v5.8.2 (api
# v0.21.2) is the newest whose go.mod asks for no newer Go than 1.26, so GOTOOLCHAIN=local builds it.
KUSTOMIZE_VERSION=v5.8.2

kustomize_ready() {
  [ "$("$TOOLS/bin/kustomize" version 2>/dev/null)" = "$KUSTOMIZE_VERSION" ]
}

build_kustomize() {
  go_install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" || return 1
  kustomize_ready
}

kustomize_step() {  # never fails: a missing kustomize fails the Kubernetes tests, which say why
  if ! command -v go >/dev/null 2>&1; then
    echo "go not found: kustomize not built into $TOOLS/bin; the Kubernetes tests need it there" >&2
  elif build_kustomize; then
    echo "kustomize built into $TOOLS/bin: $("$TOOLS/bin/kustomize" version 2>&1)"
  else
    echo "could not build kustomize into $TOOLS/bin (see above; 'rm -rf $TOOLS/go' starts over);" \
      "the Kubernetes tests will not find it there" >&2
  fi
  return 0
}

# The build (a minute and a half the first time) runs while Kafka's jars and docker-compose are
# fetched below; the script waits for it at the end.
KUSTOMIZE_JOB=
if [ "${WITH_PROMETHEUS:-1}" = 1 ] && ! kustomize_ready; then
  kustomize_step &
  KUSTOMIZE_JOB=$!
fi

# Apache Kafka for the tests (tests/kafka_cluster.py): the broker's jars, as scripts/kafka/pom.xml
# names them, copied from Maven Central into .tools/kafka/libs with the machine's Maven; its local
# repository is .tools/m2, so nothing is written outside the project. The copy is made again only
# when the pom changes (a stamp holds the pom's checksum). Java runs them: Debian's openjdk-17.
KAFKA_LIBS=$TOOLS/kafka/libs
KAFKA_POM=scripts/kafka/pom.xml

kafka_ready() {
  [ -f "$TOOLS/kafka/pom.sha256" ] && [ "$(cat "$TOOLS/kafka/pom.sha256")" = "$(sha256sum <"$KAFKA_POM")" ] &&
    compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null
}

copy_kafka() {
  rm -rf "$KAFKA_LIBS.new"
  mkdir -p "$TOOLS/kafka"
  mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" -Dmaven.repo.local="$PWD/$TOOLS/m2" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$PWD/$KAFKA_LIBS.new" || return 1
  rm -rf "$KAFKA_LIBS"
  mv "$KAFKA_LIBS.new" "$KAFKA_LIBS"
  sha256sum <"$KAFKA_POM" >"$TOOLS/kafka/pom.sha256"
}

if [ "${WITH_KAFKA:-1}" = 1 ] && ! kafka_ready; then
  if ! command -v mvn >/dev/null 2>&1; then
    echo "mvn not found: Apache Kafka not copied into $KAFKA_LIBS; the Kafka tests need it (install Debian's" \
      "maven, or set CORRIDOR_KAFKA_LIBS to a folder of Kafka's jars)" >&2
  elif copy_kafka; then
    echo "Apache Kafka copied into $KAFKA_LIBS: $(basename "$(compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar")")"
  else
    echo "could not copy Apache Kafka into $KAFKA_LIBS (see above; 'rm -rf $TOOLS/kafka $TOOLS/m2' starts over);" \
      "the Kafka tests will not find it there" >&2
  fi
fi
if [ "${WITH_KAFKA:-1}" = 1 ] && ! command -v java >/dev/null 2>&1 && [ ! -x "${JAVA_HOME:-/nonexistent}/bin/java" ]; then
  echo "java not found: the Kafka tests need a Java 17 runtime (Debian's openjdk-17-jre-headless)" >&2
fi

# docker-compose for the tests of deploy/compose/ (`docker-compose config` needs no Docker
# engine): Debian's `docker-compose` package and the python3-* packages it depends on,
# fetched and unpacked the same way into .tools/compose (never installed), run by the
# machine's /usr/bin/python3 (the interpreter those packages are built for) through the
# wrapper .tools/bin/docker-compose.
COMPOSE_ROOT=$TOOLS/compose

compose_ready() {
  "$TOOLS/bin/docker-compose" version --short >/dev/null 2>&1
}

python3_dependencies() {  # every python3-* package in docker-compose's dependency closure
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances docker-compose 2>/dev/null | grep -E '^python3-' | grep -vx 'python3-minimal' | sort -u
}

compose_packages() {  # docker-compose and the python3-* packages it needs
  local dependencies
  dependencies=$(python3_dependencies) || true
  if [ -z "$dependencies" ] && [ "$(id -u)" = 0 ]; then
    # Most often the package lists are missing (a fresh container): fetch them once.
    apt-get update -qq
    dependencies=$(python3_dependencies) || true
  fi
  if [ -z "$dependencies" ]; then
    echo "apt-cache knows no docker-compose; if the package lists are missing, run 'apt-get update' as root" >&2
    return 1
  fi
  echo docker-compose
  echo "$dependencies"
}

unpack_compose() {
  local packages
  packages=$(compose_packages) || return 1
  # shellcheck disable=SC2086 # one package name per word
  unpack_into "$COMPOSE_ROOT" $packages || return 1
  cat >"$TOOLS/bin/docker-compose" <<'WRAPPER'
#!/bin/sh
# docker-compose unpacked from Debian's packages by scripts/bootstrap.sh (not installed).
root=$(cd "$(dirname "$0")/../compose" && pwd)
PYTHONPATH="$root/usr/lib/python3/dist-packages" exec /usr/bin/python3 -s "$root/usr/bin/docker-compose" "$@"
WRAPPER
  chmod +x "$TOOLS/bin/docker-compose"
  compose_ready
}

if [ "${WITH_PROMETHEUS:-1}" = 1 ] && ! compose_ready; then
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1 || [ ! -x /usr/bin/python3 ]; then
    echo "apt-get/dpkg-deb or /usr/bin/python3 not found: docker-compose not unpacked into $TOOLS/; the" \
      "compose tests need docker-compose on PATH" >&2
  elif unpack_compose; then
    echo "docker-compose unpacked into $TOOLS/bin: $("$TOOLS/bin/docker-compose" version --short 2>&1 | head -n 1)"
  else
    echo "could not unpack docker-compose into $TOOLS/ (see above; 'rm -rf $TOOLS/compose' starts over);" \
      "the compose tests will not find it there" >&2
  fi
fi

if [ -n "$KUSTOMIZE_JOB" ]; then
  wait "$KUSTOMIZE_JOB"
fi
