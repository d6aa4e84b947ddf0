#!/bin/sh
# make check: the failure sites are consistent (tests/sites.sh --check:
# no number twice, every site tagged, in its file's range, a literal).
exec sh "${top_srcdir:-$(dirname "$0")/..}/tests/sites.sh" --check
