"""Drop-ins that put the sessions of the agent frameworks people already run into sessiondb.

    from sessiondb.integrations.openai_agents import SessionDBSession       # sessiondb[openai-agents]
    from sessiondb.integrations.langgraph import SessionDBSaver             # sessiondb[langgraph]

Each module needs its framework (an optional extra) and says so in one ImportError naming the
extra when it is missing; this package itself imports no framework. Each accepts either a
`sessiondb.Store` (embedded: one process owns the root) or a `sessiondb.SessionClient`
(writes through the fleet, reads through its `reads` queue). The shared parts: `_backend`
(the one interface over the two), `_names` (framework ids onto session names), `_forget`
(what clearing a framework id does to its old session). See docs/integrations.md.
"""
