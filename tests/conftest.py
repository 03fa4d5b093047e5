import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def load_cases(folder: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((DATA / folder).glob("*.json"))]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
