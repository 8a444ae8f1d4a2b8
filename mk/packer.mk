# The Packer templates (images/), checked for real without Packer 1.16:
#   make packer-fmt    `packer fmt -check` on every images/<family>/ with
#                      Debian 12's Packer 1.6.6 (same hclwrite formatter;
#                      tools/packer_fmt_check.sh says why and how it is pinned)
#   make images-hcl    every *.pkr.hcl parsed with python-hcl2 and held to
#                      gild's invariants (tests/twin/images/test_hcl.py), the
#                      pins check's own tests, and ruff on this Python
# The Python side runs from a virtualenv of its own, .venv/images, built
# from tests/twin/images/requirements.txt (every version pinned). It depends
# on the tools stamp because `make tools` rebuilds .venv from scratch.

CHECKS += packer-fmt images-hcl

.PHONY: images-venv packer-fmt images-hcl

IMAGES_VENV := $(VENV)/images
IMAGES_REQUIREMENTS := tests/twin/images/requirements.txt
IMAGES_PYTHON_FILES := tools/packer_hcl.py tools/pins_check.py tests/twin/images

$(eval $(call sub_venv,IMAGES))

images-venv: $(IMAGES_STAMP)

packer-fmt:
	tools/packer_fmt_check.sh

images-hcl: images-venv
	$(IMAGES_VENV)/bin/ruff check $(IMAGES_PYTHON_FILES)
	$(IMAGES_VENV)/bin/ruff format --check $(IMAGES_PYTHON_FILES)
	$(IMAGES_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/twin/images
