# Shortcuts for people who have make; dev.py does the work (and needs only Python).
.PHONY: up test bench bench-full
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

up:
	python3 dev.py up
test:
	python3 dev.py test
# The figures of issue 6 (docs/benchmarks.md). `bench` is the CI size (a few
# minutes); `bench-full` the issue's sizes (the 10,000-subscription spike alone
# takes over 20 minutes at Stripe's test-mode limit). JSON goes to var/bench/.
bench:
	$(PYTHON) -m bench all --small --json var/bench/small.json
bench-full:
	$(PYTHON) -m bench all --full --json var/bench/full.json
