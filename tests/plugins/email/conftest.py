from tests.plugins.channels.conftest import Api, admin, env, smtp  # noqa: F401  (fixtures)
