"""DataScript beside sessiondb's Datalog engine: a session-like dataset generator and a node runner.

Owns `dataset` (sessions, messages, turns, heads with branching ancestry, calls, invocations,
derivations as DataScript-style transactions) and `reference` (runs npm datascript@1.8.1
through node on the same transactions and queries). The differential tests
(tests/store/datalog) and the Datalog benchmark (ops/bench/datalog.py) both use them.
The generative differential tester is `fuzz` (driver) with `grammar` (random schemas, data and
queries), `engines` (a long-lived DataScript session, js/session.js), `canon` (comparison) and
`shrink`; ops/bench/datalog_fuzz.py and tests/store/datalog/test_fuzz.py run it. Never
imported by the product: it exists to check and measure the engine against DataScript.
"""
