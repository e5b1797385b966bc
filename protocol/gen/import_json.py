#!/usr/bin/python3
"""import_json.py - one-time importer: Kafka's JSON message schemas -> protocol/spec.

    /usr/bin/python3 protocol/gen/import_json.py ../shared/kafka-protocol/messages protocol/spec

Writes one <api>.spec per API key (request + response) and headers.spec.
Only facts are carried over (names, types, versions, nullability,
defaults, tags, flexible overrides, listeners); descriptions are not.
After the import the spec files are the source of truth: edit them by
hand and let check_spec.py compare them with the JSON when it is around.
"""

import json
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shspec  # noqa: E402


def load_json(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # the schemas carry // comments, which strict JSON does not allow
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    return json.loads(text)


def default_token(field):
    raw = field.get("default")
    if raw is None:
        return None
    t = field["type"]
    if isinstance(raw, bool):
        raw = "true" if raw else "false"
    elif isinstance(raw, (int, float)):
        raw = str(raw)
    if t in ("string", "bytes", "records") and raw != "null":
        return '"%s"' % raw
    if t == "bool":
        return raw.lower()
    return raw


def field_rows(fields, depth, rows):
    for f in fields:
        cols = [("    " * depth) + shspec.snake(f["name"]), f["type"], f["versions"]]
        attrs = []
        if "nullableVersions" in f:
            attrs.append("null=%s" % f["nullableVersions"])
        d = default_token(f)
        if d is not None:
            attrs.append("default=%s" % d)
        if "tag" in f:
            attrs.append("tag=%d" % int(f["tag"]))
            attrs.append("tagged=%s" % f["taggedVersions"])
        if "flexibleVersions" in f:
            attrs.append("flexible=%s" % f["flexibleVersions"])
        if f.get("ignorable"):
            attrs.append("ignorable")
        rows.append(cols + [" ".join(attrs)])
        if "fields" in f:
            field_rows(f["fields"], depth + 1, rows)


def format_rows(rows):
    if not rows:
        return []
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    out = []
    for r in rows:
        line = "%-*s  %-*s  %-*s  %s" % (w0, r[0], w1, r[1], w2, r[2], r[3])
        out.append(line.rstrip())
    return out


def message_text(d):
    head = [d["type"], d["name"]]
    if "apiKey" in d:
        head.append("key=%d" % d["apiKey"])
    head.append("versions=%s" % d["validVersions"])
    head.append("flexible=%s" % d["flexibleVersions"])
    if d.get("deprecatedVersions"):
        head.append("deprecated=%s" % d["deprecatedVersions"])
    if d.get("listeners"):
        head.append("listeners=%s" % ",".join(d["listeners"]))
    if d.get("latestVersionUnstable"):
        head.append("unstable")
    lines = [" ".join(head)]
    rows = []
    field_rows(d["fields"], 1, rows)
    lines += format_rows(rows)
    for cs in d.get("commonStructs", []):
        lines.append("struct %s versions=%s" % (cs["name"], cs["versions"]))
        rows = []
        field_rows(cs["fields"], 1, rows)
        lines += format_rows(rows)
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: import_json.py JSON_DIR SPEC_DIR")
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    by_key = {}
    headers = []
    for fn in sorted(os.listdir(src)):
        if not fn.endswith(".json"):
            continue
        d = load_json(os.path.join(src, fn))
        if d["type"] == "header":
            headers.append(d)
        elif d["type"] in ("request", "response"):
            by_key.setdefault(d["apiKey"], {})[d["type"]] = d
    hdr = ["# Request and response headers (every frame starts with one).",
           "# Syntax: protocol/README.md. Regenerate the C with `make gen`.", ""]
    for d in sorted(headers, key=lambda d: d["name"] != "RequestHeader"):
        hdr.append(message_text(d))
    with open(os.path.join(dst, "headers.spec"), "w", encoding="utf-8") as f:
        f.write("\n".join(hdr))
    for key, pair in sorted(by_key.items()):
        api = pair["request"]["name"][: -len("Request")]
        text = ["# %s (API key %d): request and response bodies." % (api, key),
                "# Syntax: protocol/README.md. Regenerate the C with `make gen`.", ""]
        text.append(message_text(pair["request"]))
        text.append(message_text(pair["response"]))
        with open(os.path.join(dst, shspec.snake(api) + ".spec"), "w", encoding="utf-8") as f:
            f.write("\n".join(text))
    print("import_json: %d APIs and %d headers written to %s" % (len(by_key), len(headers), dst))


if __name__ == "__main__":
    main()
