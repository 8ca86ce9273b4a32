# tests/fuzz/fuzz.mk — fuzzing and the sanitizer build (issue #8). Included at the end of
# the main Makefile (it uses PKGS and LDLIBS):
#
#   make fuzz         every libFuzzer target for FUZZ_SECONDS (300) each; FUZZ_RUN="booth config"
#                     picks targets. The corpus grows in build/fuzz/corpus/NAME; crashes land in
#                     build/fuzz/crash-NAME-*: copy them to tests/fuzz/corpus/NAME/ once fixed.
#   make fuzz-smoke   every target for FUZZ_SMOKE_SECONDS (3) each, from the seeds in
#                     tests/fuzz/corpus/NAME/ (regressions among them): part of `make test`.
#   make asan         the server, tools and unit checks built with ASan + UBSan into build-asan/,
#                     then the unit checks and every integration test run against them, with
#                     their time limits times ASAN_TIME_SCALE (3); ASAN_LEAKS=1 adds LeakSanitizer.
#
# Targets: tests/fuzz/fuzz_NAME.c, each a LLVMFuzzerTestOneInput over one parser (see the
# comment at the top of each). They link build/fuzz/libdragoman.a (every src/ object but
# main.o, built with clang, coverage and sanitizers): the linker takes only what a target
# needs. One process per target at a time: one core. Needs clang and libclang-rt-dev.

FUZZ_CC            ?= clang
FUZZ_BUILD         ?= build/fuzz
FUZZ_SECONDS       ?= 300
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_SANITIZE       = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# the main build's warnings, not -Werror: clang warns about other things than gcc, and a
# new warning in someone's src/ change must not stop `make test` here
FUZZ_CFLAGS         = -std=gnu11 -O1 -g $(FUZZ_SANITIZE) -Wall -Wextra -Wno-unused-parameter \
                      -Wno-missing-field-initializers $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_TARGETS       := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_RUN           ?= $(FUZZ_TARGETS)
FUZZ_BINS           = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_OBJS          := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out src/main.c,$(wildcard src/*.c)))
FUZZ_LIB            = $(FUZZ_BUILD)/libdragoman.a
# a leak is a finding; GLib's and json-glib's type system stays allocated by design
FUZZ_ENV            = ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
                      G_SLICE=always-malloc G_DEBUG=gc-friendly
FUZZ_FLAGS          = -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -close_fd_mask=1

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-toolchain asan asan-build asan-check asan-integration

fuzz-build: fuzz-toolchain $(FUZZ_BINS)

# libFuzzer is in libclang-rt-dev, only recommended by clang: `make deps` installs with
# --no-install-recommends
fuzz-toolchain:
	@printf 'int LLVMFuzzerTestOneInput (const char *d, unsigned long n) { return 0; }\n' | \
	  $(FUZZ_CC) -x c - -fsanitize=fuzzer -o /dev/null 2>/dev/null || \
	  { echo "fuzz: $(FUZZ_CC) cannot link libFuzzer: apt-get install clang libclang-rt-dev"; exit 1; }

$(FUZZ_BUILD)/obj/%.o: src/%.c src/*.h | $(FUZZ_BUILD)/obj
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJS)
	@rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_LIB)
	@echo "  FUZZ    $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Isrc $< $(FUZZ_LIB) -o $@ $(LDLIBS)

$(FUZZ_BUILD)/obj:
	mkdir -p $@

# run_fuzz SECONDS: each target of FUZZ_RUN, new inputs into build/fuzz/corpus/NAME, the
# seeds read from tests/fuzz/corpus/NAME; a crash prints the end of its log, the other
# targets still run, and the rule fails. One line per target in build/fuzz/summary.txt.
define run_fuzz
	@: > $(FUZZ_BUILD)/summary.txt; failed=; for t in $(FUZZ_RUN); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	  log=$(FUZZ_BUILD)/fuzz_$$t.log; \
	  printf '== fuzz %-8s %4s s: ' $$t $(1); \
	  if ! $(FUZZ_ENV) nice $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_FLAGS) -max_total_time=$(1) $$dict \
	      -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t >$$log 2>&1; then \
	    echo "FAILED ($$log)"; grep -a -E -A40 '^fuzz:|ERROR: (Address|Leak|libFuzzer)|runtime error' $$log | head -n 60; \
	    failed="$$failed $$t"; continue; fi; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
	  rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log); \
	  cov=$$(grep -a -o 'cov: [0-9]*' $$log | tail -n 1); \
	  units=$$(ls $(FUZZ_BUILD)/corpus/$$t | wc -l); \
	  echo "$$t: $$runs runs, $$rate exec/s, $$cov, corpus $$units" >> $(FUZZ_BUILD)/summary.txt; \
	  echo "ok, $$runs runs, $$rate exec/s, $$cov, corpus $$units"; \
	done; [ -z "$$failed" ] || { echo "fuzz: failed:$$failed (inputs: $(FUZZ_BUILD)/crash-*)"; exit 1; }
endef

fuzz: fuzz-toolchain $(FUZZ_BINS)
	$(call run_fuzz,$(FUZZ_SECONDS))

fuzz-smoke: fuzz-toolchain $(FUZZ_BINS)
	$(call run_fuzz,$(FUZZ_SMOKE_SECONDS))

# ---- ASan + UBSan ---------------------------------------------------------------------------
#
# The main Makefile's own rules with BUILD=build-asan, and the sanitizer flags in CFLAGS
# through the environment (its `CFLAGS +=` then adds the warnings and pkg-config flags; a
# CFLAGS on the command line would replace them). The integration tests run build/dragoman
# relative to the repository root (ROOT = their own path, two levels up), so they run from a
# tree of links, build-asan/tree: the repository's directories, and a build/ holding the
# sanitized binaries and the main build's demo voices.
#
# LeakSanitizer is off by default (GStreamer keeps plugins, registry and caps to exit);
# ASAN_LEAKS=1 turns it on for the unit checks and the server (suppressions, each with its
# reason: tests/fuzz/lsan.supp), not for the test tools the scripts run (wsprobe, boothpeer:
# clients that exit without freeing; a report there failed every booth test). UBSan stops at
# the first finding.

ASAN_BUILD   ?= build-asan
ASAN_CFLAGS  ?= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
ASAN_LEAKS   ?= 0
ASAN_TOOLS    = dragoman wsprobe loadgen clickbench boothpeer
ASAN_CHECKS   = $(patsubst tests/check/%.c,$(ASAN_BUILD)/check/%,$(wildcard tests/check/*.c))
# Leaks need slow unwinding: the libraries are built without frame pointers, so a fast
# unwind stops at g_malloc and neither our frames nor a suppression's show. 16 frames: with 40
# the server fell behind real time (a listener's delay p95 1.3 s, packets lost); with 16 it
# kept up on a quiet machine (p95 0.1 s, no gaps) and an allocation's caller in src/ is still
# in the stack. On a loaded one (load 30-48) it did not: gaps, WebRTC ICE in 25 s, failures
# the time scale cannot cover; the leak reports of such a run still count.
ASAN_UNWIND   = $(if $(filter 1,$(ASAN_LEAKS)),:fast_unwind_on_malloc=0:malloc_context_size=16)
ASAN_OPTS     = abort_on_error=1:detect_stack_use_after_return=0
ASAN_LSAN     = LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp:print_suppressions=0 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 G_SLICE=always-malloc
ASAN_ENV      = ASAN_OPTIONS=detect_leaks=$(ASAN_LEAKS):$(ASAN_OPTS)$(ASAN_UNWIND) $(ASAN_LSAN)
# the integration scripts' environment: no leak checks (the tools); the server's own
# ASAN_OPTIONS come from its wrapper, build-asan/tree/build/dragoman
ASAN_TOOL_ENV = ASAN_OPTIONS=detect_leaks=0:$(ASAN_OPTS) $(ASAN_LSAN)
# what the tree links to (tests, pages, configs, pipelines, tools the tests call)
ASAN_TREE     = configs pipelines web tests tools docs

asan: asan-check asan-integration

asan-build:
	@CFLAGS='$(ASAN_CFLAGS)' $(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) MALLOC=glibc \
	  $(ASAN_TOOLS:%=$(ASAN_BUILD)/%) $(ASAN_CHECKS)

asan-check: asan-build
	@set -e; for t in $(ASAN_CHECKS); do echo "== asan $$t"; $(ASAN_ENV) $$t; done

# Every tests/integration/*.sh and *.py but the modules (wsclient.py, harness.py), all of them
# even after a failure; then the sanitizers' reports from the servers'
# logs (build-asan/tree/build/test-artifacts/, emptied first). A sanitized server is 2-3 times
# slower, so the tests run with DRAGOMAN_TIME_SCALE=$(ASAN_TIME_SCALE): every deadline, wait for the server
# and latency limit (healthy within 20 s, back to the floor within 500 ms, delay p95 <= 200 ms)
# is multiplied by it, never a correctness check (which tone on which channel, no gaps,
# byte-exact, counts): scaled() in tests/integration/harness.py, the one place. The soak runs
# as in `make integration` (36 s). A report is always a bug.
ASAN_REPORTS = ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:
ASAN_TIME_SCALE ?= 3
ASAN_TEST_ENV    = DRAGOMAN_TIME_SCALE=$(ASAN_TIME_SCALE) SOAK_MINUTES=0.6 SOAK_STAGE_PERIOD=12

asan-integration: asan-build media
	@rm -rf $(ASAN_BUILD)/tree/build/test-artifacts && mkdir -p $(ASAN_BUILD)/tree/build/test-artifacts
	@for d in $(ASAN_TREE); do ln -sfn $(CURDIR)/$$d $(ASAN_BUILD)/tree/$$d; done
	@for b in $(filter-out dragoman,$(ASAN_TOOLS)); do ln -sfn $(CURDIR)/$(ASAN_BUILD)/$$b $(ASAN_BUILD)/tree/build/$$b; done
	@rm -f $(ASAN_BUILD)/tree/build/dragoman && \
	  printf '#!/bin/sh\n# make asan: the sanitized server with its own ASAN_OPTIONS (LeakSanitizer when ASAN_LEAKS=1)\nASAN_OPTIONS=%s exec %s "$$@"\n' \
	    'detect_leaks=$(ASAN_LEAKS):$(ASAN_OPTS)$(ASAN_UNWIND)' $(CURDIR)/$(ASAN_BUILD)/dragoman > $(ASAN_BUILD)/tree/build/dragoman && \
	  chmod +x $(ASAN_BUILD)/tree/build/dragoman
	@ln -sfn $(CURDIR)/$(BUILD)/media $(ASAN_BUILD)/tree/build/media
	@cd $(ASAN_BUILD)/tree && failed=; for t in tests/integration/*.sh tests/integration/*.py; do \
	  case $$t in */harness.py|*/wsclient.py) continue ;; esac; \
	  echo "== asan $$t"; \
	  case $$t in *.py) $(ASAN_TOOL_ENV) $(ASAN_TEST_ENV) python3 $$t ;; *) $(ASAN_TOOL_ENV) $(ASAN_TEST_ENV) $$t ;; esac || \
	    failed="$$failed $$t"; \
	done; \
	reports=$$(grep -r -l -a -E '$(ASAN_REPORTS)' build/test-artifacts 2>/dev/null); \
	for r in $$reports; do echo "== sanitizer report in $(ASAN_BUILD)/tree/$$r"; \
	  grep -a -E -A30 '$(ASAN_REPORTS)' $$r | head -n 60; done; \
	[ -z "$$failed$$reports" ] || { echo "asan: failed:$$failed; reports: $${reports:-none}"; exit 1; }
