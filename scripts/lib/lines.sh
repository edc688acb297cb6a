# Produce input for kcat benchmarks (sourced). `lines_1k FILE COUNT` writes COUNT lines of 1,023
# random base64 bytes plus a newline (1 KiB records that do not compress) unless FILE exists.
lines_1k() {
    [ -f "$1" ] && return 0
    python3 -c "
import os, base64, sys
with open(sys.argv[1], 'wb') as f:
    for _ in range(int(sys.argv[2])):
        f.write(base64.b64encode(os.urandom(768))[:1023] + b'\n')
" "$1" "$2"
}
