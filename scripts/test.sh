#!/usr/bin/env bash
# Installs everything the tests need (Debian packages and Python packages) and runs them all:
# lint, type checks, unit tests, integration tests with real clients, and the Apache test.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="apache2 libapache2-mod-wsgi-py3 apache2-utils python3-venv curl"
missing=""
for pkg in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
    # Keep the distribution's Apache service from starting on port 80 while it is installed.
    policy_added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
    [ -n "$policy_added" ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

VENV="${CHEESECELLAR_TEST_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[test]'

"$VENV/bin/ruff" check src tests
"$VENV/bin/mypy"

# The unit tests also run on the newer Pythons these machines have (3.11 is the target: the
# one Debian 12's mod_wsgi embeds). Found through pyenv, or on PATH.
for minor in 3.12 3.13; do
    interpreter=""
    if command -v pyenv >/dev/null; then
        version=$(pyenv versions --bare 2>/dev/null | grep -E "^${minor}(\.|$)" | tail -n 1 || true)
        [ -n "$version" ] && interpreter="$(pyenv root)/versions/$version/bin/python$minor"
    fi
    [ -x "$interpreter" ] || interpreter=$(command -v "python$minor" || true)
    if [ -z "$interpreter" ] || ! "$interpreter" -c "" 2>/dev/null; then
        echo "note: python$minor not found; unit tests run on $("$VENV/bin/python" -V) only"
        continue
    fi
    other="${VENV}-${minor}"
    [ -x "$other/bin/python" ] || "$interpreter" -m venv "$other"
    "$other/bin/python" -m pip install -q -e . pytest hypothesis
    echo "unit tests on $("$other/bin/python" -V):"
    "$other/bin/python" -m pytest -q -p no:cacheprovider tests/unit
done

exec "$VENV/bin/python" -m pytest "$@"
