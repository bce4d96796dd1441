# Convenience targets; the work is done by the scripts they call.
#   make install PREFIX=/usr/local [PROFILE=release|release-small] [LIBDIR=lib] [STRIP=1] [DESTDIR=...]
#     (cargo cinstall plus the CMake package files: scripts/install.sh)
#   make cpp-tests
PREFIX ?= /usr/local
PROFILE ?= release
LIBDIR ?= lib
STRIP ?= 0
DESTDIR ?=

.PHONY: install cpp-tests

install:
	scripts/install.sh --prefix "$(PREFIX)" --profile "$(PROFILE)" --libdir "$(LIBDIR)" $(if $(DESTDIR),--destdir "$(DESTDIR)",) $(if $(filter 1,$(STRIP)),--strip,)

cpp-tests:
	scripts/cpp-tests.sh
