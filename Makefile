# Cutouts: every target creates or reuses .venv from the requirements files.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_OUTDIR ?= cdk.out
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: dev demo test lint synth deploy destroy bench chaos clean

$(STAMP): requirements.txt requirements-dev.txt requirements-lambda.txt requirements-imaging.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode -r requirements-dev.txt
	touch $(STAMP)

dev: $(STAMP)

demo: $(STAMP)  ## run the whole pipeline locally on the sample images with the demo profiles; open out/index.html
	rm -rf out
	$(PY) -m local run --input samples/images --output out --profiles samples/profiles.json
	$(PY) -c "from pathlib import Path; from local.contact_sheet import write_contact_sheet as w; \
	n = w(Path('samples/images'), Path('out'), Path('out/index.html')); print(f'out/index.html: {n} inputs')"

test: $(STAMP) lint  ## the whole suite: unit, infra (synth, cdk-nag, cfn-lint), local end to end
	$(PY) -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check functions infra local cutouts_cli bench tests app.py
	$(VENV)/bin/ruff format --check functions infra local cutouts_cli bench app.py
	$(VENV)/bin/mypy functions/cutouts local cutouts_cli bench
	$(VENV)/bin/mypy app.py infra

# Context for synth, deploy and destroy: `make synth stage=prod`, `make deploy CONTEXT="stage=prod alarmEmail=a@b.example"`.
CONTEXT_ARGS := $(if $(stage),-c stage=$(stage)) $(foreach pair,$(CONTEXT),-c $(pair))

synth: $(STAMP)  ## validates the context and writes the template to cdk.out/ (no AWS calls)
	$(PY) app.py $(CONTEXT_ARGS)

deploy: $(STAMP)
	npx -y aws-cdk@2 deploy $(CONTEXT_ARGS)

destroy: $(STAMP)
	npx -y aws-cdk@2 destroy $(CONTEXT_ARGS)

bench: $(STAMP)
	$(PY) -m bench

chaos: $(STAMP)
	set -o pipefail; CUTOUTS_CHAOS_INPUTS=400 $(PY) -m pytest -m chaos tests/local/test_chaos.py -q -s 2>&1 | grep -v '^{"_aws'

clean:
	rm -rf $(VENV) cdk.out out
