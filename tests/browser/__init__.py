"""Browser tests (a package, so its conftest and test_report do not clash with tests/ ones)."""
