"""How each worker role runs: the group-committing writer (lock, takeover, group commit,
receipts, index notification); indexer, scanner and reader are plain Celery workers on
their queues (see `workers.roles`). Nothing here is imported by producers.
"""
