"""The rows of store.sqlite: the SQLite schema, its engine and migrations (schema.py), and
branch membership, the sets of event ids that make a head or a current branch (branch.py)."""
