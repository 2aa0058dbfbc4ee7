#!/usr/bin/env python3
"""Validates FHIR JSON files with `fhir.resources` (pydantic models of FHIR R4B), a
validator independent of the server the hub talks to.

Usage: validate.py FILE_OR_DIR...   (a directory: every *.json in it)
A Bundle is validated as a whole (which validates every entry's resource against its own
model). Prints one line per file and exits 1 when any file has an error, 2 when no file was
given or found.
"""
import json
import pathlib
import sys

from fhir.resources.R4B import get_fhir_model_class


def validate(path: pathlib.Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [f"not readable JSON: {e}"]
    kind = data.get("resourceType") if isinstance(data, dict) else None
    if not kind:
        return ["no resourceType"]
    try:
        model = get_fhir_model_class(kind)
    except KeyError:
        return [f"unknown resourceType {kind!r}"]
    try:
        model.model_validate(data)
    except Exception as e:  # pydantic.ValidationError lists every problem
        return [str(e)]
    return []


def main(argv: list[str]) -> int:
    files: list[pathlib.Path] = []
    for arg in argv:
        p = pathlib.Path(arg)
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    if not files:
        print("validate.py: no FHIR JSON files given or found", file=sys.stderr)
        return 2
    failed = 0
    for f in files:
        errors = validate(f)
        if errors:
            failed += 1
            print(f"FAIL {f}:")
            for e in errors:
                print("  " + e.replace("\n", "\n  "))
        else:
            print(f"ok   {f}")
    print(f"{len(files) - failed}/{len(files)} valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
