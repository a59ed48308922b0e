"""Checkers: verdicts over any history, faultline's or another project's (Jepsen's EDN,
Porcupine's logs, JSON Lines), with no knowledge of how it was made.

May import: pluginkit.
"""
