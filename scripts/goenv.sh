# Sourced by scripts/build.sh and scripts/test.sh: the Go toolchain and
# settings berth is built and tested with.
#
# go from /usr/local/go when it is not on PATH.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH=/usr/local/go/bin:$PATH; fi
# GOEXPERIMENT=jsonv2: encoding/json runs on Go's new implementation (same
# API and output). It builds a type's encoder only for the parts a value
# has, and faster: a container start encodes and decodes docker's and the
# OCI spec's large types once per process, which took about 1.8 ms of each
# start's CPU with the old one. The tests run on the encoding/json the
# binaries ship.
case ",${GOEXPERIMENT:-}," in
  *,jsonv2,*) ;;
  *) export GOEXPERIMENT="${GOEXPERIMENT:+$GOEXPERIMENT,}jsonv2" ;;
esac
