#!/usr/bin/python3
"""check_spec.py - verify protocol/spec agrees with Kafka's JSON schemas.

    /usr/bin/python3 protocol/gen/check_spec.py [SPEC_DIR [JSON_DIR]]

Defaults: protocol/spec and ../shared/kafka-protocol/messages, relative to
the repository root. Every request, response and header schema in the JSON
must have a message in the spec with the same API key, versions, flexible
versions, deprecated versions, listeners and unstable flag, and the same
fields in the same order with the same type, versions, nullable versions,
default (compared by value), tag, tagged versions, flexible override and
ignorable flag; common structs likewise. Prints one line per difference
and exits 1, or prints one OK line.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, HERE)
import shspec  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def load_json(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    return json.loads(text)


def json_default_token(f):
    raw = f.get("default")
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        return str(raw)
    if f["type"] in ("string", "bytes", "records") and raw != "null":
        return '"%s"' % raw
    return raw


class Checker:
    def __init__(self):
        self.errors = []

    def err(self, where, what):
        self.errors.append("%s: %s" % (where, what))

    def versions(self, where, what, spec_v, json_text):
        jv = shspec.Versions.parse(json_text) if json_text is not None else shspec.Versions(None, None)
        if spec_v != jv:
            self.err(where, "%s is %s in the spec but %s in the JSON" % (what, spec_v, jv))

    def fields(self, path, jfields, sfields, jname):
        jnames = [shspec.snake(f["name"]) for f in jfields]
        snames = [f.name for f in sfields]
        if jnames != snames:
            missing = [n for n in jnames if n not in snames]
            extra = [n for n in snames if n not in jnames]
            where = sfields[0].line if sfields else jname
            if missing or extra:
                self.err(where, "%s: fields differ: missing %s, not in the JSON %s"
                         % (path, missing or "none", extra or "none"))
            else:
                self.err(where, "%s: field order differs: spec %s, JSON %s" % (path, snames, jnames))
            return
        for jf, sf in zip(jfields, sfields):
            p = "%s.%s" % (path, sf.name)
            w = sf.line
            if jf["type"] != sf.type:
                self.err(w, "%s: type %s in the spec but %s in the JSON" % (p, sf.type, jf["type"]))
                continue
            self.versions(w, p + " versions", sf.versions, jf["versions"])
            self.versions(w, p + " nullable versions", sf.nullable, jf.get("nullableVersions"))
            jtag = int(jf["tag"]) if "tag" in jf else None
            if jtag != sf.tag:
                self.err(w, "%s: tag %s in the spec but %s in the JSON" % (p, sf.tag, jtag))
            self.versions(w, p + " tagged versions", sf.tagged, jf.get("taggedVersions"))
            jflex = jf.get("flexibleVersions")
            if (jflex is None) != (sf.flexible is None) or (
                    jflex is not None and shspec.Versions.parse(jflex) != sf.flexible):
                self.err(w, "%s: flexible override %s in the spec but %s in the JSON"
                         % (p, sf.flexible, jflex))
            if bool(jf.get("ignorable")) != sf.ignorable:
                self.err(w, "%s: ignorable %s in the spec but %s in the JSON"
                         % (p, sf.ignorable, bool(jf.get("ignorable"))))
            try:
                sdef = shspec.default_value(sf.elem_type, sf.default, sf.is_array)
                jdef = shspec.default_value(sf.elem_type, json_default_token(jf), sf.is_array)
                if sdef != jdef or type(sdef) is not type(jdef):
                    self.err(w, "%s: default %r in the spec but %r in the JSON" % (p, sdef, jdef))
            except shspec.SpecError as e:
                self.err(w, "%s: %s" % (p, e))
            if ("fields" in jf) != (sf.fields is not None):
                self.err(w, "%s: struct %s is %s in the spec but %s in the JSON" % (
                    p, sf.elem_type, "inline" if sf.fields is not None else "common",
                    "inline" if "fields" in jf else "common"))
            elif "fields" in jf:
                self.fields(p, jf["fields"], sf.fields, jname)

    def message(self, d, m, jname):
        w = m.line
        kind = d["type"]
        if m.kind != kind:
            self.err(w, "%s is a %s in the spec but a %s in the JSON" % (m.name, m.kind, kind))
        if d.get("apiKey") != m.api_key:
            self.err(w, "%s: API key %s in the spec but %s in the JSON" % (m.name, m.api_key, d.get("apiKey")))
        self.versions(w, m.name + " versions", m.versions, d["validVersions"])
        self.versions(w, m.name + " flexible versions", m.flexible, d["flexibleVersions"])
        self.versions(w, m.name + " deprecated versions", m.deprecated, d.get("deprecatedVersions"))
        if list(d.get("listeners", [])) != m.listeners:
            self.err(w, "%s: listeners %s in the spec but %s in the JSON" % (m.name, m.listeners, d.get("listeners", [])))
        if bool(d.get("latestVersionUnstable")) != m.unstable:
            self.err(w, "%s: unstable %s in the spec but %s in the JSON" % (m.name, m.unstable, bool(d.get("latestVersionUnstable"))))
        self.fields(m.name, d["fields"], m.fields, jname)
        jcs = d.get("commonStructs", [])
        if [c["name"] for c in jcs] != [s.name for s in m.commons]:
            self.err(w, "%s: common structs %s in the spec but %s in the JSON"
                     % (m.name, [s.name for s in m.commons], [c["name"] for c in jcs]))
            return
        for c, s in zip(jcs, m.commons):
            self.versions(s.line, "%s.%s versions" % (m.name, s.name), s.versions, c["versions"])
            self.fields("%s.%s" % (m.name, s.name), c["fields"], s.fields, jname)


def main():
    spec_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "protocol", "spec")
    json_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "..", "shared", "kafka-protocol", "messages")
    if not os.path.isdir(json_dir):
        print("check_spec: %s not found; nothing to compare" % json_dir)
        return 0
    try:
        msgs = shspec.parse_dir(spec_dir)
    except shspec.SpecError as e:
        print("check_spec: FAIL: %s" % e)
        return 1
    by_name = {m.name: m for m in msgs}
    c = Checker()
    seen = set()
    count = 0
    for fn in sorted(os.listdir(json_dir)):
        if not fn.endswith(".json"):
            continue
        d = load_json(os.path.join(json_dir, fn))
        if d["type"] not in ("request", "response", "header"):
            continue
        count += 1
        m = by_name.get(d["name"])
        if m is None:
            c.err(fn, "%s is missing from the spec" % d["name"])
            continue
        seen.add(m.name)
        c.message(d, m, fn)
    for m in msgs:
        if m.name not in seen:
            c.err(m.line, "%s is in the spec but has no JSON schema" % m.name)
    for e in c.errors:
        print(e)
    if c.errors:
        print("check_spec: FAIL: %d difference(s) between %s and %s" % (len(c.errors), spec_dir, json_dir))
        return 1
    print("check_spec: OK: %d messages agree with %s" % (count, os.path.relpath(json_dir, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
