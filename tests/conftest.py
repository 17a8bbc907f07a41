from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

# the real Elasticsearch and carbon-cache fixtures (started once per session, when a test needs them)
pytest_plugins = ["tests.integration.servers"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def city_db() -> Path:
    return DATA / "geoip" / "GeoIP2-City-Test.mmdb"
