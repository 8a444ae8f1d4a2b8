# Fuzzing with cargo-fuzz (libFuzzer) on the stable toolchain, without a
# sanitizer (`-s none`): the targets are safe Rust, so what is looked for is
# panics and broken properties (gild_core::fuzzing, gild_slack::fuzzing; both
# behind their crate's `fuzzing` feature, which fuzz/Cargo.toml turns on).
#   make fuzz-smoke      a short bounded campaign per target (part of make test)
#   make fuzz-campaign   FUZZ_SECONDS per target (default 600), corpus kept
# Each target reads fuzz/corpus/<target>/ and fuzz/regressions/<target>/
# (inputs for defects the project fixed, fuzz/regressions/README.md). The
# replay of both on plain `cargo test` is crates/core/tests/fuzz_corpus.rs
# and crates/slack/tests/fuzz_corpus.rs.

CHECKS += fuzz-smoke

.PHONY: fuzz-tool fuzz-smoke fuzz-campaign

CARGO_FUZZ_VERSION := 0.13.1
CARGO_FUZZ_ROOT := .tools/cargo-fuzz-$(CARGO_FUZZ_VERSION)
CARGO_FUZZ := $(CARGO_FUZZ_ROOT)/bin/cargo-fuzz
FUZZ_TARGETS := webhook eventbridge catalog slack
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_SECONDS ?= 600

$(CARGO_FUZZ):
	$(CARGO) install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked --root $(CARGO_FUZZ_ROOT)

fuzz-tool: $(CARGO_FUZZ)

# Each run is seeded with the committed corpus and regressions and writes
# new inputs to a scratch dir: libFuzzer writes only to the first corpus dir
# it is given, so the scratch dir comes first and `make test` never changes
# tracked files. A finding fails the run and leaves its input in
# fuzz/artifacts/<target>/. A missing seed dir is named here, as libFuzzer
# would stop on it with the same exit status as a finding.
fuzz-smoke: $(CARGO_FUZZ)
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		for seeds in corpus/$$target regressions/$$target; do \
			[ -n "$$(ls -A $$seeds 2>/dev/null)" ] || { echo "fuzz/$$seeds is missing or empty"; exit 1; }; \
		done; \
		scratch=$$(mktemp -d); \
		if ! ../$(CARGO_FUZZ) run -s none $$target $$scratch corpus/$$target regressions/$$target -- \
			-max_total_time=$(FUZZ_SMOKE_SECONDS) -print_final_stats=1 > $$scratch.log 2>&1; then \
			tail -n 40 $$scratch.log; echo "fuzz target $$target found a failing input (fuzz/artifacts/$$target/)"; exit 1; \
		fi; \
		echo "fuzz $$target: $$(grep -E '^INFO: seed corpus: files: [0-9]+' -o $$scratch.log | sed 's/^INFO: //'); $$(grep -E '^Done' $$scratch.log)"; \
		rm -rf $$scratch $$scratch.log; \
	done

# New inputs go to corpus/<target> (the first dir); regressions/<target>
# only seeds the run and is never minimised away by cmin.
fuzz-campaign: $(CARGO_FUZZ)
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		../$(CARGO_FUZZ) run -s none $$target corpus/$$target regressions/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | tail -n 20; \
		../$(CARGO_FUZZ) cmin -s none $$target corpus/$$target; \
	done
