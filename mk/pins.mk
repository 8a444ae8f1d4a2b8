# Version and checksum pins (ansible/pins.yml):
#   make pins-check   fails when a role asserts (or marks `| mandatory`) a
#                     variable that no pins file provides, when a Packer
#                     template does not pass ansible/pins.yml to Ansible, or
#                     when the file names a pin no role declares; lists the
#                     pins still empty (to fill before the first bake,
#                     docs/deploy.md). tools/pins_check.py; its tests run
#                     in `make images-hcl` (tests/twin/images/test_pins.py).
# It parses the templates with python-hcl2, so it runs from .venv/images
# (images-venv, defined in mk/packer.mk).

CHECKS += pins-check

.PHONY: pins-check

pins-check: images-venv
	$(VENV)/images/bin/python tools/pins_check.py
