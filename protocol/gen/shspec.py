"""shspec - parser and model of StreamHouse's protocol description language.

Shared by shgen.py (C generator), check_spec.py (comparison with Kafka's
JSON schemas) and import_json.py (one-time importer). Python 3 stdlib only.

The language (protocol/README.md has the full reference):

    # comment to the end of the line
    request  ProduceRequest  key=0 versions=0-11 flexible=9+ deprecated=0-6 listeners=zkBroker,broker
        transactional_id   string             3+  null=3+ default=null
        topic_data         []TopicProduceData 0+
            name           string             0+
            ...
    response ProduceResponse key=0 versions=0-11 flexible=9+
        ...
    struct   LeaderIdAndEpoch versions=10+      (a common struct of the message above)
        leader_id          int32              10+ default=-1

A block starts at column 0 (request, response, header or struct); fields
are indented under it, and the fields of an inline struct are indented
further under the field that declares it. A field line is

    <snake_name> <type> <versions> [null=V] [default=X] [tag=N tagged=V]
                                   [flexible=V] [ignorable]

Version sets (V) are `N`, `N-M`, `N+` or `none`.
"""

import os
import re

PRIMITIVES = (
    "bool", "int8", "int16", "uint16", "int32", "uint32", "int64",
    "float64", "string", "bytes", "records", "uuid",
)

INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
}

VMAX = 0x7FFF


class SpecError(Exception):
    pass


class Versions:
    """An inclusive version interval; lo is None for the empty set and hi
    is None when open-ended."""

    __slots__ = ("lo", "hi")

    def __init__(self, lo, hi):
        self.lo = lo
        self.hi = hi

    @staticmethod
    def parse(text):
        text = text.strip()
        if text == "none":
            return Versions(None, None)
        m = re.fullmatch(r"(\d+)\+", text)
        if m:
            return Versions(int(m.group(1)), None)
        m = re.fullmatch(r"(\d+)-(\d+)", text)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise SpecError("empty version range %r" % text)
            return Versions(lo, hi)
        m = re.fullmatch(r"\d+", text)
        if m:
            return Versions(int(text), int(text))
        raise SpecError("bad version set %r" % text)

    def empty(self):
        return self.lo is None

    def contains(self, v):
        if self.lo is None:
            return False
        return v >= self.lo and (self.hi is None or v <= self.hi)

    def intersect(self, other):
        if self.empty() or other.empty():
            return Versions(None, None)
        lo = max(self.lo, other.lo)
        if self.hi is None:
            hi = other.hi
        elif other.hi is None:
            hi = self.hi
        else:
            hi = min(self.hi, other.hi)
        if hi is not None and hi < lo:
            return Versions(None, None)
        return Versions(lo, hi)

    def c_hi(self):
        return VMAX if self.hi is None else self.hi

    def __eq__(self, other):
        return isinstance(other, Versions) and (self.lo, self.hi) == (other.lo, other.hi)

    def __hash__(self):
        return hash((self.lo, self.hi))

    def __str__(self):
        if self.lo is None:
            return "none"
        if self.hi is None:
            return "%d+" % self.lo
        if self.hi == self.lo:
            return "%d" % self.lo
        return "%d-%d" % (self.lo, self.hi)

    __repr__ = __str__


def snake(name):
    """Wire name to snake_case: TransactionalId -> transactional_id,
    V3AndBelowTopics -> v3_and_below_topics. "KRaft" is one word (kraft)."""
    s = name.replace("KRaft", "Kraft")
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return s.lower()


class Field:
    def __init__(self, name, type_, versions, line):
        self.name = name            # snake_case
        self.type = type_           # as written: int32, []int32, []Foo, Foo
        self.versions = versions
        self.nullable = Versions(None, None)
        self.default = None         # raw token as written, or None
        self.tag = None
        self.tagged = Versions(None, None)
        self.flexible = None        # field-level override, or None
        self.ignorable = False
        self.fields = None          # inline struct fields, or None
        self.line = line            # "file:line" for messages

    @property
    def is_array(self):
        return self.type.startswith("[]")

    @property
    def elem_type(self):
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self):
        return self.elem_type not in PRIMITIVES


class Struct:
    def __init__(self, name, versions, line):
        self.name = name
        self.versions = versions
        self.fields = []
        self.line = line


class Message:
    def __init__(self, kind, name, line):
        self.kind = kind            # request, response, header
        self.name = name            # CamelCase, e.g. MetadataRequest
        self.api_key = None
        self.versions = None
        self.flexible = Versions(None, None)
        self.deprecated = Versions(None, None)
        self.listeners = []
        self.unstable = False
        self.fields = []
        self.commons = []           # list of Struct
        self.line = line
        self.source = None          # spec file path, relative


def tokenize(text, where):
    """Split on blanks; double-quoted tokens keep their blanks. Comments
    (#) outside quotes end the line."""
    toks = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
            continue
        if c == "#":
            break
        start = i
        while i < n and text[i] not in " \t#":
            if text[i] == '"':
                j = text.find('"', i + 1)
                if j < 0:
                    raise SpecError("%s: unterminated quote" % where)
                i = j + 1
            else:
                i += 1
        toks.append(text[start:i])
    return toks


def unquote(tok):
    if len(tok) >= 2 and tok[0] == '"' and tok[-1] == '"':
        return tok[1:-1]
    return None


def _parse_attrs(toks, where, allowed):
    attrs = {}
    flags = set()
    for t in toks:
        if "=" in t:
            k, v = t.split("=", 1)
            if k not in allowed:
                raise SpecError("%s: unknown attribute %r" % (where, k))
            if k in attrs:
                raise SpecError("%s: attribute %r given twice" % (where, k))
            attrs[k] = v
        else:
            if t not in allowed:
                raise SpecError("%s: unknown word %r" % (where, t))
            flags.add(t)
    return attrs, flags


MSG_ATTRS = ("key", "versions", "flexible", "deprecated", "listeners", "unstable")
FIELD_ATTRS = ("null", "default", "tag", "tagged", "flexible", "ignorable")
NAME_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
TYPE_RE = re.compile(r"(\[\])?[A-Za-z][A-Za-z0-9]*\Z")


class _Parser:
    """Line-by-line state: the current message, and a stack of
    (indent, field list) for the struct being filled."""

    def __init__(self, relname):
        self.relname = relname
        self.messages = []
        self.msg = None
        self.stack = None
        self.last = None

    def block(self, toks, where):
        kw = toks[0]
        if kw in ("request", "response", "header"):
            if len(toks) < 2:
                raise SpecError("%s needs a name" % kw)
            m = Message(kw, toks[1], where)
            m.source = self.relname
            attrs, flags = _parse_attrs(toks[2:], where, MSG_ATTRS)
            if "versions" not in attrs:
                raise SpecError("%s has no versions=" % m.name)
            m.versions = Versions.parse(attrs["versions"])
            m.flexible = Versions.parse(attrs.get("flexible", "none"))
            m.deprecated = Versions.parse(attrs.get("deprecated", "none"))
            if "key" in attrs:
                m.api_key = int(attrs["key"])
            elif kw != "header":
                raise SpecError("%s has no key=" % m.name)
            if "listeners" in attrs:
                m.listeners = attrs["listeners"].split(",")
            m.unstable = "unstable" in flags
            self.messages.append(m)
            self.msg = m
            self.stack = [[None, m.fields]]
        elif kw == "struct":
            if self.msg is None:
                raise SpecError("struct outside a message")
            if len(toks) < 2:
                raise SpecError("struct needs a name")
            attrs, _ = _parse_attrs(toks[2:], where, ("versions",))
            st = Struct(toks[1], Versions.parse(attrs.get("versions", "0+")), where)
            self.msg.commons.append(st)
            self.stack = [[None, st.fields]]
        else:
            raise SpecError("expected request, response, header or struct, got %r" % kw)
        self.last = None

    def field(self, toks, indent, where):
        if self.stack is None:
            raise SpecError("field outside a message")
        if len(toks) < 3:
            raise SpecError("a field needs a name, a type and versions")
        top = self.stack[-1]
        if top[0] is None:
            top[0] = indent                     # first field fixes the level
        elif indent > top[0]:
            f = self.last
            if f is None or not f.is_struct or f.fields is not None:
                raise SpecError("unexpected indent (only under a struct field)")
            f.fields = []
            self.stack.append([indent, f.fields])
        else:
            while len(self.stack) > 1 and indent < self.stack[-1][0]:
                self.stack.pop()
            if self.stack[-1][0] != indent:
                raise SpecError("indent does not match any enclosing level")
        name, type_, vers = toks[0], toks[1], toks[2]
        if not NAME_RE.match(name):
            raise SpecError("field name %r is not snake_case" % name)
        if not TYPE_RE.match(type_):
            raise SpecError("bad type %r" % type_)
        f = Field(name, type_, Versions.parse(vers), where)
        attrs, flags = _parse_attrs(toks[3:], where, FIELD_ATTRS)
        if "null" in attrs:
            f.nullable = Versions.parse(attrs["null"])
        if "default" in attrs:
            f.default = attrs["default"]
        if "tag" in attrs:
            f.tag = int(attrs["tag"])
            if "tagged" not in attrs:
                raise SpecError("tag= without tagged=")
            f.tagged = Versions.parse(attrs["tagged"])
        elif "tagged" in attrs:
            raise SpecError("tagged= without tag=")
        if "flexible" in attrs:
            f.flexible = Versions.parse(attrs["flexible"])
        f.ignorable = "ignorable" in flags
        self.stack[-1][1].append(f)
        self.last = f


def parse_file(path, relname=None):
    """Parse one spec file; errors are SpecError("file:line: what")."""
    relname = relname or path
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    p = _Parser(relname)
    for lineno, raw in enumerate(lines, 1):
        where = "%s:%d" % (relname, lineno)
        try:
            lead = raw[: len(raw) - len(raw.lstrip())]
            if "\t" in lead:
                raise SpecError("indent with spaces, not tabs")
            toks = tokenize(raw, where)
            if not toks:
                continue
            if not lead:
                p.block(toks, where)
            else:
                p.field(toks, len(lead), where)
        except (SpecError, ValueError) as e:
            msg = str(e)
            raise SpecError(msg if msg.startswith(relname + ":") else "%s: %s" % (where, msg))
    return p.messages


def parse_dir(spec_dir):
    """All *.spec files of spec_dir in name order; returns a list of
    messages, each with .source set to its path relative to the repo."""
    out = []
    for fn in sorted(os.listdir(spec_dir)):
        if not fn.endswith(".spec"):
            continue
        path = os.path.join(spec_dir, fn)
        rel = os.path.join("protocol", "spec", fn)
        out.extend(parse_file(path, rel))
    return out


def default_value(ftype, raw, is_array=False):
    """The semantic value of a default: None for null, else a Python
    value of the type. raw is the spec token (or None = type default)."""
    if is_array or ftype not in PRIMITIVES:
        if raw is None:
            return "empty" if is_array else "default"
        if raw == "null":
            return None
        raise SpecError("only null may be the default of an array or struct, got %r" % raw)
    if ftype in ("string", "bytes", "records"):
        if raw is None:
            return None if ftype == "records" else ""
        if raw == "null":
            return None
        q = unquote(raw)
        if q is None:
            raise SpecError("a %s default must be null or quoted, got %r" % (ftype, raw))
        if ftype != "string" and q != "":
            raise SpecError("a %s default must be null or empty" % ftype)
        return q
    if raw is None:
        return False if ftype == "bool" else (0.0 if ftype == "float64" else 0)
    if ftype == "bool":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise SpecError("bad bool default %r" % raw)
    if ftype == "float64":
        return float(raw)
    if ftype == "uuid":
        raise SpecError("uuid fields take no default")
    v = int(raw, 0)
    lo, hi = INT_RANGES[ftype]
    if not lo <= v <= hi:
        raise SpecError("default %r out of range for %s" % (raw, ftype))
    return v


def resolve(msg):
    """Map struct type names to field lists for one message (inline and
    common structs). Raises on duplicates or unknown types."""
    structs = {}

    def add(name, fields, where):
        if name in structs:
            raise SpecError("%s: struct %s defined twice in %s" % (where, name, msg.name))
        structs[name] = fields

    for s in msg.commons:
        add(s.name, s.fields, s.line)

    def walk(fields):
        for f in fields:
            if f.is_struct and f.fields is not None:
                add(f.elem_type, f.fields, f.line)
                walk(f.fields)

    walk(msg.fields)
    for s in msg.commons:
        walk(s.fields)

    def check(fields):
        for f in fields:
            if f.is_struct and f.elem_type not in structs:
                raise SpecError("%s: unknown struct type %s" % (f.line, f.elem_type))
    check(msg.fields)
    for fl in structs.values():
        check(fl)
    return structs
