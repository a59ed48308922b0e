"""A run's report.html: its data read from the run directory (`data`), its figures
(`plots`, matplotlib) and the page (`html`).

May import: checkers, harness.faults, harness.rundirs.
"""
