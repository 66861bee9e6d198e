"""Session writes, parse -> plan -> execute: the write format and `parse_write` (model.py),
the overlays a write is planned against (context.py), what each event type does (events.py),
the Datalog facts of a write (facts.py) and the group commit that runs it all (commit.py)."""
