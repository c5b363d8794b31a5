"""The training doctor: measures a network while it trains and says, in plain words, what went
wrong and what to change in the spec (``monitor`` measures, ``verdicts`` judges)."""
