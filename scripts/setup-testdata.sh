#!/usr/bin/env bash
# Fetches the real PEP 740 test data (issue 19) from PyPI into DIR:
#   DIR/assets/              pypi-attestations' test/assets/: real files published to PyPI with
#                            their real attestations and provenance objects
#   DIR/trusted_root.json    the production Sigstore root, as the sigstore wheel ships it
#   DIR/staging_root.json    the staging root (the spt3g attestation is signed there)
#   DIR/venv/                pypi-attestations itself, the oracle the tests compare with
#   DIR/READY                written last: a second run with the same versions does nothing
#
# Usage: scripts/setup-testdata.sh [DIR]     (default: <repo>/target/testdata/provenance)
#
# Versions are pinned: the committed provenance/data/trusted_root.json must equal this sigstore's
# copy (a test checks it), so bump both together.
set -euo pipefail

PYPI_ATTESTATIONS=0.0.31
SIGSTORE=4.5.1

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$REPO/target/testdata/provenance}"
STAMP="pypi-attestations=$PYPI_ATTESTATIONS sigstore=$SIGSTORE"
if [ -f "$DIR/READY" ] && [ "$(cat "$DIR/READY")" = "$STAMP" ]; then
    echo "provenance test data: ready ($STAMP)"
    exit 0
fi
rm -rf "$DIR"
mkdir -p "$DIR"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# `env -i`: the machine's PIP_* / proxy exports cannot leak into what is fetched.
PY="$(command -v python3)"
env -i PATH=/usr/bin:/bin HOME="$TMP" "$PY" -m venv "$DIR/venv"
PIP=(env -i PATH=/usr/bin:/bin HOME="$TMP" "$DIR/venv/bin/pip" --disable-pip-version-check -q)
"${PIP[@]}" download --no-deps --no-binary :all: -d "$TMP/sdist" "pypi-attestations==$PYPI_ATTESTATIONS"
"${PIP[@]}" download --no-deps --only-binary :all: -d "$TMP/wheel" "sigstore==$SIGSTORE"
tar -xzf "$TMP"/sdist/pypi_attestations-*.tar.gz -C "$TMP/sdist"
cp -r "$TMP"/sdist/pypi_attestations-*/test/assets "$DIR/assets"
"$PY" - "$TMP"/wheel/sigstore-*.whl "$DIR" <<'PYEOF'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name, dest in [
        ("sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json", "trusted_root.json"),
        ("sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstage.dev/trusted_root.json", "staging_root.json"),
    ]:
        with open(f"{out}/{dest}", "wb") as f:
            f.write(z.read(name))
PYEOF
"${PIP[@]}" install "pypi-attestations==$PYPI_ATTESTATIONS" "sigstore==$SIGSTORE"
echo "$STAMP" > "$DIR/READY"
echo "provenance test data: fetched into $DIR ($STAMP)"
