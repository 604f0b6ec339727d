#!/usr/bin/env python3
"""Strict validation of rendered manifests (tests/packaging.sh).

  validate.py K8S_VERSION RENDERED.yaml...

Core kinds: kubernetes-validate's schemas of that Kubernetes release,
strict (an unknown field is an error). The custom resources (cert-manager
Issuer and Certificate, prometheus-operator ServiceMonitor and
PrometheusRule) have no schema there: they are checked against the strict
schemas below, written from the CRDs' reference (cert-manager.io/v1,
monitoring.coreos.com/v1) for the fields these manifests may use; any
other field, or a kind known to neither, is an error. Before anything, each
object is validated once more with a field that does not exist added to
it, which must fail: a validator that accepts anything fails the test.
"""
import copy
import sys

import kubernetes_validate
import yaml


def obj(props, required=()):
    return {"type": "object", "properties": props, "required": list(required),
            "additionalProperties": False}


STR = {"type": "string"}
INT = {"type": "integer"}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = obj({"name": STR, "namespace": STR, "labels": STRMAP, "annotations": STRMAP}, ["name"])
ISSUER_REF = obj({"name": STR, "kind": {"enum": ["Issuer", "ClusterIssuer"]}, "group": STR}, ["name"])
LABEL_SELECTOR = obj({"matchLabels": STRMAP})
RULE = obj({
    "alert": STR, "record": STR, "expr": {"type": ["string", "integer"]}, "for": STR,
    "keep_firing_for": STR, "labels": STRMAP, "annotations": STRMAP,
}, ["expr"])

CRDS = {
    ("cert-manager.io/v1", "Issuer"): obj({
        "apiVersion": STR, "kind": STR, "metadata": METADATA,
        "spec": obj({"ca": obj({"secretName": STR, "crlDistributionPoints": {"type": "array", "items": STR}}, ["secretName"])}, ["ca"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("cert-manager.io/v1", "Certificate"): obj({
        "apiVersion": STR, "kind": STR, "metadata": METADATA,
        "spec": obj({
            "secretName": STR, "issuerRef": ISSUER_REF, "commonName": STR,
            "dnsNames": {"type": "array", "items": STR, "minItems": 1},
            "ipAddresses": {"type": "array", "items": STR},
            "usages": {"type": "array", "items": {"enum": [
                "signing", "digital signature", "key encipherment", "server auth", "client auth"]}},
            "duration": {"type": "string", "pattern": "^[0-9]+(h|m|s)$"},
            "renewBefore": {"type": "string", "pattern": "^[0-9]+(h|m|s)$"},
            "privateKey": obj({
                "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]}, "size": INT,
                "encoding": {"enum": ["PKCS1", "PKCS8"]}, "rotationPolicy": {"enum": ["Never", "Always"]},
            }),
        }, ["secretName", "issuerRef"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): obj({
        "apiVersion": STR, "kind": STR, "metadata": METADATA,
        "spec": obj({
            "selector": LABEL_SELECTOR,
            "namespaceSelector": obj({"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": STR}}),
            "endpoints": {"type": "array", "minItems": 1, "items": obj({
                "port": STR, "path": STR, "interval": STR, "scrapeTimeout": STR,
                "scheme": {"enum": ["http", "https"]}, "honorLabels": {"type": "boolean"},
            })},
        }, ["selector", "endpoints"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("monitoring.coreos.com/v1", "PrometheusRule"): obj({
        "apiVersion": STR, "kind": STR, "metadata": METADATA,
        "spec": obj({"groups": {"type": "array", "minItems": 1, "items": obj({
            "name": STR, "interval": STR, "limit": INT,
            "rules": {"type": "array", "items": RULE},
        }, ["name", "rules"])}}, ["groups"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
}


def check(doc, version):
    """Raises on an invalid object; returns how it was validated."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRDS:
        import jsonschema
        jsonschema.validate(doc, CRDS[key])
        return "CRD schema"
    kubernetes_validate.validate(doc, version, strict=True)
    return "kubernetes " + version


def main():
    version, files = sys.argv[1], sys.argv[2:]
    failed = 0
    count = 0
    for path in files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            count += 1
            name = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            bogus = copy.deepcopy(doc)
            bogus.setdefault("metadata", {})["notAField"] = "x"
            try:
                check(bogus, version)
                print(f"FAIL {name}: the validator accepted an unknown field", file=sys.stderr)
                failed += 1
                continue
            except Exception:  # noqa: BLE001 - any rejection is what we want
                pass
            try:
                check(doc, version)
            except Exception as e:  # noqa: BLE001
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                print(f"FAIL {name}: {type(e).__name__}: {msg}", file=sys.stderr)
                failed += 1
    if failed:
        sys.exit(1)
    print(f"validate.py: {count} objects valid (strict, Kubernetes {version}, CRDs by their own schemas)")


if __name__ == "__main__":
    main()
