"""The derived Datalog index: `<root>/index.sqlite`, built only from the store's tx log
(derived.py), and the replay comparison that checks it (replay.py). Deleting the index
loses nothing: `Index.rebuild` makes it again from the log."""

from .derived import LINK, Index

__all__ = ["LINK", "Index"]
