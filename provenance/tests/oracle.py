"""The oracle: pypi-attestations' own verifier, offline against the production root.

Reads a JSON list of cases on stdin, each {"attestation": {...}, "publisher": {...},
"name": "...", "digest": "<hex>", "root": optional path of a trusted_root.json to use instead of
the production root}, and prints a JSON list with, per case, null when it verifies or the error
message.
"""

import json
import sys

import pypi_attestations._impl as impl
from pydantic import TypeAdapter
from pypi_attestations import Attestation, Distribution, Publisher
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier


class _RootVerifier:
    """Stands in for `Verifier` in pypi-attestations: `production()` uses a given root."""

    root = None

    @classmethod
    def production(cls, *, offline=False):
        return Verifier(trusted_root=cls.root)

results = []
for case in json.load(sys.stdin):
    if case.get("root"):
        _RootVerifier.root = TrustedRoot.from_file(case["root"])
        impl.Verifier = _RootVerifier
    else:
        impl.Verifier = Verifier
    try:
        attestation = Attestation.model_validate(case["attestation"])
        publisher = TypeAdapter(Publisher).validate_python(case["publisher"])
        dist = Distribution(name=case["name"], digest=case["digest"])
        attestation.verify(publisher, dist, offline=True)
        results.append(None)
    except Exception as e:  # noqa: BLE001 -- any refusal counts as a refusal
        results.append(f"{type(e).__name__}: {e}")
json.dump(results, sys.stdout)
