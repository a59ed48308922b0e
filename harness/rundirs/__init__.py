"""Run directories: writing one (`store`: the files of a run and the runs/latest link) and
working over many (`catalog`: what a directory holds; `compare`, `index`, `prune`; `serve`:
browsing them over HTTP, read-only).

May import: nothing of faultline outside this package.
"""
