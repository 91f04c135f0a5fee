#!/usr/bin/env bash
# Installs what the tests and the build need and a fresh machine lacks:
#   - Mosquitto and PostgreSQL (Debian packages), for the test bed;
#   - Azurite (npm ci in internal/testenv/azurite), for the test bed;
#   - Chromium (Debian package), for the map's headless browser test;
#   - promtool (Debian package prometheus), for deploy/'s config check;
#   - the Apache Kafka broker's jars from Maven Central, into a cache outside
#     the work tree (${SAILSTREAM_CACHE:-$HOME/.cache/sailstream}/kafka-<version>/libs);
#   - web/node_modules (npm ci) when web/package.json exists;
#   - clang/lld/wasi-libc (Debian) and asc (npm ci in udf/sdk/assemblyscript),
#     for the C and AssemblyScript guest UDFs.
# Idempotent and quick when everything is there. Needs root for apt-get (uses
# sudo when not root and sudo exists). Expects Go, Java 17+, Maven and npm on
# the machine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SAILSTREAM_CACHE:-${HOME:-/root}/.cache/sailstream}"
pom="$root/internal/testenv/kafka/pom.xml"

log() { printf 'install-deps: %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		log "need root (or sudo) to run: $*"
		return 1
	fi
}

for tool in go java mvn; do
	command -v "$tool" >/dev/null 2>&1 || { log "$tool is missing: install it first"; exit 1; }
done

# --- Mosquitto -------------------------------------------------------------
if { ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; } || ! command -v promtool >/dev/null 2>&1; then
	log "installing mosquitto and prometheus (promtool)"
	export DEBIAN_FRONTEND=noninteractive
	# Update the package lists only when they are missing or the install fails
	# with them (a fresh machine often has none).
	if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 ||
		! as_root apt-get install -y -q --no-install-recommends mosquitto prometheus >/dev/null; then
		as_root apt-get update -q >/dev/null
		as_root apt-get install -y -q --no-install-recommends mosquitto prometheus >/dev/null
	fi
	# The package enables a system broker on port 1883; we start our own on
	# free ports. Don't leave the system one running (where systemd runs).
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		as_root systemctl disable --now mosquitto prometheus >/dev/null 2>&1 || true
	fi
fi

# --- PostgreSQL 15, for the Timescale sink's tests (a throwaway cluster) ---
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
	log "installing postgresql"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get install -y -q --no-install-recommends postgresql >/dev/null ||
		{ as_root apt-get update -q >/dev/null && as_root apt-get install -y -q --no-install-recommends postgresql >/dev/null; }
	# The package starts a system cluster on port 5432; the tests start
	# their own on free ports.
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		as_root systemctl disable --now postgresql >/dev/null 2>&1 || true
	fi
fi

# --- Chromium, for the map's browser test (headless, driven by playwright-core) --
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
	log "installing chromium"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get install -y -q --no-install-recommends chromium >/dev/null ||
		{ as_root apt-get update -q >/dev/null && as_root apt-get install -y -q --no-install-recommends chromium >/dev/null; }
fi

# --- wabt (wat2wasm), to build the hostile test modules of udf/ -------------
if ! command -v wat2wasm >/dev/null 2>&1; then
	log "installing wabt"
	as_root apt-get install -y -q --no-install-recommends wabt >/dev/null ||
		{ as_root apt-get update -q >/dev/null && as_root apt-get install -y -q --no-install-recommends wabt >/dev/null; }
fi

# --- C and AssemblyScript guest toolchains, to build udf/'s example UDFs ----
# clang for wasm32-wasi (with lld, wasi-libc and the wasm32 compiler-rt);
# asc from npm, pinned by udf/sdk/assemblyscript/package-lock.json.
if ! dpkg -s clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null 2>&1; then
	log "installing clang, lld, wasi-libc, libclang-rt-14-dev-wasm32"
	as_root apt-get install -y -q --no-install-recommends clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null ||
		{ as_root apt-get update -q >/dev/null && as_root apt-get install -y -q --no-install-recommends clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null; }
fi
if [ ! -x "$root/udf/sdk/assemblyscript/node_modules/.bin/asc" ]; then
	command -v npm >/dev/null 2>&1 || { log "npm is missing: install Node.js first"; exit 1; }
	log "npm ci in udf/sdk/assemblyscript"
	(cd "$root/udf/sdk/assemblyscript" && npm ci --no-audit --no-fund >&2)
fi

# --- Azurite (Azure Blob emulator), pinned by internal/testenv/azurite ------
if [ ! -f "$root/internal/testenv/azurite/node_modules/azurite/dist/src/blob/main.js" ]; then
	command -v npm >/dev/null 2>&1 || { log "npm is missing: install Node.js first"; exit 1; }
	log "npm ci in internal/testenv/azurite"
	(cd "$root/internal/testenv/azurite" && npm ci --no-audit --no-fund >&2)
fi

# --- Kafka jars --------------------------------------------------------------
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
[ -n "$kafka_version" ] || { log "no <kafka.version> in $pom"; exit 1; }
libs="$cache/kafka-$kafka_version/libs"
# The pom's hash marks a complete download: a changed pom fetches again.
stamp="$libs/.complete-$(sha256sum "$pom" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
	log "fetching Apache Kafka $kafka_version jars into $libs"
	tmp="$(mktemp -d "$cache/.kafka-$kafka_version.XXXXXX" 2>/dev/null || { mkdir -p "$cache" && mktemp -d "$cache/.kafka-$kafka_version.XXXXXX"; })"
	trap 'rm -rf "$tmp"' EXIT
	# (Debian's Maven 3.8 prints bare colour resets even in batch mode: drop them.)
	mvn -B -q -f "$pom" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp/libs" 2>&1 | sed 's/\x1b\[0m//g' >&2
	ls "$tmp/libs"/kafka_2.13-"$kafka_version".jar >/dev/null
	touch "$tmp/libs/$(basename "$stamp")"
	rm -rf "$libs"
	mkdir -p "$(dirname "$libs")"
	mv "$tmp/libs" "$libs"
	rm -rf "$tmp"
	trap - EXIT
fi

# --- web ---------------------------------------------------------------------
if [ -f "$root/web/package.json" ] && [ ! -d "$root/web/node_modules" ]; then
	command -v npm >/dev/null 2>&1 || { log "npm is missing: install Node.js first"; exit 1; }
	log "npm ci in web/"
	(cd "$root/web" && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi)
fi

log "ok (mosquitto: $(command -v mosquitto || echo /usr/sbin/mosquitto); kafka: $libs)"
