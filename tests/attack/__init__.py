"""The attack suite (see conftest.py)."""
