"""The differential query suite: (name, EDN query, inputs, entity-id columns).

Queries are written in our dialect (attribute keywords); ``reference.js_edn``
turns them into the npm DataScript dialect.  Entity ids are never compared raw:
columns listed in ``eids`` (and ``db/id`` in pulled maps) are mapped to identities.
"""

from __future__ import annotations

ANCESTRY = """[[(anc ?h ?a) [?h :head/basis ?a]]
               [(anc ?h ?a) [?h :head/basis ?x] (anc ?x ?a)]]"""
ODD_EVEN = """[[(odd ?h ?a) [?h :head/basis ?a]]
               [(odd ?h ?a) [?h :head/basis ?x] (even ?x ?a)]
               [(even ?h ?a) [?h :head/basis ?x] (odd ?x ?a)]]"""
LEFT = """[[(up ?h ?a) [?h :head/basis ?a]]
           [(up ?h ?a) (up ?h ?x) [?x :head/basis ?a]]]"""
SAME_SESSION = """[[(same ?a ?b) [?a :message/session ?s] [?b :message/session ?s]]
                   [(busy ?s) [?m :message/session ?s] [?m :message/chars ?c] [(> ?c 3000)]]]"""

CASES: list[tuple[str, str, list, list[int]]] = [
    ("constant value", '[:find ?sid :where [?s :session/id ?sid] [?s :session/status "running"]]', [], []),
    ("two attributes", "[:find ?sid ?title :where [?s :session/id ?sid] [?s :session/title ?title]]", [], []),
    ("entity ids", "[:find ?s ?sid :where [?s :session/id ?sid]]", [], [0]),
    (
        "join ref",
        "[:find ?mid ?sid :where [?m :message/session ?s] [?s :session/id ?sid] [?m :message/id ?mid]]",
        [],
        [],
    ),
    (
        "scalar input",
        "[:find ?mid :in $ ?sid :where [?s :session/id ?sid] [?m :message/session ?s] [?m :message/id ?mid]]",
        ["s3"],
        [],
    ),
    (
        "collection input",
        "[:find ?mid :in $ [?sid ...] :where [?s :session/id ?sid] [?m :message/session ?s] [?m :message/id ?mid]]",
        [["s1", "s2", "nope"]],
        [],
    ),
    (
        "tuple input",
        "[:find ?mid :in $ [?sid ?role] :where [?s :session/id ?sid] [?m :message/session ?s]"
        " [?m :message/role ?role] [?m :message/id ?mid]]",
        [["s1", "user"]],
        [],
    ),
    (
        "relation input",
        "[:find ?sid ?x ?t :in $ [[?sid ?x]] :where [?s :session/id ?sid] [?s :session/title ?t]]",
        [[["s1", 1], ["s2", 2], ["zzz", 3]]],
        [],
    ),
    ("blank", "[:find ?sid :where [?s :session/id ?sid] [?s :session/tags _]]", [], []),
    ("cardinality many", "[:find ?sid ?tag :where [?s :session/tags ?tag] [?s :session/id ?sid]]", [], []),
    ("attribute variable", "[:find ?a :in $ ?mid :where [?m :message/id ?mid] [?m ?a _]]", ["s2:m0"], []),
    (
        "lookup ref constant",
        '[:find ?mid :where [?m :message/session [:session/id "s1"]] [?m :message/id ?mid]]',
        [],
        [],
    ),
    ("predicate >", "[:find ?mid :where [?m :message/chars ?c] [(> ?c 4000)] [?m :message/id ?mid]]", [], []),
    ("variadic <", "[:find ?mid :where [?m :message/chars ?c] [(< 100 ?c 900)] [?m :message/id ?mid]]", [], []),
    ("not= and <= on strings", '[:find ?r :where [_ :message/role ?r] [(not= ?r "user")] [(<= ?r "system")]]', [], []),
    (
        "two-var predicate",
        "[:find ?a ?b :where [?x :call/tokens ?a] [?y :call/tokens ?b] [?x :call/session ?s]"
        " [?y :call/session ?s] [(< ?a ?b)]]",
        [],
        [],
    ),
    ("starts-with", '[:find ?t :where [?s :session/title ?t] [(clojure.string/starts-with? ?t "session 1")]]', [], []),
    ("ends-with", '[:find ?t :where [?s :session/title ?t] [(clojure.string/ends-with? ?t "beta")]]', [], []),
    ("includes", '[:find ?t :where [?s :session/title ?t] [(clojure.string/includes? ?t "2 a")]]', [], []),
    ("count fn", "[:find ?sid ?n :where [?s :session/id ?sid] [(count ?sid) ?n]]", [], []),
    (
        "arithmetic",
        "[:find ?mid ?d :where [?m :message/chars ?c] [(* ?c 2) ?x] [(+ ?x 1) ?y] [(- ?y 3) ?d] [?m :message/id ?mid]]",
        [],
        [],
    ),
    ("str concat", '[:find ?k :where [?m :message/id ?mid] [?m :message/chars ?c] [(str ?mid "-" ?c) ?k]]', [], []),
    ("subs", "[:find ?p :where [?s :session/title ?t] [(subs ?t 0 9) ?p]]", [], []),
    (
        "re-find",
        '[:find ?t :where [?s :session/title ?t] [(re-pattern "session [0-9]+ a") ?re] [(re-find ?re ?t)]]',
        [],
        [],
    ),
    ("not", '[:find ?sid :where [?s :session/id ?sid] (not [?s :session/status "running"])]', [], []),
    (
        "not-join",
        "[:find ?sid :where [?s :session/id ?sid] (not-join [?s] [?m :message/session ?s]"
        ' [?m :message/role "system"])]',
        [],
        [],
    ),
    (
        "or",
        '[:find ?mid :where [?m :message/id ?mid] (or [?m :message/role "system"] [?m :message/role "user"])]',
        [],
        [],
    ),
    (
        "or-join",
        "[:find ?sid :where [?s :session/id ?sid] (or-join [?s] [?c :call/session ?s] [?i :invocation/caller ?s])]",
        [],
        [],
    ),
    (
        "and inside or",
        '[:find ?mid :where [?m :message/id ?mid] (or-join [?m] (and [?m :message/role "user"]'
        ' [?m :message/chars ?c] [(> ?c 2500)]) [?m :message/role "system"])]',
        [],
        [],
    ),
    (
        "rule ancestry from a head",
        "[:find ?aid :in $ % ?hid :where [?h :head/id ?hid] (anc ?h ?a) [?a :head/id ?aid]]",
        [ANCESTRY, "s5:h4"],
        [],
    ),
    (
        "rule ancestry all pairs",
        "[:find ?hid ?aid :in $ % :where (anc ?h ?a) [?h :head/id ?hid] [?a :head/id ?aid]]",
        [ANCESTRY],
        [],
    ),
    (
        "mutually recursive rules",
        "[:find ?hid ?aid :in $ % :where (odd ?h ?a) [?h :head/id ?hid] [?a :head/id ?aid]]",
        [ODD_EVEN],
        [],
    ),
    ("non-recursive rules", "[:find ?sid :in $ % :where (busy ?s) [?s :session/id ?sid]]", [SAME_SESSION], []),
    ("not over a rule", "[:find ?hid :in $ % :where [?h :head/id ?hid] (not (anc ?h _))]", [ANCESTRY], []),
    ("get-else", "[:find ?sid ?p :where [?s :session/id ?sid] [(get-else $ ?s :session/parent -1) ?p]]", [], [1]),
    (
        "get-else value",
        '[:find ?sid ?st :where [?s :session/id ?sid] [(get-else $ ?s :session/status "?") ?st]]',
        [],
        [],
    ),
    ("missing?", "[:find ?sid :where [?s :session/id ?sid] [(missing? $ ?s :session/parent)]]", [], []),
    ("ground", '[:find ?t :where [(ground "s1") ?sid] [?s :session/id ?sid] [?s :session/title ?t]]', [], []),
    (
        "ground collection",
        '[:find ?t :where [(ground ["s1" "s2"]) [?sid ...]] [?s :session/id ?sid] [?s :session/title ?t]]',
        [],
        [],
    ),
    ("identity", "[:find ?x :where [?s :session/id ?sid] [(identity ?sid) ?x]]", [], []),
    (
        "tuple and untuple",
        "[:find ?a ?b :where [?s :session/id ?sid] [?s :session/status ?st] [(tuple ?sid ?st) ?tup]"
        " [(untuple ?tup) [?a ?b]]]",
        [],
        [],
    ),
    ("count", "[:find ?sid (count ?m) :where [?m :message/session ?s] [?s :session/id ?sid]]", [], []),
    ("count-distinct", "[:find (count-distinct ?r) . :where [_ :message/role ?r]]", [], []),
    ("sum with", "[:find ?r (sum ?c) :with ?m :where [?m :message/role ?r] [?m :message/chars ?c]]", [], []),
    ("sum without with", "[:find ?r (sum ?c) :where [?m :message/role ?r] [?m :message/chars ?c]]", [], []),
    ("avg", "[:find (avg ?c) . :with ?m :where [?m :message/chars ?c]]", [], []),
    (
        "min max count",
        "[:find ?r (min ?c) (max ?c) (count ?m) :where [?m :message/role ?r] [?m :message/chars ?c]]",
        [],
        [],
    ),
    ("median", "[:find (median ?c) . :with ?m :where [?m :message/chars ?c]]", [], []),
    ("distinct", "[:find (distinct ?r) . :where [_ :message/role ?r]]", [], []),
    ("min n", "[:find (min 3 ?c) . :where [_ :message/chars ?c]]", [], []),
    ("aggregate on empty", '[:find (count ?m) . :where [?m :message/role "nobody"]]', [], []),
    ("scalar find", '[:find ?t . :where [?s :session/id "s1"] [?s :session/title ?t]]', [], []),
    ("collection find", "[:find [?sid ...] :where [?s :session/id ?sid]]", [], []),
    (
        "tuple find",
        '[:find [?t ?st] :where [?s :session/id "s2"] [?s :session/title ?t] [?s :session/status ?st]]',
        [],
        [],
    ),
    ("keys", "[:find ?sid ?st :keys sid status :where [?s :session/id ?sid] [?s :session/status ?st]]", [], []),
    (
        "pull in find",
        "[:find (pull ?s [:session/id :session/title {:session/parent [:session/id]}])"
        ' :where [?s :session/status "error"]]',
        [],
        [],
    ),
    (
        "pull reverse limit default",
        "[:find (pull ?s [:session/id {:message/_session [:message/id]}"
        ' (:session/tags :limit 1) (:session/nothing :default "none")]) :in $ [?sid ...] :where [?s :session/id ?sid]]',
        [["s4", "s5", "s6"]],
        [],
    ),
    ("pull wildcard", '[:find (pull ?h [*]) :where [?h :head/id "s3:h1"]]', [], []),
    (
        "pull nested",
        "[:find (pull ?m [:message/id {:message/turn [:turn/id :turn/status]}]) :where"
        ' [?m :message/session [:session/id "s6"]]]',
        [],
        [],
    ),
    ("pull recursion", '[:find (pull ?h [:head/id {:head/basis ...}]) . :where [?h :head/id "s9:h3"]]', [], []),
    (
        "pull with empty nested pull",
        '[:find (pull ?m [{:message/turn [:no/such]}]) :where [?m :message/id "s1:m0"]]',
        [],
        [],
    ),
    ("pull with nothing to show", '[:find (pull ?m [:no/such]) :where [?m :message/id "s1:m0"]]', [], []),
    ("cross product", "[:find ?a ?b :where [?x :invocation/status ?a] [?y :derivation/kind ?b]]", [], []),
    (
        "derivations",
        "[:find ?sid ?hid :where [?d :derivation/source-head ?h] [?h :head/id ?hid]"
        " [?d :derivation/target ?t] [?t :session/id ?sid]]",
        [],
        [],
    ),
    ("leaf heads", "[:find ?hid :where [?h :head/id ?hid] (not [_ :head/basis ?h])]", [], []),
    (
        "failed calls before a final turn",
        '[:find ?cid :where [?c :call/status "failed"] [?c :call/turn ?t]'
        ' [?t :turn/index ?i] [?c :call/session ?s] [?t2 :turn/session ?s] [?t2 :turn/status "final"]'
        " [?t2 :turn/index ?j] [(> ?j ?i)] [?c :call/id ?cid]]",
        [],
        [],
    ),
    (
        "not inside or",
        '[:find ?sid :where [?s :session/id ?sid] (or [?s :session/status "error"]'
        ' (and [?s :session/status "running"] (not [?s :session/tags "alpha"])))]',
        [],
        [],
    ),
    (
        "or inside not",
        '[:find ?sid :where [?s :session/id ?sid] (not (or [?s :session/status "error"] [?s :session/tags "beta"]))]',
        [],
        [],
    ),
    (
        "not-join two vars",
        "[:find ?mid :where [?m :message/id ?mid] [?m :message/session ?s] [?m :message/turn ?t]"
        ' (not-join [?s ?t] [?c :call/session ?s] [?c :call/turn ?t] [?c :call/status "failed"])]',
        [],
        [],
    ),
    (
        "rule calling rule",
        "[:find ?sid ?aid :in $ % :where (sess-anc ?s ?a) [?s :session/id ?sid] [?a :head/id ?aid]]",
        ["[[(sess-anc ?s ?a) [?h :head/session ?s] (anc ?h ?a)]" + ANCESTRY[1:]],
        [],
    ),
    (
        "rule with constant argument",
        '[:find ?hid :in $ % :where (anc ?h [:head/id "s3:h0"]) [?h :head/id ?hid]]',
        [ANCESTRY],
        [],
    ),
    ("min max strings", "[:find (min ?t) (max ?t) :where [_ :session/title ?t]]", [], []),
    (
        "with two vars",
        "[:find ?st (count ?r) :with ?s ?m :where [?s :session/status ?st] [?m :message/session ?s]"
        " [?m :message/role ?r]]",
        [],
        [],
    ),
    (
        "get-some",
        "[:find ?sid ?v :where [?s :session/id ?sid] [(get-some $ ?s :session/parent :session/status) [_ ?v]]]",
        [],
        [1],
    ),
    (
        "predicate between two patterns on same entity",
        "[:find ?hid :where [?h :head/id ?hid] [?h :head/basis ?b] [?b :head/kind ?k] [?h :head/kind ?k]]",
        [],
        [],
    ),
    (
        "self join on value",
        "[:find ?a ?b :where [?x :message/chars ?c] [?y :message/chars ?c] [(not= ?x ?y)]"
        " [?x :message/id ?a] [?y :message/id ?b]]",
        [],
        [],
    ),
    ("lookup ref input", "[:find ?t :in $ ?s :where [?s :session/title ?t]]", [["session/id", "s2"]], []),
    (
        "lookup ref inputs for ref values",
        "[:find ?mid :in $ [?s ...] :where [?m :message/session ?s] [?m :message/id ?mid]]",
        [[["session/id", "s1"], ["session/id", "s2"]]],
        [],
    ),
    ("tx position", "[:find ?sid ?tx :where [?s :session/id ?sid ?tx] [(< ?tx 536870920)]]", [], []),
    ("unknown attribute", "[:find ?x :where [?x :no/such ?y]]", [], []),
    ("empty collection input", "[:find ?sid :in $ [?sid ...] :where [?s :session/id ?sid]]", [[]], []),
    # session 6: the scan's bound entity sets that hold no entity, function results given to
    # get-else, lookup refs built inside an or-join (the pattern after it must wait for it)
    ("strings used as entities", "[:find ?t :where [?s :session/title ?t] [?t :session/id ?x]]", [], []),
    (
        "built lookup refs naming nobody",
        '[:find ?t :where [?s :session/id ?sid] [(str ?sid "x") ?k] [(vector :session/id ?k) ?r]'
        " [?r :session/title ?t]]",
        [],
        [],
    ),
    (
        "get-else given quotients",
        '[:find ?d :where [?m :message/chars ?c] [(/ ?c 2) ?f] [(get-else $ ?f :session/title "none") ?d]]',
        [],
        [],
    ),
    (
        "lookup refs built in an or-join",
        "[:find ?r ?t :where [?s :session/id ?sid] (or-join [?sid ?r] [(vector :session/id ?sid) ?r]"
        ' (and [(str ?sid "x") ?k] [(vector :session/id ?k) ?r])) [?r :session/title ?t]]',
        [],
        [],
    ),
]
