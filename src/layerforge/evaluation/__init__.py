"""Judging a spec beyond one run: how its metrics move with the seed (``seeds``)."""
