"""Runnable examples of hitl-compliance; each runs with one command from the repository root.

See `docs/guides/examples.md` for what each one shows.
"""
