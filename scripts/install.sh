#!/usr/bin/env bash
# Install edge as a systemd service. Run as root from a checkout (or point EDGE_SOURCE at a wheel):
#
#   sudo scripts/install.sh
#   sudo editor /etc/edge/config.yaml            # cameras, lines, zones, broker
#   sudo systemctl enable --now edge
#
# What it does (safe to run again; an upgrade is the same command):
#   1. creates the virtualenv /opt/edge/venv (kept if it exists) and installs/upgrades edge into it;
#   2. creates /opt/edge/models (bare model names in the config are looked up there, see the unit's
#      EDGE_MODELS) and copies EDGE_MODEL_FILES into it;
#   3. creates /etc/edge with config.yaml from config/example.yaml, only if there is none: an existing
#      config is never overwritten (the example is refreshed as config.yaml.example next to it);
#   4. creates /etc/edge/mqtt_password (empty, mode 0600) if missing, because the unit's LoadCredential=
#      needs the file to exist; put the broker password in it (no trailing newline needed);
#   5. installs systemd/edge.service to /etc/systemd/system/ and runs `systemctl daemon-reload`; if edge
#      is running it is restarted (`try-restart`) so an upgrade takes effect.
#
# Settings (environment variables):
#   EDGE_PREFIX=/opt/edge           where the venv, models and docs go
#   EDGE_CONF_DIR=/etc/edge         config.yaml and mqtt_password
#   EDGE_UNIT_DIR=/etc/systemd/system
#   EDGE_SOURCE=<repo root>         what pip installs: this checkout, a wheel or an sdist
#   EDGE_PIP_ARGS=                  extra pip arguments (e.g. "--no-index --find-links /srv/wheels" offline)
#   EDGE_MODEL_FILES=               ONNX files to copy into $EDGE_PREFIX/models
#   EDGE_SYSTEMCTL=1                0 skips every systemctl call (image builds, containers, tests)
#   PYTHON=python3                  interpreter for the venv (>= 3.11)
#
# With a non-default EDGE_PREFIX or EDGE_CONF_DIR the installed unit's paths are rewritten to match; the
# defaults install the unit file byte for byte as shipped.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${EDGE_PREFIX:-/opt/edge}"
CONF_DIR="${EDGE_CONF_DIR:-/etc/edge}"
UNIT_DIR="${EDGE_UNIT_DIR:-/etc/systemd/system}"
SOURCE="${EDGE_SOURCE:-$here}"
PIP_ARGS="${EDGE_PIP_ARGS:-}"
MODEL_FILES="${EDGE_MODEL_FILES:-}"
SYSTEMCTL="${EDGE_SYSTEMCTL:-1}"
PYTHON="${PYTHON:-python3}"
VENV="$PREFIX/venv"

say() { echo "install: $*"; }
die() { echo "install: error: $*" >&2; exit 1; }

if [ "$SYSTEMCTL" = 1 ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo $0), or set EDGE_SYSTEMCTL=0 and writable EDGE_PREFIX/EDGE_CONF_DIR/EDGE_UNIT_DIR"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python >= 3.11 is required (found $("$PYTHON" --version 2>&1)); set PYTHON="
[ -e "$SOURCE" ] || die "EDGE_SOURCE $SOURCE does not exist"

# 1. virtualenv and package
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  mkdir -p "$PREFIX"
  "$PYTHON" -m venv "$VENV"
fi
say "installing edge from $SOURCE into $VENV"
# shellcheck disable=SC2086  # PIP_ARGS is a list of words on purpose
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade $PIP_ARGS "$SOURCE"
[ -x "$VENV/bin/edge" ] || die "$VENV/bin/edge missing after pip install"

# 2. models and docs
mkdir -p "$PREFIX/models" "$PREFIX/docs"
for f in $MODEL_FILES; do
  [ -f "$f" ] || die "model file $f not found"
  install -m 0644 "$f" "$PREFIX/models/"
  say "model $(basename "$f") -> $PREFIX/models/"
done
if [ -f "$here/docs/operations.md" ]; then
  install -m 0644 "$here/docs/operations.md" "$PREFIX/docs/operations.md"
fi

# 3. configuration (never overwritten)
install -d -m 0755 "$CONF_DIR"
install -m 0644 "$here/config/example.yaml" "$CONF_DIR/config.yaml.example"
if [ ! -e "$CONF_DIR/config.yaml" ]; then
  install -m 0644 "$here/config/example.yaml" "$CONF_DIR/config.yaml"
  say "created $CONF_DIR/config.yaml from the example: edit cameras, lines, zones and the broker"
else
  say "kept existing $CONF_DIR/config.yaml"
fi
if "$VENV/bin/edge" check-config --help >/dev/null 2>&1; then
  "$VENV/bin/edge" check-config "$CONF_DIR/config.yaml" >/dev/null 2>&1 \
    || say "warning: $CONF_DIR/config.yaml does not validate yet: run $VENV/bin/edge check-config $CONF_DIR/config.yaml"
fi

# 4. MQTT password credential (the file must exist for LoadCredential=)
if [ ! -e "$CONF_DIR/mqtt_password" ]; then
  (umask 077 && : > "$CONF_DIR/mqtt_password")
  say "created empty $CONF_DIR/mqtt_password (0600): put the broker password there if it needs one"
fi
chmod 0600 "$CONF_DIR/mqtt_password"

# 5. systemd unit
install -d -m 0755 "$UNIT_DIR"
tmp_unit="$(mktemp)"
trap 'rm -f "$tmp_unit"' EXIT
sed -e "s#/opt/edge#$PREFIX#g" -e "s#/etc/edge/#$CONF_DIR/#g" "$here/systemd/edge.service" > "$tmp_unit"
if ! cmp -s "$tmp_unit" "$UNIT_DIR/edge.service" 2>/dev/null; then
  install -m 0644 "$tmp_unit" "$UNIT_DIR/edge.service"
  say "installed $UNIT_DIR/edge.service"
else
  say "$UNIT_DIR/edge.service is up to date"
fi
if [ "$SYSTEMCTL" = 1 ]; then
  systemctl daemon-reload
  systemctl try-restart edge.service
  if systemctl is-enabled --quiet edge.service; then
    say "edge is enabled; restarted if it was running"
  else
    say "next: edit $CONF_DIR/config.yaml, then: systemctl enable --now edge"
  fi
fi
say "done. Logs: journalctl -u edge -f   Reload lines/zones: systemctl reload edge"
