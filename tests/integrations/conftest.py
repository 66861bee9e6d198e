"""Fleet fixtures (real redis-server, real worker subprocesses): see tests/fleet_fixtures."""

from fleet_fixtures import fleet, redis_server  # noqa: F401
