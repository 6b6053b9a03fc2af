# robofeedback: `make demo` and `make test` set everything up on a fresh Debian machine with Python 3.11.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Headless rendering: EGL with Mesa's software rasterizer for MuJoCo (MetaWorld); GLib for OpenCV;
# a PostgreSQL server, which the tests start to check the feedback store on it; libseccomp, the system-call
# filter of the jail that LLM-written reward code runs in.
DEB_PACKAGES := libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libglib2.0-0 postgresql libseccomp2
# The app's browser tests drive Debian's headless Chromium with Playwright.
TEST_DEB_PACKAGES := chromium chromium-driver fonts-dejavu-core

.PHONY: demo test setup system-deps bench clean

# The annotation app with SAC learning panda reach from the preferences given in it; AUTO=1: a scripted
# Oracle answers through the app's HTTP endpoints instead of a person.
demo: setup
	$(BIN)/robofeedback demo $(if $(AUTO),--auto)

test: setup
	@$(MAKE) --no-print-directory system-deps DEB_PACKAGES="$(TEST_DEB_PACKAGES)"
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m robofeedback.bench.throughput

setup: system-deps $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[all,test]"
	touch $(STAMP)

system-deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3.11-venv"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo=sudo; \
		else echo "missing Debian packages: $$missing (install them as root)"; exit 1; fi; \
		echo "installing Debian packages: $$missing"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

clean:
	rm -rf $(VENV) runs *.egg-info
