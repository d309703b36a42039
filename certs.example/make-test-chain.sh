#!/bin/sh
# Make a local test certificate chain for development and tests:
#   root-ca.pem/.key -> wwdr.pem (fake "Apple WWDR ... OU=G4") -> pass.pem/.key (Pass Type ID shape)
#   root-ca.pem      -> server.pem/.key (TLS for localhost, 127.0.0.1, ::1: the local fake APNs/Google)
# No real iPhone trusts these; use them for tests, the fakes and `make run`.
#
# Usage (from the project root):  certs.example/make-test-chain.sh [OUT_DIR] [--force] [--days N]
#   OUT_DIR defaults to certs/dev (git-ignored). APPLE_PASS_TYPE_ID / APPLE_TEAM_ID, when set,
#   choose the ids written into pass.pem. An existing, unexpired chain with the same ids is kept.
set -eu

out="${1:-certs/dev}"
[ "$#" -gt 0 ] && shift

python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3

exec "$python" -m passes.devcerts --out "$out" \
    --pass-type-id "${APPLE_PASS_TYPE_ID:-pass.dev.punchpass}" \
    --team-id "${APPLE_TEAM_ID:-PUNCHDEV01}" "$@"
