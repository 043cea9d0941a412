# The two commands (see README.md):
#   make demo    install what is missing, build, run the showcase (weft demo)
#   make check   install what is missing, build three ways (release -Werror, ASan+UBSan, TSan)
#                and run every test in each, plus clang-format and the fuzzers
# Also: make build (release build only), make bench, make install [PREFIX=/usr/local], make clean.

JOBS   ?= $(shell nproc)
PREFIX ?= /usr/local
REL    := build/release

.PHONY: all deps build demo check bench install format clean

all: build

deps:
	@bash scripts/deps.sh build

build: deps
	@cmake -S . -B $(REL) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_WERROR=ON \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(REL) -j$(JOBS) -- --no-print-directory

demo: build
	./$(REL)/weft demo

check: deps
	@bash scripts/check.sh

bench: build
	@bash scripts/deps.sh bench
	@bash bench/run.sh $(REL)

install: build
	cmake --install $(REL)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
