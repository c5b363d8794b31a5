"""Pictures and pages about runs: plots written as PNG files (matplotlib, no display needed)."""
