# Convenience aliases; tasks.py does the work and needs only Python >= 3.11 and pip.
PYTHON ?= python3
.PHONY: demo test bench schema
demo:
	$(PYTHON) tasks.py demo
test:
	$(PYTHON) tasks.py test
bench:
	$(PYTHON) tasks.py bench
schema:
	$(PYTHON) tasks.py schema
