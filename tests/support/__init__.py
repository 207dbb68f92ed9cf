"""Test support: a real Crossbar node on a free port, WAMP clients, databases."""
