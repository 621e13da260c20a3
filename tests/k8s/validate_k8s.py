#!/usr/bin/env python3
"""Offline validation of Kubernetes manifests (a YAML stream) against JSON schemas.

Every document is checked against:
- built-in kinds: the official Kubernetes schemas in tests/k8s/schemas/kubernetes/ (strict: unknown
  fields are errors), named as kubeconform names them;
- KEDA kinds: tests/k8s/schemas/keda/ (<kind>_<version>.json);
- CustomResourceDefinitions: no upstream schema exists (see schemas/README.md), so check_crd()
  checks what the API server would: the CRD's own shape, that each openAPIV3Schema is a valid JSON
  Schema (Draft 7 metaschema) and a structural schema (every node typed, no $ref, ...);
- custom resources of a CRD given with --crd (or present in the same stream): the CRD's
  openAPIV3Schema, with unknown fields rejected unless x-kubernetes-preserve-unknown-fields says so
  (what `kubectl apply --validate=strict` does).

Kinds with no schema are reported as SKIP (they do not fail the run).

Usage: validate_k8s.py [--crd CRD.yaml ...] [FILE|- ...]     exit 1 when any document fails.
Only the standard library plus PyYAML and jsonschema (Debian python3-yaml, python3-jsonschema).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import pathlib
import re
import sys
from typing import Any, Iterable

import jsonschema
import yaml

SCHEMA_ROOT = pathlib.Path(os.environ.get("K8S_SCHEMAS", pathlib.Path(__file__).parent / "schemas"))
CRD_DIRS = {"keda.sh": "keda"}  # API group -> folder holding <kind>_<version>.json (datreeio naming)


@dataclasses.dataclass
class Result:
    name: str  # "<source>[index] Kind/name"
    status: str  # PASS, FAIL or SKIP
    messages: list[str]

    def __str__(self) -> str:
        if not self.messages:
            return f"{self.status} {self.name}"
        return "\n".join(f"{self.status} {self.name}: {m}" for m in self.messages)


def load_documents(text: str) -> list[dict]:
    """Parses a YAML stream; empty documents are dropped. YAML timestamps become strings, as the
    API server sees them."""
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    return [json.loads(json.dumps(d, default=str)) for d in docs]


# ---------------------------------------------------------------------------------------------
# Built-in and KEDA kinds.

_validators: dict[pathlib.Path, jsonschema.Draft7Validator] = {}


def schema_file(doc: dict) -> pathlib.Path:
    group, _, version = doc["apiVersion"].rpartition("/")
    kind = doc["kind"].lower()
    if group in CRD_DIRS:
        return SCHEMA_ROOT / CRD_DIRS[group] / f"{kind}_{version}.json"
    short = group.split(".")[0]  # rbac.authorization.k8s.io/v1 -> rbac, v1 -> ""
    return SCHEMA_ROOT / "kubernetes" / ("-".join(filter(None, [kind, short, version])) + ".json")


def _validator_for(path: pathlib.Path) -> jsonschema.Draft7Validator:
    if path not in _validators:
        with open(path) as f:
            _validators[path] = jsonschema.Draft7Validator(json.load(f))
    return _validators[path]


def _format_errors(errors: Iterable[jsonschema.ValidationError]) -> list[str]:
    out = []
    for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(map(str, e.absolute_path)) or "<root>"
        out.append(f"{where}: {e.message[:300]}")
    return out


# ---------------------------------------------------------------------------------------------
# CustomResourceDefinitions.

_PRINTER_TYPES = {"integer", "number", "string", "boolean", "date"}
_SCHEMA_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
# Keywords the API server forbids in a CRD schema (structural schema rules).
_FORBIDDEN_KEYWORDS = {"$ref", "definitions", "dependencies", "additionalItems", "patternProperties",
                       "$schema", "id", "const"}


def _check_structural(node: Any, path: str, errors: list[str], root: bool = False) -> None:
    """The API server's structural-schema rules that matter in practice."""
    if not isinstance(node, dict):
        errors.append(f"{path}: schema must be an object, got {type(node).__name__}")
        return
    for key in node:
        if key in _FORBIDDEN_KEYWORDS:
            errors.append(f"{path}: keyword {key!r} is not allowed in a CRD schema")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        errors.append(f"{path}: x-kubernetes-preserve-unknown-fields must be true when set")
    typ = node.get("type")
    if typ is None and not int_or_string and not preserve:
        errors.append(f"{path}: every schema node needs a type (structural schema)")
    if typ is not None and typ not in _SCHEMA_TYPES:
        errors.append(f"{path}: type {typ!r} is not one of {sorted(_SCHEMA_TYPES)}")
    if int_or_string and typ is not None:
        errors.append(f"{path}: x-kubernetes-int-or-string must not be combined with type")
    if root and typ != "object":
        errors.append(f"{path}: the root of openAPIV3Schema must have type object")
    if "properties" in node and "additionalProperties" in node:
        errors.append(f"{path}: properties and additionalProperties are mutually exclusive")
    if "properties" in node and typ != "object":
        errors.append(f"{path}: properties given but type is {typ!r}, not object")
    if "items" in node and typ != "array":
        errors.append(f"{path}: items given but type is {typ!r}, not array")
    if typ == "array" and "items" not in node:
        errors.append(f"{path}: an array needs items")
    for name, sub in (node.get("properties") or {}).items():
        _check_structural(sub, f"{path}.properties.{name}", errors)
    if isinstance(node.get("items"), dict):
        _check_structural(node["items"], f"{path}.items", errors)
    if isinstance(node.get("additionalProperties"), dict):
        _check_structural(node["additionalProperties"], f"{path}.additionalProperties", errors)
    for combinator in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(combinator) or []):
            # Inside value validations types are optional, but the rest still applies.
            if isinstance(sub, dict):
                for key in sub:
                    if key in _FORBIDDEN_KEYWORDS:
                        errors.append(f"{path}.{combinator}[{i}]: keyword {key!r} is not allowed")
    for name, sub in (node.get("properties") or {}).items():
        if root and name == "metadata" and isinstance(sub, dict):
            extra = set(sub.get("properties") or {}) - {"name", "generateName"}
            if extra:
                errors.append(f"{path}.properties.metadata: only name and generateName may be "
                              f"constrained, got {sorted(extra)}")


def _json_path_ok(expr: str) -> bool:
    return bool(re.fullmatch(r"\.[A-Za-z0-9_.\[\]?@=\"'()\-]+", expr))


def check_crd(doc: dict) -> list[str]:
    """Returns the problems of one CustomResourceDefinition (empty list when it is valid)."""
    errors: list[str] = []
    if doc.get("apiVersion") != "apiextensions.k8s.io/v1":
        errors.append(f"apiVersion: {doc.get('apiVersion')!r}, expected apiextensions.k8s.io/v1")
    spec = doc.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    for field in ("plural", "singular", "kind", "listKind"):
        if not names.get(field):
            errors.append(f"spec.names.{field}: missing")
    name = (doc.get("metadata") or {}).get("name")
    if name != f"{names.get('plural')}.{group}":
        errors.append(f"metadata.name: {name!r} must be <plural>.<group> = "
                      f"{names.get('plural')}.{group}")
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.append(f"spec.scope: {spec.get('scope')!r}, expected Namespaced or Cluster")
    versions = spec.get("versions") or []
    if not versions:
        errors.append("spec.versions: at least one version is required")
    if sum(1 for v in versions if v.get("storage")) != 1:
        errors.append("spec.versions: exactly one version must have storage: true")
    for i, version in enumerate(versions):
        where = f"spec.versions[{i}]"
        schema = ((version.get("schema") or {}).get("openAPIV3Schema"))
        if schema is None:
            errors.append(f"{where}.schema.openAPIV3Schema: missing (required in apiextensions/v1)")
            continue
        try:
            jsonschema.Draft7Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            errors.append(f"{where}.schema.openAPIV3Schema: not a valid JSON Schema: "
                          f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}")
        _check_structural(schema, f"{where}.schema.openAPIV3Schema", errors, root=True)
        subresources = version.get("subresources") or {}
        if "status" in subresources and "status" not in (schema.get("properties") or {}):
            errors.append(f"{where}: status subresource enabled but the schema has no status")
        for j, column in enumerate(version.get("additionalPrinterColumns") or []):
            cwhere = f"{where}.additionalPrinterColumns[{j}]"
            if column.get("type") not in _PRINTER_TYPES:
                errors.append(f"{cwhere}.type: {column.get('type')!r}, expected one of "
                              f"{sorted(_PRINTER_TYPES)}")
            if not column.get("name"):
                errors.append(f"{cwhere}.name: missing")
            if not _json_path_ok(str(column.get("jsonPath", ""))):
                errors.append(f"{cwhere}.jsonPath: {column.get('jsonPath')!r} is not a simple "
                              "JSONPath such as .spec.x")
    return errors


def crd_to_json_schema(schema: dict) -> dict:
    """Turns a CRD openAPIV3Schema into a Draft 7 schema with the API server's semantics: unknown
    fields are rejected unless x-kubernetes-preserve-unknown-fields, int-or-string accepts both,
    nullable accepts null, and metadata/apiVersion/kind are accepted at the root."""
    def convert(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
        if node.get("x-kubernetes-int-or-string"):
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if "properties" in node:
            out["properties"] = {k: convert(v) for k, v in node["properties"].items()}
        if isinstance(node.get("items"), dict):
            out["items"] = convert(node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = convert(node["additionalProperties"])
        for combinator in ("allOf", "anyOf", "oneOf"):
            if combinator in node:
                out[combinator] = [convert(s) for s in node[combinator]]
        if (node.get("type") == "object" and not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node):
            out["additionalProperties"] = False
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out

    result = convert(copy.deepcopy(schema))
    props = result.setdefault("properties", {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props["metadata"] = {"type": "object"}  # ObjectMeta is validated by the API server itself
    return result


class Validator:
    """Validates documents; remembers the CRDs it has seen so their resources can be checked."""

    def __init__(self, crd_docs: Iterable[dict] = ()):
        self.crds: dict[tuple[str, str], dict] = {}  # (apiVersion, kind) -> JSON schema
        for doc in crd_docs:
            self.add_crd(doc)

    def add_crd(self, doc: dict) -> None:
        spec = doc.get("spec") or {}
        for version in spec.get("versions") or []:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema:
                key = (f"{spec.get('group')}/{version.get('name')}", (spec.get("names") or {}).get("kind"))
                self.crds[key] = crd_to_json_schema(schema)

    def validate(self, doc: Any, name: str) -> Result:
        if not isinstance(doc, dict):
            return Result(name, "FAIL", [f"document is a {type(doc).__name__}, not a mapping"])
        name = f"{name} {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        if not isinstance(doc.get("apiVersion"), str) or not isinstance(doc.get("kind"), str):
            return Result(name, "FAIL", ["apiVersion/kind missing"])
        if not (doc.get("metadata") or {}).get("name"):
            return Result(name, "FAIL", ["metadata.name missing"])
        if doc["kind"] == "CustomResourceDefinition":
            errors = check_crd(doc)
            if not errors:
                self.add_crd(doc)
            return Result(name, "FAIL" if errors else "PASS", errors)
        key = (doc["apiVersion"], doc["kind"])
        if key in self.crds:
            errors = _format_errors(jsonschema.Draft7Validator(self.crds[key]).iter_errors(doc))
            return Result(name, "FAIL" if errors else "PASS", errors)
        path = schema_file(doc)
        if not path.exists():
            return Result(name, "SKIP", [f"no schema {path}"])
        errors = _format_errors(_validator_for(path).iter_errors(doc))
        return Result(name, "FAIL" if errors else "PASS", errors)

    def validate_stream(self, text: str, source: str) -> list[Result]:
        docs = load_documents(text)
        # CRDs first, so resources in the same stream are checked whatever the order.
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition" and not check_crd(doc):
                self.add_crd(doc)
        return [self.validate(doc, f"{source}[{i}]") for i, doc in enumerate(docs)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crd", action="append", default=[], help="CRD file for custom resources")
    parser.add_argument("files", nargs="*", default=["-"])
    args = parser.parse_args(argv)
    validator = Validator()
    for crd_file in args.crd:
        for doc in load_documents(pathlib.Path(crd_file).read_text()):
            errors = check_crd(doc)
            if errors:
                print(f"FAIL {crd_file}: " + "; ".join(errors))
                return 1
            validator.add_crd(doc)
    failed = 0
    for src in args.files or ["-"]:
        text = sys.stdin.read() if src == "-" else pathlib.Path(src).read_text()
        for result in validator.validate_stream(text, src):
            print(result)
            failed += result.status == "FAIL"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
