#!/bin/sh
# tests/embed.sh - `make test-embed`: the single-file library embedded as a
# program embeds it. The program uses stb_image itself (its own
# implementation, in its own file) and defines DC_IMPLEMENTATION in another
# file that includes build/single/dc.h; it links with OpenBLAS, OpenMP and
# -lm only. Checks, each printed as "ok"/"FAIL" with the runner's summary line:
# the implementation compiles warning-free, exports no symbol but the dc_
# functions of dc.h (nm), links beside the program's own stb_image, and
# classifies a shipped sample, from its own decoded pixels and from the
# file, as the driver does.
#
# usage: CC=.. CFLAGS=.. LDLIBS=.. sh tests/embed.sh WORKDIR DRIVER
#   (the Makefile passes its compiler, flags and libraries)
: "${CC:=cc}"
work=$1 driver=$2
model=data/models/default.dcw
image=$(ls data/samples/*.png | head -n 1)
passed=0 failed=0
result() { # name, status (0 = ok)
    if [ "$2" -eq 0 ]; then echo "ok   $1"; passed=$((passed + 1))
    else echo "FAIL $1"; failed=$((failed + 1)); fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}
rm -rf "$work" && mkdir -p "$work" || exit 1
cp build/single/dc.h "$work/dc.h" || { result single_header_should_exist 1; finish; }

# the embedder's three lines: two here, the compiler line below
printf '#define DC_IMPLEMENTATION\n#include "dc.h"\n' > "$work/dc_impl.c"

cat > "$work/main.c" <<'EOF'
/* a program that decodes images with its own stb_image and classifies them
   with dc. usage: main MODEL IMAGE; prints the top class of dc_classify_rgb
   (these pixels) and of dc_classify_image (dc's own decoder), one a line */
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stdio.h>
#include "dc.h"

static int top(dc_ctx *c, const dc_classes *cl, const dc_classify_opts *o, const char *path,
               const unsigned char *rgb, int w, int h)
{
    dc_result r;
    dc_error err;
    dc_status st = rgb ? dc_classify_rgb(c, cl, rgb, w, h, o, &r, &err)
                       : dc_classify_image(c, cl, path, o, &r, &err);
    if (st != DC_OK) {
        fprintf(stderr, "main: %s\n", err.msg);
        return 0;
    }
    printf("%s\n", dc_classes_name(cl, r.ranking[0]));
    dc_result_free(&r);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    int w, h, comp;
    unsigned char *rgb = stbi_load(argv[2], &w, &h, &comp, 3);
    if (!rgb) {
        fprintf(stderr, "main: stb_image: %s\n", stbi_failure_reason());
        return 1;
    }
    dc_error err;
    dc_model *m = NULL;
    dc_ctx *c = NULL;
    dc_classes *cl = NULL;
    int ok = dc_model_load(&m, argv[1], NULL, &err) == DC_OK && dc_ctx_new(&c, m, &err) == DC_OK &&
             dc_classes_new(&cl, c, NULL, 0, NULL, &err) == DC_OK;
    if (!ok) fprintf(stderr, "main: %s\n", err.msg);
    /* the driver's main job: the library's defaults are the driver's
       (DC_STOP_AUTO: the model's calibrated stopping when it has one) */
    dc_classify_opts o;
    dc_classify_opts_default(&o);
    ok = ok && top(c, cl, &o, argv[2], rgb, w, h) && top(c, cl, &o, argv[2], NULL, 0, 0);
    stbi_image_free(rgb);
    dc_classes_free(cl);
    dc_ctx_free(c);
    dc_model_free(m);
    return ok ? 0 : 1;
}
EOF

# shellcheck disable=SC2086 # CFLAGS and LDLIBS are word lists
$CC $CFLAGS -Werror -I"$work" -c "$work/dc_impl.c" -o "$work/dc_impl.o" >"$work/cc-impl.log" 2>&1
rc=$?
cat "$work/cc-impl.log"
result single_file_should_compile_warning_free_with_Werror $rc
[ $rc -eq 0 ] || finish

# every global symbol it defines must be a function that dc.h declares
nm -g --defined-only "$work/dc_impl.o" | awk 'NF == 3 {print $3}' | sort > "$work/exported.txt"
leaks=0
while read -r sym; do
    case $sym in
        dc__*) public=0 ;;
        dc_*) if grep -q "[ *]$sym(" dc.h; then public=1; else public=0; fi ;;
        *) public=0 ;;
    esac
    if [ $public -eq 0 ]; then
        echo "  exported but not public API: $sym"
        leaks=$((leaks + 1))
    fi
done < "$work/exported.txt"
n=$(wc -l < "$work/exported.txt")
echo "  $n global symbols defined, $leaks of them not dc.h's functions"
[ "$n" -gt 0 ] && [ $leaks -eq 0 ]
result single_file_should_export_only_the_public_api $?

$CC $CFLAGS -I"$work" -c "$work/main.c" -o "$work/main.o" >"$work/cc-main.log" 2>&1 &&
    $CC $CFLAGS "$work/main.o" "$work/dc_impl.o" $LDLIBS -o "$work/main" >>"$work/cc-main.log" 2>&1
rc=$?
grep -E 'error|multiple definition' "$work/cc-main.log" | head -n 10
result program_with_its_own_stb_image_should_link_the_single_file $rc
[ $rc -eq 0 ] || finish

got=$("$work/main" "$model" "$image" 2>"$work/main.err")
rc=$?
cat "$work/main.err"
want=$("$driver" classify -m "$model" --csv --top 1 --quiet "$image" | sed -n '2s/^[^,]*,1,"\(.*\)",.*/\1/p')
echo "  $image: driver: '$want'; embedded, own pixels / dc's decoder: '$(echo "$got" | tr '\n' '/' | sed 's|/$||')'"
ok=1
[ $rc -eq 0 ] && [ -n "$want" ] && [ "$(echo "$got" | sed -n 1p)" = "$want" ] &&
    [ "$(echo "$got" | sed -n 2p)" = "$want" ] && [ "$(echo "$got" | wc -l)" -eq 2 ] && ok=0
result embedded_dc_should_classify_a_sample_as_the_driver_does $ok
finish
