"""Benchmarks of contact journeys against a peer and a bare-Temporal baseline (`python -m bench`).

Every figure is measured three times in the same run, on the same Temporal dev
server: through the product (the real worker, database, outbox and, where
events come in, the HTTP gateway), through `bench.peer`, the welcome series
written by hand with the same database, template and outbox work per email,
and through `bench.baseline`, a bare workflow doing the same timers, signals
and activities with no toolkit, policy or database. The ratios are what stay
comparable across noisy machines. See `bench/README.md`.
"""
