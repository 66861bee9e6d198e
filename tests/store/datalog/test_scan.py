"""The scan contract: ``Database.scan_pattern`` returns exactly the datoms matching every constant
and every bound set it is given, whichever access path its size estimates pick.

The evaluator applies no filter after a scan, so a path that drops a constraint is a silent wrong
answer (issue 10: a bound entity set scanned without the pattern's constant value returned all ten
messages of a session instead of its one system message).  Each access path is forced here by
data large enough to cross its size threshold, and checked against a brute-force filter of all
datoms; the query-level cases of the issue run at sizes on both sides of the thresholds, against
plain expected values and against DataScript.
"""

from __future__ import annotations

import itertools

import pytest

from sessiondb.store.datalog import Database, Keyword

SCHEMA = {
    "s/id": {"db/unique": "db.unique/identity"},
    "s/tags": {"db/cardinality": "db.cardinality/many"},
    "m/id": {"db/unique": "db.unique/identity"},
    "m/s": {"db/valueType": "db.type/ref"},
}
TAGS = {0: ["a", "b"], 1: ["a"], 2: ["b"], 3: []}


def sessions_tx(n: int, per: int = 10) -> list[dict]:
    """n sessions x ``per`` messages; message 0 of each session is the one ``"system"`` message."""
    tx: list[dict] = []
    for s in range(n):
        sess = {"db/id": f"s{s}", "s/id": f"s{s}", "s/kind": f"k{s % 3}"}
        if TAGS[s % 4]:
            sess["s/tags"] = TAGS[s % 4]
        tx.append(sess)
        for m in range(per):
            tx.append({"m/id": f"s{s}:m{m}", "m/s": f"s{s}", "m/role": "system" if m == 0 else "user", "m/n": m})
    return tx


@pytest.fixture(scope="module")
def mid(tmp_path_factory):
    """60 sessions, 600 messages: big enough for every threshold, small enough to brute-force."""
    db = Database.open(tmp_path_factory.mktemp("scan") / "db.sqlite", SCHEMA)
    db.transact(sessions_tx(60))
    yield db
    db.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    db = Database.open(tmp_path_factory.mktemp("scan") / "db.sqlite", SCHEMA)
    db.transact(sessions_tx(300))
    yield db
    db.close()


# -- the contract, path by path ------------------------------------------------------------------


def _brute(datoms: list, db: Database, e, a, v) -> set:
    """The contract spelled out over every datom: the full rows scan_pattern must return."""
    out = set()
    ev = db.entid(e[1]) if e is not None and e[0] == "const" else None
    for d in datoms:
        if e is not None and (d.e != ev if e[0] == "const" else d.e not in e[1]):
            continue
        if a is None:
            labels = [d.a]
        elif a[0] == "const":
            labels = [d.a] if d.a == str(a[1]).lstrip(":") else []
        else:
            labels = [x for x in a[1] if (x.name if isinstance(x, Keyword) else str(x).lstrip(":")) == d.a]
        if v is not None:
            value = v[1]
            if isinstance(value, list) and a is not None and db.schema.is_ref(d.a):
                value = db.entid(value)  # a lookup ref as the value of a known ref attribute
            if v[0] == "const" and d.v != value:
                continue
            if v[0] == "bound" and d.v not in v[1]:
                continue
        out.update((d.e, label, d.v) for label in labels)
    return out


def _specs(db: Database):
    msgs = sorted(db.q("[:find [?m ...] :where [?m :m/id]]"))
    sess = sorted(db.q("[:find [?s ...] :where [?s :s/id]]"))
    few_msgs, many_msgs = set(msgs[:5]), set(msgs[: len(msgs) // 2])
    es = [None, ("const", msgs[0]), ("const", ["m/id", "s1:m0"]), ("bound", few_msgs), ("bound", many_msgs)]
    es += [("bound", set(sess[:3])), ("bound", set(sess))]
    attrs = [None, ("const", Keyword("m/role")), ("const", "m/n"), ("const", ":m/s"), ("const", "s/tags")]
    attrs += [("bound", {"m/role", ":m/n", Keyword("s/tags")}), ("bound", {"m/role", ":m/role"}), ("const", "no/such")]
    vs = [None, ("const", "system"), ("const", "user"), ("const", 3), ("const", "a"), ("const", ["s/id", "s2"])]
    vs += [("bound", {"system", 4}), ("bound", set(range(10)) | {"user"}), ("bound", {"b", "nope"}), ("bound", set())]
    vs += [("bound", set(sess[:2])), ("bound", set(sess))]
    return es, attrs, vs


WANTS = [(0, 1, 2), (0,), (2,), (0, 2), (1, 2)]


def test_every_path_returns_exactly_the_matching_datoms(mid):
    es, attrs, vs = _specs(mid)
    datoms = mid.datoms("eavt")
    paths: set[str] = set()
    for e, a, v in itertools.product(es, attrs, vs):
        rows = _brute(datoms, mid, e, a, v)
        for want in WANTS:
            got = mid._read(mid.scan_pattern, e, a, v, want)
            assert len(got) == len(set(got)) or want == (0, 1, 2), (e, a, v, want)
            assert set(got) == {tuple(r[i] for i in want) for r in rows}, (e, a, v, want)
            paths.update(mid.scan_paths(e, a, v, want))
    # every access path was taken at least once (the data crosses each size threshold)
    assert paths == {
        "entity",
        "any-attr",
        "any-attr-entities",
        "value",
        "value-entities",
        "value-projected",
        "entities",
        "values",
        "projected",
        "attribute",
    }


@pytest.mark.parametrize(
    ("e", "v", "want", "path"),
    [
        # a few bound messages next to the 2700 holders of "user": EAVT probe, value filtered in SQL
        ("few", ("const", "user"), (0, 1, 2), "value-entities"),
        # many bound messages: the AVET range of "user", the entities filtered afterwards (the issue's bug)
        ("many", ("const", "user"), (0, 1, 2), "value"),
        ("few", None, (0, 2), "entities"),
        ("many", None, (0, 2), "attribute"),
    ],
)
def test_a_bound_entity_set_keeps_the_constant_value(big, e, v, want, path):
    msgs = sorted(big.q("[:find [?m ...] :where [?m :m/id]]"))
    system = set(big.q('[:find [?m ...] :where [?m :m/role "system"]]'))
    bound = set(msgs[:8]) if e == "few" else set(msgs[:2000])
    spec = ("bound", bound)
    assert big.scan_paths(spec, ("const", "m/role"), v, want) == [path]
    got = big._read(big.scan_pattern, spec, ("const", "m/role"), v, want)
    expected_role = {m: ("system" if m in system else "user") for m in bound}
    expected = {
        tuple((m, "m/role", r)[i] for i in want) for m, r in expected_role.items() if v is None or r == v[1]
    }
    assert set(got) == expected


# -- the issue's query shapes at sizes on both sides of the thresholds ---------------------------------

QUERIES = [
    (
        "bound entity set + constant value",
        '[:find ?mid :in $ ?sid :where [?s :s/id ?sid] [?m :m/s ?s] [?m :m/role "system"] [?m :m/id ?mid]]',
        ["s3"],
        lambda n: [["s3:m0"]],
    ),
    (
        "lookup-ref input",
        '[:find ?mid :in $ ?s :where [?m :m/s ?s] [?m :m/role "system"] [?m :m/id ?mid]]',
        [["s/id", "s3"]],
        lambda n: [["s3:m0"]],
    ),
    (
        "not",
        '[:find ?mid :in $ ?sid :where [?s :s/id ?sid] [?m :m/s ?s] [?m :m/id ?mid] (not [?m :m/role "system"])]',
        ["s3"],
        lambda n: [[f"s3:m{m}"] for m in range(1, 10)],
    ),
    (
        "not-join",
        '[:find ?mid :in $ ?sid :where [?s :s/id ?sid] [?m :m/s ?s] [?m :m/id ?mid]'
        ' (not-join [?m] [?m :m/role "user"])]',
        ["s3"],
        lambda n: [["s3:m0"]],
    ),
    (
        "or",
        '[:find ?mid :in $ ?sid :where [?s :s/id ?sid] [?m :m/s ?s] [?m :m/id ?mid]'
        ' (or [?m :m/role "system"] [?m :m/role "admin"])]',
        ["s3"],
        lambda n: [["s3:m0"]],
    ),
    (
        "two constants on one entity variable",
        '[:find ?sid :where [?s :s/tags "a"] [?s :s/tags "b"] [?s :s/id ?sid]]',
        [],
        lambda n: [[f"s{s}"] for s in range(n) if s % 4 == 0],
    ),
    (
        "attribute variable with a constant value",
        '[:find ?a ?mid :in $ ?sid :where [?s :s/id ?sid] [?m :m/s ?s] [?m ?a "system"] [?m :m/id ?mid]]',
        ["s4"],
        lambda n: [["m/role", "s4:m0"]],
    ),
    (
        "attribute variable bound by an input",
        "[:find ?sid :in $ ?a :where [?s ?a \"k1\"] [?s :s/id ?sid]]",
        ["s/kind"],
        lambda n: [[f"s{s}"] for s in range(n) if s % 3 == 1],
    ),
]
SIZES = [5, 20, 300]


def _sorted(rows) -> list:
    return sorted([list(r) for r in rows], key=repr)


@pytest.fixture(scope="module", params=SIZES)
def sized(request, tmp_path_factory):
    n = request.param
    db = Database.open(tmp_path_factory.mktemp(f"sized{n}") / "db.sqlite", SCHEMA)
    tx = sessions_tx(n)
    db.transact(tx)
    yield n, db, tx
    db.close()


@pytest.mark.parametrize("case", QUERIES, ids=[c[0] for c in QUERIES])
def test_issue_shapes_give_the_expected_rows(sized, case):
    n, db, _tx = sized
    _name, query, inputs, expected = case
    assert _sorted(db.q(query, *inputs)) == _sorted(expected(n))


def test_issue_shapes_agree_with_datascript(sized, datascript):
    n, db, tx = sized
    ref = datascript(SCHEMA, [tx], [{"query": q, "inputs": i} for _n, q, i, _e in QUERIES])
    for (name, query, inputs, expected), r in zip(QUERIES, ref["results"], strict=True):
        assert "error" not in r, (name, r)
        assert _sorted(r["value"]) == _sorted(expected(n)) == _sorted(db.q(query, *inputs)), name
