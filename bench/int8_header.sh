#!/bin/sh
# bench/int8_header.sh DC - the lines a bench with int8 compute starts with:
# the CPU, its vector units (those the int8 product and sgemm can use), and
# the int8 variant dc runs here with its self-check and quick rates (dc blas).
dc=${1:-./dc}
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
     "units: $(grep -o -w -E 'avx2|avx512f|avx512bw|avx512_vnni|avx_vnni|avx512_bf16|amx_int8|asimddp|i8mm' /proc/cpuinfo | sort -u | tr '\n' ' ')"
"$dc" blas | sed -n -e 's/^/dc blas: /' -e '/int8 product\|rates/p'
