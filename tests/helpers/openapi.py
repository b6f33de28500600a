"""The structural check of an OpenAPI 3.1 document, for the generator's unit tests and for the
real application's document (integration)."""

from __future__ import annotations

from typing import Any

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def assert_valid_openapi(doc: dict[str, Any]) -> None:
    """The structural rules of OpenAPI 3.1 that a generator can get wrong."""
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["title"] and doc["info"]["version"]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    op_ids: list[str] = []
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        for method, op in item.items():
            assert method in HTTP_METHODS, f"{method} {path}"
            op_ids.append(op["operationId"])
            assert op["summary"], f"{method} {path} has no summary"
            assert op["responses"], f"{method} {path} has no responses"
            for status, response in op["responses"].items():
                assert isinstance(status, str) and status.isdigit()
                assert response["description"]
            for requirement in op.get("security", []):
                assert set(requirement) <= set(schemes)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            templated = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
            assert declared == templated, f"{method} {path}: path parameters {declared}"
            for param in op.get("parameters", []):
                assert param["in"] in {"path", "query", "header", "cookie"}
                if param["in"] == "path":
                    assert param["required"] is True
    assert len(op_ids) == len(set(op_ids)), "duplicate operationId"
    schemas = doc["components"].get("schemas", {})
    for ref in _refs(doc):
        prefix = "#/components/schemas/"
        assert ref.startswith(prefix), ref
        assert ref[len(prefix):] in schemas, f"dangling $ref {ref}"
