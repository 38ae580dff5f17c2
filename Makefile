# The two commands (README): `make demo` runs the whole job on local defaults, `make test` the tests.
.PHONY: setup demo test lock
setup:
	scripts/setup.sh
demo:
	scripts/demo.sh
test:
	scripts/test.sh
lock:
	scripts/lock.sh
