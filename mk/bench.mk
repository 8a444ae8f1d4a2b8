# Benchmarks (not timed tests): `make bench` prints each figure beside its
# goal and writes bench/results.json. It measures the release bootstraps
# `make sam-build` leaves in target/lambda/ (the packages SAM deploys), and
# runs the Python/boto3 peer of bench/python/ from a virtualenv of its own
# (.venv/bench: its boto3 pin differs from the SAM CLI's).
#   make bench                 every part (about 10 minutes on 2 cores)
#   make bench BENCH_ARGS='--parts cold --runs 20'

.PHONY: bench

BENCH_VENV := $(VENV)/bench
BENCH_REQUIREMENTS := bench/python/requirements.txt
BENCH_ARGS ?=

$(eval $(call sub_venv,BENCH))

# compare_wire.py first: the peer must send the Rust functions' requests,
# body for body, or the comparison means nothing.
bench: tools sam-build $(BENCH_STAMP)
	$(CARGO) build $(CARGO_FLAGS) -p gild-tests --bin gild-bench
	$(BENCH_VENV)/bin/python bench/python/compare_wire.py
	./target/debug/gild-bench --python $(BENCH_VENV)/bin/python $(BENCH_ARGS)
