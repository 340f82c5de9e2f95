"""Benchmarks of contact journeys against a bare-Temporal baseline (`python -m bench`).

Every figure is measured twice in the same run, on the same Temporal dev
server: once through the product (the real worker, database, outbox and,
where events come in, the HTTP gateway) and once through `bench.baseline`, a
bare workflow doing the same timers, signals and activities with no toolkit,
policy or database. The ratio of the two is what stays comparable across
noisy machines. See `bench/README.md`.
"""
