# dragoman — build, set-up and test entry points.
#   make demo   installs dependencies, builds, runs the demo conference (configs/demo.ini)
#   make test   installs dependencies, builds, runs every test
#   make bench  latency and fan-out benchmarks (see docs/performance.md)
#   make certs  a self-signed TLS certificate for a LAN event (certs/)
#   make fuzz / make asan   libFuzzer targets, the ASan+UBSan build (tests/fuzz/fuzz.mk)

BUILD   ?= build
CC      ?= gcc
PKGS     = gstreamer-1.0 gstreamer-base-1.0 gstreamer-app-1.0 gstreamer-audio-1.0 gstreamer-video-1.0 \
           gstreamer-controller-1.0 gstreamer-webrtc-1.0 gstreamer-sdp-1.0 gstreamer-pbutils-1.0 \
           libwebsockets json-glib-1.0 opus
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
# The server's malloc: jemalloc (default) or glibc (MALLOC=glibc). With glibc the heap the
# stage's reconnects and the recording's restarts freed stayed resident: the 30-minute soak
# rose 6.2 % with it, 2.9 % with jemalloc beside it (docs/reliability.md). Only the server and the
# unit checks link it: the sanitizer builds (make asan, the fuzz targets) bring their own.
MALLOC  ?= jemalloc
ifeq ($(MALLOC),jemalloc)
CFLAGS  += -DDRAGOMAN_JEMALLOC
MALLOC_LIBS = -ljemalloc
endif

SRCS     = $(filter-out src/main.c,$(wildcard src/*.c))
OBJS     = $(SRCS:src/%.c=$(BUILD)/obj/%.o)
CHECKS   = $(patsubst tests/check/%.c,$(BUILD)/check/%,$(wildcard tests/check/*.c))
CHECK_LIBS = $(shell pkg-config --libs gstreamer-check-1.0 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags gstreamer-check-1.0 2>/dev/null)

# Debian packages: build, run and test. `make deps` runs apt only when one is missing.
APT_PKGS = build-essential pkg-config curl iproute2 util-linux python3 openssl \
           libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev \
           gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
           gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice gstreamer1.0-x \
           libwebsockets-dev libwebsockets-evlib-glib libjson-glib-dev libopus-dev \
           espeak-ng ffmpeg chromium icecast2 nginx-light libnginx-mod-rtmp libnginx-mod-nchan redis-server \
           clang libclang-rt-dev libjemalloc-dev
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps demo test check integration integration-first integration-second browser bench bench-smoke clean format media certs soak
all: $(BUILD)/dragoman $(BUILD)/wsprobe $(BUILD)/loadgen $(BUILD)/clickbench $(BUILD)/boothpeer media

deps:
	@missing=$$(dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' $(APT_PKGS) 2>&1 | \
	  awk '$$1 != "ii" {print $$NF} /no packages found/ {print $$NF}'); \
	if ! command -v npm >/dev/null 2>&1; then missing="$$missing nodejs npm"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$(echo $$missing | tr '\n' ' ')"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PKGS) \
	    $$(command -v npm >/dev/null 2>&1 || echo nodejs npm); \
	else echo "deps: Debian packages present"; fi
	@if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules ]; then \
	  cd web && npm ci --no-audit --no-fund && touch node_modules; \
	else echo "deps: npm packages present"; fi

$(BUILD)/obj/%.o: src/%.c src/*.h | $(BUILD)/obj
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

# heaptrim.o is built for one malloc: a MALLOC other than the last build's rebuilds it
$(BUILD)/.malloc: FORCE | $(BUILD)
	@echo $(MALLOC) | cmp -s - $@ || echo $(MALLOC) > $@
$(BUILD)/obj/heaptrim.o: $(BUILD)/.malloc
FORCE:

$(BUILD)/dragoman: $(OBJS) $(BUILD)/obj/main.o
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) $(MALLOC_LIBS)

$(BUILD)/wsprobe: tools/wsprobe.c | $(BUILD)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $< -o $@ $(shell pkg-config --cflags --libs glib-2.0 opus json-glib-1.0) -lm

$(BUILD)/check/%: tests/check/%.c $(OBJS) | $(BUILD)/check
	@echo "  CHECK   $<"
	@$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Isrc $< $(OBJS) -o $@ $(LDLIBS) $(MALLOC_LIBS) $(CHECK_LIBS)

$(BUILD) $(BUILD)/obj $(BUILD)/check:
	mkdir -p $@

media:
	@tools/make-demo-media.sh $(BUILD)/media

# a self-signed certificate for a LAN event: certs/dragoman.{crt,key} (CERT_HOSTS="name 10.0.0.5" adds more)
certs:
	@tools/make-certs.sh certs

demo: deps all
	$(BUILD)/dragoman --config configs/demo.ini

check: all $(CHECKS)
	@set -e; for t in $(CHECKS); do echo "== $$t"; $$t; done

# outputs.py (~80 s, mostly waiting on nginx-rtmp, ffprobe and recordings) runs beside the
# second half, whose checks are about what arrives, not how soon (hostile input, edges, floods,
# tokens, the short soak), its output held until they finish: `make test` stays under 15
# minutes on 2 cores (a clean clone took 14 min 47 s with it in line). Each script takes free
# ports of its own.
integration: all
	@$(MAKE) --no-print-directory integration-first
	@mkdir -p $(BUILD)/test-artifacts; rm -f $(BUILD)/test-artifacts/outputs.rc; \
	  (python3 tests/integration/outputs.py > $(BUILD)/test-artifacts/outputs.out 2>&1; \
	   echo $$? > $(BUILD)/test-artifacts/outputs.rc) & \
	  $(MAKE) --no-print-directory integration-second; rc=$$?; \
	  while [ ! -s $(BUILD)/test-artifacts/outputs.rc ]; do sleep 1; done; \
	  echo "== tests/integration/outputs.py (ran beside the second half)"; cat $(BUILD)/test-artifacts/outputs.out; \
	  [ $$rc = 0 ] && [ "$$(cat $(BUILD)/test-artifacts/outputs.rc)" = 0 ]

integration-first:
	tests/integration/demo.sh
	tests/integration/booth.sh
	python3 tests/integration/control.py
	python3 tests/integration/stage.py
	python3 tests/integration/tls.py
	python3 tests/integration/filestage.py
	python3 tests/integration/retour.py
	python3 tests/integration/hwbooth.py
	python3 tests/integration/reload.py

integration-second:
	python3 tests/integration/hostile.py
	python3 tests/integration/ingest.py
	python3 tests/integration/edge.py
	python3 tests/integration/nchan.py
	python3 tests/integration/flood.py
	python3 tests/integration/viewer_token.py
	python3 tests/integration/cors.py
	SOAK_MINUTES=0.6 SOAK_STAGE_PERIOD=12 python3 tests/integration/soak.py

# make soak: SOAK_MINUTES (30) of a restless event (stage drops, a booth on and off air,
# listeners churning, HLS) with the server's RSS sampled; results in docs/reliability.md
SOAK_MINUTES ?= 30
soak: all
	SOAK_MINUTES=$(SOAK_MINUTES) python3 tests/integration/soak.py

# The browser runs in a network namespace with only loopback up, so nothing leaves 127.0.0.1.
NETNS := $(shell [ "$$(id -u)" = 0 ] && echo "unshare -n sh -c 'ip link set lo up && exec \"\$$0\" \"\$$@\"'")
# 6 s / 5 s of tone windows (60 / 50) per channel check keep `make test` under 15 minutes;
# the suites' own defaults (12 s, 8 s) are for a run by hand
browser: all
	@set -e; for t in tests/browser/*.test.mjs; do echo "== $$t"; \
	  LISTENER_SAMPLE_MS=$${LISTENER_SAMPLE_MS:-6000} WATCH_SAMPLE_MS=$${WATCH_SAMPLE_MS:-5000} $(NETNS) node $$t; done

# make bench: ≤ 10 minutes (QUICK=1: ≤ 1 minute); writes bench/results.json and docs/performance.md
bench: deps all
	python3 tools/bench.py

bench-smoke: all
	python3 tools/bench.py --smoke

# the builds on both cores (the test runs stay one at a time)
test: deps
	$(MAKE) -j2 all
	$(MAKE) -j2 $(CHECKS)
	$(MAKE) check
	$(MAKE) -j2 fuzz-build
	$(MAKE) fuzz-smoke
	$(MAKE) integration
	$(MAKE) bench-smoke
	$(MAKE) browser

format:
	clang-format -i src/*.c src/*.h tests/check/*.c tools/*.c

clean:
	rm -rf $(BUILD)

$(BUILD)/loadgen: tools/loadgen.c | $(BUILD)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $< -o $@ $(shell pkg-config --cflags --libs glib-2.0) -lm

$(BUILD)/boothpeer: tools/boothpeer.c | $(BUILD)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $< -o $@ $(shell pkg-config --cflags --libs gstreamer-1.0 gstreamer-webrtc-1.0 gstreamer-sdp-1.0 json-glib-1.0 opus) -lm

$(BUILD)/clickbench: tools/clickbench.c | $(BUILD)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $< -o $@ $(shell pkg-config --cflags --libs glib-2.0 opus) -lm

# make fuzz, make fuzz-smoke (in make test), make asan: see tests/fuzz/fuzz.mk
include tests/fuzz/fuzz.mk
