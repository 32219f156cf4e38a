#!/usr/bin/env bash
# CI: the README's two install paths, as a user takes them.
#
#   .ci/install_paths.sh [cli] [python]      (both when none is named)
#
# cli:    `cargo install --locked --path examples --bin sre-agent`, into a throwaway root
#         (target/ci-install) with the workspace's target dir, so the release build is shared with
#         .ci/image.sh; then the installed binary, from a directory outside the source tree with a
#         bare environment: --version, `demo --approve auto` (exit 0: resolved) and
#         `demo --approve deny` (exit 4: an action was denied).
# python: a wheel from `maturin build` (profile dev here: SRE_WHEEL_PROFILE=release for the
#         README's build), installed with `pip install 'WHEEL[test]'` into a fresh venv; the
#         sre-py tests, copied out of the source tree, run against the installed package, and the
#         run stops at once unless `sre_agent` and its native module come from the venv's
#         site-packages.
# Everything it writes stays under target/ (ci-install, ci-wheel) and a temporary directory it
# removes. Idempotent; needs no stdin.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

fail() { printf 'install_paths.sh: %s\n' "$*" >&2; exit 1; }
timer() { printf '%s: %ss\n' "$1" "$((SECONDS - $2))"; }

VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]["version"])')

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

cli() {
  local start=$SECONDS bin out code
  printf -- '--- cli: cargo install --locked --path examples --bin sre-agent\n'
  cargo install --locked --path examples --bin sre-agent --root target/ci-install --target-dir target
  bin="$ROOT/target/ci-install/bin/sre-agent"
  [ -x "$bin" ] || fail "cargo install did not install $bin"

  # Outside the source tree, with nothing from this shell's environment.
  mkdir -p "$SCRATCH/cli"
  installed() { (cd "$SCRATCH/cli" && env -i PATH=/usr/bin:/bin HOME="$SCRATCH/cli" "$bin" "$@"); }

  out=$(installed --version)
  [ "$out" = "sre-agent $VERSION" ] || fail "sre-agent --version printed '$out', expected 'sre-agent $VERSION'"
  echo "installed: $out"

  code=0
  installed demo --approve auto >"$SCRATCH/demo-auto.txt" 2>&1 || code=$?
  if [ "$code" -ne 0 ] || ! grep -q '^exit code 0: resolved' "$SCRATCH/demo-auto.txt"; then
    cat "$SCRATCH/demo-auto.txt" >&2
    fail "sre-agent demo --approve auto exited $code, expected 0 (resolved)"
  fi
  echo "demo --approve auto: exit 0, resolved"

  code=0
  installed demo --approve deny >"$SCRATCH/demo-deny.txt" 2>&1 || code=$?
  if [ "$code" -ne 4 ]; then
    cat "$SCRATCH/demo-deny.txt" >&2
    fail "sre-agent demo --approve deny exited $code, expected 4 (an action was denied)"
  fi
  echo "demo --approve deny: exit 4, denied"
  timer "cli install path" "$start"
}

python_wheel() {
  local start=$SECONDS profile="${SRE_WHEEL_PROFILE:-dev}"
  local work="$ROOT/target/ci-wheel" tools venv dist wheels wheel run
  tools="$work/tools"
  venv="$work/venv"
  dist="$work/dist"
  run="$work/run"
  printf -- '--- python: maturin build --profile %s, pip install into a fresh venv\n' "$profile"

  # The build tool lives in its own venv, kept between runs; the package's venv is always new.
  [ -x "$tools/bin/python" ] || python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check 'maturin>=1.5,<2'
  rm -rf "$dist"
  (cd sre-py && "$tools/bin/maturin" build --locked --profile "$profile" --interpreter "$tools/bin/python" --out "$dist")
  timer "maturin build --profile $profile" "$start"

  wheels=("$dist"/sre_agent-"$VERSION"-*.whl)
  if [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then fail "expected one wheel sre_agent-$VERSION-*.whl in $dist, found: $(ls "$dist")"; fi
  wheel="${wheels[0]}"
  # The wheel holds the Python package and exactly one native module (never a stale one from
  # `maturin develop` in the source tree).
  python3 - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
native = [n for n in names if n.startswith("sre_agent/_native") and n.endswith(".so")]
need = ["sre_agent/__init__.py", "sre_agent/langchain.py", "sre_agent/_native.pyi", "sre_agent/py.typed"]
missing = [n for n in need if n not in names]
if len(native) != 1 or missing:
    sys.exit(f"wheel {sys.argv[1]}: native modules {native}, missing {missing}")
print(f"wheel: {sys.argv[1].rsplit('/', 1)[-1]} ({len(names)} files, native module {native[0]})")
EOF

  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${wheel}[test]"

  # The tests, out of the source tree: sre-py/tests and the one fixture directory they read
  # (test_secrets.py finds it at ../../sre-tools/tests/fixtures from its own file).
  rm -rf "$run"
  mkdir -p "$run/sre-py" "$run/sre-tools/tests/fixtures"
  cp -R sre-py/tests "$run/sre-py/tests"
  cp -R sre-tools/tests/fixtures/scenarios "$run/sre-tools/tests/fixtures/scenarios"
  find "$run" -name __pycache__ -prune -exec rm -rf {} +
  printf '[pytest]\naddopts = -p no:cacheprovider\n' >"$run/pytest.ini"
  cat >"$run/conftest.py" <<'EOF'
"""Written by .ci/install_paths.sh: the tests must run against the installed wheel, not the sources."""

import importlib.metadata
import os
import pathlib
import sysconfig

import pytest


def pytest_sessionstart(session):
    import sre_agent
    import sre_agent._native

    paths = sysconfig.get_paths()
    site = {pathlib.Path(paths[k]).resolve() for k in ("purelib", "platlib")}
    for module in (sre_agent, sre_agent._native):
        where = pathlib.Path(module.__file__).resolve()
        if not any(s in where.parents for s in site):
            pytest.exit(f"{module.__name__} was imported from {where}, not from {sorted(map(str, site))}", returncode=1)
    version = importlib.metadata.version("sre-agent")
    if version != os.environ["SRE_AGENT_EXPECT_VERSION"]:
        pytest.exit(f"installed sre-agent {version}, expected {os.environ['SRE_AGENT_EXPECT_VERSION']}", returncode=1)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"sre_agent {version} from {pathlib.Path(sre_agent.__file__).parent}")
EOF
  (cd "$run" && SRE_AGENT_EXPECT_VERSION="$VERSION" "$venv/bin/python" -m pytest sre-py/tests -q)
  timer "python install path (build, venv, tests)" "$start"
}

steps=("$@")
[ "${#steps[@]}" -gt 0 ] || steps=(cli python)
for s in "${steps[@]}"; do
  case "$s" in
    cli) cli ;;
    python) python_wheel ;;
    *) fail "unknown step $s (cli, python)" ;;
  esac
done
