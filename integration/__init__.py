"""Integration tier: the local real stack (launcher) and its end-to-end tests."""
