from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def city_db() -> Path:
    return DATA / "geoip" / "GeoIP2-City-Test.mmdb"
