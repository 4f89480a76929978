"""The oracle: pypi-attestations' own verifier, offline against the production root.

Reads a JSON list of cases on stdin, each {"attestation": {...}, "publisher": {...},
"name": "...", "digest": "<hex>"}, and prints a JSON list with, per case, null when it verifies
or the error message.
"""

import json
import sys

from pydantic import TypeAdapter
from pypi_attestations import Attestation, Distribution, Publisher

results = []
for case in json.load(sys.stdin):
    try:
        attestation = Attestation.model_validate(case["attestation"])
        publisher = TypeAdapter(Publisher).validate_python(case["publisher"])
        dist = Distribution(name=case["name"], digest=case["digest"])
        attestation.verify(publisher, dist, offline=True)
        results.append(None)
    except Exception as e:  # noqa: BLE001 -- any refusal counts as a refusal
        results.append(f"{type(e).__name__}: {e}")
json.dump(results, sys.stdout)
